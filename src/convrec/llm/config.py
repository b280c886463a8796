"""Typed configuration of an LLM: which backend and model, and how calls are cached, retried and limited.

One :class:`LLMConfig` builds one client (:func:`convrec.llm.factory.build_llm`), so an experiment's LLM is a
TOML table you can diff. API keys are never part of it: ``api_key_env`` names the environment variable
that holds the key, so configs, caches and result files can be shared without leaking secrets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from convrec.devices import cpu_threads

DEFAULT_LOCAL_MODEL = "qwen2.5-coder-1.5b"


def default_threads() -> int:
    """Half the cores, at most 4 and at least 1.

    Measured on 2 cores while another process was training: llama.cpp with 2 threads took 30-90 s for a
    30-token reply (its threads spin-wait on each other and lose the CPU), with 1 thread 0.8 s.
    """
    return min(max(1, min(4, (os.cpu_count() or 2) // 2)), cpu_threads())  # $CONVREC_MAX_THREADS caps it


class Prices(BaseModel):
    """US dollars per one million tokens, to estimate what a run cost (cache hits cost nothing)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    prompt_usd_per_1m: float = Field(ge=0.0)
    completion_usd_per_1m: float = Field(ge=0.0)

    def cost_usd(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.prompt_usd_per_1m + completion_tokens * self.completion_usd_per_1m) / 1e6


class LocalOptions(BaseModel):
    """Settings of the in-process llama.cpp backend (ignored by the ``openai`` backend).

    ``cache_prompt`` reuses the KV cache of a shared prompt prefix (pointwise scoring of many candidates
    after one dialogue gets several times faster). llama.cpp notes that logits may then differ in the last
    bits from a cold run, which can in rare near-ties change a greedy token; set it to False when
    bit-exact reproducibility across different call orders matters more than speed.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_ctx: int = Field(default=4096, ge=128)  # tokens per parallel slot (prompt + reply)
    n_threads: int | None = Field(default=None, ge=1)  # None: default_threads(), decided where it runs
    n_parallel: int = Field(default=1, ge=1)
    cache_prompt: bool = True
    models_dir: Path | None = None  # where assembled models live; default $CONVREC_CACHE_DIR/models
    http_host: str = "127.0.0.1"  # llama.cpp also serves its model over HTTP here (loopback only)
    http_port: int = Field(default=0, ge=0, le=65535)  # 0: a free port chosen by the OS
    log_verbosity: int = 0  # llama.cpp log threshold; 0 keeps it quiet
    # 0: the CPU only (llama.cpp's own default, -1, would offload every layer on a GPU build). -1: every layer
    # on the GPU, N: the first N. Refused, with what to install, when the llama.cpp build has no GPU backend.
    n_gpu_layers: int = Field(default=0, ge=-1)


class RayOptions(BaseModel):
    """Where and how many LLM workers run."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    address: str = Field(description="'auto' (the cluster this machine belongs to, or $RAY_ADDRESS), "
                         "'HOST:PORT' or 'ray://HOST:PORT' of a head node, or 'local' (start one here)")
    workers: int = Field(2, ge=1, description="LLM actors; each holds one model or one endpoint client")
    cpus_per_worker: float = Field(1.0, gt=0, description="CPUs Ray reserves per actor (set llm.local.n_threads "
                                   "to match for a local model)")
    cpus: int | None = Field(None, ge=1, description="address 'local' only: CPUs of the cluster started here "
                             "(default: every core)")


class LLMConfig(BaseModel):
    """One LLM client: backend, model, timeouts, retries, cache, concurrency and prices.

    ``model`` is a registry name (``convrec.llm.models.LOCAL_MODELS``) or a path to a GGUF file for the
    ``local`` backend, and the server's model name for ``openai``. ``base_url`` is None for api.openai.com.
    ``api_key_env`` is None for servers that need no key (vLLM, Ollama, llama.cpp).
    ``cache_path`` None disables the response cache.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["local", "openai"] = "local"
    model: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)
    backoff_base_s: float = Field(default=0.5, ge=0)
    backoff_max_s: float = Field(default=30.0, ge=0)
    max_retry_after_s: float = Field(default=120.0, ge=0)
    cache_path: Path | None = None
    max_concurrency: int = Field(default=4, ge=1)
    prices: Prices | None = None
    local: LocalOptions = Field(default_factory=LocalOptions)
    ray: RayOptions | None = None  # LLM workers as Ray actors (convrec.llm.ray_backend); None: in this process

    @field_validator("base_url")
    @classmethod
    def _base_url_is_an_http_url(cls, value: str | None) -> str | None:
        """Checked here so that a typo fails when the config is read, not as a run of failed calls."""
        if value is None:
            return value
        parts = urlsplit(value)
        try:
            _ = parts.port  # raises ValueError for a port that is no number in 0-65535 ("http://host:abc")
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
        except ValueError:
            valid = False
        if not valid:
            raise ValueError(
                f"base_url must be an http:// or https:// URL with a host, e.g. http://localhost:8000/v1; "
                f"got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _model_for_backend(self) -> LLMConfig:
        if self.backend == "openai" and not self.model:
            raise ValueError(
                "backend 'openai' needs model: the model name the server knows (e.g. 'gpt-4o-mini')"
            )
        return self

    @property
    def model_name(self) -> str:
        """The model to use: ``model``, or the default local model."""
        return self.model or DEFAULT_LOCAL_MODEL
