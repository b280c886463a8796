"""Several alignment runs side by side: the per-round curves of their ``history.json`` in one picture.

DPO, GRPO and the ``nll`` control start from the same SFT checkpoint and see the same contexts in the same
order (same seed), so their validation curves differ only by what the RL term did.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from convrec.io import DataError, atomic_write

VALIDATION = (("valid_ndcg_at_10", "validation NDCG@10"), ("valid_recall_at_10", "validation Recall@10"),
              ("valid_recall_at_50", "validation Recall@50"))


def load_history(run_dir: Path) -> list[dict]:
    """The rounds of an alignment run dir (``history.json``), round 0 (the SFT retriever) first."""
    path = Path(run_dir) / "history.json"
    try:
        rounds = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError("no history.json: not an alignment run dir (convrec align --out ...)", run_dir) from None
    except json.JSONDecodeError as err:
        raise DataError(f"not valid JSON ({err})", path) from None
    if not isinstance(rounds, list) or not all(isinstance(r, dict) and "round" in r for r in rounds):
        raise DataError("expected a list of rounds, each with a 'round' field", path)
    return rounds


def plot_runs(histories: Mapping[str, Sequence[dict]], path: Path, title: str = "") -> None:
    """One panel per validation metric (retriever alone) and one for the LLM's ranking of the sets holding the
    target against the retriever's own order (runs without an LLM are left out of that panel)."""
    if not histories:
        raise ValueError("no runs to plot")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(VALIDATION) + 1, figsize=(16, 3.8))
    for label, rounds in histories.items():
        x = [r["round"] for r in rounds]
        for ax, (key, _) in zip(axes, VALIDATION, strict=False):
            ax.plot(x, [r.get(key, math.nan) for r in rounds], marker=".", label=label)
        trained = [r for r in rounds if r["round"] > 0 and r.get("hit_set_reward", 0) > 0]
        if trained:
            line, = axes[-1].plot([r["round"] for r in trained], [r["hit_set_reward"] for r in trained],
                                  marker=".", label=f"{label}: LLM's order")
            axes[-1].plot([r["round"] for r in trained], [r["hit_set_retriever_reward"] for r in trained],
                          marker=".", linestyle="--", color=line.get_color(), label=f"{label}: retriever's order")
    for ax, (_, name) in zip(axes, VALIDATION, strict=False):
        ax.set_title(name)
    axes[-1].set_title("target NDCG@10 in sets holding it")
    for ax in axes:
        ax.set_xlabel("round (0 = SFT)")
        if ax.lines:
            ax.legend(fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)


COST_COLUMNS = ("run", "round", "contexts", "sets", "sets with target", "item scores", "LLM requests",
                "cache hits", "model calls", "round s", "LLM feedback s", "rest s", "s / model call")


def cost_rows(label: str, rounds: Sequence[dict]) -> list[list[str]]:
    """One row per trained round (round 0, the SFT retriever, costs nothing): what the round asked the LLM
    (``RoundStats.llm``) and where its seconds went (``phase_seconds``). A round with no model call has no
    seconds per call ("-")."""
    rows = []
    for r in rounds:
        if r["round"] == 0:
            continue
        llm = r.get("llm") or {}
        counts = [llm.get(key, 0) for key in ("sets", "sets_with_target", "item_scores", "llm_requests",
                                              "cache_hits", "llm_calls")]
        calls = counts[-1]
        seconds = r.get("seconds", 0.0)
        feedback_s = (r.get("phase_seconds") or {}).get("llm_feedback", 0.0)
        rows.append([label, str(r["round"]), str(r.get("contexts", "")), *map(str, counts), f"{seconds:.0f}",
                     f"{feedback_s:.0f}", f"{seconds - feedback_s:.1f}",
                     f"{feedback_s / calls:.2f}" if calls else "-"])
    return rows


def cost_markdown(histories: Mapping[str, Sequence[dict]]) -> str:
    """The per-round cost of several runs as one Markdown table (bench/README.md's alignment table)."""
    lines = ["| " + " | ".join(COST_COLUMNS) + " |", "|" + "---|" * len(COST_COLUMNS)]
    for label, rounds in histories.items():
        lines += ["| " + " | ".join(row) + " |" for row in cost_rows(label, rounds)]
    return "\n".join(lines) + "\n"
