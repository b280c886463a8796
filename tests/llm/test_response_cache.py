"""The SQLite response cache: keys, threads and processes sharing one file, crashes, corruption, locks."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from convrec.llm import CacheError, ChatRequest, ChatResponse, ResponseCache, request_key

# Writes entries "<prefix>-<i>" for i in range(n) into the cache at argv[1], one transaction each; with a
# fourth argument, first waits (at most 30 s) for that file to exist, so that writers start together.
WRITER = textwrap.dedent(
    """
    import os, sys, time
    from convrec.llm import ChatRequest, ChatResponse, ResponseCache
    path, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    cache = ResponseCache(path)
    deadline = time.monotonic() + 30
    while len(sys.argv) > 4 and not os.path.exists(sys.argv[4]) and time.monotonic() < deadline:
        time.sleep(0.005)
    for i in range(n):
        key = f"{prefix}-{i}"
        request = ChatRequest.from_prompt(key)
        cache.put(key, request, ChatResponse(text=key, model="m", backend="test"))
        assert cache.get(key).text == key
        time.sleep(0.001)  # like a slow LLM call: lets the other writers in between
    cache.close()
    """
)


def entry(key: str) -> tuple[ChatRequest, ChatResponse]:
    return ChatRequest.from_prompt(key), ChatResponse(
        text=key, model="m", backend="test", completion_tokens=3
    )


def run_writer(path, prefix: str, n: int, go_file=None) -> subprocess.Popen:
    arguments = [sys.executable, "-c", WRITER, str(path), prefix, str(n)] + (
        [str(go_file)] if go_file else []
    )
    return subprocess.Popen(arguments, stderr=subprocess.PIPE)


def test_round_trip_marks_hits_as_cached(tmp_path):
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        request, response = entry("a")
        assert cache.get("k") is None and "k" not in cache
        cache.put("k", request, response)
        hit = cache.get("k")
    assert hit.cached and hit.text == "a" and hit.completion_tokens == 3
    assert hit.model_copy(update={"cached": False}) == response


def test_every_parameter_changes_the_key():
    base = ChatRequest.from_prompt("Recommend a movie.")
    variants = [
        base.model_copy(update=change)
        for change in (
            {"max_tokens": 12},
            {"temperature": 0.5},
            {"seed": 1},
            {"seed": None},
            {"json_schema": {"type": "object"}},
            {"logprobs": True},
            {"stop": ("\n",)},
        )
    ]
    variants.append(ChatRequest.from_prompt("Recommend a movie.", system="Be brief."))
    variants.append(ChatRequest(messages=base.messages, logprobs=True, top_logprobs=3))
    keys = {request_key("local", "model-a", request) for request in [base, *variants]}
    assert len(keys) == len(variants) + 1
    assert request_key("local", "model-a", base) == request_key(
        "local", "model-a", ChatRequest.from_prompt("Recommend a movie.")
    )
    assert request_key("local", "model-b", base) != request_key("local", "model-a", base)
    assert request_key("openai", "model-a", base) != request_key("local", "model-a", base)


def test_threads_share_one_cache(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    errors: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for i in range(40):
                key = f"t{thread}-{i}"
                cache.put(key, *entry(key))
                assert cache.get(key).text == key
                cache.get(f"t{(thread + 1) % 6}-{i}")  # read what another thread may be writing
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and not any(thread.is_alive() for thread in threads)
    assert len(cache) == 240
    cache.close()


def test_two_processes_and_a_thread_share_one_file(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path)
    go_file = tmp_path / "go"
    writers = [run_writer(path, f"p{n}", 300, go_file) for n in range(2)]
    time.sleep(0.3)  # let both open the cache, then start them together
    go_file.touch()
    deadline = time.monotonic() + 60
    while any(writer.poll() is None for writer in writers) and time.monotonic() < deadline:
        cache.put("main", *entry("main"))  # this process writes too, meanwhile
        len(cache)
        time.sleep(0.01)
    for writer in writers:
        _, stderr = writer.communicate(timeout=30)
        assert writer.returncode == 0, stderr.decode()
    assert len(cache) == 601
    assert all(cache.get(f"p{n}-{i}").text == f"p{n}-{i}" for n in range(2) for i in range(300))
    cache.close()
    conn = sqlite3.connect(path)
    spans = [
        conn.execute(
            "SELECT MIN(created_at), MAX(created_at) FROM responses WHERE key LIKE ?", (f"p{n}-%",)
        ).fetchone()
        for n in range(2)
    ]
    conn.close()
    assert spans[0][0] < spans[1][1] and spans[1][0] < spans[0][1], f"the writers did not overlap: {spans}"


def test_a_process_killed_mid_run_leaves_a_readable_cache(tmp_path):
    path = tmp_path / "c.sqlite"
    writer = run_writer(path, "killed", 1_000_000)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not path.exists() or _count(path) < 50):
            assert writer.poll() is None, writer.stderr.read().decode()
            time.sleep(0.02)
    finally:
        writer.kill()  # SIGKILL: no cleanup, possibly in the middle of a transaction
        writer.wait(timeout=10)
        writer.stderr.close()
    with ResponseCache(path) as cache:
        count = len(cache)
        assert count >= 50
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        keys = [row[0] for row in conn.execute("SELECT key FROM responses")]
        conn.close()
        assert len(keys) == count
        assert all(cache.get(key).text == key for key in keys)
        cache.put("after", *entry("after"))  # and it is writable again
        assert cache.get("after").text == "after"


def test_a_corrupt_file_gives_a_clear_error(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not a database " * 200)
    with pytest.raises(CacheError, match="not a readable SQLite cache.*delete it"):
        ResponseCache(path)


def test_a_long_lock_gives_a_clear_error_and_readers_are_not_blocked(tmp_path):
    path = tmp_path / "c.sqlite"
    cache = ResponseCache(path, lock_timeout_s=0.05, lock_retries=2)
    cache.put("before", *entry("before"))
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another writer that does not let go
    try:
        started = time.monotonic()
        with pytest.raises(CacheError, match="stayed locked"):
            cache.put("during", *entry("during"))
        assert time.monotonic() - started < 5
        assert cache.get("before").text == "before"  # WAL: reading goes on while a writer holds the lock
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    cache.put("after", *entry("after"))
    assert "after" in cache and "during" not in cache
    cache.close()


def _count(path) -> int:
    try:
        conn = sqlite3.connect(path, timeout=5)
        try:
            return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:  # the writer has not created the table yet
        return 0
