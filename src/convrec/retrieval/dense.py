"""Dense text retrieval: the dialogue so far vs each item's text, both embedded by the offline MiniLM model.

Needs no training; catalogue embeddings are computed once per (model, catalogue hash) and cached, as are the
embeddings of dialogue contexts. A sample whose context has no text falls back to popularity.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import Field

from convrec.data.dataset import Split
from convrec.data.model import RecSample
from convrec.retrieval.base import Recommender, RecommenderConfig, item_counts, register
from convrec.text.encoder import EncoderConfig, TextEncoder, default_cache_dir


class DenseTextConfig(RecommenderConfig):
    encoder: EncoderConfig = EncoderConfig()
    context_chars: int = Field(600, ge=50, description="most recent characters of the dialogue used as query")
    seeker_only: bool = Field(False, description="embed only the seeker's turns")
    cache_dir: str | None = Field(None, description="where embeddings are cached (default ~/.cache/convrec)")


@register
class DenseText(Recommender):
    """Cosine similarity of the dialogue's recent text and each item's text (offline MiniLM embeddings)."""

    name = "dense-text"
    config_class = DenseTextConfig
    config: DenseTextConfig

    def __init__(self, catalog, config=None):
        super().__init__(catalog, config)
        self.encoder = TextEncoder(self.config.encoder)
        root = Path(self.config.cache_dir) if self.config.cache_dir else default_cache_dir()
        self.cache_dir = root / "embeddings"
        self._item_vectors: np.ndarray | None = None

    @property
    def item_vectors(self) -> np.ndarray:
        if self._item_vectors is None:
            cache = self.cache_dir / f"items-{self.config.encoder.model}-{self.catalog.content_hash()}.npz"
            self._item_vectors = self.encoder.encode_cached(self.catalog.texts(), cache)
        return self._item_vectors

    def fit(self, train: Split, valid: Split | None = None) -> None:
        self.popularity_ = np.log1p(item_counts(train)).astype(np.float32)
        _ = self.item_vectors

    def query_text(self, sample: RecSample) -> str:
        if self.config.seeker_only:
            turns = [t.text for t in sample.context if t.role == "seeker" and t.text]
            return "\n".join(turns)[-self.config.context_chars :]
        return sample.context_text(max_chars=self.config.context_chars)

    def score(self, samples: Sequence[RecSample]) -> np.ndarray:
        queries = [self.query_text(s) for s in samples]
        cache = self.cache_dir / f"contexts-{self.config.encoder.model}-{self.catalog.name.replace('/', '_')}.npz"
        vectors = self.encoder.encode_cached(queries, cache, progress=False)
        scores = vectors @ self.item_vectors.T
        for row, query in enumerate(queries):
            if not query.strip():
                scores[row] = self.popularity_
        return scores.astype(np.float32)
