"""A persistent cache of LLM replies in one SQLite file, shared by threads and processes.

Why SQLite: one file, atomic transactions, and in WAL mode readers never block the writer, so several
workers (threads of one run, or parallel runs) can share a cache. Each ``put`` is a single-statement
transaction: a process killed mid-run leaves every committed reply readable and no half-written one.
``synchronous=NORMAL`` keeps commits durable across process crashes (only an OS crash may drop the last
few, which for a cache just means recomputing them).

The key is the sha256 of (format version, backend, model identity, the full request with every sampling
parameter), so a reply is only reused for exactly the same question to exactly the same model. Sampled
requests (temperature > 0) are cached too: to draw several samples, vary ``seed``.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from pydantic import ValidationError

from convrec.llm.errors import CacheError
from convrec.llm.types import ChatRequest, ChatResponse

CACHE_FORMAT = "convrec.llm.cache/v1"
T = TypeVar("T")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created_at REAL NOT NULL
)
"""


def request_key(backend: str, model_identity: str, request: ChatRequest) -> str:
    """sha256 over everything that decides the reply (field order is fixed; JSON-schema order is kept)."""
    payload = {
        "format": CACHE_FORMAT,
        "backend": backend,
        "model": model_identity,
        "request": request.model_dump(mode="json"),
    }
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class ResponseCache:
    """``get``/``put`` replies by :func:`request_key`. One connection per thread (and per process).

    ``lock_timeout_s`` is how long one statement waits for another writer; a statement still locked
    after ``lock_retries`` further waits raises :class:`CacheError` naming the file.
    """

    def __init__(self, path: str | os.PathLike, lock_timeout_s: float = 10.0, lock_retries: int = 3):
        self.path = Path(path)
        self.lock_timeout_s = lock_timeout_s
        self.lock_retries = lock_retries
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._pid = os.getpid()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"cannot create the directory of the LLM cache {self.path}: {exc}") from exc
        self._connection()  # open now: a corrupt or unwritable file fails here, not mid-run

    def get(self, key: str) -> ChatResponse | None:
        """The cached reply (``cached=True``), or None. A row that no longer parses counts as a miss."""
        row = self._run(
            lambda conn: conn.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        )
        if row is None:
            return None
        try:
            response = ChatResponse.model_validate_json(row[0])
        except ValidationError:
            return None  # written by an incompatible version; the next put replaces it
        return response.model_copy(update={"cached": True})

    def put(self, key: str, request: ChatRequest, response: ChatResponse) -> None:
        """Store one reply in its own transaction (replacing an older one with the same key)."""
        stored = response.model_copy(update={"cached": False})
        values = (
            key,
            stored.backend,
            stored.model,
            request.model_dump_json(),
            stored.model_dump_json(),
            time.time(),
        )
        self._run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO responses (key, backend, model, request, response, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                values,
            )
        )

    def __len__(self) -> int:
        return int(self._run(lambda conn: conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]))

    def __contains__(self, key: str) -> bool:
        query = "SELECT 1 FROM responses WHERE key = ?"
        return self._run(lambda conn: conn.execute(query, (key,)).fetchone()) is not None

    def close(self) -> None:
        """Close every connection this object opened (in this process)."""
        with self._connections_lock:
            connections, self._connections = self._connections, []
        if os.getpid() == self._pid:
            for conn in connections:
                conn.close()
        self._local = threading.local()

    def __enter__(self) -> ResponseCache:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if os.getpid() != self._pid:
            # A forked child must not touch its parent's connections (SQLite forbids it): start afresh.
            self._pid = os.getpid()
            self._connections = []
            self._connections_lock = threading.Lock()
            self._local = threading.local()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _open(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.lock_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise CacheError(f"cannot open the LLM cache {self.path}: {exc}") from exc
        try:
            mode = self._run(lambda _: conn.execute("PRAGMA journal_mode=WAL").fetchone()[0], conn)
            if str(mode).lower() != "wal":
                raise CacheError(
                    f"{self.path}: SQLite refused WAL mode (got {mode!r}); is it on a network drive?"
                )
            self._run(lambda _: conn.execute("PRAGMA synchronous=NORMAL"), conn)
            self._run(lambda _: conn.execute(_SCHEMA), conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, operation: Callable[[sqlite3.Connection], T], conn: sqlite3.Connection | None = None) -> T:
        """Run one statement; wait out locks a bounded number of times; turn SQLite errors into CacheError."""
        conn = conn or self._connection()
        for attempt in range(self.lock_retries + 1):
            try:
                return operation(conn)
            except sqlite3.OperationalError as exc:
                message = str(exc).lower()
                if "locked" not in message and "busy" not in message:
                    raise CacheError(f"LLM cache {self.path}: {exc}") from exc
                if attempt == self.lock_retries:
                    waited = (self.lock_retries + 1) * self.lock_timeout_s
                    raise CacheError(
                        f"LLM cache {self.path} stayed locked by another writer for about {waited:g} s "
                        f"({exc}); is a stuck process holding it?"
                    ) from exc
                time.sleep(min(1.0, 0.05 * 2**attempt))
            except sqlite3.DatabaseError as exc:
                raise CacheError(
                    f"{self.path} is not a readable SQLite cache ({exc}); it only holds cached LLM replies, "
                    f"so delete it (with its -wal and -shm files) to start afresh"
                ) from exc
        raise AssertionError("unreachable: the loop returns or raises")
