"""What components share instead of building or locating it themselves: :class:`Resources`.

One object holds where caches and data live and hands out the heavy parts, built on first request and then
shared: one :class:`~convrec.text.encoder.TextEncoder` per encoder config (the MiniLM model is loaded once,
however many recommenders embed text) and one LLM client per LLM config (a local model is loaded once,
however many re-rankers ask it). The command line builds one per run (:meth:`Resources.from_env`) and closes
it at the end; a server builds one per process. :meth:`Resources.from_env` is the only place that reads
``CONVREC_CACHE_DIR`` and ``CONVREC_DATA_DIR``.

This module sits at the bottom of the imports, beside ``io`` and ``errors``: it imports the text encoder and
the LLM factory only when an encoder or a client is first asked for, so that ``text`` and ``llm`` may ask it
for their default folders.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from convrec.llm.client import LLMClient
    from convrec.llm.config import LLMConfig
    from convrec.text.encoder import EncoderConfig, TextEncoder

CACHE_DIR_ENV = "CONVREC_CACHE_DIR"
DATA_DIR_ENV = "CONVREC_DATA_DIR"


@dataclass(frozen=True, eq=False)
class Resources:
    """Where caches and data live, and the encoders and LLM clients built so far (see the module docstring).

    Thread-safe: any number of threads may ask for the same encoder or client at once and get one object.
    :meth:`close` closes the LLM clients it built (not those built elsewhere); it is then closed for good.
    """

    cache_dir: Path
    data_dir: Path
    _encoders: dict[EncoderConfig, TextEncoder] = field(default_factory=dict, init=False, repr=False)
    _llms: dict[LLMConfig, LLMClient] = field(default_factory=dict, init=False, repr=False)
    # Two locks: building an LLM client loads a model (seconds), which should not hold up encoder requests.
    _encoder_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _llm_lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _closed: threading.Event = field(default_factory=threading.Event, init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "cache_dir", Path(self.cache_dir))
        object.__setattr__(self, "data_dir", Path(self.data_dir))

    @classmethod
    def from_env(cls, cache_dir: Path | str | None = None, data_dir: Path | str | None = None) -> Resources:
        """``cache_dir`` and ``data_dir`` when given (a command's ``--data-dir``), else ``$CONVREC_CACHE_DIR``
        (default ``~/.cache/convrec``) and ``$CONVREC_DATA_DIR`` (default ``./data``)."""
        if cache_dir is None:
            cache_dir = os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "convrec"
        if data_dir is None:
            data_dir = os.environ.get(DATA_DIR_ENV) or "data"
        return cls(Path(cache_dir), Path(data_dir))

    # -- folders -----------------------------------------------------------------------------------------------
    @property
    def models_dir(self) -> Path:
        """Where local LLM files assembled from their packages are kept."""
        return self.cache_dir / "models"

    @property
    def llm_cache_path(self) -> Path:
        """The SQLite cache of LLM replies that components use unless their config names another."""
        return self.cache_dir / "llm" / "responses.sqlite"

    # -- shared parts ------------------------------------------------------------------------------------------
    def encoder(self, config: EncoderConfig | None = None) -> TextEncoder:
        """The one text encoder of ``config`` (default: the default encoder); its model loads on first use."""
        from convrec.text.encoder import EncoderConfig, TextEncoder

        config = config or EncoderConfig()
        with self._encoder_lock:
            encoder = self._encoders.get(config)
            if encoder is None:
                encoder = self._encoders[config] = TextEncoder(config)
        return encoder

    def llm(self, config: LLMConfig) -> LLMClient:
        """The one client of ``config``, built (a local model loaded) on the first request; a local model
        without a ``models_dir`` of its own is assembled in :attr:`models_dir`. Closed by :meth:`close`."""
        from convrec.llm.factory import build_llm

        config = self._located(config)
        with self._llm_lock:
            if self._closed.is_set():
                raise RuntimeError("Resources.llm: these resources are closed; build new ones")
            client = self._llms.get(config)
            if client is None:
                client = self._llms[config] = build_llm(config)
        return client

    def _located(self, config: LLMConfig) -> LLMConfig:
        if config.backend != "local" or config.local.models_dir is not None:
            return config
        return config.model_copy(update={"local": config.local.model_copy(update={"models_dir": self.models_dir})})

    def close(self) -> None:
        """Close every LLM client built here (each once, even when one fails to close: the first error is
        raised after the others are closed)."""
        with self._llm_lock:
            self._closed.set()
            clients = list(self._llms.values())
            self._llms.clear()
        first_error: BaseException | None = None
        for client in clients:
            try:
                client.close()
            except Exception as err:  # noqa: BLE001 - the others must still be closed
                first_error = first_error or err
        if first_error is not None:
            raise first_error

    def __enter__(self) -> Resources:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
