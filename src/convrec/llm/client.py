"""The LLM the rest of convrec talks to: cache, retries, a concurrency limit and usage around one backend.

Backends make one attempt per call; everything about running many calls well lives here once, so the
local model and a remote API behave the same: a repeated question is answered from the cache, a rate
limit or a flaky server costs a bounded number of retries, failures are never cached, at most
``max_concurrency`` requests are in flight, and identical requests in flight at once are sent only once.

With ``check_endpoint`` (what :func:`~convrec.llm.factory.build_llm` builds), a backend with an endpoint
(``base_url``: the ``openai`` backend) is checked by the first request the cache cannot answer, the probe
being that request itself: no extra call that a server might not implement (not every OpenAI-compatible
server has ``GET /models``), and nothing at all when the cache answers everything, so a rerun works offline.
Until one reply has come back, requests go one at a time; if that first one fails because of the endpoint
(unreachable or failing after its retries, HTTP 401/403/404), it and every later request raise
:class:`LLMUnavailableError` at once, which the re-rankers do not turn into a fallback: a dead endpoint stops
the run with one clear error instead of producing the retriever's order under the LLM's name. Without it
(the default for a client built by hand), every request stands alone: its failure is its own, and the next
request tries the endpoint again.
"""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from convrec.llm.cache import ResponseCache, request_key
from convrec.llm.config import Prices
from convrec.llm.errors import (
    CacheError,
    LLMConnectionError,
    LLMError,
    LLMRequestError,
    LLMTimeoutError,
    LLMUnavailableError,
    RetriesExhaustedError,
    TransientLLMError,
)
from convrec.llm.retry import RetryPolicy, call_with_retries
from convrec.llm.stream import active_sink
from convrec.llm.types import Backend, ChatRequest, ChatResponse
from convrec.llm.usage import Usage, UsageMeter

log = logging.getLogger(__name__)


