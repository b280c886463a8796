"""Sessions survive the server: killed with SIGKILL (no shutdown code runs) right after an answer and in the
middle of a load of messages, then restarted on the same SQLite file, nothing is lost or corrupted, the
history says which messages were answered, and a retry with the same ``client_message_id`` is answered once
(``replayed`` for an answered one; a turn for one that was cut off). A restart with research text withheld
shows the stored answers without it; one with a short retention period deletes the old sessions."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest
from http_testing import Server, metric, start_server

from convrec.data.dataset import CRSDataset

MESSAGES = ("I loved Alien (1979)", "something like The Matrix (1999)?", "and Toy Story (1995)",
            "maybe a comedy", "with Jim Carrey", "or Titanic (1997)", "more horror", "an old western")


@pytest.fixture(scope="module")
def workdir(redial: CRSDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("http-restart")


def send(server: Server, sid: str, message_id: str, text: str):
    return server.request("POST", f"/api/sessions/{sid}/messages", {"client_message_id": message_id, "text": text})


def test_killed_servers_lose_nothing_and_answer_each_message_once(workdir, mirror, data_dir):
    db = workdir / "sessions.sqlite3"
    first = start_server(workdir, mirror, data_dir, db, name="first")
    try:
        sid = first.request("POST", "/api/sessions").body["session_id"]
        answered = send(first, sid, "m1", MESSAGES[0]).body
        # a load of messages over several sessions, killed while it runs
        loaded = [first.request("POST", "/api/sessions").body["session_id"] for _ in range(3)]
        stop = threading.Event()

        def talk(session: str) -> None:
            for n, text in enumerate(MESSAGES):
                if stop.is_set():
                    return
                try:
                    send(first, session, f"load-{n}", text)
                except Exception:  # noqa: BLE001 - the server is gone (reset, refused, cut off mid-answer)
                    return

        threads = [threading.Thread(target=talk, args=(s,)) for s in loaded]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 30
        while metric(first, "convrec_turns_total") < 1 + 6 and time.monotonic() < deadline:  # m1, then 6 of the load
            time.sleep(0.01)
        first.kill()  # SIGKILL mid-load
        stop.set()
        for thread in threads:
            thread.join(30)
    finally:
        if first.process.poll() is None:
            first.kill()

    with sqlite3.connect(db) as check:  # the file is whole
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    second = start_server(workdir, mirror, data_dir, db, "--withhold-research-text", name="second")
    try:
        session = second.request("GET", f"/api/sessions/{sid}").body
        assert [(m["client_message_id"], m["answered"]) for m in session["messages"]] == [("m1", True)]
        retry = send(second, sid, "m1", MESSAGES[0])
        assert retry.status == 200 and retry.body["replayed"] is True
        assert [r["item_id"] for r in retry.body["recommendations"]] == [
            r["item_id"] for r in answered["recommendations"]]
        # restarted with research text withheld: the stored answer is shown without plots and cast
        for shown, before in zip(retry.body["recommendations"], answered["recommendations"], strict=True):
            assert "plot" in before["facts"] and "star" in before["facts"]
            assert not {"plot", "star", "writer"} & set(shown["facts"]) and shown["facts"]["genre"]
        assert metric(second, "convrec_turns_total") == 0  # nothing ran
        for session_id in loaded:
            messages = second.request("GET", f"/api/sessions/{session_id}").body["messages"]
            done = [m["answered"] for m in messages]
            assert done == sorted(done, reverse=True)  # answered ones first, at most the last one cut off
            turns = sum(done)
            for n, message in enumerate(messages):  # every message again: each answered exactly once
                again = send(second, session_id, message["client_message_id"], MESSAGES[n])
                assert again.status == 200 and again.body["replayed"] is message["answered"]
                if not message["answered"]:
                    turns += 1
                    assert again.body["turn"] == turns  # it continued the state the answered ones left
            history = second.request("GET", f"/api/sessions/{session_id}").body["messages"]
            assert all(m["answered"] for m in history) and len(history) == len(messages)
        assert sum(len(second.request("GET", f"/api/sessions/{s}").body["messages"]) for s in loaded) >= 6
    finally:
        second.stop()

    # Restarted with a retention period shorter than the sessions' age: they are deleted at start.
    time.sleep(1.0)
    third = start_server(workdir, mirror, data_dir, db, "--retention-days", "0.00001", name="third")
    try:
        gone = third.request("GET", f"/api/sessions/{sid}")
        assert gone.status == 404
        assert metric(third, "convrec_sessions_purged_total") == 4
        assert metric(third, "convrec_sessions") == 0
    finally:
        third.stop()
