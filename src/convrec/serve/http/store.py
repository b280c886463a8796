"""Where the HTTP API keeps its conversations: one SQLite file in WAL mode (:class:`SessionStore`).

Two tables. ``sessions`` holds each session's :class:`~convrec.serve.state.SessionState` as its JSON, its
timestamps and a ``version`` that grows with every write of the state. ``messages`` holds each user message,
keyed by (session, the client's ``client_message_id``), with its place in the session (``seq``) and, once
answered, the answer as JSON.

Why a kill -9 loses nothing and answers nothing twice: a message is written (unanswered) in its own commit
before its turn runs; the turn's new state and the message's answer are then written in ONE transaction, and
only if the session's ``version`` is still the one the turn started from (so two writers can never both
continue the same state). A process killed at any moment leaves a message either unanswered with the state
before it, or answered with the state after it; a retry with the same id then runs it (the first case) or
returns the stored answer (the second). SQLite's WAL journal makes each commit atomic and durable against
the process dying (``synchronous=NORMAL``: an operating-system crash may lose the latest commits, never
corrupt the file).

Each thread has its own connection (sqlite3 connections are not shared across threads); every write is a
``BEGIN IMMEDIATE`` transaction, so concurrent writers (another process on the file) queue on SQLite's lock
(``busy_timeout``) instead of failing. Within a process, writers queue first on a lock of the store's: a writer
that finds SQLite's lock taken sleeps in its busy handler (1, 2, 5, 10, ... ms) while the holder, between GIL
switches, could have finished many times over. And no write copies the journal into the file: SQLite's
automatic checkpoint ran inside whichever commit passed 1,000 pages of journal, ~70 ms with every other
writer queued behind it (the stalls of bench/bench_serve.py); here a background thread checkpoints
(``PASSIVE``: never in a writer's way) every :data:`CHECKPOINT_INTERVAL_S`. The file records which catalogue
its sessions speak of: opening it for another catalogue is refused, since a saved state names items by id.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convrec.errors import ConfigError, ConvrecError

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
CHECKPOINT_INTERVAL_S = 1.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    version INTEGER NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_update ON sessions (updated_at);
CREATE TABLE IF NOT EXISTS messages (
    session_id TEXT NOT NULL,
    client_message_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    text TEXT NOT NULL,
    created_at REAL NOT NULL,
    answered_at REAL,
    answer TEXT,
    PRIMARY KEY (session_id, client_message_id)
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_in_order ON messages (session_id, seq);
"""


class StaleSession(ConvrecError):
    """The session changed (or was deleted) since it was read: the write was not made."""


@dataclass(frozen=True)
class StoredSession:
    session_id: str
    created_at: float
    updated_at: float
    version: int
    state: str  # SessionState JSON


@dataclass(frozen=True)
class StoredMessage:
    client_message_id: str
    seq: int
    text: str
    created_at: float
    answered_at: float | None
    answer: dict[str, Any] | None

    @property
    def answered(self) -> bool:
        return self.answer is not None


