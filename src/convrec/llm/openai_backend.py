"""Backend ``openai``: any OpenAI-compatible chat endpoint through the official ``openai`` SDK.

OpenAI itself, Gemini's OpenAI-compatible API, vLLM, Ollama and llama.cpp's server all accept the same
chat-completions request. This module makes exactly one attempt per call (the SDK's own retries are off)
and sorts failures into :class:`TransientLLMError` (429, 5xx, timeouts, connection errors, malformed
replies) and :class:`LLMRequestError` (every other 4xx), so that the client's single retry policy applies
to every backend the same way.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

import openai

from convrec.llm.config import LLMConfig
from convrec.llm.errors import (
    LLMConnectionError,
    LLMRequestError,
    LLMResponseError,
    LLMTimeoutError,
    TransientLLMError,
)
from convrec.llm.retry import parse_retry_after
from convrec.llm.stream import TextSink, active_sink
from convrec.llm.types import ChatRequest, ChatResponse, top_logprobs_from_openai

OPENAI_BASE_URL = "https://api.openai.com/v1"
_RETRYABLE_STATUS = {408, 429}  # plus every 5xx; other 4xx would fail again


def _transport_errors() -> tuple[type[BaseException], ...]:
    """The HTTP library's base error, raised while a stream is read (the SDK has used httpx and httpx2)."""
    found: list[type[BaseException]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


_TRANSPORT_ERRORS = _transport_errors()


class OpenAICompatibleLLM:
    """One model on one OpenAI-compatible server. The API key stays in memory only (never in a config).

    ``json_schema`` requests are sent as ``response_format={"type": "json_schema", ...}`` with
    ``strict: true`` (OpenAI then requires every property to be required and ``additionalProperties: false``).
    """

    backend = "openai"

    def __init__(
        self, model: str, base_url: str | None = None, api_key: str | None = None, timeout_s: float = 120.0
    ):
        self.model = model
        self.base_url = (base_url or OPENAI_BASE_URL).rstrip("/")
        self.timeout_s = timeout_s
        # Servers without auth (vLLM, Ollama, llama.cpp) ignore the key, but the SDK insists on one.
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=api_key or "no-key", timeout=timeout_s, max_retries=0
        )

    @classmethod
    def from_config(cls, config: LLMConfig) -> OpenAICompatibleLLM:
        """The backend, after checking that its API key is there: a missing key fails now, before any work."""
        api_key = None
        if config.api_key_env:
            api_key = os.environ.get(config.api_key_env)
            if not api_key:
                raise LLMRequestError(
                    f"backend 'openai' ({config.base_url or OPENAI_BASE_URL}) reads its API key from the "
                    f"environment variable {config.api_key_env}, which is not set",
                    hint=f"set it (export {config.api_key_env}=...), or name the variable that holds the key "
                    f"with --set llm.api_key_env=NAME (convrec chat: --api-key-env NAME); a server that needs "
                    f"no key: leave llm.api_key_env unset",
                )
        elif config.base_url is None:  # api.openai.com answers every request without a key with HTTP 401
            raise LLMRequestError(
                f"backend 'openai' without llm.base_url talks to {OPENAI_BASE_URL}, which needs an API key, "
                f"and llm.api_key_env names no variable holding one",
                hint="--set llm.api_key_env=OPENAI_API_KEY (convrec chat: --api-key-env OPENAI_API_KEY) after "
                "export OPENAI_API_KEY=...; or --set llm.base_url=URL for a server of your own",
            )
        assert config.model is not None  # LLMConfig requires it for this backend
        return cls(config.model, config.base_url, api_key, config.timeout_s)

    @property
    def identity(self) -> str:
        """Endpoint and model: the same model name on two servers may be two different models."""
        return f"{self.base_url}|{self.model}"

    def complete(self, request: ChatRequest) -> ChatResponse:
        started = time.monotonic()
        where = f"{self.base_url} (model {self.model})"
        sink = active_sink()
        try:
            if sink is not None and not request.logprobs:  # text for the person, to be shown as it is written
                return self._streamed(request, sink, where, started)
            completion = self._client.chat.completions.create(**self._arguments(request))
        except openai.APITimeoutError as exc:
            raise LLMTimeoutError(f"{where}: no reply within timeout_s={self.timeout_s:g} s") from exc
        except openai.APIConnectionError as exc:
            cause = exc.__cause__  # the SDK says only "Connection error."; httpx says why (refused, DNS)
            reason = f"{exc} ({type(cause).__name__}: {cause})" if cause is not None else str(exc)
            raise LLMConnectionError(f"{where}: connection failed: {reason}") from exc
        except openai.APIStatusError as exc:
            raise _status_error(where, exc) from exc
        except (openai.APIResponseValidationError, ValueError) as exc:  # ValueError: the body is not JSON
            raise LLMResponseError(f"{where}: the reply is not a valid chat completion: {exc}") from exc
        except openai.APIError as exc:  # the base class: an error the server sent inside a stream
            raise TransientLLMError(f"{where}: the server reported an error mid-reply: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:  # a stream cut off while it was read
            raise LLMConnectionError(f"{where}: the streamed reply broke off: {type(exc).__name__}: {exc}") from exc
        return self._response(completion, request, where, time.monotonic() - started)

    def close(self) -> None:
        self._client.close()

    def _streamed(self, request: ChatRequest, sink: TextSink, where: str, started: float) -> ChatResponse:
        """The reply read as a stream of chunks, each piece of text handed to ``sink`` as it arrives."""
        stream = self._client.chat.completions.create(
            **self._arguments(request), stream=True, stream_options={"include_usage": True})
        parts: list[str] = []
        finish_reason = model = usage = None
        with stream:
            for chunk in stream:
                model = getattr(chunk, "model", None) or model
                usage = getattr(chunk, "usage", None) or usage
                for choice in getattr(chunk, "choices", None) or []:
                    piece = getattr(getattr(choice, "delta", None), "content", None)
                    if piece:
                        parts.append(piece)
                        sink(piece)
                    finish_reason = getattr(choice, "finish_reason", None) or finish_reason
        if finish_reason is None:  # no final chunk: the stream ended early, and part of a reply is no reply
            raise LLMConnectionError(f"{where}: the streamed reply ended without a finish reason "
                                     f"({len(parts)} pieces read)")
        return ChatResponse(
            text="".join(parts),
            finish_reason=finish_reason,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            cached_prompt_tokens=int(getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            latency_s=time.monotonic() - started,
            model=model or self.model,
            backend=self.backend,
        )

    def _arguments(self, request: ChatRequest) -> dict[str, Any]:
        arguments: dict[str, Any] = {
            "model": self.model,
            "messages": request.openai_messages(),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.seed is not None:
            arguments["seed"] = request.seed
        if request.stop:
            arguments["stop"] = list(request.stop)
        if request.logprobs:
            arguments["logprobs"] = True
            if request.top_logprobs:
                arguments["top_logprobs"] = request.top_logprobs
        if request.json_schema is not None:
            arguments["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "response", "schema": request.json_schema, "strict": True},
            }
        return arguments

    def _response(self, completion: Any, request: ChatRequest, where: str, latency_s: float) -> ChatResponse:
        choices = getattr(completion, "choices", None)
        if not choices:
            raise LLMResponseError(f"{where}: the reply has no choices: {str(completion)[:300]}")
        choice = choices[0]
        message = getattr(choice, "message", None)
        if message is None:
            raise LLMResponseError(f"{where}: the first choice has no message: {str(choice)[:300]}")
        logprobs = getattr(choice, "logprobs", None)
        usage = getattr(completion, "usage", None)
        return ChatResponse(
            text=message.content or "",
            top_logprobs=top_logprobs_from_openai(getattr(logprobs, "content", None))
            if request.logprobs
            else [],
            finish_reason=getattr(choice, "finish_reason", None),
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            cached_prompt_tokens=int(getattr(getattr(usage, "prompt_tokens_details", None), "cached_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            latency_s=latency_s,
            model=getattr(completion, "model", None) or self.model,
            backend=self.backend,
        )


def _status_error(where: str, exc: openai.APIStatusError) -> Exception:
    status = exc.status_code
    detail = str(exc.message)[:500]
    message = f"{where} answered HTTP {status}: {detail}"
    if status in _RETRYABLE_STATUS or status >= 500:
        return TransientLLMError(
            message, status_code=status, retry_after_s=parse_retry_after(exc.response.headers)
        )
    return LLMRequestError(message, status_code=status)
