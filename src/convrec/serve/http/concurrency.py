"""Who runs when: one request at a time per session (:class:`SessionLocks`), and at most N turns at once over
the shared engine (:class:`Admission`), each waited for with a time limit.

A session's requests are serialised because each reads the session's state, computes a new one and writes
it: two at once would both continue the same state. Different sessions run concurrently, and the engine is
read-only, but the LLM behind it is not free: its client admits ``max_concurrency`` requests at once and
queues the rest without limit, so under load every turn would wait longer and longer and clients would see
hangs. The admission semaphore puts that queue in front of the turn instead, with a limit: a turn that
cannot start within ``max_wait_s`` is refused at once (:class:`Busy`, a 503 with ``Retry-After``).
The session lock is taken first, so a turn waiting for its own session holds no LLM slot.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from convrec.errors import ConvrecError


class Busy(ConvrecError):
    """Waited ``waited_s`` for ``what`` and did not get it; try again in ``retry_after_s`` seconds."""

    def __init__(self, what: str, waited_s: float, retry_after_s: int):
        self.what = what
        self.waited_s = waited_s
        self.retry_after_s = retry_after_s
        super().__init__(f"{what} did not free up within {waited_s:g} s; try again in {retry_after_s} s")


class SessionLocks:
    """A lock per session id, made when first asked for and dropped when nobody holds or waits for it (so
    the dict holds only sessions with a request in flight, however many sessions there are)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextmanager
    def hold(self, session_id: str, timeout_s: float) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.setdefault(session_id, (threading.Lock(), [0]))
            users[0] += 1
        try:
            if not lock.acquire(timeout=timeout_s):
                raise Busy("another request of this session", timeout_s, max(1, math.ceil(timeout_s / 2)))
            try:
                yield
            finally:
                lock.release()
        finally:
            with self._guard:
                users[0] -= 1
                if users[0] == 0:
                    del self._locks[session_id]

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


class Admission:
    """At most ``slots`` turns at once; :meth:`enter` waits ``max_wait_s`` for one, then raises :class:`Busy`
    whose ``retry_after_s`` is the recent mean turn time (at least 1 s): about when a slot frees up."""

    def __init__(self, slots: int, max_wait_s: float):
        if slots < 1:
            raise ValueError(f"slots must be at least 1, got {slots}")
        self.slots = slots
        self.max_wait_s = max_wait_s
        self._free = threading.BoundedSemaphore(slots)
        self._guard = threading.Lock()
        self._mean_s = 1.0  # exponential moving average of turn seconds
        self._running = 0

    @contextmanager
    def enter(self) -> Iterator[None]:
        if not self._free.acquire(timeout=self.max_wait_s):
            raise Busy("a turn slot (the LLM)", self.max_wait_s, self.retry_after_s())
        with self._guard:
            self._running += 1
        try:
            yield
        finally:
            with self._guard:
                self._running -= 1
            self._free.release()

    def record(self, seconds: float) -> None:
        with self._guard:
            self._mean_s = 0.8 * self._mean_s + 0.2 * seconds

    def retry_after_s(self) -> int:
        with self._guard:
            return max(1, math.ceil(self._mean_s))

    @property
    def running(self) -> int:
        with self._guard:
            return self._running
