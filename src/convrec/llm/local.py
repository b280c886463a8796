"""Backend ``local``: a GGUF model run in-process by llama.cpp (through ``xllamacpp``), no server to manage.

xllamacpp embeds llama.cpp's own server, so requests are OpenAI-style dicts and we get its JSON-schema
grammars, logprobs and prompt-prefix cache. Every request is streamed internally, only so that a call past
its ``timeout_s`` can be stopped between two tokens (the callback returns True) and the slot freed, and so
that text written for the person reaches a consumer as it is written (:mod:`convrec.llm.stream`); the
caller still gets one :class:`ChatResponse`. A prompt's prefill is not interruptible, so the timeout is
checked when the first token arrives.

The embedded server also listens on loopback HTTP (``http_base_url``), guarded by a random API key
(``http_api_key``): the same loaded model can then be used through any OpenAI-compatible client.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from typing import Any

import xllamacpp as xlc

from convrec.devices import check_llama_gpu_layers
from convrec.llm.config import LLMConfig, LocalOptions, default_threads
from convrec.llm.errors import LLMError, LLMRequestError, LLMTimeoutError, TransientLLMError
from convrec.llm.models import ResolvedModel, resolve_local_model
from convrec.llm.stream import TextSink, active_sink
from convrec.llm.types import ChatRequest, ChatResponse, top_logprobs_from_openai


class LocalLLM:
    """A loaded GGUF model answering :class:`ChatRequest` in this process. Thread-safe.

    Loading takes seconds (SmolLM2: ~2.5 s, Qwen 1.5B: 2.5-6 s on 2 cores); keep one instance per model.
    At most ``options.n_parallel`` calls generate at once; the others wait for a slot before their
    timeout starts.
    """

    backend = "local"

    def __init__(self, model: ResolvedModel, options: LocalOptions | None = None, timeout_s: float = 120.0):
        self.model = model
        self.options = options or LocalOptions()
        self.timeout_s = timeout_s
        self.http_api_key = secrets.token_hex(16)
        self._slots = threading.BoundedSemaphore(self.options.n_parallel)
        try:
            self._server: Any = xlc.Server(self._server_params())
        except Exception as exc:  # xllamacpp says only "Failed to init server"; say which model and why
            raise LLMError(
                f"llama.cpp could not load {model.path} (n_ctx={self.options.n_ctx}): {exc}; is it a complete "
                f"GGUF file and does n_ctx fit in memory?"
            ) from exc

    @classmethod
    def from_config(cls, config: LLMConfig) -> LocalLLM:
        resolved = resolve_local_model(config.model_name, config.local.models_dir)
        return cls(resolved, config.local, config.timeout_s)

    @property
    def identity(self) -> str:
        """Which weights answer, for cache keys (sampling parameters are in the request)."""
        return self.model.identity

    @property
    def http_base_url(self) -> str:
        """The OpenAI-compatible endpoint of the embedded server, e.g. ``http://127.0.0.1:40123/v1``."""
        return f"{self._require_server().listening_address}/v1"

    def complete(self, request: ChatRequest) -> ChatResponse:
        with self._slots:
            return self._generate(request)

    def complete_batch(self, requests: list[ChatRequest]) -> list[ChatResponse | LLMRequestError]:
        """The requests of one context (e.g. one dialogue's pointwise questions), in order on one slot: the
        first reads its whole prompt afresh, the others reuse the prefix it left in the slot's cache. So the
        answers depend on the batch alone, never on what the slot served before: a batch gives the same
        bytes in any process, after any history (with one slot: ``n_parallel = 1``, the default). A request
        the model refuses is returned in place; a timeout fails the batch (the client retries it whole)."""
        out: list[ChatResponse | LLMRequestError] = []
        with self._slots:
            for number, request in enumerate(requests):
                try:
                    out.append(self._generate(request, fresh=number == 0))
                except LLMRequestError as exc:
                    out.append(exc)
        return out

    def _generate(self, request: ChatRequest, fresh: bool = False) -> ChatResponse:
        server = self._require_server()
        started = time.monotonic()
        collector = _StreamCollector(deadline=time.monotonic() + self.timeout_s, sink=active_sink())
        body = self._body(request)
        if fresh:
            body["cache_prompt"] = False
        try:
            server.handle_chat_completions(body, collector)
        except ValueError as exc:  # llama.cpp's way of saying 400 (bad messages, bad schema)
            raise LLMRequestError(f"llama.cpp rejected the request for {self.model.name}: {exc}") from exc
        collector.raise_failure(self.model.name, self.timeout_s)
        return ChatResponse(
            text="".join(collector.text_parts),
            top_logprobs=top_logprobs_from_openai(collector.logprob_entries) if request.logprobs else [],
            finish_reason=collector.finish_reason,
            prompt_tokens=int(collector.usage.get("prompt_tokens", 0)),
            cached_prompt_tokens=int((collector.usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0),
            completion_tokens=int(collector.usage.get("completion_tokens", 0)),
            latency_s=time.monotonic() - started,
            model=self.model.name,
            backend=self.backend,
        )

    def close(self) -> None:
        """Stop llama.cpp's threads and free the model (also happens when the object is collected)."""
        self._server = None

    def __enter__(self) -> LocalLLM:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _require_server(self) -> Any:
        if self._server is None:
            raise LLMError(f"local model {self.model.name} was closed")
        return self._server

    def _server_params(self) -> Any:
        options = self.options
        params = xlc.CommonParams()
        params.model.path = str(self.model.path)
        params.model_alias = {self.model.name}
        params.n_ctx = options.n_ctx * options.n_parallel  # llama.cpp splits n_ctx among the slots
        params.n_parallel = options.n_parallel
        n_threads = options.n_threads or default_threads()
        params.cpuparams.n_threads = n_threads
        params.cpuparams_batch.n_threads = n_threads
        params.cache_prompt = options.cache_prompt
        check_llama_gpu_layers(options.n_gpu_layers)
        params.n_gpu_layers = options.n_gpu_layers
        params.warmup = False  # a warm-up decode costs a second and changes no result
        params.verbosity = options.log_verbosity
        params.hostnames = [options.http_host]
        params.port = options.http_port
        params.api_keys = [self.http_api_key]
        return params

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": request.openai_messages(),
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stream": True,
            "stream_options": {"include_usage": True},
            "cache_prompt": self.options.cache_prompt,
        }
        if request.seed is not None:
            body["seed"] = request.seed
        if request.json_schema is not None:
            body["json_schema"] = request.json_schema
        if request.logprobs:
            body["logprobs"] = True
            body["top_logprobs"] = request.top_logprobs
        if request.stop:
            body["stop"] = list(request.stop)
        return body


