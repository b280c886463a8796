"""Bounded retries with exponential backoff and jitter, for transient LLM failures only.

Jitter keeps many workers that failed together (a rate limit hits all of them at once) from retrying in
lock-step. A server's ``Retry-After`` is honoured (capped), since retrying earlier just earns another 429.
Errors that would recur (:class:`~convrec.llm.errors.LLMRequestError`, HTTP 4xx) are never retried.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from convrec.llm.errors import RetriesExhaustedError, TransientLLMError

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` retries after the first attempt; the n-th retry waits about ``base_s * 2**(n-1)``.

    The wait is drawn uniformly between half and all of that backoff, capped at ``max_s``; a server's
    ``Retry-After`` raises it (up to ``max_retry_after_s``).
    """

    max_retries: int = 4
    base_s: float = 0.5
    max_s: float = 30.0
    max_retry_after_s: float = 120.0

    def delay_s(self, retry_number: int, retry_after_s: float | None, rng: random.Random) -> float:
        backoff = min(self.max_s, self.base_s * 2 ** (retry_number - 1))
        delay = backoff * (0.5 + 0.5 * rng.random())
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_retry_after_s))
        return delay


def call_with_retries(
    attempt: Callable[[], T],
    policy: RetryPolicy,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
    on_retry: Callable[[int, TransientLLMError, float], None] | None = None,
) -> T:
    """Run ``attempt`` until it succeeds, raises a non-transient error, or ``max_retries`` retries failed.

    ``what`` names the call in the final error (backend, endpoint, model). ``on_retry(retry_number, error,
    delay_s)`` is told about each retry before its wait.
    """
    rng = rng or random.Random()
    failures: list[str] = []
    for attempt_number in range(1, policy.max_retries + 2):
        try:
            return attempt()
        except TransientLLMError as exc:
            failures.append(f"attempt {attempt_number}: {_short(exc)}")
            if attempt_number > policy.max_retries:
                raise RetriesExhaustedError(
                    f"{what}: gave up after {attempt_number} attempts (max_retries={policy.max_retries}); "
                    + "; ".join(failures),
                    attempts=attempt_number,
                    last_error=exc,
                ) from exc
            delay = policy.delay_s(attempt_number, exc.retry_after_s, rng)
            if on_retry is not None:
                on_retry(attempt_number, exc, delay)
            sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")


def parse_retry_after(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date); None if absent."""
    if not headers:
        return None
    lowered = {key.lower(): value for key, value in headers.items()}
    try:
        if "retry-after-ms" in lowered:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        if "retry-after" in lowered:
            return max(0.0, float(lowered["retry-after"]))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(lowered["retry-after"])
    except (KeyError, TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(error: BaseException, limit: int = 300) -> str:
    text = str(error)
    return text if len(text) <= limit else text[: limit - 3] + "..."
