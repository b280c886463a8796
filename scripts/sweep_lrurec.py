"""Choose LRURec options on the validation split (never test): train each variant, print validation metrics.

    .venv/bin/python scripts/sweep_lrurec.py --dataset redial --recommender lrurec-text \
        --variant base= --variant aligned=train.turn_aligned=true \
        --variant copy=train.turn_aligned=true,copy_bonus=true --json sweep.json

Each ``--variant NAME=KEY=VALUE,KEY=VALUE`` is a set of ``--set`` options on top of the recommender's defaults.
Validation Recall@10 / NDCG@10 are those early stopping uses (samples from dialogues with speaker roles, standard
protocol); the dedup column excludes mentioned items and drops samples whose target was mentioned, as the test
protocol does. Runs are kept under ``--runs`` (resumable), so a sweep that is interrupted goes on where it stopped.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from convrec.cli.common import parse_options
from convrec.data.fetch import default_data_dir, default_mirror
from convrec.data.load import load_dataset
from convrec.evaluate.metrics import recall_and_ndcg_at
from convrec.evaluate.protocol import Protocol, mask_excluded
from convrec.io import write_json
from convrec.retrieval import build_recommender


def mean_recall_ndcg_at_10(scores: np.ndarray, samples, catalog) -> tuple[float, float]:
    """The reported Recall/NDCG@10 (ties broken at random in expectation), averaged over ``samples``: the
    metric early stopping and every other model selection use."""
    hit, ndcg = recall_and_ndcg_at(scores, np.asarray(catalog.indices(s.target for s in samples)), 10)
    return float(hit.mean()), float(ndcg.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="redial")
    parser.add_argument("--recommender", default="lrurec-text")
    parser.add_argument("--variant", action="append", required=True, metavar="NAME=K=V,K=V")
    parser.add_argument("--runs", type=Path, default=Path("results/runs/sweep"))
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    dataset = load_dataset(args.dataset, default_data_dir(), default_mirror(), progress=True)
    train, valid = dataset.split("train"), dataset.split("valid")
    samples = valid.selection_samples
    keep = [i for i, s in enumerate(samples) if not s.target_in_context]
    dedup_samples = [samples[i] for i in keep]  # the dedup protocol's selection
    rows = []
    for spec in args.variant:
        name, _, pairs = spec.partition("=")
        options = parse_options([p for p in pairs.split(",") if p])
        options["run_dir"] = str(args.runs / f"{args.dataset}-{args.recommender}-{name}")
        started = time.perf_counter()
        recommender = build_recommender(args.recommender, dataset.catalog, options)
        recommender.fit(train, valid)
        scores = recommender.score(samples)
        recall, ndcg = mean_recall_ndcg_at_10(scores, samples, dataset.catalog)
        dedup_scores = scores[keep]
        mask_excluded(dedup_scores, dedup_samples, dataset.catalog, Protocol.DEDUP)
        dedup_recall, _ = mean_recall_ndcg_at_10(dedup_scores, dedup_samples, dataset.catalog)
        row = {"variant": name, "options": pairs, "valid_recall@10": round(recall, 4),
               "valid_ndcg@10": round(ndcg, 4), "valid_dedup_recall@10": round(dedup_recall, 4),
               "best_epoch": recommender.summary.get("best_epoch"),
               "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n{args.dataset} validation ({len(samples)} samples, standard; dedup as the test protocol)")
    print("| variant | R@10 | N@10 | dedup R@10 | best epoch | s | options |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['variant']} | {r['valid_recall@10']:.4f} | {r['valid_ndcg@10']:.4f} | "
              f"{r['valid_dedup_recall@10']:.4f} | {r['best_epoch']} | {r['seconds']} | `{r['options']}` |")
    if args.json:
        write_json(args.json, {"dataset": args.dataset, "recommender": args.recommender, "rows": rows})


if __name__ == "__main__":
    main()
