"""How much LLM work an alignment round needs, and how much signal it gets, before asking the LLM anything.

For a trained retriever and a seeded sample of train contexts, prints per sampling temperature: the share of
sampled candidate sets that contain the target (only those are rewarded, and only those cost LLM calls), the
share of contexts with at least one such set, the share of groups with mixed hits (a DPO pair / GRPO signal
even before the LLM's ranking), and the (context, item) LLM scores a context needs on average.

  python scripts/probe_alignment.py --dataset redial --checkpoint results/runs/lrurec-text-redial
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import numpy as np
import torch

from convrec.align.policy import gumbel_top_k
from convrec.data.load import load_dataset
from convrec.retrieval import build_recommender
from convrec.retrieval.lrurec.recommender import run_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="redial")
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--contexts", type=int, default=256)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--temperatures", default="0.5,1,2,3")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)

    dataset = load_dataset(args.dataset)
    train, valid = dataset.split("train"), dataset.split("valid")
    name, options = run_options(args.checkpoint)
    retriever = build_recommender(name, dataset.catalog, options)
    retriever.fit(train, valid)
    retriever.network.eval()

    contexts = [s for s in train.selection_samples if s.target in dataset.catalog]
    picked = random.Random(args.seed).sample(contexts, min(args.contexts, len(contexts)))
    with torch.no_grad():
        logits = retriever.catalogue_logits(*retriever.inputs(picked))
    targets = torch.as_tensor(dataset.catalog.indices(s.target for s in picked))
    rank = (logits > logits.gather(1, targets[:, None])).sum(dim=1)
    print(f"{len(picked)} of {len(contexts)} train contexts; greedy top-{args.k} contains the target in "
          f"{(rank < args.k).float().mean():.3f}, top-50 in {(rank < 50).float().mean():.3f}")
    print("temperature | sets with target | contexts with one | mixed groups | LLM scores per context")
    groups, k = args.group_size, args.k
    for temperature in (float(t) for t in args.temperatures.split(",")):
        generator = torch.Generator().manual_seed(args.seed)
        sets = gumbel_top_k((logits / temperature).repeat_interleave(groups, 0), k, generator)
        sets = sets.view(len(picked), groups, k)
        hit = (sets == targets[:, None, None]).any(dim=2)
        mixed = (hit.any(dim=1) & ~hit.all(dim=1)).float().mean()
        needed = [len(set(sets[b][hit[b]].flatten().tolist())) for b in range(len(picked))]
        print(f"{temperature:11g} | {hit.float().mean():16.3f} | {hit.any(dim=1).float().mean():17.3f} | "
              f"{mixed:12.3f} | {np.mean(needed):22.1f}")


if __name__ == "__main__":
    main()
