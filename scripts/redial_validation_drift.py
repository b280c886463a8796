"""Why ReDial's validation split reads higher than its test split, and which validation reads like test.

ReDial's test conversations were collected after every train conversation (conversation ids 20001-23322 against
391-19920), and convrec holds 10% of train conversations out for validation by a hash of the id: a validation
split from the same period as training. This script compares, for fast recommenders refitted on each training
set (standard protocol, whole catalogue, samples from dialogues with speaker roles as model selection uses):

- hash validation: the processed dataset's valid split, the recommender fitted on its train split;
- temporal validation: the latest ``--share`` of train + valid conversations by id, fitted on the rest;
- test: the official test split, fitted on the train split.

It also prints how new and how popular the targets are in each. Nothing here is model selection: it reads
the test split only to show which validation split resembles it.

  python scripts/redial_validation_drift.py --data-dir data popularity itemknn ease
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from convrec.data.dataset import Split, load_processed
from convrec.data.model import Dialogue
from convrec.errors import ConfigError
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.runner import evaluate_scores
from convrec.retrieval.base import build_recommender, item_counts, recommender_class


def conversation_id(dialogue: Dialogue) -> int | None:
    return int(dialogue.dialogue_id) if dialogue.dialogue_id.isdigit() else None


def temporal_split(train: Split, valid: Split, share: float) -> tuple[Split, Split, int]:
    """(training, validation, the first validation id): the latest ``share`` of conversations by id validate."""
    pool = train.dialogues + valid.dialogues
    ids = sorted(i for d in pool if (i := conversation_id(d)) is not None)
    cut = ids[int((1 - share) * len(ids))]
    late = [d for d in pool if (conversation_id(d) or -1) >= cut]
    early = [d for d in pool if (conversation_id(d) or -1) < cut]
    return (Split("train", train.catalog, early, dataset=train.dataset),
            Split("valid", train.catalog, late, dataset=train.dataset), cut)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recommenders", nargs="+", help="fast recommenders to refit (popularity, itemknn, ease)")
    parser.add_argument("--data-dir", type=Path, default=Path("data"), help="holds processed/redial")
    parser.add_argument("--share", type=float, default=0.1, help="the temporal validation's share (default 0.1)")
    args = parser.parse_args()
    if not 0 < args.share < 1:
        parser.error(f"--share must be between 0 and 1, not {args.share}")
    processed = args.data_dir / "processed" / "redial"
    if not processed.is_dir():
        parser.error(f"no processed ReDial in {processed}: run `convrec data fetch redial` and `convrec data build "
                     f"redial` first (or pass --data-dir)")
    for name in args.recommenders:  # an unknown name now, in one line, not after the first fits
        try:
            recommender_class(name)
        except ConfigError as exc:
            parser.error(str(exc))
    dataset = load_processed(processed, "redial")
    train, valid, test = dataset.split("train"), dataset.split("valid"), dataset.split("test")
    early, late, cut = temporal_split(train, valid, args.share)
    print(f"conversation ids: train+valid {min(filter(None, map(conversation_id, early.dialogues)))}-"
          f"{max(filter(None, map(conversation_id, late.dialogues)))}, test "
          f"{min(filter(None, map(conversation_id, test.dialogues)))}-"
          f"{max(filter(None, map(conversation_id, test.dialogues)))}; temporal validation from id {cut}")
    settings = (("hash valid", train, valid.selection_samples), ("temporal valid", early, late.selection_samples),
                ("test", train, test.samples))
    print("| split | samples | targets unseen in training | targets from 2018 | median target count |")
    print("|---|---:|---:|---:|---:|")
    for label, fitted_on, samples in settings:
        counts = item_counts(fitted_on)
        target_counts = counts[dataset.catalog.indices([s.target for s in samples])]
        years = np.array([dataset.catalog.get(s.target).year or 0 for s in samples])
        print(f"| {label} | {len(samples):,} | {(target_counts == 0).mean():.3f} | {(years >= 2018).mean():.3f} | "
              f"{np.median(target_counts):.0f} |")
    print("\n| recommender | split | samples | Recall@10 | NDCG@10 |")
    print("|---|---|---:|---:|---:|")
    for name in args.recommenders:
        for label, fitted_on, samples in settings:
            recommender = build_recommender(name, dataset.catalog, {})
            recommender.fit(fitted_on, None)
            values, n = evaluate_scores(recommender.score, samples, dataset.catalog, Protocol.STANDARD,
                                        item_counts(fitted_on), progress=False)
            recall, ndcg = values["recall@10"], values["ndcg@10"]
            print(f"| {name} | {label} | {n:,} | {recall.mean():.3f} ± {recall.std(ddof=1) / np.sqrt(n):.3f} | "
                  f"{ndcg.mean():.3f} ± {ndcg.std(ddof=1) / np.sqrt(n):.3f} |")


if __name__ == "__main__":
    main()
