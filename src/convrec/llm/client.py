"""The LLM the rest of convrec talks to: cache, retries, a concurrency limit and usage around one backend.

Backends make one attempt per call; everything about running many calls well lives here once, so the
local model and a remote API behave the same: a repeated question is answered from the cache, a rate
limit or a flaky server costs a bounded number of retries, failures are never cached, at most
``max_concurrency`` requests are in flight, and identical requests in flight at once are sent only once.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from convrec.llm.cache import ResponseCache, request_key
from convrec.llm.config import Prices
from convrec.llm.errors import CacheError, TransientLLMError
from convrec.llm.retry import RetryPolicy, call_with_retries
from convrec.llm.types import Backend, ChatRequest, ChatResponse
from convrec.llm.usage import Usage, UsageMeter

log = logging.getLogger(__name__)


class LLMClient:
    """Implements :class:`~convrec.llm.types.LLM` on top of a :class:`~convrec.llm.types.Backend`. Thread-safe.

    ``sleep`` and ``rng`` drive the waits between retries (tests pass fast or seeded ones).
    """

    def __init__(
        self,
        backend: Backend,
        cache: ResponseCache | None = None,
        retry: RetryPolicy | None = None,
        max_concurrency: int = 4,
        prices: Prices | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        self.backend = backend
        self.cache = cache
        self.retry = retry or RetryPolicy()
        self.max_concurrency = max_concurrency
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._meter = UsageMeter(prices)
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._in_flight: dict[str, Future[ChatResponse]] = {}
        self._in_flight_lock = threading.Lock()

    @property
    def usage(self) -> Usage:
        """Calls, cache hits, retries, tokens and estimated cost since the client was built or reset."""
        return self._meter.snapshot()

    def reset_usage(self) -> None:
        self._meter.reset()

    def complete(self, request: ChatRequest) -> ChatResponse:
        """The reply to ``request``: from the cache, or from the backend (then cached)."""
        started = self._meter.call_started()
        key = request_key(self.backend.backend, self.backend.identity, request)
        try:
            cached = self.cache.get(key) if self.cache is not None else None
            if cached is not None:
                response = cached.model_copy(update={"latency_s": time.monotonic() - started})
                self._meter.call_finished(started, cached=True)
                return response
            response, shared = self._generate_once(key, request)
        except BaseException:
            self._meter.call_finished(started, failed=True)
            raise
        if shared:  # another thread was already asking the same question; its answer cost us nothing
            response = response.model_copy(update={"cached": True, "latency_s": time.monotonic() - started})
        self._meter.call_finished(
            started,
            cached=shared,
            prompt_tokens=response.prompt_tokens,
            completion_tokens=response.completion_tokens,
        )
        return response

    def complete_many(
        self, requests: Sequence[ChatRequest], max_workers: int | None = None, return_exceptions: bool = False
    ) -> list[ChatResponse | BaseException]:
        """Replies in the order of ``requests``, computed by up to ``max_workers`` threads.

        Requests in flight never exceed ``max_concurrency`` (shared with every other caller of this client).
        With ``return_exceptions`` a failed request yields its exception in place; otherwise the first
        failure (in request order) is raised after every request has finished.
        """
        if not requests:
            return []
        workers = max(1, min(max_workers or self.max_concurrency, len(requests)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="convrec-llm") as pool:
            futures = [pool.submit(self.complete, request) for request in requests]
        results: list[ChatResponse | BaseException] = []
        for future in futures:
            error = future.exception()
            if error is not None and not return_exceptions:
                raise error
            results.append(error if error is not None else future.result())
        return results

    def close(self) -> None:
        self.backend.close()
        if self.cache is not None:
            self.cache.close()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _generate_once(self, key: str, request: ChatRequest) -> tuple[ChatResponse, bool]:
        """Generate (with retries) and cache; a concurrent identical request waits for this one instead."""
        with self._in_flight_lock:
            pending = self._in_flight.get(key)
            if pending is None:
                future: Future[ChatResponse] = Future()
                self._in_flight[key] = future
        if pending is not None:
            return pending.result(), True
        try:
            response = self._generate(request)
            self._store(key, request, response)
            future.set_result(response)
            return response, False
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._in_flight_lock:
                del self._in_flight[key]

    def _generate(self, request: ChatRequest) -> ChatResponse:
        def attempt() -> ChatResponse:
            with self._slots:
                self._meter.count("backend_calls")
                return self.backend.complete(request)

        def on_retry(retry_number: int, error: TransientLLMError, delay_s: float) -> None:
            self._meter.count("retries")
            log.warning("%s: retry %d in %.2f s after: %s", self._describe(), retry_number, delay_s, error)

        return call_with_retries(attempt, self.retry, self._describe(), self._sleep, self._rng, on_retry)

    def _store(self, key: str, request: ChatRequest, response: ChatResponse) -> None:
        if self.cache is None:
            return
        try:
            self.cache.put(key, request, response)
        except CacheError as exc:  # the reply is paid for: return it even if it cannot be cached
            log.warning("could not cache an LLM reply: %s", exc)

    def _describe(self) -> str:
        return f"{self.backend.backend} backend, {self.backend.identity}"
