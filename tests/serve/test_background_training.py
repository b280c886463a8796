"""Training RAR's retriever while the chat answers: the child process, its progress, stopping and resuming it,
a failure, and the chat swapping the trained retriever in between two turns (on the tutorial's 36 books)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convrec.cli.main import RAISE_BUGS_ENV
from convrec.serve.background import BackgroundTraining, is_finished_run

ROOT = Path(__file__).resolve().parents[2]
BOOKS = ROOT / "docs" / "examples" / "books"
QUICK = ["--set", "train.epochs=3", "--set", "train.patience=3"]


@pytest.fixture(scope="module")
def books_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A data dir holding the tutorial's books as ``mybooks`` and an empty cache dir, as environment variables."""
    root = tmp_path_factory.mktemp("background")
    env = dict(os.environ, CONVREC_DATA_DIR=str(root / "data"), CONVREC_CACHE_DIR=str(root / "cache"))
    subprocess.run([sys.executable, "-m", "convrec", "data", "import", "--name", "mybooks", "--catalog",
                    str(BOOKS / "catalog.jsonl"), "--dialogues", str(BOOKS / "dialogues.jsonl")],
                   env=env, check=True, capture_output=True)
    return env


@pytest.fixture
def in_books_env(books_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CONVREC_DATA_DIR", "CONVREC_CACHE_DIR"):
        monkeypatch.setenv(name, books_env[name])


def test_a_run_trains_to_the_end_reports_progress_and_calls_back_once(in_books_env, tmp_path):
    finished: list[Path] = []
    run_dir = tmp_path / "run"
    training = BackgroundTraining("mybooks", run_dir, extra_args=QUICK, on_finished=finished.append).start()
    assert training.progress().phase == "running"
    progress = training.wait(timeout=300)
    assert progress.phase == "finished", (run_dir / "train.log").read_text()
    assert finished == [run_dir]
    assert progress.epochs_done == 3 and 0.0 < progress.best_valid_recall <= 1.0
    assert is_finished_run(run_dir) and "early stop" not in progress.describe()
    assert "done" in (run_dir / "train.log").read_text()  # the child's own output is kept in its log
    assert training.stop().phase == "finished"  # stopping a finished run changes nothing


def test_the_child_runs_at_the_lowest_priority(in_books_env, tmp_path):
    training = BackgroundTraining("mybooks", tmp_path / "run", extra_args=QUICK).start()
    try:
        assert os.getpriority(os.PRIO_PROCESS, training._process.pid) == 19
    finally:
        training.stop()


def test_a_stopped_run_says_so_calls_nothing_back_and_the_same_command_resumes_it(in_books_env, tmp_path):
    called: list[object] = []
    run_dir = tmp_path / "run"
    training = BackgroundTraining("mybooks", run_dir, extra_args=QUICK, on_finished=called.append,
                                  on_failed=called.append).start()
    deadline = time.monotonic() + 300
    while not (run_dir / "state.pt").exists() and time.monotonic() < deadline:  # one epoch checkpointed
        time.sleep(0.2)
    stopped = training.stop()
    assert called == []
    if stopped.phase == "finished":  # pragma: no cover - the whole run beat the stop on a fast machine
        pytest.skip("the run finished before it could be stopped")
    assert stopped.phase == "stopped" and not is_finished_run(run_dir)
    resumed = BackgroundTraining("mybooks", run_dir, extra_args=QUICK).start().wait(timeout=300)
    assert resumed.phase == "finished" and resumed.epochs_done == 3
    assert "resumed" in (run_dir / "train.log").read_text()


def test_a_failed_run_is_reported_with_its_log(in_books_env, tmp_path):
    failures = []
    training = BackgroundTraining("no-such-dataset", tmp_path / "run", on_failed=failures.append).start()
    progress = training.wait(timeout=120)
    assert progress.phase == "failed" and progress.returncode == 2
    assert failures and failures[0].phase == "failed"
    assert "no-such-dataset" in progress.log.read_text()
    assert "see" in progress.describe() and str(progress.log) in progress.describe()


def test_the_chat_answers_at_once_and_swaps_in_the_trained_retriever(books_env, tmp_path):
    """Through the real command in a terminal-like pipe: the first turn is itemknn's, /status shows the training,
    the first line after the trained run is loaded swaps it in, and the chat says so."""
    run_dir = tmp_path / "run"
    env = {k: v for k, v in books_env.items() if k != RAISE_BUGS_ENV} | {"PYTHONUNBUFFERED": "1"}
    chat = subprocess.Popen(
        [sys.executable, "-m", "convrec", "chat", "--dataset", "mybooks", "--no-llm", "--train-in-background",
         str(run_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    lines: list[str] = []

    def send(line: str) -> None:
        chat.stdin.write(line + "\n")
        chat.stdin.flush()

    def status() -> str:
        """The retriever /status names (every line read on the way is kept)."""
        send("/status")
        while True:
            line = chat.stdout.readline()
            assert line, "the chat ended early:\n" + "".join(lines)
            lines.append(line)
            if "retriever: " in line:
                return line.split("retriever: ", 1)[1].strip()

    try:
        send("I loved Dune, any similar?")
        assert status() == "itemknn"
        deadline = time.monotonic() + 300
        while status() != "lrurec-text":  # the watcher loads the finished run; the next line swaps it in
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(1)
        out, err = chat.communicate("What else by Frank Herbert?\n", timeout=120)
    finally:
        chat.kill()
    assert chat.returncode == 0, err
    out = "".join(lines) + out
    first, _, rest = out.partition("the trained retriever")
    assert "retrieval by itemknn" in first and "retrieval by lrurec-text" not in first
    assert "training:" in first  # /status while it trains
    assert "lrurec-text" in rest and "answers from now on" in rest
    assert "retrieval by lrurec-text" in rest
    assert "Traceback" not in out + err


def test_a_finished_run_is_loaded_at_once_and_no_training_starts(run_cli, in_books_env, tmp_path):
    run_dir = tmp_path / "run"
    BackgroundTraining("mybooks", run_dir, extra_args=QUICK).start().wait(timeout=300)
    log_size = (run_dir / "train.log").stat().st_size
    run = run_cli("chat", "--dataset", "mybooks", "--no-llm", "--train-in-background", run_dir,
                  "-m", "I loved Dune", "-m", "/status")
    assert run.rc == 0, run.err
    assert "retrieval by lrurec-text" in run.out and "training" not in run.out.split("retriever: lrurec-text")[-1]
    assert (run_dir / "train.log").stat().st_size == log_size


def test_background_training_chooses_the_retriever_itself(run_cli, tmp_path):
    run = run_cli("chat", "--no-llm", "--train-in-background", tmp_path / "run", "--retriever", "ease")
    assert run.failed_with("--train-in-background chooses the retriever itself")
