"""Token, call and cost accounting for one run of an LLM client, safe to update from many threads."""

from __future__ import annotations

import threading
import time

from pydantic import BaseModel, ConfigDict

from convrec.llm.config import Prices


class Usage(BaseModel):
    """A snapshot of what a client did since it was built (or since ``reset_usage``).

    ``calls`` counts answered requests (cache hits included); ``backend_calls`` every attempt sent to the
    backend, retries included. Tokens and cost count only generated replies: cache hits are free.
    ``cost_usd`` is None when the config gives no prices. ``wall_s`` runs from the first call's start to the
    last call's end; ``busy_s`` sums the latencies (larger than ``wall_s`` when calls overlap).
    """

    model_config = ConfigDict(frozen=True)

    calls: int = 0
    cache_hits: int = 0
    backend_calls: int = 0
    retries: int = 0
    failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float | None = None
    wall_s: float = 0.0
    busy_s: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def summary(self) -> str:
        cost = "n/a" if self.cost_usd is None else f"${self.cost_usd:.4f}"
        return (
            f"{self.calls} calls ({self.cache_hits} cached, {self.retries} retries, {self.failures} failed), "
            f"{self.prompt_tokens} prompt + {self.completion_tokens} completion tokens, cost {cost}, "
            f"wall {self.wall_s:.1f} s"
        )


class UsageMeter:
    """Accumulates :class:`Usage` under a lock."""

    def __init__(self, prices: Prices | None = None):
        self.prices = prices
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._counts = {"calls": 0, "cache_hits": 0, "backend_calls": 0, "retries": 0, "failures": 0}
            self._prompt_tokens = 0
            self._completion_tokens = 0
            self._busy_s = 0.0
            self._first_start: float | None = None
            self._last_end: float | None = None

    def call_started(self) -> float:
        now = time.monotonic()
        with self._lock:
            if self._first_start is None:
                self._first_start = now
        return now

    def count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def call_finished(
        self,
        started: float,
        *,
        cached: bool = False,
        failed: bool = False,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        now = time.monotonic()
        with self._lock:
            self._counts["failures" if failed else "calls"] += 1
            self._counts["cache_hits"] += int(cached and not failed)
            if not cached:
                self._prompt_tokens += prompt_tokens
                self._completion_tokens += completion_tokens
            self._busy_s += now - started
            self._last_end = now if self._last_end is None else max(self._last_end, now)

    def snapshot(self) -> Usage:
        with self._lock:
            wall = 0.0
            if self._first_start is not None and self._last_end is not None:
                wall = max(0.0, self._last_end - self._first_start)
            cost = None
            if self.prices is not None:
                cost = self.prices.cost_usd(self._prompt_tokens, self._completion_tokens)
            return Usage(
                **self._counts,
                prompt_tokens=self._prompt_tokens,
                completion_tokens=self._completion_tokens,
                cost_usd=cost,
                wall_s=wall,
                busy_s=self._busy_s,
            )
