"""Benchmark: fit time, evaluation throughput and peak memory of the baselines, and how the evaluation harness
alone scales with the catalogue size.

    python bench/bench_eval.py [--out bench/out/bench_eval.json] [--datasets redial]
                               [--recommenders popularity repeat itemknn ease] [--include-dense]
                               [--protocols standard dedup] [--skip-scaling]
                               [--scaling-items 1000 10000 100000] [--scaling-samples 500]
                               [--scaling-kinds random tied]

Part 1, real recommenders: the datasets are converted once into a fresh temporary data dir; then each
(dataset, recommender) runs in a fresh Python process that loads the dataset (not measured), fits on train
(+ valid for hyper-parameters, as ``convrec eval`` does) and evaluates the test split under each protocol
with ``convrec.evaluate.runner.evaluate``. Fit and evaluation are timed and memory-measured separately;
evaluation time is split into the recommender's ``score()`` and the harness (masking, ranking, top lists,
metrics), by timing wrappers installed in that worker process only.

Part 2, harness scaling: synthetic catalogues (1k, 10k, 100k items, with genres) and a fixed number of
synthetic samples, scored by a numpy score function whose own time is subtracted:

- ``random``: uniform random float32 scores (almost no ties: the cheapest case for top lists);
- ``tied``: zeros except the context items, like the ``repeat`` baseline (almost every item tied: the
  top-list tie-break then orders the whole catalogue per sample).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

SCRIPT = Path(__file__).resolve()
BASELINES = ("popularity", "repeat", "itemknn", "ease")
DENSE = "dense-text"
PROTOCOLS = ("standard", "dedup")
DEFAULT_OUT = common.BENCH_DIR / "out" / "bench_eval.json"
GENRES = ("action", "adventure", "animation", "comedy", "crime", "documentary", "drama", "family", "fantasy",
          "history", "horror", "music", "mystery", "romance", "science fiction", "thriller", "war", "western")


# ---------------------------------------------------------------- worker side (a fresh process per call)


class Timers:
    """Seconds spent in named functions: wraps module attributes in this (worker) process only."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)

    def wrap(self, fn: Callable, label: str) -> Callable:
        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started

        return timed

    def install_harness(self) -> None:
        from convrec.evaluate import runner
        from convrec.evaluate.metrics import METRICS

        for name in ("select_samples", "mask_excluded", "ranked_targets", "top_lists", "popularity_percentiles"):
            setattr(runner, name, self.wrap(getattr(runner, name), name))
        for metric in METRICS.values():
            label = "metric ild_genre" if metric.name.startswith("ild_genre") else "metrics (others)"
            metric.per_sample = self.wrap(metric.per_sample, label)  # instance attribute shadows the method

    def take(self) -> dict[str, float]:
        taken = dict(self.seconds)
        self.seconds.clear()
        return taken


def _evaluate_protocols(score_fn, samples, catalog, counts, protocols, timers: Timers, **names) -> list[dict]:
    from convrec.evaluate.protocol import Protocol
    from convrec.evaluate.runner import evaluate

    out = []
    for protocol in protocols:
        timers.take()
        with common.Phase() as phase:
            result = evaluate(score_fn, samples, catalog, Protocol(protocol), counts, progress=False, **names)
        spent = timers.take()
        score_seconds = spent.pop("score", 0.0)
        harness_seconds = result.seconds - score_seconds
        spent["other (copies, genres, summary)"] = max(result.seconds - score_seconds - sum(spent.values()), 0.0)
        out.append({
            "protocol": protocol,
            "n_samples": result.n_samples,
            "n_items": result.n_items,
            **phase.to_json(),
            "eval_seconds": result.seconds,
            "samples_per_second": result.n_samples / result.seconds if result.seconds else None,
            "score_seconds": score_seconds,
            "harness_seconds": harness_seconds,
            "harness_samples_per_second": result.n_samples / harness_seconds if harness_seconds > 0 else None,
            "harness_breakdown_seconds": spent,
            "metrics": {k: result.metrics[k] for k in ("recall@10", "ndcg@10", "mrr", "coverage@10")},
        })
    return out


