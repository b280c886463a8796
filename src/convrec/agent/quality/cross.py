"""Fine-tune the cross-encoder (:mod:`convrec.text.cross_encoder`) for the learned ranker's last stage.

    python -m convrec.agent.quality.cross --dataset redial --out results/runs/cross-encoder-redial

**Data.** Turns of the **train** split (a seeded subset of ``turns``): the learned ranker that uses the model
learns on validation, so the cross-encoder's scores there are read on dialogues it never saw. Each turn gives
one list: a target of that turn, and ``negatives`` items drawn from the top ``pool`` of a first-stage retriever
(EASE by default, fitted on train) that are not among the turn's targets: hard negatives, items a retriever
already thought fit. The loss is the listwise softmax cross-entropy of the target against its list.

**Resuming.** Every ``save_every`` steps the model, the optimiser and the step are written atomically to
``train_state.pt``; a killed run started again with the same options goes on from there. A finished run (its
``cross_encoder.pt``) with the same options is not trained again.

**Judgement.** On ``valid_turns`` seeded validation turns, the target among the retriever's top 20 other items
(21 in all): the cross-encoder's Recall@1, Recall@10 and MRR there beside the retriever's own order of the same
lists. What it adds to the full pipeline is measured where it is used, in the learned ranker (its
``cross_encoder`` option), on validation.
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from convrec.agent.quality.relevance import turn_groups
from convrec.data.dataset import CRSDataset, Split
from convrec.errors import ConfigError
from convrec.io import atomic_write
from convrec.options import report_main, training_arguments
from convrec.retrieval.base import Recommender, build_recommender
from convrec.text.cross_encoder import OPTIONS_FILE, WEIGHTS_FILE, CrossEncoder, CrossEncoderConfig

STATE_FILE = "train_state.pt"
JUDGE_LIST = 20  # the retriever's items beside the target in a judged list


class CrossTrainingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    encoder: CrossEncoderConfig = CrossEncoderConfig()
    negatives_from: str = Field("ease", description="the retriever whose top items are the hard negatives")
    turns: int = Field(1600, ge=10, description="train turns learned from (a seeded subset)")
    negatives: int = Field(7, ge=1, le=63, description="negatives per list (beside one target)")
    pool: int = Field(30, ge=2, description="the retriever's top items negatives are drawn from")
    turns_per_step: int = Field(4, ge=1, description="lists per optimiser step")
    epochs: int = Field(1, ge=1, le=20)
    learning_rate: float = Field(5e-5, gt=0, le=1e-2)
    warmup: float = Field(0.1, ge=0, lt=1, description="share of steps the learning rate rises over")
    weight_decay: float = Field(0.01, ge=0)
    valid_turns: int = Field(300, ge=10, description="validation turns judged")
    save_every: int = Field(50, ge=1, description="steps between saved training states")
    seed: int = 0


def training_lists(split: Split, retriever: Recommender, options: CrossTrainingOptions,
                   rng: np.random.Generator) -> list[tuple[str, list[int]]]:
    """(dialogue text, [target, negative, ...]) per sampled train turn, in a seeded order."""
    groups = [g for g in turn_groups(split.selection_samples) if g[0].context_text().strip()]
    chosen = sorted(rng.choice(len(groups), size=min(options.turns, len(groups)), replace=False).tolist())
    groups = [groups[i] for i in chosen]
    catalog = split.catalog
    lists = []
    for start in tqdm(range(0, len(groups), 256), desc="hard negatives", unit="batch", leave=False):
        block = groups[start : start + 256]
        scores = np.nan_to_num(np.asarray(retriever.score([view for view, _, _ in block]), dtype=np.float64),
                               nan=-np.inf)
        for (view, targets, _), row in zip(block, scores, strict=True):
            wanted = set(catalog.indices([t for t in targets if t in catalog.index_of]))
            if not wanted:
                continue
            pool = [int(i) for i in np.argsort(-row, kind="stable")[: options.pool + len(wanted)] if i not in wanted]
            pool = pool[: options.pool]
            negatives = rng.choice(pool, size=min(options.negatives, len(pool)), replace=False).tolist()
            target = int(rng.choice(sorted(wanted)))
            lists.append((view.context_text(), [target, *negatives]))
    return lists


def judge_lists(split: Split, retriever: Recommender, turns: int, seed: int) -> list[tuple[str, list[int], int]]:
    """(dialogue text, the retriever's top items with the target among them, the target's place) per sampled
    validation turn; the list's order is the retriever's."""
    rng = np.random.default_rng(seed + 1)
    groups = [g for g in turn_groups(split.selection_samples) if g[0].context_text().strip()]
    chosen = sorted(rng.choice(len(groups), size=min(turns, len(groups)), replace=False).tolist())
    catalog = split.catalog
    out = []
    for start in range(0, len(chosen), 256):
        block = [groups[i] for i in chosen[start : start + 256]]
        scores = np.nan_to_num(np.asarray(retriever.score([v for v, _, _ in block]), dtype=np.float64), nan=-np.inf)
        for (view, targets, _), row in zip(block, scores, strict=True):
            wanted = [p for p in catalog.indices([t for t in targets if t in catalog.index_of])]
            if not wanted:
                continue
            target = wanted[0]
            order = [int(i) for i in np.argsort(-row, kind="stable")[: JUDGE_LIST + len(wanted)]
                     if i not in set(wanted)][:JUDGE_LIST]
            # the target at its own place in the retriever's order: after every item scored higher, and in the
            # middle of the items it ties with (its expected place when ties are broken at random)
            place = int(sum(row[i] > row[target] for i in order) + sum(row[i] == row[target] for i in order) // 2)
            out.append((view.context_text(), order[:place] + [target] + order[place:], place))
    return out


def list_metrics(places: list[int]) -> dict[str, float]:
    ranks = np.asarray(places, dtype=np.float64)
    return {"recall@1": float(np.mean(ranks < 1)), "recall@10": float(np.mean(ranks < 10)),
            "mrr": float(np.mean(1.0 / (ranks + 1)))}


def train(dataset: CRSDataset, out: Path, options: CrossTrainingOptions) -> dict[str, Any]:
    import torch

    run_options = options.model_dump(mode="json")
    key = {"dataset": dataset.name, "n_items": len(dataset.catalog), "options": run_options}
    if (out / WEIGHTS_FILE).is_file() and (out / OPTIONS_FILE).is_file():
        saved = json.loads((out / OPTIONS_FILE).read_text(encoding="utf-8"))
        if saved.get("run") == key:
            print(f"{out}: finished with these options, not trained again", file=sys.stderr)
            return saved["report"]
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the run directory {out}: {err.strerror}") from None
    started = time.perf_counter()
    train_split, valid = dataset.split("train"), dataset.split("valid")
    retriever = build_recommender(options.negatives_from, dataset.catalog)
    retriever.fit(train_split, valid)
    rng = np.random.default_rng(options.seed)
    lists = training_lists(train_split, retriever, options, rng)
    if not lists:
        raise ConfigError(f"{dataset.name}: no train turn has a target in the catalogue: nothing to learn from")
    seconds = {"data": time.perf_counter() - started}

    torch.manual_seed(options.seed)
    model = CrossEncoder(options.encoder)
    optimiser = torch.optim.AdamW(model.parameters(), lr=options.learning_rate, weight_decay=options.weight_decay)
    steps_per_epoch = math.ceil(len(lists) / options.turns_per_step)
    total = steps_per_epoch * options.epochs
    warmup = max(1, int(total * options.warmup))

    def rate(step: int) -> float:  # linear warm-up, then linear decay to 0
        return step / warmup if step < warmup else max(0.0, (total - step) / max(1, total - warmup))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, rate)
    step, losses = 0, []
    state_path = out / STATE_FILE
    if state_path.is_file():
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state.get("run") == key:
            model.set_state(state["model"])
            optimiser.load_state_dict(state["optimiser"])
            scheduler.load_state_dict(state["scheduler"])
            step, losses = state["step"], state["losses"]
            if "rng" in state:
                torch.set_rng_state(state["rng"])  # dropout draws as an undisturbed run's would
            print(f"resuming at step {step} of {total}", file=sys.stderr)
    orders = [np.random.default_rng(options.seed + 100 + e).permutation(len(lists)) for e in range(options.epochs)]
    started = time.perf_counter()
    bar = tqdm(total=total, initial=step, desc="fine-tuning the cross-encoder", unit="step")
    model.train_mode(True)
    while step < total:
        epoch, within = divmod(step, steps_per_epoch)
        picked = orders[epoch][within * options.turns_per_step : (within + 1) * options.turns_per_step]
        contexts, items, sizes = [], [], []
        for index in picked:
            text, positions = lists[index]
            contexts += [model.context_text(text)] * len(positions)
            items += [CrossEncoder.item_text(dataset.catalog.items[p]) for p in positions]
            sizes.append(len(positions))
        scores = model.forward(model.encode_pairs(contexts, items))
        loss = torch.stack([torch.nn.functional.cross_entropy(part.unsqueeze(0), torch.zeros(1, dtype=torch.long))
                            for part in torch.split(scores, sizes)]).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimiser.step()
        scheduler.step()
        optimiser.zero_grad()
        step += 1
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}")
        if step % options.save_every == 0 or step == total:
            with atomic_write(state_path, "wb", encoding=None) as handle:
                torch.save({"run": key, "model": model.state(), "optimiser": optimiser.state_dict(),
                            "scheduler": scheduler.state_dict(), "step": step, "losses": losses,
                            "rng": torch.get_rng_state()}, handle)
    bar.close()
    seconds["training"] = time.perf_counter() - started

    started = time.perf_counter()
    judged = judge_lists(valid, retriever, options.valid_turns, options.seed)
    contexts = [text for text, order, _ in judged for _ in order]
    items = [CrossEncoder.item_text(dataset.catalog.items[p]) for _, order, _ in judged for p in order]
    scores = model.score(contexts, items)
    places, start = [], 0
    for _, order, place in judged:
        part = scores[start : start + len(order)]
        start += len(order)
        places.append(int((part > part[place]).sum()))  # ties broken in the target's favour: none in practice
    seconds["judging"] = time.perf_counter() - started
    window = min(50, max(1, len(losses) // 4))
    report = {
        "dataset": dataset.name, "lists": len(lists), "list_size": options.negatives + 1, "steps": total,
        # the mean loss over the first and the last steps (50, or a quarter of a short run: apart, not overlapping)
        "loss_window": window, "loss_first": round(float(np.mean(losses[:window])), 4),
        "loss_last": round(float(np.mean(losses[-window:])), 4),
        "judged_turns": len(judged), "judged_list": JUDGE_LIST + 1,
        "valid_cross_encoder": {k: round(v, 4) for k, v in list_metrics(places).items()},
        "valid_retriever": {k: round(v, 4) for k, v in list_metrics([p for _, _, p in judged]).items()},
        "seconds": {k: round(v, 1) for k, v in seconds.items()},
    }
    model.save(out, {"run": key, "report": report})
    state_path.unlink(missing_ok=True)  # the finished model is the state now
    with atomic_write(out / "report.md") as handle:
        handle.write(render(report, options))
    return report


def render(report: dict[str, Any], options: CrossTrainingOptions) -> str:
    ours, theirs = report["valid_cross_encoder"], report["valid_retriever"]
    lines = [f"Cross-encoder on {report['dataset']}: {report['lists']:,} train lists of {report['list_size']} "
             f"(a target and {options.negatives} of {options.negatives_from}'s top {options.pool}), {report['steps']} "
             f"steps; loss {report['loss_first']:.3f} over the first {report['loss_window']} steps, "
             f"{report['loss_last']:.3f} over the last {report['loss_window']}.", "",
             f"Validation, {report['judged_turns']} turns: the target among {options.negatives_from}'s top "
             f"{JUDGE_LIST} other items ({report['judged_list']} in all).", "",
             "| order | Recall@1 | Recall@10 | MRR |", "|---|---:|---:|---:|",
             f"| {options.negatives_from} | {theirs['recall@1']:.3f} | {theirs['recall@10']:.3f} | {theirs['mrr']:.3f} |",
             f"| cross-encoder | {ours['recall@1']:.3f} | {ours['recall@10']:.3f} | {ours['mrr']:.3f} |", "",
             "Seconds: " + ", ".join(f"{k} {v:,.0f}" for k, v in report["seconds"].items())]
    return "\n".join(lines) + "\n"


def run(argv: list[str] | None = None) -> tuple[dict[str, Any], CrossTrainingOptions]:
    args, options = training_arguments(
        "python -m convrec.agent.quality.cross", __doc__, CrossTrainingOptions,
        "a training option (repeatable): turns, negatives, pool, epochs, learning_rate, negatives_from, "
        "encoder.max_length, ...", argv)
    from convrec.data.load import load_dataset

    dataset = load_dataset(args.dataset, args.data_dir, progress=False)
    return train(dataset, args.out, options), options


def main(argv: list[str] | None = None) -> int:
    return report_main("python -m convrec.agent.quality.cross", run, lambda done: render(*done), argv)


if __name__ == "__main__":
    sys.exit(main())
