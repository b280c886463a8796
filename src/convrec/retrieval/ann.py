"""Top-k by inner product over many item vectors: exact (numpy) or approximate (FAISS HNSW or IVF).

A retriever whose score is an inner product between a query vector and an item vector (``lrurec-text``'s is,
written over augmented vectors: see :meth:`LRURecRecommender.inner_product_form`) hands both to a
:class:`VectorIndex` instead of scoring the whole catalogue. Exact search stays the default below
``exact_below`` items; above it FAISS answers (``pip install convrec[ann]``). Either way the returned
candidates are re-scored exactly from the vectors, so a score is never an approximation: only *which* items
come back can be (measured by ``bench/bench_ann.py`` as recall@k against exact search).

Maximum inner product search with HNSW goes through the usual reduction to nearest neighbours (Bachrach et
al. 2014): each item gets one more coordinate, ``sqrt(M^2 - |x|^2)`` with ``M`` the largest item norm, and
the query a zero, so the L2-nearest augmented item is the one of largest inner product. IVF searches inner
products directly (its coarse quantiser is trained by k-means on the items).

An approximate index is built once per set of vectors and options and cached (``<cache>/ann/<key>.faiss``,
written atomically), so a second process with the same checkpoint loads it in a fraction of the build time.
"""

from __future__ import annotations

import hashlib
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from convrec.errors import ConfigError
from convrec.io import atomic_write
from convrec.retrieval.base import top_indices

IndexKind = Literal["auto", "exact", "hnsw", "ivf"]


