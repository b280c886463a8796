"""Smoke test of bench/bench_serve.py: ``--quick`` (10 sessions x 3 messages at 20/s, saturation levels 1-4 for
1 s each, 4 sessions x 4 messages killed with SIGKILL after 6 answers) against a real ``convrec serve`` on the
ReDial data the session fixtures convert once. It checks the report, and that the kill phase's checks hold,
not the speed."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from test_bench_rerank_smoke import load_script, positive


def test_percentile_is_numpys_linear_one():
    bench = load_script("bench_serve")
    rng = random.Random(0)
    for size in (1, 2, 7, 100):
        values = [rng.random() for _ in range(size)]
        for q in (0, 50, 95, 99, 100):
            assert bench.percentile(values, q) == pytest.approx(float(np.percentile(values, q)))
    assert bench.percentile([], 50) is None


@pytest.mark.slow
def test_bench_serve_quick(redial, data_dir, mirror, tmp_path):
    bench = load_script("bench_serve")
    out = tmp_path / "serve.json"
    report = bench.main(["--quick", "--data-dir", str(data_dir), "--mirror", str(mirror), "--out", str(out)])
    assert json.loads(out.read_text()) == report
    assert report["benchmark"] == "serve" and "bench_serve.py" in report["command"]["command_line"]
    settings = report["settings"]
    assert settings["quick"] is True and settings["recommender"] == "itemknn" and settings["llm"] is None
    assert settings["items"] == len(redial.catalog)
    assert "--no-llm" in report["server"]["argv"] and report["server"]["unexpected_errors_logged"] == 0

    loop = report["open_loop"]
    assert loop["repeats"] == 1 and len(loop["runs"]) == 1 and loop["runs"][0]["messages"] == 30
    assert loop["messages"] == 30 and loop["answered"] == 30 and loop["errors"] == 0, loop["error_kinds"]
    for key in ("latency_from_schedule", "service_time"):
        stats = loop[key]
        assert stats["count"] == 30 and positive(stats["p50_ms"])
        assert stats["p50_ms"] <= stats["p95_ms"] <= stats["p99_ms"] <= stats["max_ms"]
    # latency runs from the scheduled time: never shorter than the service time of the same messages
    assert loop["latency_from_schedule"]["p50_ms"] >= loop["service_time"]["p50_ms"]
    assert positive(loop["achieved_throughput_per_s"]) and loop["achieved_throughput_per_s"] <= 2 * 20
    cpu = loop["cpu"]
    assert positive(cpu["server_cores"]) and positive(cpu["load_generator_cores"]) and positive(cpu["wall_seconds"])
    # every message ran one turn (the warm-up messages too), answered by the server it was sent to
    sat = report["saturation"]
    assert [level["clients"] for level in sat["levels"]][:2] == [1, 2]
    assert all(level["errors"] == 0 and positive(level["throughput_per_s"]) for level in sat["levels"])
    assert sat["max_throughput_per_s"] == max(level["throughput_per_s"] for level in sat["levels"])
    answered = 3 + 30 + sum(level["answered"] for level in sat["levels"])
    assert report["server"]["turns_total"] == answered

    kill = report["kill_restart"]
    assert kill["integrity_check"] == "ok" and kill["sessions"] == 4 and kill["messages_per_session"] == 4
    assert kill["answered_before_kill_seen_by_client"] >= 6
    assert kill["sessions_lost"] == 0 and kill["corrupted"] == 0 and kill["history_order_errors"] == 0
    # everything answered before the kill (the client saw it, or the kill cut the reply off) is replayed, and
    # every other message runs exactly once after the restart
    assert kill["answered_in_store_before_resend"] == (kill["answered_before_kill_seen_by_client"]
                                                       + kill["answered_but_reply_cut_off"])
    assert kill["replays_after_restart"] == kill["answered_in_store_before_resend"]
    assert kill["turns_run_after_restart"] == kill["newly_answered_after_restart"] == 16 - kill["replays_after_restart"]
    assert kill["replay_mismatches"] == 0 and kill["turn_sequence_errors"] == 0 and kill["resend_errors"] == 0
    assert kill["each_message_answered_once"] is True
    assert report["targets"] == {"kill_restart_no_session_lost": True, "kill_restart_each_message_answered_once": True}