def _recommender_worker(task: dict[str, Any]) -> dict[str, Any]:
    from convrec.data.load import load_dataset
    from convrec.retrieval import build_recommender
    from convrec.retrieval.base import item_counts

    timers = Timers()
    timers.install_harness()
    started = time.perf_counter()
    dataset = load_dataset(task["dataset"], Path(task["data_dir"]), Path(task["mirror"]))
    train, valid, test = dataset.split("train"), dataset.split("valid"), dataset.split("test")
    counts = item_counts(train)
    load_seconds = time.perf_counter() - started
    recommender = build_recommender(task["recommender"], dataset.catalog, task.get("options") or {})
    with common.Phase() as fit:
        recommender.fit(train, valid)
    score_fn = timers.wrap(recommender.score, "score")
    evaluations = _evaluate_protocols(score_fn, test.samples, dataset.catalog, counts, task["protocols"], timers,
                                      dataset=dataset.name, split="test", recommender=task["recommender"])
    return {
        "dataset": dataset.name,
        "recommender": task["recommender"],
        "options": task.get("options") or {},
        "describe": recommender.describe(),
        "n_items": len(dataset.catalog),
        "n_train_dialogues": len(train.dialogues),
        "n_test_samples": len(test.samples),
        "load_seconds (not measured)": load_seconds,
        "fit": fit.to_json(),
        "evaluations": evaluations,
    }


def synthetic_data(n_items: int, n_samples: int, seed: int):
    """A catalogue with genres, test samples with 0-8 context items (30% of targets re-mentioned), and
    Zipf-like training counts (many zeros, so popularity percentiles have ties as in real data)."""
    import numpy as np

    from convrec.catalog.items import Catalog, Item
    from convrec.data.model import Dialogue, RecSample, Turn

    rng = np.random.default_rng(seed)
    items = []
    for index in range(n_items):
        genres = [GENRES[g] for g in rng.choice(len(GENRES), size=int(rng.integers(1, 4)), replace=False)]
        items.append(Item(f"i{index}", f"Item {index}", 1950 + index % 70, {"genre": genres}))
    catalog = Catalog(items, name=f"synthetic-{n_items}")
    samples = []
    for index in range(n_samples):
        context = tuple(f"i{k}" for k in rng.choice(n_items, size=int(rng.integers(0, 9)), replace=False))
        if context and rng.random() < 0.3:
            target = context[int(rng.integers(len(context)))]
        else:
            target = f"i{int(rng.integers(n_items))}"
        dialogue = Dialogue(f"d{index}", "test", [Turn("seeker", "", context), Turn("recommender", "", (target,))])
        samples.append(RecSample(dialogue, 1, target))
    counts = np.floor(n_items / 10 / np.arange(1, n_items + 1) ** 1.1)
    rng.shuffle(counts)
    return catalog, samples, counts