class SessionStore:
    """The sessions of one server (see the module docstring). ``catalogue`` names the catalogue the sessions'
    items come from (dataset and content hash): a file made for another one is refused."""

    def __init__(self, path: str | Path, catalogue: str):
        self.path = Path(path)
        self.catalogue = catalogue
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"--db {self.path}: cannot create its folder ({exc.strerror or exc})") from None
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False
        self._write_lock = threading.Lock()
        self._stop_checkpoints = threading.Event()
        self._init_schema()
        self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="convrec-store-checkpoint",
                                              daemon=True)
        self._checkpointer.start()

    # -- connections -----------------------------------------------------------------------------------------

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StaleSession("the session store is closed")
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                 check_same_thread=False)
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpoint thread's job (module docstring)
            self._local.db = db
            with self._connections_lock:
                self._connections.append(db)
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (BEGIN IMMEDIATE): committed at the end, rolled back on error."""
        db = self._connection()
        with self._write_lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def checkpoint(self) -> tuple[int, int]:
        """Copy the journal's committed pages into the database file as far as no reader still needs them
        (``PASSIVE``: waits for nobody): (pages in the journal, pages copied)."""
        _, journal, copied = self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return journal, copied

    def _checkpoint_loop(self) -> None:
        while not self._stop_checkpoints.wait(CHECKPOINT_INTERVAL_S):
            try:
                self.checkpoint()
            except (sqlite3.Error, StaleSession):  # closed meanwhile, or busy: the next round tries again
                continue

    def _init_schema(self) -> None:
        try:
            self._connection().executescript(SCHEMA)  # IF NOT EXISTS throughout: a no-op on an existing file
            with self._write() as db:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
                if not meta:
                    db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)",
                                   [("schema_version", str(SCHEMA_VERSION)), ("catalogue", self.catalogue)])
                    return
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"--db {self.path}: not a usable SQLite database ({exc})") from None
        if meta.get("schema_version") != str(SCHEMA_VERSION):
            raise ConfigError(f"--db {self.path}: written by another convrec (session store schema "
                              f"{meta.get('schema_version')!r}, this one reads {SCHEMA_VERSION})",
                              hint="choose another --db, or remove the file to start afresh")
        if meta.get("catalogue") != self.catalogue:
            raise ConfigError(f"--db {self.path}: its sessions speak of another catalogue ({meta.get('catalogue')}, "
                              f"this server's is {self.catalogue})",
                              hint="choose another --db for this dataset, or remove the file to start afresh")

    def check(self) -> None:
        """Raise if the file cannot be read now (what /ready asks)."""
        self._connection().execute("SELECT count(*) FROM meta").fetchone()

    def close(self) -> None:
        self._stop_checkpoints.set()
        if self._checkpointer.is_alive() and self._checkpointer is not threading.current_thread():
            self._checkpointer.join(10)
        self._closed = True
        with self._connections_lock:
            for db in self._connections:
                db.close()
            self._connections.clear()

    # -- sessions --------------------------------------------------------------------------------------------

    def create(self, session_id: str, state: str, now: float | None = None) -> StoredSession:
        now = time.time() if now is None else now
        with self._write() as db:
            db.execute("INSERT INTO sessions (session_id, created_at, updated_at, version, state) "
                       "VALUES (?, ?, ?, 1, ?)", (session_id, now, now, state))
        return StoredSession(session_id, now, now, 1, state)

    def get(self, session_id: str) -> StoredSession | None:
        row = self._connection().execute(
            "SELECT session_id, created_at, updated_at, version, state FROM sessions WHERE session_id = ?",
            (session_id,)).fetchone()
        return StoredSession(*row) if row else None

    def save_state(self, session_id: str, version: int, state: str, now: float | None = None) -> None:
        """Replace the state read at ``version`` (StaleSession if it changed since, or is gone)."""
        with self._write() as db:
            self._update_state(db, session_id, version, state, time.time() if now is None else now)

    def delete(self, session_id: str) -> bool:
        with self._write() as db:
            db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
            return db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,)).rowcount == 1

    def purge(self, older_than_s: float, now: float | None = None) -> int:
        """Delete the sessions (and their messages) not written for ``older_than_s`` seconds: how many."""
        cutoff = (time.time() if now is None else now) - older_than_s
        with self._write() as db:
            db.execute("DELETE FROM messages WHERE session_id IN "
                       "(SELECT session_id FROM sessions WHERE updated_at < ?)", (cutoff,))
            return db.execute("DELETE FROM sessions WHERE updated_at < ?", (cutoff,)).rowcount

    def count(self) -> int:
        return self._connection().execute("SELECT count(*) FROM sessions").fetchone()[0]

    # -- messages --------------------------------------------------------------------------------------------

    def messages(self, session_id: str) -> list[StoredMessage]:
        rows = self._connection().execute(
            "SELECT client_message_id, seq, text, created_at, answered_at, answer FROM messages "
            "WHERE session_id = ? ORDER BY seq", (session_id,)).fetchall()
        return [_message(row) for row in rows]

    def message(self, session_id: str, client_message_id: str) -> StoredMessage | None:
        row = self._connection().execute(
            "SELECT client_message_id, seq, text, created_at, answered_at, answer FROM messages "
            "WHERE session_id = ? AND client_message_id = ?", (session_id, client_message_id)).fetchone()
        return _message(row) if row else None

    def add_message(self, session_id: str, client_message_id: str, text: str,
                    now: float | None = None) -> StoredMessage:
        """Record a message, unanswered, as the session's next one (committed before its turn runs)."""
        now = time.time() if now is None else now
        with self._write() as db:
            if db.execute("SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)).fetchone() is None:
                raise StaleSession(f"session {session_id[:8]}... is gone")
            seq = db.execute("SELECT coalesce(max(seq), 0) + 1 FROM messages WHERE session_id = ?",
                             (session_id,)).fetchone()[0]
            db.execute("INSERT INTO messages (session_id, client_message_id, seq, text, created_at) "
                       "VALUES (?, ?, ?, ?, ?)", (session_id, client_message_id, seq, text, now))
        return StoredMessage(client_message_id, seq, text, now, None, None)

    def answer(self, session_id: str, client_message_id: str, version: int, state: str, answer: dict[str, Any],
               now: float | None = None) -> None:
        """The turn's new state and the message's answer, in one transaction (see the module docstring);
        StaleSession, and nothing written, if the state changed since ``version`` or the message was answered."""
        now = time.time() if now is None else now
        with self._write() as db:
            self._update_state(db, session_id, version, state, now)
            done = db.execute("UPDATE messages SET answer = ?, answered_at = ? WHERE session_id = ? AND "
                              "client_message_id = ? AND answer IS NULL",
                              (json.dumps(answer, ensure_ascii=False), now, session_id, client_message_id))
            if done.rowcount != 1:
                raise StaleSession(f"message {client_message_id!r} is answered already or gone")

    @staticmethod
    def _update_state(db: sqlite3.Connection, session_id: str, version: int, state: str, now: float) -> None:
        done = db.execute("UPDATE sessions SET state = ?, updated_at = ?, version = version + 1 "
                          "WHERE session_id = ? AND version = ?", (state, now, session_id, version))
        if done.rowcount != 1:
            raise StaleSession(f"session {session_id[:8]}... changed or is gone")


def _message(row: tuple) -> StoredMessage:
    client_message_id, seq, text, created_at, answered_at, answer = row
    return StoredMessage(client_message_id, seq, text, created_at, answered_at,
                         json.loads(answer) if answer is not None else None)