class IndexOptions(BaseModel):
    """How a retriever finds its top items: ``kind = "auto"`` searches exactly below ``exact_below`` items,
    with IVF above; ``exact``, ``hnsw`` or ``ivf`` force one."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: IndexKind = Field("auto", description="auto (exact below exact_below items, IVF above) | exact | hnsw | ivf")
    exact_below: int = Field(100_000, ge=0, description="auto: exact search below this many items")
    hnsw_m: int = Field(32, ge=4, le=128, description="HNSW: links per node (memory and recall grow with it)")
    ef_construction: int = Field(80, ge=8, description="HNSW: candidate list while building")
    ef_search: int = Field(128, ge=8, description="HNSW: candidate list while searching (recall vs time)")
    nlist: int | None = Field(None, ge=1, description="IVF: number of cells (default 4 sqrt(n), at most n / 39)")
    nprobe: int = Field(64, ge=1, description="IVF: cells visited per query (recall vs time)")
    rescore: int = Field(200, ge=0, description="lrurec: search the item part [E_i, b_i] alone and score its "
                         "best N exactly with the text term (0: search the whole score as one inner product); "
                         "bench/bench_ann.py: better recall at lower cost on real-looking vectors")
    threads: int | None = Field(None, ge=1, description="FAISS threads (default: all cores)")
    cache: bool = Field(True, description="keep a built index under <cache>/ann/ and reuse it")

    def resolved_kind(self, n_items: int) -> Literal["exact", "hnsw", "ivf"]:
        if self.kind == "auto":  # IVF: the best recall per millisecond in bench/bench_ann.py (rescore mode)
            return "exact" if n_items < self.exact_below else "ivf"
        return self.kind


def _faiss():
    try:
        import faiss
    except ImportError:
        raise ConfigError("approximate search needs FAISS: pip install 'convrec[ann]' (faiss-cpu), or set "
                          "index.kind = \"exact\"") from None
    return faiss


def exact_top(queries: np.ndarray, items: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, k) indices and scores of the ``k`` largest ``queries @ items.T`` per row, best first, ties in item
    order (the ground truth approximate search is measured against); queries are scored a block at a time so
    the score matrix stays under ~200 MB."""
    k = min(k, len(items))
    indices = np.zeros((len(queries), k), dtype=np.int64)
    scores = np.zeros((len(queries), k), dtype=np.float32)
    rows = max(1, 50_000_000 // max(1, len(items)))
    for start in range(0, len(queries), rows):
        block = queries[start : start + rows] @ items.T
        for offset, row in enumerate(block):
            top = top_indices(row, k)
            indices[start + offset] = top
            scores[start + offset] = row[top]
    return indices, scores


def sort_candidates(indices: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row best first, ties in item order (FAISS returns ties in any order)."""
    order = np.lexsort((indices, -scores), axis=1) if indices.size else np.zeros(indices.shape, dtype=np.int64)
    return np.take_along_axis(indices, order, axis=1), np.take_along_axis(scores, order, axis=1)


class VectorIndex(ABC):
    """The ``k`` items of largest inner product with each query, re-scored exactly from the item vectors."""

    kind: str

    def __init__(self, items: np.ndarray):
        self.items = np.ascontiguousarray(items, dtype=np.float32)

    def __len__(self) -> int:
        return len(self.items)

    @abstractmethod
    def candidates(self, queries: np.ndarray, k: int) -> np.ndarray:
        """(B, <=k) item indices, -1 where the index found fewer."""

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        found = self.candidates(queries, k)
        valid = found >= 0
        safe = np.where(valid, found, 0)
        scores = np.einsum("bkd,bd->bk", self.items[safe], queries)
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        return sort_candidates(np.where(valid, found, -1), scores)

    def add(self, items: np.ndarray) -> None:
        """Append items (new catalogue entries): they get the next indices."""
        self.items = np.concatenate([self.items, np.asarray(items, dtype=np.float32)])


class ExactIndex(VectorIndex):
    kind = "exact"

    def candidates(self, queries: np.ndarray, k: int) -> np.ndarray:
        return exact_top(queries, self.items, k)[0]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return exact_top(np.ascontiguousarray(queries, dtype=np.float32), self.items, k)


class FaissIndex(VectorIndex):
    """HNSW over L2-reduced vectors, or IVF-Flat by inner product."""

    def __init__(self, items: np.ndarray, options: IndexOptions, kind: Literal["hnsw", "ivf"],
                 cache_dir: Path | None = None, progress: bool = False):
        super().__init__(items)
        self.faiss = _faiss()
        self.kind = kind
        self.options = options
        if options.threads:
            self.faiss.omp_set_num_threads(options.threads)
        self.max_norm = float(np.linalg.norm(self.items, axis=1).max()) if len(self.items) else 0.0
        self.path = None
        if cache_dir is not None and options.cache:
            self.path = Path(cache_dir) / "ann" / f"{self.key()}.faiss"
        if self.path is not None and self.path.is_file():
            self.index = self.faiss.deserialize_index(np.fromfile(self.path, dtype=np.uint8))
            self.built_from_cache = True
        else:
            self.index = self._build(progress)
            self.built_from_cache = False
            if self.path is not None:
                with atomic_write(self.path, "wb") as handle:
                    handle.write(self.faiss.serialize_index(self.index).tobytes())
        self._tune()

    def key(self) -> str:
        digest = hashlib.sha256()
        digest.update(f"{self.kind}|{self.items.shape}|".encode())
        fields = ("hnsw_m", "ef_construction") if self.kind == "hnsw" else ("nlist",)
        digest.update(repr([getattr(self.options, f) for f in fields]).encode())
        digest.update(self.items.tobytes())
        return digest.hexdigest()[:24]

    def _lifted(self, items: np.ndarray) -> np.ndarray:
        extra = np.sqrt(np.maximum(self.max_norm**2 - np.einsum("nd,nd->n", items, items), 0.0))
        return np.ascontiguousarray(np.hstack([items, extra[:, None].astype(np.float32)]))

    def nlist(self) -> int:
        n = len(self.items)
        # FAISS wants >= 39 training points per centroid; 4 sqrt(n) is its guide for cell counts.
        return self.options.nlist or max(1, min(int(4 * math.sqrt(n)), n // 39))

    def _build(self, progress: bool):
        faiss, d = self.faiss, self.items.shape[1]
        if self.kind == "hnsw":
            index = faiss.IndexHNSWFlat(d + 1, self.options.hnsw_m)
            index.hnsw.efConstruction = self.options.ef_construction
            index.verbose = progress
            index.add(self._lifted(self.items))
            return index
        quantizer = faiss.IndexFlatIP(d)
        index = faiss.IndexIVFFlat(quantizer, d, self.nlist(), faiss.METRIC_INNER_PRODUCT)
        index.verbose = progress
        index.cp.niter = 10  # FAISS's default 25 k-means rounds cost minutes at millions of items, for little
        sample = self.items
        if len(sample) > 64 * self.nlist():  # k-means needs no more than this: a seeded sample
            rows = np.random.default_rng(0).choice(len(sample), 64 * self.nlist(), replace=False)
            sample = sample[np.sort(rows)]
        index.train(sample)
        index.add(self.items)
        return index

    def tune(self, **search_options: int) -> None:
        """Change how the index searches (``ef_search``, ``nprobe``) without rebuilding it."""
        self.options = self.options.model_copy(update=search_options)
        self._tune()

    def _tune(self) -> None:
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = self.options.ef_search
        else:
            self.index.nprobe = self.options.nprobe

    def candidates(self, queries: np.ndarray, k: int) -> np.ndarray:
        k = min(k, len(self.items))
        if self.kind == "hnsw":
            self.index.hnsw.efSearch = max(self.options.ef_search, k)
            lifted = np.hstack([queries, np.zeros((len(queries), 1), dtype=np.float32)])
            _, found = self.index.search(np.ascontiguousarray(lifted), k)
        else:
            _, found = self.index.search(queries, k)
        return found

    def add(self, items: np.ndarray) -> None:
        items = np.asarray(items, dtype=np.float32)
        norms = np.linalg.norm(items, axis=1)
        if self.kind == "hnsw" and len(items) and norms.max() > self.max_norm:
            # The L2 reduction needs M >= every norm: rebuild with the larger M rather than lose the new items.
            super().add(items)
            self.max_norm = float(norms.max())
            self.index = self._build(False)
            self._tune()
            return
        super().add(items)
        self.index.add(self._lifted(items) if self.kind == "hnsw" else items)


def build_index(items: np.ndarray, options: IndexOptions | None = None, cache_dir: Path | None = None,
                progress: bool = False) -> VectorIndex:
    options = options or IndexOptions()
    kind = options.resolved_kind(len(items))
    if kind == "exact":
        return ExactIndex(items)
    return FaissIndex(items, options, kind, cache_dir, progress)
