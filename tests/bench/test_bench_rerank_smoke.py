"""Smoke test of bench/bench_rerank.py: ``--quick`` (SmolLM2) with one candidate count, short prompts and the
pointwise strategy only (listwise runs the same code with another re-ranker; each worker process costs
seconds), on the ReDial data the session fixtures convert once. It checks the report, not the speed."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str) -> ModuleType:
    module_name = f"convrec_bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, ROOT / "bench" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_bench_rerank_quick(redial, data_dir, mirror, tmp_path):
    bench = load_script("bench_rerank")
    out = tmp_path / "rerank.json"
    report = bench.main(["--quick", "--candidates", "2", "--plot-chars", "0", "--strategies", "pointwise",
                         "--data-dir", str(data_dir), "--mirror", str(mirror), "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert report["benchmark"] == "rerank" and "bench_rerank.py" in report["command"]["command_line"]
    assert report["machine"]["cpu_count"] >= 1 and "RSS" in report["memory_method"]
    settings = report["settings"]
    assert settings["quick"] is True and settings["model"] == "smollm2-135m" and settings["threads"] == 1
    assert settings["candidates"] == [2] and settings["dialogues_per_k"] == 1

    assert [(r["strategy"], r["prefix_cache"]) for r in report["runs"]] == [("pointwise", False), ("pointwise", True)]
    for run in report["runs"]:
        assert "smollm2-135m" in run["model_identity"] and positive(run["load"]["seconds"])
        assert positive(run["process_peak_rss_mib"]) and positive(run["load"]["peak_rss_mib"])
        (turn,) = run["turns"]
        first, hit = turn["first"], turn["cache_hit"]
        expected_calls = 2
        assert first["llm_calls"] == expected_calls and first["cache_hits"] == 0 and positive(first["seconds"])
        assert hit["llm_calls"] == hit["cache_hits"] == expected_calls and hit["prompt_tokens"] == 0
        if not run["prefix_cache"]:
            assert first["prompt_tokens_from_prefix_cache"] == 0
    pointwise_prefix = report["runs"][1]["turns"][0]["first"]
    assert pointwise_prefix["prompt_tokens_from_prefix_cache"] > 0  # the second candidate reused the dialogue

    rows = {(row["strategy"], row["k"]): row for row in report["summary"]}
    assert set(rows) == {("pointwise", 2)}
    for row in rows.values():
        assert positive(row["cold"]["median"]) and positive(row["prefix"]["median"])
        assert row["cache_hit"]["all_hits"] is True and positive(row["cache_hit_speedup"])
        assert positive(row["prefix_speedup"]) and positive(row["seconds_per_candidate"])
    assert report["targets"] == {}  # the 10-candidate target is not measured in this run
