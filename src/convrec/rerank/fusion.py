"""Mixing the retriever's and the LLM's opinion of the K candidates, and choosing the mix on validation.

``fused = (1 - w) * normalised retriever score + w * LLM score``, within one sample's K candidates.

Normalisation of the retriever's scores (the LLM's are already in [0, 1]: P(Yes) pointwise, a rank score
listwise):

- ``rank`` (default): 1 for the retriever's best candidate down to 0 for its K-th, evenly spaced
  (tied scores share the better value). Retriever scores have no common scale (EASE weights, LRURec
  logits, cosines), and their spread changes from one dialogue to the next; ranks do not.
- ``minmax``: (s - min) / (max - min) over the K candidates; keeps the retriever's confidence gaps.

Ties of the fused score keep the retriever's order. ``w`` is chosen on validation samples by NDCG@10
(:func:`choose_weight`), never on test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from scipy.stats import rankdata

from convrec.evaluate.metrics import recall_and_ndcg_at

Normalisation = Literal["rank", "minmax"]
DEFAULT_GRID: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def normalise_retriever_scores(scores: np.ndarray, method: Normalisation = "rank") -> np.ndarray:
    """(K,) retriever scores -> (K,) values in [0, 1], higher is better (see the module docstring)."""
    scores = np.asarray(scores, dtype=np.float64)
    n = len(scores)
    if n == 0:
        return np.zeros(0)
    finite = np.where(np.isfinite(scores), scores, -np.inf)
    if method == "rank":
        if n == 1:
            return np.ones(1)
        ranks = rankdata(-np.nan_to_num(finite, neginf=-np.finfo(np.float64).max), method="min") - 1
        return 1.0 - ranks / (n - 1)
    if method == "minmax":
        valid = finite[np.isfinite(finite)]
        if len(valid) == 0:
            return np.zeros(n)
        low, high = valid.min(), valid.max()
        if high == low:
            return np.where(np.isfinite(finite), 1.0, 0.0)
        return np.where(np.isfinite(finite), (finite - low) / (high - low), 0.0)
    raise ValueError(f"unknown normalisation {method!r}: expected 'rank' or 'minmax'")


def fuse(
    retriever_scores: np.ndarray, llm_scores: np.ndarray, weight: float, normalisation: Normalisation = "rank"
) -> np.ndarray:
    """(K,) fused scores, aligned with the inputs."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"fusion weight must be in [0, 1], got {weight}")
    llm = np.asarray(llm_scores, dtype=np.float64)
    if llm.shape != np.shape(retriever_scores):
        raise ValueError(f"llm_scores shape {llm.shape} != retriever_scores shape {np.shape(retriever_scores)}")
    return (1.0 - weight) * normalise_retriever_scores(retriever_scores, normalisation) + weight * llm


def fused_order(
    retriever_scores: np.ndarray, llm_scores: np.ndarray, weight: float, normalisation: Normalisation = "rank"
) -> tuple[np.ndarray, np.ndarray]:
    """(order, fused): candidate positions best first, and the fused scores (aligned with the inputs).

    Ties of the fused score are broken by the retriever's score, then by input position.
    """
    fused = fuse(retriever_scores, llm_scores, weight, normalisation)
    retriever = np.nan_to_num(np.asarray(retriever_scores, dtype=np.float64), nan=-np.inf)
    positions = np.arange(len(fused))
    order = np.lexsort((positions, -retriever, -np.round(fused, 12)))
    return order, fused


def ndcg_at(rank: int | None, k: int = 10) -> float:
    """NDCG@k of a single relevant item at 0-based ``rank`` (None: not ranked)."""
    if rank is None or rank >= k:
        return 0.0
    return 1.0 / math.log2(rank + 2)


@dataclass(frozen=True)
class FusionChoice:
    """The chosen weight and the evidence: mean validation NDCG@k per weight on ``n_samples`` samples,
    of which ``n_target_in_candidates`` had their target among the K candidates (the others score 0 for
    every weight and cannot inform the choice)."""

    weight: float
    ndcg_by_weight: dict[float, float] = field(default_factory=dict)
    n_samples: int = 0
    n_target_in_candidates: int = 0
    k: int = 10

    def to_json(self) -> dict:
        return {
            "weight": self.weight,
            f"validation_ndcg@{self.k}_by_weight": {str(w): round(v, 5) for w, v in self.ndcg_by_weight.items()},
            "n_samples": self.n_samples,
            "n_target_in_candidates": self.n_target_in_candidates,
        }


def choose_weight(
    retriever_scores: Sequence[np.ndarray],
    llm_scores: Sequence[np.ndarray],
    target_positions: Sequence[int | None],
    grid: Sequence[float] = DEFAULT_GRID,
    normalisation: Normalisation = "rank",
    k: int = 10,
) -> FusionChoice:
    """The weight of ``grid`` with the best mean NDCG@k on validation samples.

    Per sample: the candidates' retriever scores and LLM scores (aligned), and the target's position among
    the candidates (None when the retriever missed it). Ties go to the smaller weight: the LLM has to
    earn its influence.
    """
    if not grid:
        raise ValueError("the fusion weight grid is empty")
    if not len(retriever_scores) == len(llm_scores) == len(target_positions):
        raise ValueError("choose_weight needs retriever scores, LLM scores and a target position per sample")
    means: dict[float, float] = {}
    for weight in sorted(float(w) for w in grid):
        values = []
        for retriever, llm, target in zip(retriever_scores, llm_scores, target_positions, strict=True):
            if target is None:
                values.append(0.0)
                continue
            order, _ = fused_order(retriever, llm, weight, normalisation)
            # Scored as rar's output ranks them: the fused order, distinct steps (see RAR.score).
            placed = np.empty(len(order))
            placed[order] = np.arange(len(order), 0, -1)
            _, ndcg = recall_and_ndcg_at(placed[None, :], np.array([target]), k)
            values.append(float(ndcg[0]))
        means[weight] = float(np.mean(values)) if values else 0.0
    best = max(means.values())
    chosen = min(w for w, v in means.items() if v >= best - 1e-12)
    hits = sum(target is not None for target in target_positions)
    return FusionChoice(chosen, means, len(target_positions), hits, k)
