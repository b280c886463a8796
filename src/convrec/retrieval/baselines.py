"""Baselines every model must beat: popularity, repeat, item co-occurrence kNN and EASE.

Item-based baselines (kNN, EASE) see only the items mentioned so far; on a sample with no mentioned item
they fall back to popularity, as a deployed system would.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from pydantic import Field

from convrec.data.dataset import Split
from convrec.data.model import ContextView
from convrec.evaluate.metrics import recall_and_ndcg_at
from convrec.retrieval.base import Recommender, RecommenderConfig, fill_empty_contexts, item_counts, register


def interaction_matrix(split: Split) -> sp.csr_matrix:
    """Binary (n_dialogues, n_items): which items each training dialogue mentions."""
    rows, cols = [], []
    for row, dialogue in enumerate(split.dialogues):
        for item in set(dialogue.items_in_order()):
            rows.append(row)
            cols.append(split.catalog.index_of[item])
    data = np.ones(len(rows), dtype=np.float32)
    return sp.csr_matrix((data, (rows, cols)), shape=(len(split.dialogues), len(split.catalog)))


def context_matrix(samples: Sequence[ContextView], index_of: dict[str, int], n_items: int, decay: float) -> sp.csr_matrix:
    """(n_samples, n_items): each context item weighted ``decay ** (mentions since it was last mentioned)``."""
    rows, cols, vals = [], [], []
    for row, sample in enumerate(samples):
        weights: dict[str, float] = {}
        for age, item in enumerate(reversed(sample.context_items)):
            weights.setdefault(item, decay**age)
        for item, weight in weights.items():
            rows.append(row)
            cols.append(index_of[item])
            vals.append(weight)
    return sp.csr_matrix((np.asarray(vals, np.float32), (rows, cols)), shape=(len(samples), n_items))


@register
class Popularity(Recommender):
    """Items ranked by how often they are mentioned in training dialogues, whatever the dialogue says."""

    name = "popularity"

    def fit(self, train: Split, valid: Split | None = None) -> None:
        self.scores_ = np.log1p(item_counts(train)).astype(np.float32)

    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        return np.tile(self.scores_, (len(samples), 1))


@register
class Repeat(Recommender):
    """The shortcut: re-recommend the items already mentioned, the most recent first; all else tied."""

    name = "repeat"

    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        scores = np.zeros((len(samples), len(self.catalog)), dtype=np.float32)
        for row, sample in enumerate(samples):
            for position, item in enumerate(sample.context_items, start=1):
                scores[row, self.catalog.index_of[item]] = position  # later mentions overwrite: most recent wins
        return scores


class ItemKNNConfig(RecommenderConfig):
    neighbors: int = Field(100, ge=1, description="similar items kept per item")
    shrink: float = Field(10.0, ge=0, description="shrinks similarities of rarely co-occurring pairs")
    recency_decay: float = Field(0.9, gt=0, le=1, description="weight of a context item per later mention")


@register
class ItemKNN(Recommender):
    """Item co-occurrence kNN: cosine similarity of items over training dialogues, summed over the context."""

    name = "itemknn"
    config_class = ItemKNNConfig
    config: ItemKNNConfig

    def fit(self, train: Split, valid: Split | None = None) -> None:
        # Sparse throughout: memory grows with the co-occurring pairs, not with the catalogue squared.
        matrix = interaction_matrix(train)
        cooc = (matrix.T @ matrix).tocoo()
        off_diagonal = cooc.row != cooc.col
        rows, cols, counts = cooc.row[off_diagonal], cooc.col[off_diagonal], cooc.data[off_diagonal]
        norms = np.sqrt(np.asarray(matrix.sum(axis=0)).ravel())
        values = counts / (norms[rows] * norms[cols] + self.config.shrink)
        self.similarity_ = self._keep_top_neighbours(rows, cols, values.astype(np.float32), len(self.catalog))
        self.popularity_ = np.log1p(item_counts(train)).astype(np.float32)

    def _keep_top_neighbours(self, rows, cols, values, n_items: int) -> sp.csr_matrix:
        order = np.lexsort((-values, rows))  # by row, strongest first
        rows, cols, values = rows[order], cols[order], values[order]
        starts = np.searchsorted(rows, np.arange(n_items))
        rank_in_row = np.arange(len(rows)) - starts[rows]
        keep = rank_in_row < self.config.neighbors
        return sp.csr_matrix((values[keep], (rows[keep], cols[keep])), shape=(n_items, n_items))

    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        context = context_matrix(samples, self.catalog.index_of, len(self.catalog), self.config.recency_decay)
        scores = np.asarray((context @ self.similarity_).todense(), dtype=np.float32)
        return fill_empty_contexts(scores, samples, self.popularity_)


class EASEConfig(RecommenderConfig):
    l2: float | None = Field(None, gt=0, description="ridge penalty; None chooses it on validation Recall@10")
    l2_grid: tuple[float, ...] = (10.0, 50.0, 200.0, 800.0)
    recency_decay: float = Field(1.0, gt=0, le=1)


@register
class EASE(Recommender):
    """EASE (Steck 2019): a closed-form item-item linear model with zero diagonal, over training dialogues."""

    name = "ease"
    config_class = EASEConfig
    config: EASEConfig

    def _weights(self, gram: np.ndarray, l2: float) -> np.ndarray:
        """Closed form on the items seen in training (an unseen item's row and column are zero anyway);
        inverting only those is (seen/all)^3 of the work: half on ReDial."""
        regularised = gram[np.ix_(self.active_, self.active_)]
        regularised[np.diag_indices_from(regularised)] += l2
        precision = np.linalg.inv(regularised)
        active_weights = -precision / np.diag(precision)
        np.fill_diagonal(active_weights, 0.0)
        weights = np.zeros(gram.shape, dtype=np.float32)
        weights[np.ix_(self.active_, self.active_)] = active_weights
        return weights

    def fit(self, train: Split, valid: Split | None = None) -> None:
        matrix = interaction_matrix(train)
        gram = (matrix.T @ matrix).toarray().astype(np.float64)
        counts = item_counts(train)
        self.active_ = np.flatnonzero(counts > 0)
        self.popularity_ = np.log1p(counts).astype(np.float32)
        if self.config.l2 is not None or valid is None or not valid.samples:
            self.l2_ = self.config.l2 or self.config.l2_grid[len(self.config.l2_grid) // 2]
            self.weights_ = self._weights(gram, self.l2_)
            self.validation_ = {}
            return
        selection = valid.selection_samples
        targets = np.asarray(self.catalog.indices(s.target for s in selection))
        self.validation_ = {}
        best = (-1.0, None, None)
        for l2 in self.config.l2_grid:
            self.weights_ = self._weights(gram, l2)
            recall = float(recall_and_ndcg_at(self.score(selection), targets)[0].mean())  # validation Recall@10
            self.validation_[l2] = round(recall, 5)
            if recall > best[0]:
                best = (recall, l2, self.weights_)
        _, self.l2_, self.weights_ = best

    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        context = context_matrix(samples, self.catalog.index_of, len(self.catalog), self.config.recency_decay)
        scores = np.asarray(context @ self.weights_, dtype=np.float32)
        return fill_empty_contexts(scores, samples, self.popularity_)

    def describe(self) -> dict:
        return {**super().describe(), "chosen_l2": getattr(self, "l2_", None), "validation_recall@10": getattr(self, "validation_", {})}
