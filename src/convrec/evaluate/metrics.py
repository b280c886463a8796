"""The metric registry. A metric is one small class; ``METRICS`` maps its name to an instance.

Accuracy metrics see where the single target landed: ``greater`` (items scored strictly higher) and ``ties``
(other items with exactly the target's score). Ties are broken uniformly at random *in expectation*, so a
recommender that scores everything equal gets exactly chance, not zero and not perfect.

Beyond-accuracy metrics see the top-k lists (ties broken by a seeded random order) and the training
popularity of items.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from functools import cache
from itertools import combinations

import numpy as np

ACCURACY_CUTOFFS = (1, 5, 10, 20, 50)
LIST_SIZE = 10
HEAD_SHARE = 0.2  # the most popular 20% of items are the "head"; the rest is the long tail


@dataclass
class RankedTargets:
    """Per sample: how many items scored above the target, and how many others tied with it."""

    greater: np.ndarray  # (n,) int64
    ties: np.ndarray  # (n,) int64
    n_items: int


@dataclass
class TopLists:
    items: np.ndarray  # (n, LIST_SIZE) item indices, best first
    popularity_percentile: np.ndarray  # (n_items,) in [0, 1], 1 = most popular in train
    genres: list[frozenset[str]]  # per item, empty when unknown
    n_items: int
    # per sample, the items the seeker's own questionnaire (written after the dialogue) says they did not like;
    # None where the dialogue has no liked / not-liked answer: a judge the recommender never saw
    disliked: list[frozenset[int] | None] | None = None


@cache
def _discount_cumsum(n: int) -> np.ndarray:
    """C[p] = sum_{q=1..p} 1/log2(q+1), C[0] = 0."""
    return np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, n + 2)))])


@cache
def _harmonic_cumsum(n: int) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, n + 1))])


class Metric(ABC):
    name: str
    kind: str  # "accuracy" or "list"

    @abstractmethod
    def per_sample(self, data) -> np.ndarray:
        """One value per sample (NaN where undefined); the report averages them with a standard error."""


class AccuracyMetric(Metric):
    kind = "accuracy"


class ListMetric(Metric):
    kind = "list"


class RecallAt(AccuracyMetric):
    def __init__(self, k: int):
        self.k, self.name = k, f"recall@{k}"

    def per_sample(self, data: RankedTargets) -> np.ndarray:
        # The target's position is uniform over greater+1 .. greater+ties+1.
        return np.clip((self.k - data.greater) / (data.ties + 1), 0.0, 1.0)


class NDCGAt(AccuracyMetric):
    def __init__(self, k: int):
        self.k, self.name = k, f"ndcg@{k}"

    def per_sample(self, data: RankedTargets) -> np.ndarray:
        cum = _discount_cumsum(data.n_items + 1)
        first = np.minimum(data.greater, self.k)
        last = np.minimum(data.greater + data.ties + 1, self.k)
        return (cum[last] - cum[first]) / (data.ties + 1)


class MRR(AccuracyMetric):
    name = "mrr"

    def per_sample(self, data: RankedTargets) -> np.ndarray:
        cum = _harmonic_cumsum(data.n_items + 1)
        return (cum[data.greater + data.ties + 1] - cum[data.greater]) / (data.ties + 1)


class Coverage(ListMetric):
    """Share of the catalogue that appears in at least one top list (a corpus-level value, no stderr)."""

    name = f"coverage@{LIST_SIZE}"
    corpus_level = True

    def per_sample(self, data: TopLists) -> np.ndarray:
        share = len(np.unique(data.items)) / data.n_items
        return np.full(len(data.items), share)


class PopularityPercentile(ListMetric):
    name = f"pop_percentile@{LIST_SIZE}"

    def per_sample(self, data: TopLists) -> np.ndarray:
        return data.popularity_percentile[data.items].mean(axis=1)


class LongTailShare(ListMetric):
    name = f"long_tail@{LIST_SIZE}"

    def per_sample(self, data: TopLists) -> np.ndarray:
        return (data.popularity_percentile[data.items] < 1.0 - HEAD_SHARE).mean(axis=1)


class GenreILD(ListMetric):
    """Intra-list diversity: mean pairwise Jaccard distance of genre sets (items without genres skipped)."""

    name = f"ild_genre@{LIST_SIZE}"

    def per_sample(self, data: TopLists) -> np.ndarray:
        values = np.full(len(data.items), np.nan)
        for row, items in enumerate(data.items):
            sets = [data.genres[i] for i in items if data.genres[i]]
            if len(sets) < 2:
                continue
            distances = [1.0 - len(a & b) / len(a | b) for a, b in combinations(sets, 2)]
            values[row] = float(np.mean(distances))
        return values


class DislikedInList(ListMetric):
    """Share of lists holding an item the seeker said (in the questionnaire after the dialogue) they did not
    like: a held-out satisfaction judge, NaN for samples whose dialogue has no such answers (lower is better)."""

    name = f"disliked_in@{LIST_SIZE}"

    def per_sample(self, data: TopLists) -> np.ndarray:
        values = np.full(len(data.items), np.nan)
        if data.disliked is None:
            return values
        for row, (items, disliked) in enumerate(zip(data.items, data.disliked, strict=True)):
            if disliked is not None:
                values[row] = float(any(int(i) in disliked for i in items))
        return values


def _registry() -> dict[str, Metric]:
    metrics: list[Metric] = []
    for k in ACCURACY_CUTOFFS:
        metrics += [RecallAt(k), NDCGAt(k)]
    metrics += [MRR(), Coverage(), PopularityPercentile(), LongTailShare(), GenreILD(), DislikedInList()]
    return {m.name: m for m in metrics}


METRICS: dict[str, Metric] = _registry()

# Accuracy reported separately for samples whose target is a head item (the 20% most popular in train) and
# for the long tail: a recommender that only wins on popular items shows it here (RAR claims less bias).
SPLIT_BY_TARGET_POPULARITY = ("recall@10", "ndcg@10", "recall@50")
POPULARITY_GROUPS = ("head", "tail")


def split_metric_names() -> list[str]:
    """``head:recall@10``, ``tail:recall@10``, ...: every per-popularity-group metric name."""
    return [f"{group}:{name}" for name in SPLIT_BY_TARGET_POPULARITY for group in POPULARITY_GROUPS]


def split_by_target_popularity(values: dict[str, np.ndarray], target_percentiles: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample values of each metric in :data:`SPLIT_BY_TARGET_POPULARITY`, NaN outside its group (the
    report averages the rest, so ``head:recall@10`` is Recall@10 over head-target samples only)."""
    head = target_percentiles >= 1.0 - HEAD_SHARE
    out = {}
    for name in SPLIT_BY_TARGET_POPULARITY:
        out[f"head:{name}"] = np.where(head, values[name], np.nan)
        out[f"tail:{name}"] = np.where(head, np.nan, values[name])
    return out


