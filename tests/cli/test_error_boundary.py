"""The CLI's one error boundary: an expected failure is one or two lines and exit 2, a bug is a short
notice on screen with its stack in a log file and exit 70, and neither shows a Python traceback.

The in-process tests inject the failure by replacing a subcommand's handler (``failing_handler``: a fake
that only raises); the subprocess tests run the real ``convrec`` entry point as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from convrec.cli import data_cmd, main
from convrec.errors import CheckpointError, ConfigError, ConvrecError, DataError, OutputPathError
from convrec.llm.errors import LLMError, RetriesExhaustedError


def failing_handler(error: BaseException):
    def handler(args):
        raise error

    return handler


@pytest.mark.parametrize("error", [
    DataError("field 'title' must be a non-empty string", "catalog.jsonl", 3),
    ConfigError("--limit must be a positive integer, got -1"),
    CheckpointError("runs/x: no model.safetensors", hint="train one with `convrec train`"),
    OutputPathError("--json /proc/x.json: cannot write there"),
    RetriesExhaustedError("LLM endpoint unreachable", attempts=3, last_error=ConnectionError("refused")),
])
def test_expected_errors_are_one_or_two_lines_and_exit_2(error, monkeypatch, run_cli):
    assert isinstance(error, ConvrecError)
    monkeypatch.setattr(data_cmd, "run_list", failing_handler(error))
    result = run_cli("data", "list")
    assert result.failed_with(f"convrec: error: {error}")
    lines = result.err.strip().splitlines()
    assert len(lines) == (2 if error.hint else 1)
    if error.hint:
        assert lines[1].strip() == error.hint


def test_llm_errors_are_expected_errors():
    assert issubclass(LLMError, ConvrecError)


def test_a_bug_propagates_in_the_test_suite(monkeypatch, run_cli):
    monkeypatch.setattr(data_cmd, "run_list", failing_handler(ZeroDivisionError("boom")))
    with pytest.raises(ZeroDivisionError):
        run_cli("data", "list")


def test_a_bug_is_reported_with_its_stack_in_a_log_file(monkeypatch, tmp_path, run_cli):
    monkeypatch.delenv(main.RAISE_BUGS_ENV)
    monkeypatch.setenv("CONVREC_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setattr(data_cmd, "run_list", failing_handler(ZeroDivisionError("boom")))
    result = run_cli("data", "list")
    assert result.rc == main.EXIT_BUG
    assert "internal error: ZeroDivisionError: boom" in result.err and "bug in convrec" in result.err
    assert "Traceback" not in result.err + result.out
    (report,) = (tmp_path / "logs").iterdir()
    assert report.name in result.err
    text = report.read_text()
    assert "command: convrec data list" in text and "Traceback" in text and "ZeroDivisionError: boom" in text


def test_interrupt_exits_130(monkeypatch, run_cli):
    monkeypatch.setattr(data_cmd, "run_list", failing_handler(KeyboardInterrupt()))
    result = run_cli("data", "list")
    assert result.rc == main.EXIT_INTERRUPTED and "interrupted" in result.err


def _convrec(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """The real entry point in a fresh interpreter, without the test suite's CONVREC_RAISE_BUGS."""
    environment = {k: v for k, v in os.environ.items() if k != main.RAISE_BUGS_ENV} | env
    return subprocess.run([sys.executable, "-c", "import sys; from convrec.cli.main import main; "
                           "sys.exit(main(sys.argv[1:]))", *argv],
                          capture_output=True, text=True, env=environment, timeout=120)


@pytest.mark.slow
def test_entry_point_prints_one_line_for_an_unknown_dataset(tmp_path):
    done = _convrec("eval", "--dataset", "nosuch", "--recommender", "popularity", "--quiet",
                    env={"CONVREC_DATA_DIR": str(tmp_path / "data"), "CONVREC_LOG_DIR": str(tmp_path / "logs")})
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("convrec: error: unknown dataset 'nosuch'")
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "logs").exists()


@pytest.mark.slow
def test_entry_point_reports_a_bug_without_a_traceback_on_screen(tmp_path: Path):
    # A bug injected into the real process: `data list` is made to divide by zero.
    code = ("import sys; from convrec.cli import data_cmd, main; "
            "data_cmd.run_list = lambda args: 1 / 0; sys.exit(main.main(['data', 'list']))")
    environment = {k: v for k, v in os.environ.items() if k != main.RAISE_BUGS_ENV}
    environment["CONVREC_LOG_DIR"] = str(tmp_path / "logs")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environment,
                          timeout=120)
    assert done.returncode == main.EXIT_BUG
    assert "internal error: ZeroDivisionError" in done.stderr and "Traceback" not in done.stderr
    (report,) = (tmp_path / "logs").iterdir()
    assert "Traceback" in report.read_text()