class _StreamCollector:
    """Receives llama.cpp's stream chunks; returning True from ``__call__`` stops generation.

    Exceptions raised inside a callback are swallowed by the C++ side, so they are stored and re-raised
    by :meth:`raise_failure` after the call returns.
    """

    def __init__(self, deadline: float, sink: TextSink | None = None):
        self.deadline = deadline
        self.sink = sink
        self.text_parts: list[str] = []
        self.logprob_entries: list[Any] = []
        self.finish_reason: str | None = None
        self.usage: dict[str, Any] = {}
        self.error: dict[str, Any] | None = None
        self.exception: BaseException | None = None
        self.timed_out = False

    def __call__(self, chunk: Any) -> bool:
        try:
            if isinstance(chunk, str | bytes):
                chunk = json.loads(chunk)
            if "error" in chunk:
                self.error = (
                    chunk["error"] if isinstance(chunk["error"], dict) else {"message": chunk["error"]}
                )
                return True
            for choice in chunk.get("choices") or []:
                content = (choice.get("delta") or {}).get("content")
                if content:
                    self.text_parts.append(content)
                    if self.sink is not None:
                        self.sink(content)
                self.logprob_entries.extend((choice.get("logprobs") or {}).get("content") or [])
                self.finish_reason = choice.get("finish_reason") or self.finish_reason
            if chunk.get("usage"):
                self.usage = chunk["usage"]
            if self.finish_reason is None and time.monotonic() > self.deadline:
                self.timed_out = True
                return True
            return False
        except BaseException as exc:  # re-raised by raise_failure, never lost
            self.exception = exc
            return True

    def raise_failure(self, model_name: str, timeout_s: float) -> None:
        if self.exception is not None:
            raise LLMError(
                f"reading the reply of {model_name} failed: {self.exception!r}"
            ) from self.exception
        if self.error is not None:
            code = int(self.error.get("code") or 500)
            message = f"llama.cpp ({model_name}) answered {code}: {self.error.get('message', self.error)}"
            if 400 <= code < 500 and code not in (408, 429):
                raise LLMRequestError(message, status_code=code)
            raise TransientLLMError(message, status_code=code)
        if self.timed_out:
            raise LLMTimeoutError(
                f"{model_name} did not finish within timeout_s={timeout_s:g} s; stopped after "
                f"{len(self.text_parts)} generated tokens"
            )