def _scaling_worker(task: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    timers = Timers()
    timers.install_harness()
    started = time.perf_counter()
    catalog, samples, counts = synthetic_data(task["n_items"], task["n_samples"], task["seed"])
    build_seconds = time.perf_counter() - started
    rng = np.random.default_rng(task["seed"] + 1)
    n_items, index_of = len(catalog), catalog.index_of

    def random_scores(batch):
        return rng.random((len(batch), n_items), dtype=np.float32)

    def tied_scores(batch):  # the repeat baseline: context items by recency, everything else 0
        scores = np.zeros((len(batch), n_items), dtype=np.float32)
        for row, sample in enumerate(batch):
            for position, item in enumerate(sample.context_items, start=1):
                scores[row, index_of[item]] = position
        return scores

    score_fn = timers.wrap({"random": random_scores, "tied": tied_scores}[task["kind"]], "score")
    evaluations = _evaluate_protocols(score_fn, samples, catalog, counts, task["protocols"], timers,
                                      dataset=catalog.name, split="test", recommender=f"synthetic-{task['kind']}")
    return {"n_items": n_items, "n_samples": len(samples), "kind": task["kind"],
            "synthetic_build_seconds (not measured)": build_seconds, "evaluations": evaluations}


def _worker(task: dict[str, Any]) -> dict[str, Any]:
    return _scaling_worker(task) if task["mode"] == "scaling" else _recommender_worker(task)


# ---------------------------------------------------------------- driver


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument("--datasets", nargs="+", default=["redial"], metavar="NAME",
                        help="datasets with a test split (default redial)")
    parser.add_argument("--recommenders", nargs="*", default=list(BASELINES), metavar="NAME",
                        help=f"recommenders (default: {' '.join(BASELINES)}; none: only the scaling part)")
    parser.add_argument("--include-dense", action="store_true",
                        help=f"also {DENSE} (slow: embeds the catalogue and every context, ~45 texts/s on 2 cores)")
    parser.add_argument("--protocols", nargs="+", default=list(PROTOCOLS), choices=PROTOCOLS)
    parser.add_argument("--skip-scaling", action="store_true", help="skip the synthetic harness-scaling part")
    parser.add_argument("--scaling-items", nargs="+", type=int, default=[1000, 10000, 100000], metavar="N",
                        help="synthetic catalogue sizes (default 1000 10000 100000)")
    parser.add_argument("--scaling-samples", type=int, default=500, help="synthetic samples (default 500)")
    parser.add_argument("--scaling-kinds", nargs="+", default=["random", "tied"], choices=["random", "tied"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mirror", type=Path, default=None,
                        help="raw data mirror (default $CONVREC_DATA_MIRROR or ../shared/data)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data dir holding (or to receive) the processed datasets; default: a fresh temporary "
                        "dir, removed afterwards")
    args = parser.parse_args(argv)
    if args.include_dense and DENSE not in args.recommenders:
        args.recommenders.append(DENSE)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    machine = common.machine_info()
    recommender_runs: list[dict[str, Any]] = []
    prepare: dict[str, float] = {}
    mirror = common.find_mirror(args.mirror) if args.recommenders else None
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="convrec-bench-data-")) if temporary else args.data_dir.resolve()
    try:
        if args.recommenders:
            from convrec.data.load import load_dataset

            for name in args.datasets:  # fetch + convert once, outside the measurements
                t = time.perf_counter()
                load_dataset(name, data_dir, mirror)
                prepare[name] = time.perf_counter() - t
        for name in args.datasets if args.recommenders else []:
            for recommender in args.recommenders:
                options = {"cache_dir": str(data_dir / "dense-cache")} if recommender == DENSE else {}
                task = {"mode": "recommender", "dataset": name, "recommender": recommender, "options": options,
                        "data_dir": str(data_dir), "mirror": str(mirror), "protocols": args.protocols}
                run = common.run_worker(SCRIPT, task)
                recommender_runs.append(run)
                print(f"  {name}/{recommender}: fit {run['fit']['seconds']:.2f}s, eval "
                      + ", ".join(f"{e['protocol']} {e['eval_seconds']:.2f}s" for e in run["evaluations"]),
                      file=sys.stderr)
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)

    scaling_runs: list[dict[str, Any]] = []
    if not args.skip_scaling:
        for n_items in args.scaling_items:
            for kind in args.scaling_kinds:
                task = {"mode": "scaling", "n_items": n_items, "n_samples": args.scaling_samples, "kind": kind,
                        "seed": args.seed, "protocols": args.protocols}
                run = common.run_worker(SCRIPT, task)
                scaling_runs.append(run)
                print(f"  synthetic {n_items:,} items/{kind}: "
                      + ", ".join(f"{e['protocol']} harness {e['harness_seconds']:.2f}s" for e in run["evaluations"]),
                      file=sys.stderr)

    report = common.rounded({
        "benchmark": "eval",
        "description": "fit and evaluation time, throughput and peak memory of recommenders on test splits "
        "(fresh process per recommender, fit once, evaluated under each protocol), and the evaluation harness "
        "alone vs catalogue size on synthetic data",
        "command": common.command_info(SCRIPT, argv),
        "machine": common.finish_machine_info(machine),
        "settings": {
            "datasets": args.datasets if args.recommenders else [],
            "recommenders": args.recommenders,
            "protocols": args.protocols,
            "split": "test",
            "batch_size": 256,
            "mirror": None if mirror is None else str(mirror),
            "data_dir": "temporary (removed afterwards)" if temporary else str(data_dir),
            "scaling": None if args.skip_scaling else {
                "items": args.scaling_items, "samples": args.scaling_samples, "kinds": args.scaling_kinds,
                "seed": args.seed,
            },
            "definitions": {
                "eval_seconds": "EvalResult.seconds: score() plus the harness, for the samples the protocol keeps",
                "samples_per_second": "n_samples / eval_seconds",
                "harness_seconds": "eval_seconds minus the time inside score()",
                "fit": "recommender.fit(train, valid), including EASE's choice of l2 on valid",
            },
        },
        "memory_method": common.MEMORY_METHOD,
        "prepare_seconds (fetch + convert, not measured)": prepare,
        "recommenders": recommender_runs,
        "scaling": scaling_runs,
        "total_seconds": time.perf_counter() - started,
    })
    common.write_report(args.out, report)
    _print(report)
    return report


