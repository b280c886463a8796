"""Benchmark: approximate top-50 retrieval (FAISS HNSW and IVF) against exact search, at 40k, 300k and 3M items.

    python bench/bench_ann.py --checkpoint results/runs/lrurec-text-redial [--dataset redial]
                              [--sizes 40000 300000 3000000] [--kinds jitter gaussian] [--queries 300]
                              [--out bench/out/bench_ann.json]

The queries are real: ``lrurec-text``'s query vectors (:meth:`ConversationalLRURec.inner_product_form`) for a
seeded sample of the dataset's test samples. The items are the same model's item vectors (ReDial has 6,924;
beyond that they are synthetic, at the model's dimension), two ways:

- **jitter**: real item vectors drawn with replacement plus Gaussian noise of ``--jitter`` times each
  dimension's standard deviation (a catalogue that looks like the real one: clusters of genres and eras);
- **gaussian**: independent Gaussian coordinates with the real vectors' per-dimension mean and standard
  deviation (no structure at all: the hard case for any index).

Two ways to search ``lrurec-text``'s score ``h.E_i + b_i + s q.t_i``:

- **augmented**: one inner product over ``[E_i, b_i, t_i]`` (513 dimensions): the index returns the model's
  own top items;
- **rescore**: an index over ``[E_i, b_i]`` alone (129 dimensions) returns ``--rescore`` candidates, re-scored
  exactly with the text term; what this loses is the items whose text term lifts them into the top 50.

Each (size, kind) runs in a fresh worker process: exact top-50 by blocked matrix products (the ground truth
and its own latency), then each index built (time, peak RSS) and searched one query at a time (the latency a
chat turn sees), recall@50 = |approximate top 50 & exact top 50| / 50, averaged over the queries. Indexes are
not cached here (every build is measured). FAISS uses every core (2 here) to build; a single query runs on one.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

SCRIPT = Path(__file__).resolve()
K = 50
BUILDS = {  # index -> (IndexOptions fields, the search settings tried on it)
    "hnsw32": ({"kind": "hnsw", "hnsw_m": 32}, [{"ef_search": 64}, {"ef_search": 128}, {"ef_search": 256}]),
    "ivf": ({"kind": "ivf"}, [{"nprobe": 16}, {"nprobe": 64}, {"nprobe": 256}]),
}


def vectors_worker(task: dict[str, Any]) -> dict[str, Any]:
    """The model's real query and item vectors, saved for the size workers."""
    import random

    import numpy as np
    import torch

    from convrec.data.load import load_dataset
    from convrec.retrieval.base import build_recommender

    dataset = load_dataset(task["dataset"], Path(task["data_dir"]) if task.get("data_dir") else None, progress=False)
    model = build_recommender("lrurec-text", dataset.catalog, {"checkpoint": task["checkpoint"]})
    model.fit(dataset.split("train"))
    samples = random.Random(task["seed"]).sample(dataset.split("test").samples, task["queries"])
    model.network.eval()
    with torch.no_grad():
        queries, items = model.network.inner_product_form(*model.inputs(samples))
    np.save(task["queries_path"], queries.numpy().astype(np.float32))
    np.save(task["items_path"], items.numpy().astype(np.float32))
    return {"items": int(items.shape[0]), "dim": int(items.shape[1]), "item_part_dim": model.config.hidden + 1}


def synthetic(real, n: int, kind: str, jitter: float, seed: int):
    import numpy as np

    rng = np.random.default_rng(seed)
    std = real.std(axis=0)
    items = np.empty((n, real.shape[1]), dtype=np.float32)
    block = 200_000
    for start in range(0, n, block):
        size = min(block, n - start)
        noise = rng.standard_normal((size, real.shape[1]), dtype=np.float32)
        if kind == "jitter":
            items[start : start + size] = real[rng.integers(0, len(real), size)] + jitter * std * noise
        else:
            items[start : start + size] = real.mean(axis=0) + std * noise
    if kind == "jitter" and n >= len(real):
        items[: len(real)] = real  # the real catalogue is in every jittered one
    return items