def known_metric_names() -> list[str]:
    return [*METRICS, *split_metric_names()]


def ranked_targets(scores: np.ndarray, targets: np.ndarray) -> RankedTargets:
    """Where each row's target lands in that row's scores. ``scores`` (n, n_items), ``targets`` (n,) indices.

    NaN counts as the worst score (tied with -inf): a NaN compares false with everything, so a NaN target
    would otherwise look ranked first."""
    if np.isnan(scores).any():
        scores = np.where(np.isnan(scores), -np.inf, scores)
    target_scores = scores[np.arange(len(targets)), targets][:, None]
    greater = (scores > target_scores).sum(axis=1)
    ties = (scores == target_scores).sum(axis=1) - 1
    return RankedTargets(greater.astype(np.int64), ties.astype(np.int64), scores.shape[1])


def recall_and_ndcg_at(scores: np.ndarray, targets: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample Recall@k and NDCG@k of each row's target, exactly as reported: ties broken uniformly at
    random in expectation. ``scores`` (n, n_items), ``targets`` (n,) column indices.

    Every choice made on validation (a hyper-parameter, a training epoch, a fusion weight) uses this, so
    what is selected is what is reported. Counting only the items scored strictly higher would hand the
    target the best place in its tie: EASE gives thousands of items exactly 0, and a target among them
    would count as a hit whenever fewer than k items score above 0."""
    ranked = ranked_targets(np.asarray(scores), np.asarray(targets))
    return RecallAt(k).per_sample(ranked), NDCGAt(k).per_sample(ranked)


def top_lists(scores: np.ndarray, rng: np.random.Generator, size: int = LIST_SIZE) -> np.ndarray:
    """Best ``size`` items per row, best first; items tied at the cut-off are drawn at random from ``rng``.

    Only the few items strictly above the ``size``-th score are sorted; the tied ones are sampled, never
    sorted, so heavily tied scores (e.g. ``repeat``) cost no more than distinct ones."""
    size = min(size, scores.shape[1])
    kth_best = np.partition(scores, -size, axis=1)[:, -size]
    out = np.empty((len(scores), size), dtype=np.int64)
    for row in range(len(scores)):
        values = scores[row]
        above = np.flatnonzero(values > kth_best[row])
        above = above[np.argsort(-values[above], kind="stable")]
        tied = np.flatnonzero(values == kth_best[row])
        out[row, : len(above)] = above
        out[row, len(above) :] = rng.choice(tied, size - len(above), replace=False)
    return out


def popularity_percentiles(counts: np.ndarray) -> np.ndarray:
    """Each item's popularity as a percentile in [0, 1] (average rank for ties); 1 = the most popular."""
    order = counts.argsort(kind="stable")
    ranks = np.empty(len(counts))
    ranks[order] = np.arange(len(counts))
    # average the ranks of tied counts
    unique, inverse = np.unique(counts, return_inverse=True)
    sums = np.bincount(inverse, weights=ranks)
    sizes = np.bincount(inverse)
    ranks = (sums / sizes)[inverse]
    return ranks / max(len(counts) - 1, 1)