class LLMClient:
    """Implements :class:`~convrec.llm.types.LLM` on top of a :class:`~convrec.llm.types.Backend`. Thread-safe.

    ``sleep`` and ``rng`` drive the waits between retries (tests pass fast or seeded ones);
    ``check_endpoint``: see the module docstring.
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
        check_endpoint: bool = False,
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
        self.check_endpoint = check_endpoint
        # The endpoint check (module docstring): None until decided, then True, or the error that ended it.
        self._endpoint_verdict: bool | LLMUnavailableError | None = None
        self._endpoint_lock = threading.Lock()

    @property
    def parallel_contexts(self) -> int:
        """How many dialogues callers should work on at once: the backend's workers (Ray), else 1."""
        return int(getattr(self.backend, "parallel_contexts", 1))

    @property
    def usage(self) -> Usage:
        """Calls, cache hits, retries, tokens and estimated cost since the client was built or reset."""
        return self._meter.snapshot()

    def reset_usage(self) -> None:
        self._meter.reset()

    def complete(self, request: ChatRequest) -> ChatResponse:
        """The reply to ``request``: from the cache, or from the backend (then cached). Inside a stream
        (:mod:`convrec.llm.stream`), a reply the backend did not stream is sent to it whole."""
        response = self._complete(request)
        sink = active_sink()
        if sink is not None and sink.characters == 0:
            sink(response.text)
        return response

    def _complete(self, request: ChatRequest) -> ChatResponse:
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
        if getattr(self.backend, "complete_batch", None) is not None and len(requests) > 1:
            return self._complete_batch(list(requests), return_exceptions)
        workers = max(1, min(max_workers or self.max_concurrency, len(requests)))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="convrec-llm") as pool:
            # Each thread runs in a copy of the caller's context: the affinity key (convrec.llm.affinity) holds.
            futures = [pool.submit(contextvars.copy_context().run, self.complete, request) for request in requests]
        results: list[ChatResponse | BaseException] = []
        for future in futures:
            error = future.exception()
            if error is not None and not return_exceptions:
                raise error
            results.append(error if error is not None else future.result())
        return results

    def _complete_batch(self, requests: list[ChatRequest],
                        return_exceptions: bool) -> list[ChatResponse | BaseException]:
        """:meth:`complete_many` for a backend that answers a context's requests as one batch (the local model,
        Ray workers): what the cache knows comes from it, the rest goes to the backend in one call, in order,
        retried whole on a transient failure. The batch's answers depend on the batch alone (see
        :meth:`LocalLLM.complete_batch`), so a run gives the same bytes locally and on any worker, and a
        worker that dies mid-batch is replaced by a whole new batch, never half of one."""
        keys = [request_key(self.backend.backend, self.backend.identity, r) for r in requests]
        started = [self._meter.call_started() for _ in requests]
        results: list[ChatResponse | BaseException | None] = [None] * len(requests)
        try:
            for number, key in enumerate(keys):
                cached = self.cache.get(key) if self.cache is not None else None
                if cached is not None:
                    results[number] = cached.model_copy(update={"latency_s": time.monotonic() - started[number]})
                    self._meter.call_finished(started[number], cached=True)
            missing = list(dict.fromkeys(keys[n] for n, r in enumerate(results) if r is None))
            if missing:
                first = {key: keys.index(key) for key in missing}
                batch = [requests[first[key]] for key in missing]

                def attempt() -> list[ChatResponse | BaseException]:
                    with self._slots:
                        self._meter.count("backend_calls", len(batch))
                        return self.backend.complete_batch(batch)

                def on_retry(retry_number: int, error: TransientLLMError, delay_s: float) -> None:
                    self._meter.count("retries")
                    log.warning("%s: batch retry %d in %.2f s after: %s", self._describe(), retry_number, delay_s,
                                error)

                answers = call_with_retries(attempt, self.retry, self._describe(), self._sleep, self._rng, on_retry)
                by_key = dict(zip(missing, answers, strict=True))
                for key, answer in by_key.items():
                    if isinstance(answer, ChatResponse):
                        self._store(key, requests[first[key]], answer)
                for number, key in enumerate(keys):
                    if results[number] is not None:
                        continue
                    answer = by_key[key]
                    results[number] = answer
                    if isinstance(answer, ChatResponse):
                        shared = number != first[key]
                        self._meter.call_finished(started[number], cached=shared,
                                                  prompt_tokens=0 if shared else answer.prompt_tokens,
                                                  completion_tokens=0 if shared else answer.completion_tokens)
                    else:
                        self._meter.call_finished(started[number], failed=True)
        except BaseException as exc:
            for number, result in enumerate(results):
                if result is None:
                    self._meter.call_finished(started[number], failed=True)
                    results[number] = exc
            if not return_exceptions:
                raise
        if not return_exceptions:
            for result in results:
                if isinstance(result, BaseException):
                    raise result
        return results  # type: ignore[return-value]

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
            response = self._generate_checked(request)
            self._store(key, request, response)
            future.set_result(response)
            return response, False
        except BaseException as exc:
            future.set_exception(exc)
            raise
        finally:
            with self._in_flight_lock:
                del self._in_flight[key]

    def _generate_checked(self, request: ChatRequest) -> ChatResponse:
        """:meth:`_generate`, the first time as the check of the endpoint (see the module docstring)."""
        endpoint = getattr(self.backend, "base_url", None)
        if not self.check_endpoint or endpoint is None or self._endpoint_verdict is True:
            return self._generate(request)
        with self._endpoint_lock:  # one request checks; those arriving meanwhile wait for its verdict
            verdict = self._endpoint_verdict
            if isinstance(verdict, LLMUnavailableError):
                raise LLMUnavailableError(str(verdict), hint=verdict.hint)
            if verdict is None:
                try:
                    response = self._generate(request)
                except LLMError as exc:
                    unavailable = endpoint_failure(exc, endpoint)
                    if unavailable is None:  # this request's own fault (HTTP 400, say): the next one checks
                        raise
                    self._endpoint_verdict = unavailable
                    raise LLMUnavailableError(str(unavailable), hint=unavailable.hint) from exc
                self._endpoint_verdict = True
                return response
        return self._generate(request)

    def _generate(self, request: ChatRequest) -> ChatResponse:
        def attempt() -> ChatResponse:
            with self._slots:
                self._meter.count("backend_calls")
                return self.backend.complete(request)

        def on_retry(retry_number: int, error: TransientLLMError, delay_s: float) -> None:
            self._meter.count("retries")
            sink = active_sink()
            if sink is not None:  # the failed attempt's partial text is void
                sink.reset()
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


ENDPOINT_HINT = ("check --set llm.base_url (convrec chat: --base-url) and that the server is running; a rerun "
                 "that the LLM response cache answers wholly needs no server")


def endpoint_failure(error: LLMError, endpoint: str) -> LLMUnavailableError | None:
    """What ``error``, the failure of the first request to ``endpoint``, says about the endpoint: an
    :class:`LLMUnavailableError` when no request can succeed there, None when only this request was at fault."""
    if isinstance(error, RetriesExhaustedError):
        last = error.last_error
        state = "is unreachable" if isinstance(last, LLMConnectionError | LLMTimeoutError) else "keeps failing"
        return LLMUnavailableError(
            f"LLM endpoint {endpoint} {state}: its first request failed, {error.attempts} "
            f"attempt{'s' if error.attempts > 1 else ''}; the last one: {last}", hint=ENDPOINT_HINT)
    if isinstance(error, LLMRequestError) and error.status_code in (401, 403):
        return LLMUnavailableError(
            f"LLM endpoint {endpoint} refused the API key: {error}",
            hint="check llm.api_key_env (convrec chat: --api-key-env), the variable that holds the key")
    if isinstance(error, LLMRequestError) and error.status_code == 404:
        return LLMUnavailableError(
            f"LLM endpoint {endpoint} has no such model or path: {error}",
            hint="check --set llm.model (the name the server knows) and llm.base_url (it usually ends in /v1)")
    return None
