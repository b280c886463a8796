"""Benchmark: converting each bundled dataset from its raw files, and loading it back from the warm cache.

    python bench/bench_datasets.py [--out bench/out/bench_datasets.json] [--datasets redial inspired ...]
                                   [--build-repeats 1] [--load-repeats 3] [--repeats N] [--mirror DIR]

Raw files are first copied from the mirror into a fresh temporary data dir (timed as ``fetch``, once, in this
process). Then every measurement is a fresh Python process:

- ``build``: ``load_dataset(name, data_dir, mirror, rebuild=True)``: checksums, conversion, writing the
  processed cache (catalogue + dialogues JSONL, samples parquet), reading it back;
- ``load``: ``load_dataset(name, data_dir, mirror)`` on the warm cache (the usual path of every command),
  followed, outside the timed call, by a breakdown of where that time goes.

The median over repeats is reported; every run is kept in the JSON. The user's ``./data`` is never touched.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

SCRIPT = Path(__file__).resolve()
DATASETS = ("redial", "inspired", "opendialkg-books", "movielens")
DEFAULT_OUT = common.BENCH_DIR / "out" / "bench_datasets.json"


# ---------------------------------------------------------------- worker side (a fresh process per call)


def _worker(task: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    from convrec.data import dataset as dataset_module
    from convrec.data.converters import CONVERTERS
    from convrec.data.load import load_dataset, processed_root, source_files

    import_seconds = time.perf_counter() - started
    name, data_dir, mirror = task["name"], Path(task["data_dir"]), Path(task["mirror"])
    out_dir = processed_root(data_dir) / name
    build_file = out_dir / "build.json"
    mtime_before = build_file.stat().st_mtime_ns if build_file.exists() else None
    rebuild = task["mode"] == "build"
    import_peak = common.peak_rss_mib()

    with common.Phase() as phase:
        dataset = load_dataset(name, data_dir, mirror, rebuild=rebuild)
    result: dict[str, Any] = {
        "mode": task["mode"],
        "import_seconds": import_seconds,
        "import_peak_rss_mib": round(import_peak, 1),
        **phase.to_json(),
        "cache_hit": build_file.stat().st_mtime_ns == mtime_before,
        "convert_seconds": dataset.info.get("build_seconds") if rebuild else None,
        "fingerprint": dataset.fingerprint,
    }
    # Outside the measurement: sizes and where a warm load spends its time.
    splits = {s: dataset.split(s) for s in ("train", "valid", "test")}
    result["n_items"] = len(dataset.catalog)
    result["n_dialogues"] = {s: len(split.dialogues) for s, split in splits.items()}
    result["n_samples"] = {s: len(split.samples) for s, split in splits.items()}
    result["processed_bytes"] = common.dir_bytes(out_dir)
    if not rebuild:
        # Free the measured dataset first: a second copy alive would slow the re-read through the garbage
        # collector, whose full passes cost more the more objects are alive.
        del dataset, splits
        gc.collect()
        phases: dict[str, float] = {}
        converter = CONVERTERS[name]
        t = time.perf_counter()
        files = source_files(name, data_dir, mirror)
        phases["verify_raw_checksums"] = time.perf_counter() - t
        fingerprint = getattr(dataset_module, "_fingerprint", None)
        if fingerprint is not None:
            t = time.perf_counter()
            fingerprint(converter, files)
            phases["fingerprint_raw_files"] = time.perf_counter() - t
        t = time.perf_counter()
        reread = dataset_module.load_processed(out_dir, name)
        phases["read_processed"] = time.perf_counter() - t
        t = time.perf_counter()
        for s in ("train", "valid", "test"):
            _ = reread.split(s).samples
        phases["split_samples (not in load)"] = time.perf_counter() - t
        del reread
        gc.collect()
        gc.disable()  # what the cyclic garbage collector costs while the objects are created
        try:
            t = time.perf_counter()
            reread = dataset_module.load_processed(out_dir, name)
            phases["read_processed, gc disabled"] = time.perf_counter() - t
            t = time.perf_counter()
            for s in ("train", "valid", "test"):
                _ = reread.split(s).samples
            phases["split_samples, gc disabled"] = time.perf_counter() - t
        finally:
            gc.enable()
        result["load_breakdown_seconds"] = phases
        result["raw_bytes"] = sum(p.stat().st_size for p in files.values())
    return result


# ---------------------------------------------------------------- driver


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS, metavar="NAME",
                        help=f"datasets to measure (default: {' '.join(DATASETS)})")
    parser.add_argument("--build-repeats", type=int, default=1, help="builds from raw per dataset (default 1)")
    parser.add_argument("--load-repeats", type=int, default=3, help="warm-cache loads per dataset (default 3)")
    parser.add_argument("--repeats", type=int, default=None, help="shorthand: set both repeat counts")
    parser.add_argument("--mirror", type=Path, default=None,
                        help="raw data mirror (default $CONVREC_DATA_MIRROR or ../shared/data)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data dir to build into (default: a fresh temporary dir, removed afterwards); "
                        "its processed datasets are rebuilt")
    args = parser.parse_args(argv)
    if args.repeats is not None:
        args.build_repeats = args.load_repeats = args.repeats
    if args.build_repeats < 1 or args.load_repeats < 1:
        parser.error("repeats must be at least 1")
    return args


def _dataset_entry(name: str, fetch_seconds: float, builds: list[dict], loads: list[dict]) -> dict[str, Any]:
    last = loads[-1]
    entry: dict[str, Any] = {
        "dataset": name,
        "n_items": last["n_items"],
        "n_dialogues": last["n_dialogues"],
        "n_samples": last["n_samples"],
        "raw_bytes": last.get("raw_bytes"),
        "processed_bytes": last["processed_bytes"],
        "fetch_from_mirror_seconds": fetch_seconds,
    }
    for label, runs in (("build", builds), ("load", loads)):
        entry[label] = {
            "seconds": common.summary([r["seconds"] for r in runs]),
            "peak_rss_mib": common.summary([r["peak_rss_mib"] for r in runs]),
            "peak_delta_mib": common.summary([r["peak_delta_mib"] for r in runs]),
            "rss_before_mib": common.summary([r["rss_before_mib"] for r in runs]),
            "import_seconds": common.summary([r["import_seconds"] for r in runs]),
            "process_wall_seconds": common.summary([r["process_wall_seconds"] for r in runs]),
            "peak_is_phase_only": all(r["peak_is_phase_only"] for r in runs),
        }
    entry["build"]["convert_seconds"] = common.summary([r["convert_seconds"] for r in builds])
    entry["load"]["all_cache_hits"] = all(r["cache_hit"] for r in loads)
    breakdowns = [r["load_breakdown_seconds"] for r in loads]
    entry["load"]["breakdown_seconds_median"] = {
        key: common.summary([b[key] for b in breakdowns])["median"] for key in breakdowns[0]
    }
    return entry


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    mirror = common.find_mirror(args.mirror)
    from convrec.data.load import source_files  # after argument parsing: --help stays fast

    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="convrec-bench-data-")) if temporary else args.data_dir.resolve()
    started = time.perf_counter()
    machine = common.machine_info()
    results = []
    try:
        fetch_seconds = {}
        for name in args.datasets:  # copy + verify the raw files once, outside the measurements
            t = time.perf_counter()
            source_files(name, data_dir, mirror)
            fetch_seconds[name] = time.perf_counter() - t
        for name in args.datasets:
            task = {"name": name, "data_dir": str(data_dir), "mirror": str(mirror)}
            builds = [common.run_worker(SCRIPT, {**task, "mode": "build"}) for _ in range(args.build_repeats)]
            loads = [common.run_worker(SCRIPT, {**task, "mode": "load"}) for _ in range(args.load_repeats)]
            results.append(_dataset_entry(name, fetch_seconds[name], builds, loads))
            print(f"  {name}: build {builds[-1]['seconds']:.2f}s, load {loads[-1]['seconds']:.2f}s", file=sys.stderr)
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)

    report = common.rounded({
        "benchmark": "datasets",
        "description": "build each processed dataset from raw (rebuild=True, fresh process each) and load it "
        "from the warm processed cache (fresh process each); times are medians over repeats",
        "command": common.command_info(SCRIPT, argv),
        "machine": common.finish_machine_info(machine),
        "settings": {
            "datasets": args.datasets,
            "build_repeats": args.build_repeats,
            "load_repeats": args.load_repeats,
            "statistic": "median",
            "mirror": str(mirror),
            "data_dir": "temporary (removed afterwards)" if temporary else str(data_dir),
            "fetch_note": "raw files are fetched from the mirror once, before any measurement; a dataset "
            "whose sources an earlier one already fetched shows a small fetch time",
        },
        "memory_method": common.MEMORY_METHOD,
        "results": results,
        "total_seconds": time.perf_counter() - started,
    })
    common.write_report(args.out, report)
    _print(report)
    return report


def _print(report: dict[str, Any]) -> None:
    rows = []
    for r in report["results"]:
        b, ld = r["build"], r["load"]
        rows.append([
            r["dataset"], common.fmt(r["n_items"]), common.fmt(sum(r["n_dialogues"].values())),
            common.fmt(sum(r["n_samples"].values())),
            common.fmt(b["seconds"]["median"]), common.fmt(b["convert_seconds"]["median"]),
            f"{b['peak_rss_mib']['median']:,.0f} (+{b['peak_delta_mib']['median']:,.0f})",
            common.fmt(ld["seconds"]["median"]),
            f"{ld['peak_rss_mib']['median']:,.0f} (+{ld['peak_delta_mib']['median']:,.0f})",
            common.fmt(r["processed_bytes"] / 1e6, 1),
        ])
    settings = report["settings"]
    common.print_table(
        f"datasets: build from raw (median of {settings['build_repeats']}) and warm-cache load "
        f"(median of {settings['load_repeats']}); peak RSS MiB (+ over the process before the call)",
        ["dataset", "items", "dialogues", "samples", "build s", "convert s", "build peak MiB",
         "load s", "load peak MiB", "processed MB"],
        rows,
    )


if __name__ == "__main__":
    if common.is_worker_call(sys.argv[1:]):
        sys.exit(common.worker_main(_worker, sys.argv[1:]))
    main()
