"""LLM backends behind one interface: ``local`` (llama.cpp in-process) and ``openai`` (any compatible API).

Build one from a config and ask it::

    from convrec.llm import ChatRequest, LLMConfig, build_llm

    llm = build_llm(LLMConfig(backend="local", model="qwen2.5-coder-1.5b", cache_path="runs/llm.sqlite"))
    reply = llm.complete(ChatRequest.from_prompt("Is Alien a horror film? Answer Yes or No.", max_tokens=1))

Modules: ``types`` (request, response, protocols), ``config``, ``models`` and ``assemble`` (local model
files), ``local`` and ``openai_backend`` (the backends), ``cache``, ``retry``, ``usage`` and ``client``
(what every backend shares), ``factory``.
"""

from convrec.llm.cache import ResponseCache, request_key
from convrec.llm.client import LLMClient
from convrec.llm.config import DEFAULT_LOCAL_MODEL, LLMConfig, LocalOptions, Prices
from convrec.llm.errors import (
    CacheError,
    LLMConnectionError,
    LLMError,
    LLMRequestError,
    LLMResponseError,
    LLMTimeoutError,
    LLMUnavailableError,
    ModelNotAvailableError,
    RetriesExhaustedError,
    TransientLLMError,
)
from convrec.llm.factory import build_backend, build_llm
from convrec.llm.models import LOCAL_MODELS, resolve_local_model
from convrec.llm.retry import RetryPolicy
from convrec.llm.types import LLM, Backend, ChatMessage, ChatRequest, ChatResponse
from convrec.llm.usage import Usage

__all__ = [
    "DEFAULT_LOCAL_MODEL",
    "LLM",
    "LOCAL_MODELS",
    "Backend",
    "CacheError",
    "ChatMessage",
    "ChatRequest",
    "ChatResponse",
    "LLMClient",
    "LLMConfig",
    "LLMConnectionError",
    "LLMError",
    "LLMRequestError",
    "LLMResponseError",
    "LLMTimeoutError",
    "LLMUnavailableError",
    "LocalOptions",
    "ModelNotAvailableError",
    "Prices",
    "ResponseCache",
    "RetriesExhaustedError",
    "RetryPolicy",
    "TransientLLMError",
    "Usage",
    "build_backend",
    "build_llm",
    "request_key",
    "resolve_local_model",
]
