"""Choose the learned ranker's options by cross-validation on the validation split, never on test.

    python -m convrec.agent.quality.select results/runs/learned-ranker-redial

reads a `convrec train --recommender learned-ranker` run (its cached features), and cross-validates over the
validation dialogues: each feature group left out (and each retriever's features), then a small grid of
LightGBM settings with every group. It writes ``selection.md`` and ``selection.json`` into the run directory:
per row the cross-validated Recall@1/10 and NDCG@10 and the paired difference from the first retriever on the
same targets. Retrain with the chosen options (``--set trees=... --set leaves=...``) to use them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from convrec.agent.quality.features import FEATURE_GROUPS, group_of
from convrec.agent.quality.relevance import LearnedRankerConfig, TrainingSet, cross_validate
from convrec.io import atomic_write, write_json

GRID = ({"trees": 100, "leaves": 7}, {"trees": 300, "leaves": 7}, {"trees": 300, "leaves": 15},
        {"trees": 600, "leaves": 15}, {"trees": 300, "leaves": 31}, {"trees": 600, "leaves": 31, "learning_rate": 0.03})


def rows_to_try(names: list[str], retrievers: list[str]) -> list[tuple[str, dict[str, Any], np.ndarray]]:
    """(label, options, feature columns) of each cross-validated row."""
    groups = group_of(names)
    everything = np.arange(len(names))
    rows = [("every group", {}, everything)]
    for left_out in FEATURE_GROUPS:
        kept = np.asarray([i for i, g in enumerate(groups) if g != left_out])
        rows.append((f"without {left_out}", {}, kept))
    for retriever in retrievers:
        kept = np.asarray([i for i, n in enumerate(names) if not n.startswith(f"{retriever}:")])
        rows.append((f"without {retriever}'s features", {}, kept))
    rows.append(("retrievers only", {}, np.asarray([i for i, g in enumerate(groups) if g == "retrievers"])))
    for options in GRID:
        label = ", ".join(f"{k} {v}" for k, v in options.items())
        rows.append((label, options, everything))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convrec.agent.quality.select", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a learned-ranker run (convrec train --recommender learned-ranker)")
    args = parser.parse_args(argv)
    config_path = args.run_dir / "config.json"
    if not config_path.is_file():
        parser.error(f"{args.run_dir} is not a learned-ranker run (no config.json)")
    saved = json.loads(config_path.read_text(encoding="utf-8"))
    features_dir = Path(saved.get("features_dir") or args.run_dir)
    if not (features_dir / "features.npz").is_file():
        parser.error(f"{args.run_dir} is not a learned-ranker run with cached features ({features_dir}/features.npz)")
    training = TrainingSet.load(features_dir / "features.npz")
    training.extra = [TrainingSet.load(Path(d) / "features.npz") for d in saved["options"].get("also_train_on", ())]
    names = json.loads((features_dir / "features.json").read_text(encoding="utf-8"))["features"]
    base = {k: v for k, v in saved["options"].items() if k in LearnedRankerConfig.model_fields}
    retrievers = list(base["retrievers"])
    results = []
    for label, options, columns in rows_to_try(names, retrievers):
        started = time.perf_counter()
        config = LearnedRankerConfig(**{**base, **options})
        report = cross_validate(training, config, columns)
        results.append({"row": label, "options": options, "features": len(columns), "report": report,
                        "seconds": round(time.perf_counter() - started, 1)})
        r10, ndcg = report["recall@10"], report["ndcg@10"]
        print(f"{label:40s} R@10 {r10['ranker']:.4f} ({r10['difference']:+.4f} ± {r10['difference_se']:.4f})  "
              f"NDCG@10 {ndcg['ranker']:.4f} ({ndcg['difference']:+.4f} ± {ndcg['difference_se']:.4f})", flush=True)
    grid = [r for r in results if r["options"]] + [results[0]]
    best = max(grid, key=lambda r: (r["report"]["recall@10"]["ranker"], r["report"]["ndcg@10"]["ranker"]))
    write_json(args.run_dir / "selection.json", {"dataset": saved["dataset"], "first_retriever": retrievers[0],
                                                 "rows": results, "chosen": best["row"],
                                                 "chosen_options": best["options"]})
    lines = [f"Cross-validated on {saved['dataset']} validation ({results[0]['report']['targets']} targets, "
             f"{results[0]['report']['folds']} folds by dialogue); differences are paired against "
             f"{retrievers[0]} alone on the same targets (mean ± standard error).", "",
             "| row | features | Recall@1 | Recall@10 | NDCG@10 | Recall@10 − first | NDCG@10 − first |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        rep = r["report"]
        lines.append(f"| {r['row']} | {r['features']} | {rep['recall@1']['ranker']:.4f} | "
                     f"{rep['recall@10']['ranker']:.4f} | {rep['ndcg@10']['ranker']:.4f} | "
                     f"{rep['recall@10']['difference']:+.4f} ± {rep['recall@10']['difference_se']:.4f} | "
                     f"{rep['ndcg@10']['difference']:+.4f} ± {rep['ndcg@10']['difference_se']:.4f} |")
    first = results[0]["report"]
    lines += ["", f"{retrievers[0]} alone: Recall@10 {first['recall@10']['first_retriever']:.4f}, NDCG@10 "
              f"{first['ndcg@10']['first_retriever']:.4f}. Chosen (best Recall@10 of the learner grid): "
              f"**{best['row']}**."]
    with atomic_write(args.run_dir / "selection.md") as handle:
        handle.write("\n".join(lines) + "\n")
    print(f"chosen: {best['row']}; written {args.run_dir / 'selection.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
