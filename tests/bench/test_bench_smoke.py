"""Smoke test of the benchmark scripts in bench/ on their smallest settings (a few seconds in all).

bench/ is not a package: the scripts are imported by path, and each ``main(argv)`` returns its report.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def find_mirror() -> Path | None:
    candidate = Path(__file__).resolve().parents[3] / "shared" / "data"
    if (candidate / "MANIFEST.tsv").is_file():
        return candidate
    env = os.environ.get("CONVREC_DATA_MIRROR")
    if env and (Path(env) / "MANIFEST.tsv").is_file():
        return Path(env)
    return None


def load_script(name: str) -> ModuleType:
    module_name = f"convrec_bench_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def mirror() -> Path:
    found = find_mirror()
    if found is None:
        pytest.skip("data mirror not found (../shared/data beside the project, or $CONVREC_DATA_MIRROR)")
    return found


def check_machine_and_command(report: dict, out: Path, script: str) -> None:
    assert json.loads(out.read_text()) == report  # the file is the returned report, complete
    machine = report["machine"]
    assert machine["cpu_count"] >= 1
    for key in ("python", "platform", "timestamp_utc"):
        assert machine[key]
    assert machine["versions"]["numpy"] and machine["versions"]["torch"]
    assert script in report["command"]["command_line"]
    assert "RSS" in report["memory_method"]
    assert report["total_seconds"] > 0


def test_bench_datasets_smallest(mirror: Path, tmp_path: Path) -> None:
    bench = load_script("bench_datasets")
    out = tmp_path / "datasets.json"
    report = bench.main(["--datasets", "opendialkg-books", "--repeats", "1", "--mirror", str(mirror),
                         "--out", str(out)])
    check_machine_and_command(report, out, "bench_datasets.py")
    assert report["settings"]["build_repeats"] == report["settings"]["load_repeats"] == 1
    (entry,) = report["results"]
    assert entry["dataset"] == "opendialkg-books"
    assert entry["n_items"] > 0 and entry["n_samples"]["test"] > 0 and entry["processed_bytes"] > 0
    for phase in ("build", "load"):
        assert entry[phase]["seconds"]["median"] > 0
        assert entry[phase]["peak_rss_mib"]["median"] > 0
        assert entry[phase]["peak_delta_mib"]["median"] >= 0
        assert len(entry[phase]["seconds"]["runs"]) == 1
    assert entry["build"]["convert_seconds"]["median"] >= 0
    assert entry["load"]["all_cache_hits"] is True
    assert entry["load"]["breakdown_seconds_median"]["read_processed"] > 0


def test_bench_eval_smallest(mirror: Path, tmp_path: Path) -> None:
    bench = load_script("bench_eval")
    out = tmp_path / "eval.json"
    report = bench.main(["--datasets", "inspired", "--recommenders", "popularity", "--mirror", str(mirror),
                         "--scaling-items", "1000", "--scaling-samples", "50", "--scaling-kinds", "random",
                         "--out", str(out)])
    check_machine_and_command(report, out, "bench_eval.py")
    (run,) = report["recommenders"]
    assert run["dataset"] == "inspired" and run["recommender"] == "popularity"
    assert run["fit"]["seconds"] >= 0 and run["fit"]["peak_rss_mib"] > 0
    assert [e["protocol"] for e in run["evaluations"]] == ["standard", "dedup"]
    standard, dedup = run["evaluations"]
    assert standard["n_samples"] == run["n_test_samples"] > dedup["n_samples"] > 0
    for e in run["evaluations"]:
        assert e["eval_seconds"] > 0 and e["samples_per_second"] > 0 and e["peak_rss_mib"] > 0
        assert 0 <= e["score_seconds"] <= e["eval_seconds"]
        assert 0 < e["metrics"]["recall@10"] < 1
    (scaling,) = report["scaling"]
    assert scaling["n_items"] == 1000 and scaling["n_samples"] == 50 and scaling["kind"] == "random"
    for e in scaling["evaluations"]:
        assert e["n_items"] == 1000
        assert e["harness_seconds"] > 0 and e["harness_samples_per_second"] > 0
        assert e["harness_breakdown_seconds"]["top_lists"] > 0


def test_bench_eval_skip_scaling(tmp_path: Path) -> None:
    """No recommenders and no scaling: a valid, empty report, and no mirror needed."""
    bench = load_script("bench_eval")
    report = bench.main(["--recommenders", "--skip-scaling", "--out", str(tmp_path / "e.json")])
    assert report["recommenders"] == [] and report["scaling"] == []
    assert report["settings"]["scaling"] is None
