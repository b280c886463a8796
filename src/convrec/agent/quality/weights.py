"""CHARM's context-dependent weights: a small network maps what the agent knows of the conversation to softmax
weights over the four quality dimensions, trained with a Bradley-Terry loss with margin on chosen vs rejected
slates.

    python -m convrec.agent.quality.weights --dataset redial --checkpoint results/runs/lrurec-text-redial \\
        --satisfaction-run results/runs/satisfaction-redial --engagement-run results/runs/engagement-redial \\
        --out results/runs/charm-weights-redial

**The slates.** For each sample of the validation split (the retriever fitted on train; the answer models
trained on train's questionnaires) the agent reads the dialogue and ranks its candidates by relevance, as it
does in a chat; each candidate then gets its four dimensions (:mod:`convrec.agent.quality.charm`). From those,
:data:`PROBE_WEIGHTS` (each dimension alone beside relevance, all four, relevance alone) each choose a slate by
the greedy order. A slate that holds the sample's target is *chosen*, one that does not is *rejected*; a
sample whose probes all hold the target, or none does, teaches nothing and is left out. Each slate is
summarised by its quality vector Q = (mean relevance, intra-list distance, mean satisfaction, mean
engagement), each in [0, 1].

**The network and the loss.** Context features (:data:`CONTEXT_FEATURES`: seeker turns, items named, liked,
disliked, constraints, whether anything is known) go through one hidden layer to four logits; their softmax
are the weights w. For every (chosen, rejected) pair of a sample the loss is
``-log sigmoid(scale * w . (Q_chosen - Q_rejected) - margin)``. It is fitted on 80% of the validation
dialogues and judged on the other 20%: the share of held-out pairs it orders right, beside fixed weights
(relevance alone; all equal) on the same pairs. The report shows the learned weights per kind of context
(``weights.md``, ``weights.png``).

At run time (``[quality] weights_run`` in a harpo config) the agent asks the network for the weights of each
turn's context instead of the fixed ``weights``.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convrec.agent.quality.dimensions import QUALITY_DIMENSIONS
from convrec.agent.state import AgentState
from convrec.data.model import ContextView
from convrec.errors import ConfigError, ConvrecError
from convrec.io import atomic_write, write_json

CONTEXT_FEATURES = ("seeker_turns", "items_named", "liked", "disliked", "constraints", "nothing_known")
# the probes that choose a slate each: relevance alone, relevance with each other dimension, all four
PROBE_WEIGHTS = (
    {"relevance": 1.0},
    {"relevance": 1.0, "diversity": 1.0},
    {"relevance": 1.0, "satisfaction": 1.0},
    {"relevance": 1.0, "engagement": 1.0},
    {"relevance": 1.0, "diversity": 1.0, "satisfaction": 1.0, "engagement": 1.0},
)
HELD_OUT_SHARE = 0.2
MODEL_FILE = "weights.pt"


def context_features(state: AgentState, view: ContextView) -> np.ndarray:
    """What the agent knows after ``view`` (``state``: its reading of it), as the network reads it (counts
    squashed by log1p)."""
    known = len(state.named) + len(state.constraints.constraints)
    seeker_turns = sum(1 for turn in view.context if turn.role == "seeker")
    values = [seeker_turns, len(state.named), len(state.liked), len(state.disliked),
              len(state.constraints.constraints)]
    return np.asarray([*np.log1p(values), float(known == 0)], dtype=np.float32)


def slate_quality(quality: dict[str, np.ndarray], distances: np.ndarray | None, slate: Sequence[int]) -> np.ndarray:
    """Q of one slate (positions into the candidates): mean relevance, intra-list distance, mean satisfaction,
    mean engagement (a dimension without a model counts 0: it cannot tell slates apart)."""
    picked = list(slate)
    out = np.zeros(len(QUALITY_DIMENSIONS), dtype=np.float32)
    for d, name in enumerate(QUALITY_DIMENSIONS):
        if name == "diversity":
            if distances is not None and len(picked) > 1:
                sub = distances[np.ix_(picked, picked)]
                out[d] = sub.sum() / (len(picked) * (len(picked) - 1))
        elif name in quality:
            out[d] = float(np.mean(quality[name][picked]))
    return out


@dataclass
class SlatePairs:
    """Training material: per sample its context features and the Q of its chosen and rejected slates."""

    contexts: np.ndarray  # (samples, len(CONTEXT_FEATURES))
    chosen: list[np.ndarray]  # per sample, (n_chosen, 4)
    rejected: list[np.ndarray]  # per sample, (n_rejected, 4)
    dialogues: list[str]


def held_out(dialogue_id: str) -> bool:
    return int(hashlib.sha256(dialogue_id.encode()).hexdigest()[:8], 16) % 100 < HELD_OUT_SHARE * 100


class WeightNetwork:
    """Context features -> softmax weights over :data:`QUALITY_DIMENSIONS` (one hidden tanh layer)."""

    def __init__(self, hidden: int = 16, seed: int = 0):
        import torch

        torch.manual_seed(seed)
        self.hidden = hidden
        self.module = torch.nn.Sequential(torch.nn.Linear(len(CONTEXT_FEATURES), hidden), torch.nn.Tanh(),
                                          torch.nn.Linear(hidden, len(QUALITY_DIMENSIONS)))
        self.mean = np.zeros(len(CONTEXT_FEATURES), dtype=np.float32)
        self.std = np.ones(len(CONTEXT_FEATURES), dtype=np.float32)
        self.meta: dict[str, Any] = {}  # what it was trained on (the report's settings), once saved or loaded

    def weights(self, contexts: np.ndarray) -> np.ndarray:
        """(n, 4) weights for (n, len(CONTEXT_FEATURES)) contexts."""
        import torch

        with torch.no_grad():
            x = torch.as_tensor((np.atleast_2d(contexts) - self.mean) / self.std, dtype=torch.float32)
            return torch.softmax(self.module(x), dim=-1).numpy()

    def fit(self, pairs: SlatePairs, rows: Sequence[int], scale: float, margin: float, epochs: int,
            lr: float = 0.01) -> list[float]:
        """Bradley-Terry with margin over every (chosen, rejected) pair of the ``rows`` samples; returns the
        loss per epoch."""
        import torch

        self.mean = pairs.contexts[list(rows)].mean(axis=0)
        self.std = pairs.contexts[list(rows)].std(axis=0) + 1e-6
        context_rows, differences = [], []
        for row in rows:
            for c in pairs.chosen[row]:
                for r in pairs.rejected[row]:
                    context_rows.append(row)
                    differences.append(c - r)
        x = torch.as_tensor((pairs.contexts[context_rows] - self.mean) / self.std, dtype=torch.float32)
        diff = torch.as_tensor(np.asarray(differences), dtype=torch.float32)
        optimiser = torch.optim.Adam(self.module.parameters(), lr=lr, weight_decay=1e-4)
        losses = []
        for _ in range(epochs):
            optimiser.zero_grad()
            w = torch.softmax(self.module(x), dim=-1)
            loss = torch.nn.functional.softplus(-(scale * (w * diff).sum(dim=-1) - margin)).mean()
            loss.backward()
            optimiser.step()
            losses.append(float(loss.detach()))
        return losses

    def save(self, path: Path, meta: dict[str, Any]) -> None:
        import torch

        self.meta = dict(meta)
        state = {"module": self.module.state_dict(), "mean": self.mean.tolist(), "std": self.std.tolist(),
                 "hidden": self.hidden, "features": list(CONTEXT_FEATURES),
                 "dimensions": list(QUALITY_DIMENSIONS), "meta": meta}
        with atomic_write(path, mode="wb") as handle:
            torch.save(state, handle)

    @classmethod
    def load(cls, run_dir: str | Path) -> WeightNetwork:
        import torch

        path = Path(run_dir) / MODEL_FILE
        if not path.is_file():
            raise ConfigError(f"no weight network in {run_dir} (expected {MODEL_FILE}): train it with "
                              "`python -m convrec.agent.quality.weights --out RUN_DIR ...`")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("features") != list(CONTEXT_FEATURES) or state.get("dimensions") != list(QUALITY_DIMENSIONS):
            raise ConfigError(f"{path}: trained on other context features or dimensions than this version reads: "
                              "retrain it")
        network = cls(int(state["hidden"]))
        network.module.load_state_dict(state["module"])
        network.mean = np.asarray(state["mean"], dtype=np.float32)
        network.std = np.asarray(state["std"], dtype=np.float32)
        network.meta = dict(state.get("meta") or {})
        return network


def pair_accuracy(pairs: SlatePairs, rows: Sequence[int], weights_of) -> float:
    """Share of (chosen, rejected) pairs of ``rows`` whose chosen slate scores higher (ties count half)."""
    right = total = 0.0
    for row in rows:
        w = weights_of(row)
        for c in pairs.chosen[row]:
            for r in pairs.rejected[row]:
                gap = float(np.dot(w, c - r))
                right += 1.0 if gap > 1e-9 else 0.5 if abs(gap) <= 1e-9 else 0.0
                total += 1
    return right / total if total else float("nan")


def context_kinds(contexts: np.ndarray) -> list[str]:
    """A readable kind per context, for the weights table: nothing known, items named (1 / 2+), and whether a
    constraint was stated."""
    index = {name: k for k, name in enumerate(CONTEXT_FEATURES)}
    kinds = []
    for row in contexts:
        if row[index["nothing_known"]] > 0.5:
            kinds.append("nothing known yet")
            continue
        named = int(round(np.expm1(row[index["items_named"]])))
        constraints = int(round(np.expm1(row[index["constraints"]])))
        kinds.append(f"{'1 item' if named == 1 else '2+ items' if named > 1 else 'no item'} named, "
                     f"{'a constraint' if constraints else 'no constraint'}")
    return kinds


def write_report(out: Path, report: dict[str, Any]) -> None:
    write_json(out / "report.json", report)
    lines = [f"Context-dependent quality weights on {report['dataset']} (validation split, "
             f"{report['samples']:,} samples that tell slates apart; {report['pairs']:,} chosen / rejected slate "
             "pairs).", "",
             "| held-out pairs (20% of validation dialogues) | ordered right |", "|---|---:|"]
    for name, value in report["held_out_accuracy"].items():
        lines.append(f"| {name} | {value:.3f} |")
    lines += ["", "Learned weights per kind of context (mean over the validation contexts of that kind):", "",
              "| context | n | " + " | ".join(QUALITY_DIMENSIONS) + " |",
              "|---|---:|" + "---:|" * len(QUALITY_DIMENSIONS)]
    for kind, row in report["weights_by_context"].items():
        lines.append(f"| {kind} | {row['n']:,} | " + " | ".join(f"{row[d]:.2f}" for d in QUALITY_DIMENSIONS) + " |")
    with atomic_write(out / "weights.md") as handle:
        handle.write("\n".join(lines) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    kinds = list(report["weights_by_context"])
    fig, ax = plt.subplots(figsize=(8.5, 0.9 + 0.45 * len(kinds)))
    left = np.zeros(len(kinds))
    for d in QUALITY_DIMENSIONS:
        values = np.asarray([report["weights_by_context"][k][d] for k in kinds])
        ax.barh(kinds, values, left=left, label=d)
        left += values
    ax.set_xlim(0, 1)
    ax.set_xlabel("weight (softmax: each row sums to 1)")
    ax.set_title(f"CHARM weights per context, {report['dataset']} validation")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "weights.png", dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convrec.agent.quality.weights", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="redial")
    parser.add_argument("--retriever", default="lrurec-text", help="the agent's retriever (fitted on train)")
    parser.add_argument("--checkpoint", default=None, help="a `convrec train` run dir for the retriever")
    parser.add_argument("--satisfaction-run", default=None, help="the satisfaction model's run dir")
    parser.add_argument("--engagement-run", default=None, help="the engagement model's run dir")
    parser.add_argument("--limit", type=int, default=None, help="a seeded subset of validation samples")
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--margin", type=float, default=0.1, help="Bradley-Terry margin")
    parser.add_argument("--scale", type=float, default=10.0, help="Bradley-Terry scale of w . (Q_c - Q_r)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="run directory for the network and its report")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        train(args)
    except ConvrecError as err:  # bad input (a dataset, a run dir, an option): one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    print((args.out / "weights.md").read_text(encoding="utf-8"))
    return 0


def train(args: argparse.Namespace, dataset=None) -> dict[str, Any]:
    """The command's work (``dataset``: an already loaded one instead of ``args.dataset``)."""
    from convrec.agent.quality.slates import collect_pairs
    from convrec.data.load import load_dataset

    dataset = dataset or load_dataset(args.dataset, args.data_dir, progress=False)
    try:  # after the dataset loaded: a bad name leaves no empty run directory behind
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the run directory {args.out}: {err.strerror}") from None
    pairs = collect_pairs(dataset, args.retriever, args.checkpoint, args.satisfaction_run, args.engagement_run,
                          args.limit, args.seed, progress=False)
    rows = [k for k in range(len(pairs.dialogues)) if not held_out(pairs.dialogues[k])]
    test_rows = [k for k in range(len(pairs.dialogues)) if held_out(pairs.dialogues[k])]
    if not rows or not test_rows:
        raise ConfigError("too few validation samples tell the probe slates apart to train and judge the network")
    network = WeightNetwork(seed=args.seed)
    losses = network.fit(pairs, rows, args.scale, args.margin, args.epochs)
    learned = network.weights(pairs.contexts)
    relevance = np.asarray([1.0 if d == "relevance" else 0.0 for d in QUALITY_DIMENSIONS])
    equal = np.full(len(QUALITY_DIMENSIONS), 1.0 / len(QUALITY_DIMENSIONS))
    accuracy = {"learned, per context": pair_accuracy(pairs, test_rows, lambda r: learned[r]),
                "fixed: relevance alone": pair_accuracy(pairs, test_rows, lambda r: relevance),
                "fixed: all four equal": pair_accuracy(pairs, test_rows, lambda r: equal),
                "fixed: the learned weights' mean": pair_accuracy(pairs, test_rows,
                                                                   lambda r: learned[rows].mean(axis=0))}
    by_kind: dict[str, dict[str, float]] = {}
    kinds = context_kinds(pairs.contexts)
    for kind in sorted(set(kinds)):
        members = [k for k, name in enumerate(kinds) if name == kind]
        mean = learned[members].mean(axis=0)
        by_kind[kind] = {"n": len(members), **{d: round(float(mean[j]), 4) for j, d in enumerate(QUALITY_DIMENSIONS)}}
    report = {"dataset": dataset.name, "retriever": args.retriever, "checkpoint": args.checkpoint,
              "satisfaction_run": args.satisfaction_run, "engagement_run": args.engagement_run,
              "samples": len(pairs.dialogues), "train_samples": len(rows), "held_out_samples": len(test_rows),
              "pairs": int(sum(len(c) * len(r) for c, r in zip(pairs.chosen, pairs.rejected, strict=True))),
              "probes": list(PROBE_WEIGHTS), "margin": args.margin, "scale": args.scale, "epochs": args.epochs,
              "final_loss": round(losses[-1], 5),
              "held_out_accuracy": {k: round(v, 4) for k, v in accuracy.items()},
              "weights_by_context": by_kind}
    network.save(args.out / MODEL_FILE, {k: v for k, v in report.items() if k != "weights_by_context"})
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    sys.exit(main())
