"""Smoke test of bench/bench_lrurec.py: ``--quick`` (no data, a few seconds) and, with the data mirror, one
training epoch on the smallest dataset.

``--threads 1``: the test checks the report, not the speed, and one thread keeps it fast even when other
work shares the cores (two torch threads on two busy cores oversubscribe and can run 10-100x slower).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def find_mirror() -> Path | None:
    candidate = ROOT.parent / "shared" / "data"
    if (candidate / "MANIFEST.tsv").is_file():
        return candidate
    env = os.environ.get("CONVREC_DATA_MIRROR")
    if env and (Path(env) / "MANIFEST.tsv").is_file():
        return Path(env)
    return None


def load_script(name: str) -> ModuleType:
    """bench/ is not a package: import a script by path (``main(argv)`` returns its report)."""
    module_name = f"convrec_bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def check_machine_and_command(report: dict, out: Path) -> None:
    assert json.loads(out.read_text()) == report  # the file is the returned report, complete
    machine = report["machine"]
    assert machine["cpu_count"] >= 1
    for key in ("python", "platform", "timestamp_utc"):
        assert machine[key]
    assert machine["versions"]["torch"]
    assert "bench_lrurec.py" in report["command"]["command_line"]
    assert "RSS" in report["memory_method"]
    assert report["total_seconds"] > 0


def positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_latency(summary: dict) -> None:
    for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms"):
        assert positive(summary[key]), (key, summary)
    assert summary["min_ms"] <= summary["p50_ms"] <= summary["p99_ms"] <= summary["max_ms"]


def test_bench_lrurec_quick(tmp_path: Path) -> None:
    bench = load_script("bench_lrurec")
    out = tmp_path / "lrurec.json"
    report = bench.main(["--quick", "--threads", "1", "--out", str(out)])
    check_machine_and_command(report, out)
    assert report["benchmark"] == "lrurec"
    settings = report["settings"]
    assert settings["quick"] is True and settings["threads"] == 1
    assert settings["scan_lengths"] == [5, 20, 50] and settings["scaling_items"] == [7000, 30000]
    assert report["training"] == {"skipped": True, "reason": "--quick"}

    assert [run["variant"] for run in report["latency"]] == ["id", "text"]
    for run in report["latency"]:
        assert run["n_items"] == 6925 and run["hidden"] == 64 and run["n_blocks"] == 2
        assert run["threads"]["torch_num_threads"] == 1
        assert run["parameters"] > 0 and run["parameter_mib"] > 0
        check_latency(run["step"])
        assert run["step"]["n"] == settings["turns"]
        assert set(run["scan"]) == {"5", "20", "50"}
        for summary in run["scan"].values():
            check_latency(summary)
        throughput = run["throughput"]
        assert throughput["batch"] == 64
        for key in ("step", "scan 5", "scan 20", "scan 50"):
            check_latency(throughput[key])
            assert positive(throughput[key]["turns_per_second"])
        assert positive(run["measure"]["peak_rss_mib"]) and positive(run["process_peak_rss_mib"])
    check_latency(report["latency"][1]["item_embeddings_rebuild"])  # text variant only
    assert "item_embeddings_rebuild" not in report["latency"][0]

    assert [run["n_items"] for run in report["scaling"]] == [7000, 30000]
    small, large = report["scaling"]
    for run in report["scaling"]:
        check_latency(run["step"])
        assert "scan" not in run and "throughput" not in run
        assert positive(run["process_peak_rss_mib"]) and positive(run["build"]["peak_rss_mib"])
    assert large["parameters"] > small["parameters"] and large["parameter_mib"] > small["parameter_mib"]
    targets = report["targets"]
    assert set(targets) == {f"step_{v}_redial_{p}_under_5ms" for v in ("id", "text") for p in ("p50", "p99")}
    assert all(isinstance(v, bool) for v in targets.values())


@pytest.mark.slow
def test_bench_lrurec_training_one_epoch(tmp_path: Path) -> None:
    """The training part on the smallest catalogue (opendialkg-books), one epoch, cold text cache."""
    mirror = find_mirror()
    if mirror is None:
        pytest.skip("data mirror not found (../shared/data beside the project, or $CONVREC_DATA_MIRROR)")
    bench = load_script("bench_lrurec")
    out = tmp_path / "lrurec-train.json"
    report = bench.main(["--dataset", "opendialkg-books", "--epochs", "1", "--threads", "1", "--mirror",
                         str(mirror), "--variants", "--scaling-items", "--out", str(out)])
    check_machine_and_command(report, out)
    assert report["latency"] == [] and report["scaling"] == []
    training = report["training"]
    text, run = training["text_embeddings"], training["run"]
    assert text["cache_state_before"] == "cold (no cache file)" and text["unique_texts_encoded_now"] > 0
    assert positive(text["encode"]["seconds"]) and positive(text["model_load_seconds"]) and text["dim"] == 384
    assert run["epochs_run"] == 1 and run["epoch_cap"] == 1 and run["best_epoch"] == 1
    assert run["early_stopped"] is False and training["target"]["met"] is False  # capped, not converged
    assert positive(run["time_to_convergence_seconds"]) and positive(run["epoch_seconds"]["median"])
    (epoch,) = run["epochs"]
    assert positive(epoch["seconds"]) and 0 < epoch["validation_seconds"] < epoch["seconds"]
    assert run["threads"]["torch_num_threads"] == 1 and run["train_options"]["threads"] == 1
    assert report["targets"] == {"training_under_10_min": False}
