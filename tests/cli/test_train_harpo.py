"""``convrec train-harpo``: the stages in order, each in its own process, measured, resumed after a failure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from convrec.cli.harpo_cmd import Stage, StageFailed, harpo_stages, run_stages
from convrec.cli.main import main


def test_the_dry_run_prints_every_stage_in_order(capsys):
    assert main(["train-harpo", "--dataset", "inspired", "--runs", "runs", "--bridge-also", "redial",
                 "--dry-run"]) == 0
    printed = capsys.readouterr().out
    names = [line.split(":")[0].removeprefix("# ") for line in printed.splitlines() if line.startswith("# ")]
    assert names == ["lrurec-text", "learned-ranker", "quality", "bridge", "star"]
    # every later stage reads the retriever the first one writes
    assert printed.count("runs/lrurec-text-inspired") == 4 and "also=[\"redial\"]" in printed
    assert [s.name for s in harpo_stages("redial", Path("r"))] == ["lrurec-text", "learned-ranker", "quality", "star"]


def python_stage(name: str, code: str) -> Stage:
    return Stage(name, f"test stage {name}", (sys.executable, "-c", code))


def test_each_stage_is_measured_and_a_failed_one_resumes_without_the_ones_before(tmp_path):
    ran = tmp_path / "ran.txt"
    allocate = (f"open({str(ran)!r}, 'a').write('big\\n'); block = bytearray(300 * 2**20); "
                "block[::4096] = b'x' * len(block[::4096])")
    report_path = tmp_path / "runs" / "report.json"  # a folder that does not exist yet
    failing = [python_stage("big", allocate), python_stage("broken", "import sys; sys.exit(3)")]
    with pytest.raises(StageFailed, match="'broken' failed \\(exit 3\\)"):
        run_stages(failing, report_path, say=lambda text: None)
    report = json.loads(report_path.read_text())
    assert report["stages"]["big"]["status"] == "finished" and report["stages"]["big"]["peak_mib"] > 290
    assert report["stages"]["broken"]["status"] == "failed (exit 3)"

    fixed = [failing[0], python_stage("broken", f"open({str(ran)!r}, 'a').write('fixed\\n')")]
    report = run_stages(fixed, report_path, say=lambda text: None)
    assert ran.read_text().split() == ["big", "fixed"]  # the finished stage was not run again
    assert report["stages"]["broken"]["status"] == "finished" and report["stages"]["broken"]["peak_mib"] < 290
    # a stage whose command changed runs again
    changed = [python_stage("big", allocate.replace("300", "10")), fixed[1]]
    run_stages(changed, report_path, say=lambda text: None)
    assert ran.read_text().split() == ["big", "fixed", "big"]
