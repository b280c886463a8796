"""Smoke test of bench/bench_agent.py: ``--quick`` (20 turns without the LLM, 2 with SmolLM2) on the ReDial data
the session fixtures convert once. It checks the report (every stage measured, the stages adding up to the
turn, the LLM's polishes counted), not the speed."""

from __future__ import annotations

import json
import math

import pytest
from test_bench_rerank_smoke import load_script, positive


def non_negative(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


@pytest.mark.slow
def test_bench_agent_quick(redial, data_dir, mirror, tmp_path):
    bench = load_script("bench_agent")
    out = tmp_path / "agent.json"
    report = bench.main(["--quick", "--turns", "8", "--data-dir", str(data_dir), "--mirror", str(mirror),
                         "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert report["benchmark"] == "agent" and "bench_agent.py" in report["command"]["command_line"]
    assert report["machine"]["cpu_count"] >= 1 and "RSS" in report["memory_method"]
    settings = report["settings"]
    assert settings["quick"] is True and settings["llm"] == "smollm2-135m" and settings["retriever"] == "itemknn"
    assert settings["turns"] == 8 and settings["llm_turns"] == 2

    template, llm = report["runs"]
    assert (template["condition"], llm["condition"]) == ("template", "llm")
    assert template["items"] == llm["items"] == len(redial.catalog)
    assert len(template["turns"]) == 8 and len(llm["turns"]) == 2
    # the same seeded draw: the LLM worker answers the first turns of the template worker's contexts
    assert [t["sample_id"] for t in llm["turns"]] == [t["sample_id"] for t in template["turns"][:2]]
    for run in report["runs"]:
        assert positive(run["process_peak_rss_mib"]) and positive(run["fit"]["seconds"])
        for turn in run["turns"]:
            seconds = turn["seconds"]
            assert set(seconds) == set(bench.STAGES) and all(non_negative(v) for v in seconds.values())
            assert turn["action"] == "recommend" and turn["slate"] > 0  # ask_first off: every turn recommends
            assert positive(seconds["retrieval"]) and positive(seconds["state_tracking"])
            assert positive(seconds["search_ranking"]) and positive(seconds["explanation"])
            parts = [v for k, v in seconds.items() if k != "total"]
            # each value is rounded to 4 decimals: the sum of n rounded parts may be off by (n + 1) half-units
            rounding = (len(parts) + 1) * 5e-5 + 1e-9
            assert sum(parts) == pytest.approx(seconds["total"], rel=0.02, abs=rounding)
    for turn in llm["turns"]:  # every recommending turn asks the LLM for a rewrite, one model call each
        assert turn["asked_llm"] is True and turn["llm_calls"] == 1 and turn["completion_tokens"] > 0
        assert turn["explainer_source"] == "llm" or turn["refusal"]
        assert turn["seconds"]["explanation"] > turn["explainer_vto_seconds"]  # the polish is outside the trace

    rows = {row["condition"]: row for row in report["summary"]}
    for row in rows.values():
        for stage in bench.STAGES:
            s = row["stages"][stage]
            assert s["median_ms"] <= s["p90_ms"] <= s["max_ms"]
        assert positive(row["stages"]["total"]["median_ms"]) and positive(row["turn_peak_rss_mib"])
    assert rows["llm"]["polishes_asked"] == 2 and 0 <= rows["llm"]["polishes_kept"] <= 2
    assert rows["llm"]["llm_calls"] == 2
    # the polish dominates a turn with the LLM
    assert rows["llm"]["stages"]["explanation"]["median_ms"] > rows["template"]["stages"]["explanation"]["median_ms"]
    assert set(report["targets"]) == {"turn_without_llm_under_100ms"}  # the LLM goal is the default model's
