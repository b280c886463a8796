"""Dense text retrieval: the dialogue so far vs each item's text, both embedded by the offline MiniLM model.

Needs no training; catalogue embeddings are computed once per (model, catalogue hash) and cached, as are the
embeddings of dialogue contexts. A sample whose context has no text falls back to popularity.

Text similarity alone ignores that a few movies are asked for far more often than others, so the score adds
``popularity_weight * log-popularity`` (scaled to [0, 1]); the weight is chosen on the validation split
unless given, and ``popularity_weight=0`` is the pure text retriever.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from convrec.catalog.items import Catalog
from convrec.data.dataset import Split
from convrec.data.model import ContextView
from convrec.evaluate.metrics import recall_and_ndcg_at
from convrec.resources import Resources
from convrec.retrieval.base import Recommender, RecommenderConfig, item_counts, register
from convrec.text.encoder import EncoderConfig, context_cache_file, item_cache_file


class DenseTextConfig(RecommenderConfig):
    encoder: EncoderConfig = EncoderConfig()
    context_chars: int = Field(600, ge=50, description="most recent characters of the dialogue used as query")
    seeker_only: bool = Field(False, description="embed only the seeker's turns")
    cache_dir: str | None = Field(None, description="where embeddings are cached (default $CONVREC_CACHE_DIR or "
                                  "~/.cache/convrec)")
    popularity_weight: float | None = Field(None, ge=0, description="weight of the popularity term; None: "
                                            "chosen on validation Recall@10 from popularity_grid")
    popularity_grid: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2, 0.4)


@register
class DenseText(Recommender):
    """Cosine similarity of the dialogue's recent text and each item's text (offline MiniLM embeddings)."""

    name = "dense-text"
    config_class = DenseTextConfig
    config: DenseTextConfig
    uses_resources = True

    def __init__(self, catalog: Catalog, config: DenseTextConfig | None = None, *,
                 resources: Resources | None = None):
        """``resources`` (None: :meth:`Resources.from_env`) give the text encoder, shared with every other
        component built from them, and the embedding cache unless ``cache_dir`` is set."""
        super().__init__(catalog, config)
        resources = resources or Resources.from_env()
        self.encoder = resources.encoder(self.config.encoder)
        self.cache_root = Path(self.config.cache_dir) if self.config.cache_dir else resources.cache_dir
        self._item_vectors: np.ndarray | None = None

    @property
    def item_vectors(self) -> np.ndarray:
        if self._item_vectors is None:
            cache = item_cache_file(self.cache_root, self.encoder, self.catalog)
            self._item_vectors = self.encoder.encode_cached(self.catalog.texts(), cache)
        return self._item_vectors

    def fit(self, train: Split, valid: Split | None = None) -> None:
        log_counts = np.log1p(item_counts(train))
        self.popularity_ = (log_counts / max(log_counts.max(), 1e-12)).astype(np.float32)
        _ = self.item_vectors
        self.validation_: dict[float, float] = {}
        if self.config.popularity_weight is not None or valid is None:
            self.popularity_weight_ = self.config.popularity_weight or 0.0
            return
        samples = [s for s in valid.selection_samples if self.query_text(s).strip()]
        if not samples:
            self.popularity_weight_ = 0.0
            return
        targets = np.asarray(self.catalog.indices(s.target for s in samples))
        similarity = self._similarity(samples)
        for weight in self.config.popularity_grid:
            recall, _ = recall_and_ndcg_at(similarity + weight * self.popularity_, targets)
            self.validation_[weight] = round(float(recall.mean()), 5)
        self.popularity_weight_ = max(self.validation_, key=lambda w: (self.validation_[w], -w))

    def describe(self) -> dict:
        return {**super().describe(), "chosen_popularity_weight": getattr(self, "popularity_weight_", None),
                "validation_recall@10": getattr(self, "validation_", {})}

    def query_text(self, sample: ContextView) -> str:
        if self.config.seeker_only:
            turns = [t.text for t in sample.context if t.role == "seeker" and t.text]
            return "\n".join(turns)[-self.config.context_chars :]
        return sample.context_text(max_chars=self.config.context_chars)

    def _similarity(self, samples: Sequence[ContextView]) -> np.ndarray:
        queries = [self.query_text(s) for s in samples]
        cache = context_cache_file(self.cache_root, self.encoder, self.catalog)
        vectors = self.encoder.encode_cached(queries, cache, progress=len(queries) > 1000)
        return vectors @ self.item_vectors.T

    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        scores = self._similarity(samples) + self.popularity_weight_ * self.popularity_
        for row, sample in enumerate(samples):
            if not self.query_text(sample).strip():
                scores[row] = self.popularity_
        return scores.astype(np.float32)
