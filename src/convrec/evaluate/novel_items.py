"""New items without retraining: how well ``lrurec-text`` ranks an item it knows only by its text.

RAR's claim for novel items: a retriever whose item vectors start from item text can take a new item by its
text alone. ``LRURecRecommender.add_items`` does that (vector ``text_proj(text)``, residual 0, a chosen output
bias). This measures it on the items a trained model never saw in a training dialogue: each is reset to what
``add_items`` would have made of it (its residual forgotten, its bias replaced), and Recall@10 of the test
samples whose target is such an item is compared with the trained model's, paired on the same samples (the
standard protocol: the whole catalogue ranked). All samples are reported too: a new item's vector competes
with every other target.

The bias rule (``seen-median``: the median bias of the items training saw; ``zero``; ``learned``: keep the
bias training gave the item, forget only the residual) is chosen on validation, by Recall@10 over all
validation samples, and the test split is read once, for the chosen rule.

    python -m convrec.evaluate.novel_items --checkpoint results/runs/lrurec-text-redial [--dataset redial]
        [--out results/novel-items]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from convrec.evaluate.metrics import recall_and_ndcg_at
from convrec.options import report_main, write_report_files

RULES = ("seen-median", "zero", "learned")


def _recall(model, samples) -> np.ndarray:
    scores = model.score(samples)  # at once: the dialogue texts' embeddings are read from their cache once
    targets = np.array([model.catalog.index_of[s.target] for s in samples])
    return recall_and_ndcg_at(scores, targets, 10)[0]


def _paired(new: np.ndarray, old: np.ndarray) -> dict[str, float]:
    diff = new - old
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    return {"trained": float(old.mean()), "text_only": float(new.mean()), "difference": float(diff.mean()),
            "se": se, "samples": len(diff)}


def measure(dataset_name: str, checkpoint: str, data_dir: Path | None = None) -> dict[str, Any]:
    from convrec.data.load import load_dataset
    from convrec.retrieval.base import build_recommender

    dataset = load_dataset(dataset_name, data_dir)
    model = build_recommender("lrurec-text", dataset.catalog, {"checkpoint": checkpoint})
    model.fit(dataset.split("train"))
    unseen = np.setdiff1d(np.arange(len(dataset.catalog)), model.seen_columns)
    rows = torch.as_tensor(unseen + 1)  # model rows: 0 is padding
    lru = model.network.lru
    trained_delta, trained_bias = lru.delta.detach().clone(), lru.output_bias.detach().clone()

    def restore() -> None:
        with torch.no_grad():
            lru.delta.copy_(trained_delta)
            lru.output_bias.copy_(trained_bias)
        lru._frozen_items = None

    def text_only(rule: str) -> None:
        restore()
        bias = model.new_item_bias(rule) if rule != "learned" else None
        lru.reset_to_text(rows, bias if bias is not None else 0.0)
        if rule == "learned":
            with torch.no_grad():
                lru.output_bias[rows] = trained_bias[rows]

    unseen_ids = {dataset.catalog.id_at(int(c)) for c in unseen}
    valid = dataset.split("valid").selection_samples
    test = dataset.split("test").samples
    restore()
    trained = {"valid": _recall(model, valid), "test": _recall(model, test)}
    selection = {}
    for rule in RULES:
        text_only(rule)
        recall = _recall(model, valid)
        novel = np.array([s.target in unseen_ids for s in valid])
        selection[rule] = {"all": _paired(recall, trained["valid"]),
                           "unseen_targets": _paired(recall[novel], trained["valid"][novel])}
    chosen = max(RULES, key=lambda r: selection[r]["all"]["text_only"])
    text_only(chosen)
    recall = _recall(model, test)
    novel = np.array([s.target in unseen_ids for s in test])
    restore()
    return {"dataset": dataset_name, "checkpoint": checkpoint, "protocol": "standard (whole catalogue ranked)",
            "metric": "Recall@10", "catalogue": len(dataset.catalog), "unseen_items": len(unseen),
            "validation": selection, "chosen_rule": chosen,
            "test": {"all": _paired(recall, trained["test"]),
                     "unseen_targets": _paired(recall[novel], trained["test"][novel]),
                     "unseen_target_share": float(novel.mean())}}


def markdown(result: dict[str, Any]) -> str:
    def row(label: str, r: dict[str, float]) -> str:
        return (f"| {label} | {r['samples']:,} | {r['trained']:.3f} | {r['text_only']:.3f} | "
                f"{r['difference']:+.3f} ± {r['se']:.3f} |")

    test = result["test"]
    lines = [f"New items by their text alone: {result['dataset']} test, {result['protocol']}, Recall@10; "
             f"{result['unseen_items']:,} of {result['catalogue']:,} items never in a training dialogue, "
             f"bias rule `{result['chosen_rule']}` (chosen on validation).", "",
             "| samples | n | trained | text only | difference (paired, ± SE) |", "|---|---|---|---|---|",
             row("target never in training", test["unseen_targets"]), row("all", test["all"]), "",
             "Validation (choosing the bias rule, Recall@10 over all samples / unseen targets):", "",
             "| rule | all | unseen targets |", "|---|---|---|"]
    for rule, r in result["validation"].items():
        lines.append(f"| `{rule}` | {r['all']['text_only']:.3f} ({r['all']['difference']:+.3f}) | "
                     f"{r['unseen_targets']['text_only']:.3f} ({r['unseen_targets']['difference']:+.3f}) |")
    return "\n".join(lines) + "\n"


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m convrec.evaluate.novel_items", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a trained lrurec-text run dir")
    parser.add_argument("--dataset", default="redial")
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("results/novel-items"),
                        help="writes OUT.json and OUT.md (default results/novel-items)")
    args = parser.parse_args(argv)
    result = measure(args.dataset, args.checkpoint, args.data_dir)
    write_report_files(args.out.with_suffix(".json"), result, args.out.with_suffix(".md"), markdown(result), "--out")
    return result


def main(argv: Sequence[str] | None = None) -> int:
    return report_main("novel_items", run, markdown, argv)


if __name__ == "__main__":
    sys.exit(main())
