"""Paired differences of retrievers on the same samples (convrec.evaluate.paired, as `convrec results`
computes for an experiment's baseline row), for any set of run dirs, e.g. the aligned runs against the control.
Two retrievers scored on the same samples are strongly correlated, so the paired SE is far smaller than the
two unpaired SEs a results table shows, and says whether a small difference is real. `--split valid` is the
one to choose settings with (the whole validation split); the test split is for reporting the chosen ones.

  python scripts/paired_difference.py --dataset redial --baseline results/runs/lrurec-text-redial \
      results/runs/lrurec-text-redial-{dpo,grpo,nll}
  python scripts/paired_difference.py --split valid --dataset redial --baseline results/runs/lrurec-text-redial \
      results/runs/lrurec-text-redial-*
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from convrec.data.load import load_dataset
from convrec.evaluate.paired import paired_differences
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.runner import evaluate_scores
from convrec.retrieval import build_recommender
from convrec.retrieval.base import item_counts
from convrec.retrieval.lrurec.recommender import run_options

METRICS = ("ndcg@10", "recall@10", "recall@50", "head:recall@10", "tail:recall@10")


def per_sample(dataset, run_dir: Path, protocol: Protocol, split: str) -> dict[str, np.ndarray]:
    name, options = run_options(run_dir)
    recommender = build_recommender(name, dataset.catalog, options)
    train = dataset.split("train")
    recommender.fit(train, dataset.split("valid"))
    values, _ = evaluate_scores(recommender.score, dataset.split(split).samples, dataset.catalog, protocol,
                                item_counts(train), progress=False)
    return values


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="retriever run dirs to compare with the baseline")
    parser.add_argument("--baseline", type=Path, required=True, help="the run dir every other is compared with")
    parser.add_argument("--dataset", default="redial")
    parser.add_argument("--protocol", default="standard", choices=[p.value for p in Protocol])
    parser.add_argument("--split", default="test", choices=["valid", "test"],
                        help="valid to choose between settings, test to report the chosen ones (default test)")
    args = parser.parse_args()
    dataset = load_dataset(args.dataset)
    protocol = Protocol(args.protocol)
    base = per_sample(dataset, args.baseline, protocol, args.split)
    print(f"{args.dataset} {args.split}, {protocol.value} protocol, {len(base['ndcg@10'])} samples; "
          f"paired difference vs {args.baseline.name} (mean ± SE; baseline mean in brackets)")
    for run in args.runs:
        other = per_sample(dataset, run, protocol, args.split)
        paired = paired_differences(base, other, METRICS)
        cells = []
        for metric, d in paired.items():
            defined = ~np.isnan(base[metric]) & ~np.isnan(other[metric])  # head/tail: NaN off the group
            cells.append(f"{metric} {d['diff']:+.4f} ± {d['stderr']:.4f} [{base[metric][defined].mean():.4f}]")
        print(f"{run.name}: " + ", ".join(cells))


if __name__ == "__main__":
    main()
