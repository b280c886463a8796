"""Build the LLM client an :class:`~convrec.llm.config.LLMConfig` describes."""

from __future__ import annotations

from convrec.llm.cache import ResponseCache
from convrec.llm.client import LLMClient
from convrec.llm.config import LLMConfig
from convrec.llm.retry import RetryPolicy
from convrec.llm.types import Backend


def build_backend(config: LLMConfig) -> Backend:
    """The bare backend (one attempt per call, no cache); the local one loads its model now, the Ray one
    starts its workers (each builds the same backend, without ``ray``, where it runs)."""
    if config.ray is not None:
        from convrec.llm.ray_backend import RayBackend  # imports Ray only for users of a cluster

        return RayBackend(config, config.ray)
    if config.backend == "local":
        from convrec.llm.local import LocalLLM  # loads llama.cpp only for users of the local backend

        return LocalLLM.from_config(config)
    from convrec.llm.openai_backend import OpenAICompatibleLLM

    return OpenAICompatibleLLM.from_config(config)


def build_llm(config: LLMConfig) -> LLMClient:
    """A ready client: backend, response cache (if ``cache_path``), retries, concurrency limit, prices, and
    the endpoint checked by its first request the cache cannot answer (:mod:`convrec.llm.client`)."""
    cache = ResponseCache(config.cache_path) if config.cache_path is not None else None
    retry = RetryPolicy(
        max_retries=config.max_retries,
        base_s=config.backoff_base_s,
        max_s=config.backoff_max_s,
        max_retry_after_s=config.max_retry_after_s,
    )
    try:
        backend = build_backend(config)
    except BaseException:
        if cache is not None:
            cache.close()
        raise
    return LLMClient(backend, cache, retry, config.max_concurrency, config.prices, check_endpoint=True)