def _print(report: dict[str, Any]) -> None:
    rows = []
    for run in report["recommenders"]:
        fit = run["fit"]
        for index, e in enumerate(run["evaluations"]):
            first = index == 0
            rows.append([
                run["dataset"] if first else "", run["recommender"] if first else "",
                common.fmt(fit["seconds"]) if first else "",
                f"{fit['peak_rss_mib']:,.0f} (+{fit['peak_delta_mib']:,.0f})" if first else "",
                e["protocol"], common.fmt(e["n_samples"]), common.fmt(e["eval_seconds"]),
                common.fmt(e["samples_per_second"], 0), common.fmt(e["score_seconds"]),
                common.fmt(e["harness_seconds"]),
                f"{e['peak_rss_mib']:,.0f} (+{e['peak_delta_mib']:,.0f})",
                common.fmt(e["metrics"]["recall@10"], 4),
            ])
    if rows:
        common.print_table(
            "recommenders on the test split: fit, then evaluation (= score + harness); peak RSS MiB "
            "(+ over the process before the phase)",
            ["dataset", "recommender", "fit s", "fit peak MiB", "protocol", "samples", "eval s", "samples/s",
             "score s", "harness s", "eval peak MiB", "R@10"],
            rows,
        )
    rows = []
    for run in report["scaling"]:
        for e in run["evaluations"]:
            parts = e["harness_breakdown_seconds"]
            rows.append([
                common.fmt(run["n_items"]), run["kind"], e["protocol"], common.fmt(e["n_samples"]),
                common.fmt(e["harness_seconds"]), common.fmt(e["harness_samples_per_second"], 0),
                common.fmt(parts.get("ranked_targets")), common.fmt(parts.get("top_lists")),
                common.fmt(parts.get("metric ild_genre")), common.fmt(e["score_seconds"]),
                f"{e['peak_rss_mib']:,.0f} (+{e['peak_delta_mib']:,.0f})",
            ])
    if rows:
        common.print_table(
            "evaluation harness alone vs catalogue size (synthetic; score() time excluded)",
            ["items", "scores", "protocol", "samples", "harness s", "samples/s", "ranked_targets s",
             "top_lists s", "ild s", "score s (excl.)", "peak MiB"],
            rows,
        )


if __name__ == "__main__":
    if common.is_worker_call(sys.argv[1:]):
        sys.exit(common.worker_main(_worker, sys.argv[1:]))
    main()
