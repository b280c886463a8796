"""Training RAR's retriever while a conversation already runs: :class:`BackgroundTraining`.

On a fresh machine ``lrurec-text`` takes 10-20 minutes to train on 2 cores, most of it encoding the training
dialogues once with MiniLM. Nobody should wait that long for a first reply, so the chat opens at once on a
retriever that needs no training (``itemknn`` fits in a second) while ``convrec train`` runs in a child
process; when the run is finished, the chat loads it and the trained retriever answers the next turn. The
conversation (a :class:`~convrec.serve.state.SessionState`) does not belong to either engine, so it goes on
unchanged across the swap.

Why a child process at the lowest CPU priority rather than a thread: the chat's LLM wants every core while the
user waits for an answer, and a nice-19 process gets only what the LLM leaves (the scheduler gives it about 1/70
of a contended core), so turns stay as fast as they were, and training uses the time the user spends reading
and typing. A process can also be stopped cleanly: the training run writes its checkpoints atomically after
every epoch (and the text encodings every 2,048 texts), so stopping it loses at most one epoch, and the next
start resumes it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from convrec.errors import ConvrecError
from convrec.retrieval.lrurec.training import RUN_CONFIG

SUMMARY_FILE = "summary.json"  # written by `convrec train` after its last epoch: the run is complete
LOG_FILE = "train.log"
STOP_TIMEOUT_S = 10.0

Phase = Literal["running", "finished", "failed", "stopped"]


class TrainingFailed(ConvrecError):
    """The background ``convrec train`` process ended with an error (its log says why)."""


def is_finished_run(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a completed ``convrec train`` run (its summary and its model config)."""
    return (run_dir / SUMMARY_FILE).is_file() and (run_dir / RUN_CONFIG).is_file()


@dataclass(frozen=True)
class TrainingProgress:
    """What a chat shows of the background run: its phase, the epochs done and the best validation Recall@10."""

    phase: Phase
    epochs_done: int
    best_valid_recall: float | None
    log: Path
    returncode: int | None = None

    def describe(self) -> str:
        if self.phase == "running" and not self.epochs_done:
            return f"training: preparing (encoding the dialogues; log {self.log})"
        best = f", best valid Recall@10 {self.best_valid_recall:.3f}" if self.best_valid_recall is not None else ""
        if self.phase == "running":
            return f"training: {self.epochs_done} epoch{'s' if self.epochs_done != 1 else ''} done{best}"
        if self.phase == "failed":
            return f"training failed (exit {self.returncode}): see {self.log}"
        return f"training {self.phase} after {self.epochs_done} epochs{best}"


class BackgroundTraining:
    """``convrec train --dataset D --recommender R --out RUN_DIR`` in a child process at nice 19.

    ``extra_args`` are more ``convrec train`` arguments (``--data-dir``, ``--set``...). ``on_finished`` is
    called once, from a watcher thread, when the run completes successfully (``on_failed`` with the progress when
    it fails); neither is called after :meth:`stop`.
    """

    def __init__(self, dataset: str, run_dir: Path, recommender: str = "lrurec-text",
                 extra_args: Sequence[str] = (), on_finished: Callable[[Path], None] | None = None,
                 on_failed: Callable[[TrainingProgress], None] | None = None):
        self.dataset = dataset
        self.run_dir = Path(run_dir)
        self.recommender = recommender
        self.extra_args = list(extra_args)
        self.on_finished = on_finished
        self.on_failed = on_failed
        self.log_path = self.run_dir / LOG_FILE
        self._process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None
        self._watcher: threading.Thread | None = None
        self._stopped = threading.Event()

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "convrec", "train", "--dataset", self.dataset, "--recommender",
                self.recommender, "--out", str(self.run_dir), *self.extra_args]

    def start(self) -> BackgroundTraining:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - the child writes it for as long as it runs
        env = dict(os.environ, PYTHONUNBUFFERED="1", TQDM_MININTERVAL="5")
        self._process = subprocess.Popen(
            self.command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT, env=env,
            # its own session: a Ctrl-C in the chat's terminal reaches the chat, which stops it in order
            start_new_session=True, preexec_fn=_lowest_priority,
        )
        self._watcher = threading.Thread(target=self._watch, name="background-training", daemon=True)
        self._watcher.start()
        return self

    def _watch(self) -> None:
        assert self._process is not None
        self._process.wait()
        if self._stopped.is_set():
            return
        if self._process.returncode == 0 and is_finished_run(self.run_dir):
            if self.on_finished is not None:
                self.on_finished(self.run_dir)
        elif self.on_failed is not None:
            self.on_failed(self.progress())

    def progress(self) -> TrainingProgress:
        returncode = self._process.poll() if self._process is not None else None
        if self._stopped.is_set():
            phase: Phase = "stopped"
        elif returncode is None:
            phase = "running"
        else:
            phase = "finished" if returncode == 0 and is_finished_run(self.run_dir) else "failed"
        epochs, best = _history(self.run_dir)
        return TrainingProgress(phase, epochs, best, self.log_path, returncode)

    def wait(self, timeout: float | None = None) -> TrainingProgress:
        """Block until the child has ended and the watcher has run its callback (for scripts and tests)."""
        if self._watcher is not None:
            self._watcher.join(timeout)
        return self.progress()

    def stop(self) -> TrainingProgress:
        """Stop the child (SIGTERM, then SIGKILL after 10 s); a finished child is left as it is."""
        if self._process is not None and self._process.poll() is None:
            self._stopped.set()
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._watcher is not None:
            self._watcher.join()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.progress()


def _lowest_priority() -> None:  # runs in the child between fork and exec
    os.nice(19)


def _history(run_dir: Path) -> tuple[int, float | None]:
    """Epochs done and best validation Recall@10 so far, from the run's history.json (absent early on)."""
    try:
        history = json.loads((run_dir / "history.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return 0, None
    recalls = [h.get("valid_recall_at_10") for h in history if isinstance(h, dict) and h.get("phase") == "train"]
    recalls = [r for r in recalls if isinstance(r, int | float)]
    return len(history), (max(recalls) if recalls else None)
