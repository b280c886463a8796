"""The HTTP API's SQLite session store on its own: a turn's state and answer are written together or not at
all (also when the writing process is killed with SIGKILL at a random moment, many times), a stale writer
is refused, retention deletes old sessions with their messages, and a file of another catalogue or no
database at all is refused with a one-line ConfigError."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from convrec.errors import ConfigError
from convrec.serve.http.store import SessionStore, StaleSession

# A child process that answers messages as fast as it can: message n's answer says n, and so does the state.
WRITER = """
import sys, itertools
from convrec.serve.http.store import SessionStore
store = SessionStore(sys.argv[1], "redial")
if store.get("s") is None:
    store.create("s", '{"n": 0}')
first = len(store.messages("s")) + 1  # the test answers a message cut off before it starts this again
for n in itertools.count(first):
    session = store.get("s")
    store.add_message("s", f"m{n}", f"text {n}")
    store.answer("s", f"m{n}", session.version, '{"n": %d}' % n, {"n": n})
    if n == first:
        print("writing", flush=True)
"""


def test_a_turn_is_committed_whole_and_a_stale_writer_changes_nothing(tmp_path):
    store = SessionStore(tmp_path / "s.db", "redial")
    created = store.create("abc", '{"v": 0}')
    assert store.get("abc") == created and created.version == 1
    store.add_message("abc", "m1", "hello")
    assert [(m.client_message_id, m.seq, m.answered) for m in store.messages("abc")] == [("m1", 1, False)]
    store.answer("abc", "m1", 1, '{"v": 1}', {"reply": "hi"})
    session = store.get("abc")
    assert (session.version, session.state) == (2, '{"v": 1}')
    assert store.message("abc", "m1").answer == {"reply": "hi"}
    store.add_message("abc", "m2", "again")
    with pytest.raises(StaleSession):  # read at version 1, the state is at 2 now
        store.answer("abc", "m2", 1, '{"v": "lost"}', {"reply": "lost"})
    assert store.get("abc").state == '{"v": 1}' and not store.message("abc", "m2").answered  # nothing written
    with pytest.raises(StaleSession):  # m1 is answered already: never twice
        store.answer("abc", "m1", 2, '{"v": 2}', {"reply": "twice"})
    assert store.get("abc").version == 2 and store.message("abc", "m1").answer == {"reply": "hi"}
    with pytest.raises(sqlite3.IntegrityError):  # one message per client id
        store.add_message("abc", "m1", "hello")
    with pytest.raises(StaleSession):
        store.add_message("gone", "m1", "hello")
    assert store.delete("abc") and store.get("abc") is None and store.messages("abc") == []
    assert not store.delete("abc")
    mode = sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    store.close()


def test_retention_deletes_old_sessions_with_their_messages(tmp_path):
    store = SessionStore(tmp_path / "s.db", "redial")
    now = time.time()
    store.create("old", "{}", now=now - 10 * 86400)
    store.add_message("old", "m", "x", now=now - 10 * 86400)
    store.create("recent", "{}", now=now - 86400)
    store.create("touched", "{}", now=now - 10 * 86400)
    store.save_state("touched", 1, '{"again": true}', now=now)  # a write keeps a session alive
    assert store.purge(5 * 86400, now=now) == 1
    assert store.get("old") is None and store.messages("old") == []
    assert store.get("recent") is not None and store.get("touched") is not None and store.count() == 2
    assert store.purge(5 * 86400, now=now) == 0


def test_another_catalogue_or_not_a_database_is_refused(tmp_path):
    SessionStore(tmp_path / "s.db", "redial").close()
    with pytest.raises(ConfigError, match="another catalogue"):
        SessionStore(tmp_path / "s.db", "inspired")
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is no database " * 100)
    with pytest.raises(ConfigError, match="not a usable SQLite database"):
        SessionStore(junk, "redial")


@pytest.mark.parametrize("wait_s", [0.05, 0.15, 0.3])
def test_sigkill_at_any_moment_leaves_every_turn_whole(tmp_path, wait_s):
    path = tmp_path / "killed.db"
    for _ in range(3):  # killed, reopened, killed again
        child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE)
        assert child.stdout.readline() == b"writing\n"
        time.sleep(wait_s)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        with sqlite3.connect(path) as check:
            assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        store = SessionStore(path, "redial")
        n = json.loads(store.get("s").state)["n"]
        messages = store.messages("s")
        answered = [m for m in messages if m.answered]
        # the state says n turns: exactly messages 1..n are answered, each with its own answer
        assert [m.answer["n"] for m in answered] == list(range(1, n + 1)) and n >= 1
        assert len(messages) - len(answered) <= 1  # at most the message being answered was cut off
        assert store.get("s").version == n + 1
        if len(messages) > n:  # the cut-off one: recorded, unanswered, and it can still be answered once
            store.answer("s", messages[-1].client_message_id, n + 1, json.dumps({"n": n + 1}), {"n": n + 1})
        store.close()
