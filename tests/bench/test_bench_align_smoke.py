"""Smoke test of bench/bench_align.py: ``--quick`` as a command (SmolLM2, a tiny lrurec checkpoint trained in the
run, one round of 2 contexts x 2 sets of 3 items, cold then warm), on the ReDial data the session fixtures
convert once (skipped without the data mirror). About a minute; it checks the report, not the speed."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PHASES = {"sampling", "llm_feedback", "update", "validation"}


def positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_counts(llm: dict) -> None:
    """Every score has one source: the run's memo, or a request the cache or the model answered."""
    assert llm["item_scores"] == llm["memo_hits"] + llm["llm_requests"]
    assert llm["llm_requests"] == llm["cache_hits"] + llm["llm_calls"]
    assert 0 <= llm["sets_with_target"] <= llm["sets"] and llm["failed"] == 0


@pytest.mark.slow
def test_bench_align_quick(redial, data_dir, mirror, tmp_path):
    out = tmp_path / "align.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_align.py"), "--quick", "--data-dir", str(data_dir),
         "--mirror", str(mirror), "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, env=env, timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["benchmark"] == "align" and "bench_align.py" in report["command"]["command_line"]
    assert report["machine"]["cpu_count"] >= 1 and "RSS" in report["memory_method"]
    assert positive(report["total_seconds"])
    settings = report["settings"]
    assert settings["quick"] is True and settings["model"] == "smollm2-135m" and settings["threads"] == 1
    assert settings["contexts"] == [2] and settings["ks"] == [3] and settings["group_size"] == 2
    assert settings["valid_samples"] == 20 and settings["method"] == "grpo"

    training = report["training"]  # --quick trains the tiny checkpoint it aligns
    assert training["recommender"] == "lrurec" and training["summary"]["epochs_run"] == 1
    assert positive(training["fit"]["seconds"]) and positive(training["process_peak_rss_mib"])

    assert [run["cache"] for run in report["runs"]] == ["cold", "warm"]
    for run in report["runs"]:
        assert "smollm2-135m" in run["model_identity"] and run["settings"]["rounds"] == 1
        assert run["threads"]["torch_num_threads_in_aligner"] == 1 and run["threads"]["llama_cpp_n_threads"] == 1
        for phase in ("llm_load", "setup", "run"):
            assert positive(run[phase]["seconds"]) and positive(run[phase]["peak_rss_mib"])
        assert set(run["phase_seconds"]) == PHASES and positive(run["round_seconds"])
        assert sum(run["phase_seconds"].values()) <= run["round_seconds"] + 1e-3
        assert run["run"]["seconds"] >= run["round_seconds"] and positive(run["process_peak_rss_mib"])
        check_counts(run["llm"])

    (row,) = report["summary"]
    assert (row["contexts"], row["k"], row["group_size"]) == (2, 3, 2)
    cold, warm = row["cold"], row["warm"]
    assert cold["llm"]["sets"] == 2 * 2 and cold["llm"]["cache_hits"] == 0
    if cold["llm"]["sets_with_target"] == 0:  # nothing to ask the LLM (the quick seed should avoid this)
        assert cold["llm"]["llm_requests"] == cold["llm"]["llm_calls"] == 0
        assert cold["seconds_per_llm_call"] is None and warm["cache_hit_rate"] is None
    else:
        assert cold["llm"]["llm_calls"] > 0 and positive(cold["seconds_per_llm_call"])
        assert cold["llm"]["item_scores"] <= 3 * cold["llm"]["sets_with_target"]
        assert warm["cache_hit_rate"] == 1.0
    assert report["runs"][0]["cache_entries_after"] == cold["llm"]["llm_calls"]
    # warm: the same sets, every reply from the cold round's cache, no model call
    assert warm["llm"]["llm_calls"] == 0 and warm["llm"]["cache_hits"] == cold["llm"]["llm_requests"]
    assert warm["llm"]["sets_with_target"] == cold["llm"]["sets_with_target"]
    assert row["warm_all_from_cache"] is True and row["warm_same_sets"] is True
    assert positive(row["speedup"]) and positive(row["seconds_per_context"])
