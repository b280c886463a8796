"""Smoke test of bench/bench_ray.py: ``--quick`` (SmolLM2, 2 contexts, K = 2), the in-process setup and the
loopback server at concurrency 2 (the Ray setups run the code the Ray tests cover, and a cluster costs ~10 s);
it checks the report and the cost model, not the speed."""

from __future__ import annotations

import json

import pytest
from test_bench_rerank_smoke import load_script, positive


@pytest.mark.slow
def test_bench_ray_quick(redial, data_dir, mirror, tmp_path):
    bench = load_script("bench_ray")
    out = tmp_path / "ray.json"
    report = bench.main(["--quick", "--data-dir", str(data_dir), "--mirror", str(mirror), "--out", str(out)])
    assert json.loads(out.read_text()) == report and report["benchmark"] == "ray"
    assert [r["setup"] for r in report["runs"]] == ["local", "server-c2"]
    local, server = report["runs"]
    for run in report["runs"]:
        assert run["rar"]["llm_calls"] == 4 and positive(run["rar"]["seconds_per_call"])  # 2 contexts x K = 2
        assert run["rar"]["fallbacks"] == 0
    assert local["feedback"]["llm_calls"] == 4 and 0 <= local["feedback"]["mean_reward"] <= 1
    assert local["rar"]["scores_equal_local"] is True and server["concurrency"] == 2
    model = report["projection"]
    assert model["seconds_per_call_one_worker"] == local["rar"]["seconds_per_call"]
    one, eight = model["rar_eval"]["1 workers, 337k index"], model["rar_eval"]["8 workers, 337k index"]
    assert local["encode"]["texts"] == 64 and positive(model["encode_337k_item_texts_minutes_once"])
    assert eight["seconds_per_sample"] < one["seconds_per_sample"]  # more workers, less time per sample
    assert model["rar_eval"]["1 workers, 337k exact"]["seconds_per_sample"] > one["seconds_per_sample"]