def size_worker(task: dict[str, Any]) -> dict[str, Any]:
    import faiss
    import numpy as np

    from convrec.retrieval.ann import IndexOptions, build_index, exact_top

    faiss.omp_set_num_threads(task["threads"])
    queries = np.load(task["queries_path"])
    real = np.load(task["items_path"])
    items = synthetic(real, task["size"], task["kind"], task["jitter"], task["seed"])
    part = task["item_part_dim"]
    started = time.perf_counter()
    truth, _ = exact_top(queries, items, K)
    exact_batch_seconds = time.perf_counter() - started
    exact_ms = []
    for row in range(min(20, len(queries))):  # exact latency, one query at a time
        t0 = time.perf_counter()
        exact_top(queries[row : row + 1], items, K)
        exact_ms.append((time.perf_counter() - t0) * 1000)
    out: dict[str, Any] = {"size": task["size"], "kind": task["kind"], "exact_batch_seconds": exact_batch_seconds,
                           "exact_ms": common.percentiles(exact_ms), "methods": []}
    for mode in task["modes"]:
        indexed = items if mode == "augmented" else np.ascontiguousarray(items[:, :part])
        fetch = K if mode == "augmented" else task["rescore"]
        for name in task["methods"]:
            options = IndexOptions(**BUILDS[name][0], cache=False, threads=task["threads"])
            with common.Phase() as build:
                index = build_index(indexed, options)
            for search in BUILDS[name][1]:
                index.tune(**search)
                found_all, latency = [], []
                for query in queries:
                    q = query if mode == "augmented" else np.ascontiguousarray(query[:part])
                    t0 = time.perf_counter()
                    found = index.candidates(q[None, :], fetch)[0]
                    if mode == "rescore":  # exact full scores of the candidates, best 50 kept
                        found = found[found >= 0]
                        found = found[np.argsort(-(items[found] @ query), kind="stable")[:K]]
                    latency.append((time.perf_counter() - t0) * 1000)
                    found_all.append(set(found[:K].tolist()))
                recall = [len(f & set(t.tolist())) / K for f, t in zip(found_all, truth, strict=True)]
                setting = ",".join(f"{k}={v}" for k, v in search.items())
                out["methods"].append({"mode": mode, "method": f"{name} {setting}", "build": build.to_json(),
                                       "recall_at_50": float(np.mean(recall)),
                                       "recall_at_50_se": float(np.std(recall, ddof=1) / np.sqrt(len(recall))),
                                       "ms": common.percentiles(latency)})
            del index
    out["peak_rss_mib"] = round(common.process_peak_mib(), 1)
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if common.is_worker_call(argv):
        import json

        task = json.loads(argv[1])
        return common.worker_main(vectors_worker if task["step"] == "vectors" else size_worker, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="an lrurec-text run (its vectors are used)")
    parser.add_argument("--dataset", default="redial")
    parser.add_argument("--data-dir", type=Path, default=None, help="where processed datasets live (default ./data)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[40_000, 300_000, 3_000_000])
    parser.add_argument("--kinds", nargs="+", choices=["jitter", "gaussian"], default=["jitter", "gaussian"])
    parser.add_argument("--methods", nargs="+", choices=sorted(BUILDS), default=list(BUILDS))
    parser.add_argument("--modes", nargs="+", choices=["augmented", "rescore"], default=["augmented", "rescore"])
    parser.add_argument("--queries", type=int, default=300, help="seeded test samples whose query vectors search")
    parser.add_argument("--jitter", type=float, default=0.5, help="noise, in per-dimension standard deviations")
    parser.add_argument("--rescore", type=int, default=200, help="rescore mode: candidates re-scored exactly")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=common.BENCH_DIR / "out" / "bench_ann.json")
    args = parser.parse_args(argv)
    info = common.machine_info()
    report: dict[str, Any] = {"command": common.command_info(SCRIPT, argv), "memory_method": common.MEMORY_METHOD,
                              "k": K, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-ann-") as tmp:
        paths = {"queries_path": str(Path(tmp) / "queries.npy"), "items_path": str(Path(tmp) / "items.npy")}
        real = common.run_worker(SCRIPT, {"step": "vectors", "dataset": args.dataset, "queries": args.queries,
                                          "checkpoint": str(args.checkpoint.resolve()), "seed": args.seed,
                                          "data_dir": str(args.data_dir.resolve()) if args.data_dir else None,
                                          **paths})
        report["real"] = real
        for size in args.sizes:
            for kind in args.kinds:
                task = {"step": "size", "size": size, "kind": kind, "jitter": args.jitter, "seed": args.seed,
                        "methods": args.methods, "modes": args.modes, "rescore": args.rescore,
                        "threads": args.threads, "item_part_dim": real["item_part_dim"], **paths}
                run = common.run_worker(SCRIPT, task, timeout=4 * 3600)
                report["runs"].append(run)
                rows = [[m["mode"], m["method"], common.fmt(m["build"]["seconds"], 1),
                         common.fmt(m["build"]["peak_delta_mib"], 0), common.fmt(m["recall_at_50"], 3),
                         common.fmt(m["ms"]["median"], 2), common.fmt(m["ms"]["p90"], 2)] for m in run["methods"]]
                rows.append(["exact", "numpy", "-", "-", "1.000", common.fmt(run["exact_ms"]["median"], 2),
                             common.fmt(run["exact_ms"]["p90"], 2)])
                common.print_table(f"{size:,} items ({kind}), top {K} of {args.queries} real queries",
                                   ["mode", "index", "build s", "build MiB", "recall@50", "p50 ms", "p90 ms"], rows)
                report["machine"] = common.finish_machine_info(info)
                common.write_report(args.out, common.rounded(report))  # after every size: nothing lost
    return 0


if __name__ == "__main__":
    sys.exit(main())
