"""Benchmark: ``convrec serve`` under load on loopback, at its limit, with the LLM over capacity, and killed.

    python bench/bench_serve.py [--sessions 100] [--messages 5] [--rate 100] [--llm smollm2-135m] [--quick]
                                [--out bench/out/bench_serve.json]

The server is the real command, ``python -m convrec serve --dataset redial --no-llm --retriever itemknn``
(retriever-only: the ``itemknn`` recommender fit on ReDial's train split, template replies), in a subprocess on a
free loopback port with a bearer token and its own SQLite file, one process (uvicorn, no workers), its BLAS at
``--server-threads`` (default 1: the server already runs two turns at once on two cores). The load generator is
this process: a small asyncio HTTP/1.1 client (one keep-alive connection per session, no third-party client),
sending ReDial test dialogues' seeker turns (each session plays one dialogue's first ``--messages`` seeker turns).
Five phases:

1. **open loop** (the target): ``--sessions`` sessions (created first, not timed) send ``--messages`` messages
   each at ``--rate`` messages/s in total: a seeded Poisson process whose k-th arrival is message
   ``k // sessions`` of session ``k % sessions``. A session sends its next message at its scheduled time, or when
   its previous reply arrives if that is later (a person waits for the reply); a message's **latency runs from
   its scheduled time** to the end of its reply, so a server that falls behind is charged for the wait
   (coordinated omission avoided). Also reported: the service time (from the actual send), the send lag, p50 /
   p95 / p99 / max, errors (a non-200, a connection error, a time-out, or an answer without recommendations),
   and the achieved throughput (answers / (last answer - first scheduled send)). ``--repeats`` runs (default
   3), each with fresh sessions and its own seeded arrivals; the latencies are pooled over all of them (and each
   run's p95 is kept), the throughput is their median. Target: p95 < 50 ms and 0 errors at 100 sessions x 5
   messages, 100 messages/s.
2. **saturation** (closed loop): ``c`` clients each send their next message as soon as the last is answered
   (a fresh session every ``--messages``), for ``--saturation-seconds`` per level, c = 1, 2, 4, ... up to
   ``--max-concurrency``, stopping after two levels that raise the throughput by less than 5%; the maximum
   messages/s is the saturation throughput.
3. **CPU**: for every phase, the CPU seconds of the load generator (``getrusage`` of this process), of the server
   (``/proc/PID/stat``) and of the whole machine (``/proc/stat``), each divided by the phase's wall time:
   cores used. What is left over is other processes: the report names any ``convrec results`` running. The
   hypervisor's steal time (a core this virtual machine wanted and did not get) is reported apart.
4. **kill -9**: ``--kill-sessions`` sessions send ``--kill-messages`` messages each (closed loop, all at once);
   once ``--kill-at`` of them are answered the server gets SIGKILL. The SQLite file's ``integrity_check``, then
   a restart on the same file: every session must be readable, its history in the order sent (answered ones
   first, at most the one in flight unanswered after them), every answer the client saw equal to the stored
   one; then every message is sent again with its ``client_message_id``: an answered one must come back
   ``replayed`` and identical, an unanswered or never recorded one is answered, with turn numbers that continue
   the session, and the restarted server's turn counter must equal the messages not answered before (each
   message answered exactly once).
5. **LLM queueing** (``--llm MODEL``, off by default): the server with a local LLM re-ranker (one request at a
   time, ``--llm-max-wait`` seconds of admission wait), a few sequential turns measure its capacity, then an
   open loop at ``--llm-overload`` times that rate for ``--llm-seconds``, each message to its own session and
   with a text of its own (a repeated one could come from the server's LLM response cache):
   how many are answered, refused 503 with ``Retry-After`` (and how fast), and how many time out at the
   client (``--llm-timeout``): the server should refuse, not let requests hang.

``--quick`` (the smoke test): 10 sessions x 3 messages at 20/s, saturation levels 1-4 for 1 s each, 4 x 4
messages killed after 6. Run the full benchmark on an otherwise idle machine: the load generator, the server
and anything else share the cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

SCRIPT = Path(__file__).resolve()
DEFAULT_OUT = common.BENCH_DIR / "out" / "bench_serve.json"
DATASET = "redial"
RETRIEVER = "itemknn"
TARGET_P95_MS = 50.0
TARGET_RATE = 100.0
START_TIMEOUT_S = 300
KEEP_ALIVE_S = 4.0  # uvicorn closes an idle keep-alive connection after 5 s: reconnect before that
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- the HTTP client


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class Connection:
    """One keep-alive HTTP/1.1 connection to the server (what a browser tab or an app keeps open). Requests on
    one connection go one at a time; any failure closes it, and the next request opens a new one."""

    def __init__(self, host: str, port: int, token: str):
        self.host, self.port = host, port
        self._auth = f"Authorization: Bearer {token}\r\n"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._last_used = 0.0

    async def request(self, method: str, path: str, body: Any = None) -> Reply:
        try:
            return await self._request(method, path, body)
        except BaseException:
            self.close()
            raise

    async def _request(self, method: str, path: str, body: Any) -> Reply:
        if self._writer is not None and time.monotonic() - self._last_used > KEEP_ALIVE_S:
            self.close()
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        payload = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self._auth}"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n")
        self._writer.write(head.encode() + payload)
        await self._writer.drain()
        status_line = await self._reader.readline()
        if not status_line:
            raise ConnectionError("the server closed the connection")
        status = int(status_line.split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while (line := await self._reader.readline()) not in (b"\r\n", b"\n", b""):
            key, _, value = line.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        content = await self._reader.readexactly(int(headers.get("content-length", "0")))
        self._last_used = time.monotonic()
        if headers.get("connection", "").lower() == "close":
            self.close()
        return Reply(status, headers, content)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


@dataclass
class Outcome:
    """One message: when it was due, sent and done (monotonic seconds), and how it ended."""

    session: int
    index: int
    scheduled: float
    sent: float = 0.0
    done: float = 0.0
    status: int | None = None
    error: str | None = None  # None: answered (200 with recommendations)
    retry_after: str | None = None
    answer: dict[str, Any] | None = None


async def send_message(connection: Connection, session_id: str, message_id: str, text: str, outcome: Outcome,
                       timeout: float) -> None:
    """POST one message and fill ``outcome`` (never raises: a failure is the outcome's error)."""
    outcome.sent = time.monotonic()
    try:
        reply = await asyncio.wait_for(connection.request(
            "POST", f"/api/sessions/{session_id}/messages", {"client_message_id": message_id, "text": text}),
            timeout)
    except TimeoutError:
        outcome.error = "timeout"
    except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
        outcome.error = f"connection: {type(exc).__name__}"
    else:
        outcome.status = reply.status
        outcome.retry_after = reply.headers.get("retry-after")
        if reply.status != 200:
            outcome.error = f"http {reply.status}"
        else:
            answer = reply.json()
            if not answer.get("recommendations") or not answer.get("reply"):
                outcome.error = "answer without recommendations"
            outcome.answer = answer
    outcome.done = time.monotonic()


# ---------------------------------------------------------------- the server


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class ServerProcess:
    """``convrec serve`` in a subprocess (see the module docstring)."""

    process: subprocess.Popen
    port: int
    token: str
    log_path: Path
    argv: list[str] = field(default_factory=list)
    start_seconds: float = 0.0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, method: str, path: str, body: Any = None, timeout: float = 30) -> Reply:
        """A control-plane request (urllib, synchronous): setup and checks, never timed load."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Authorization": f"Bearer {self.token}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return Reply(response.status, {k.lower(): v for k, v in response.headers.items()}, response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, {k.lower(): v for k, v in error.headers.items()}, error.read())

    def metric(self, name: str) -> float:
        text = self.call("GET", "/metrics").body.decode()
        return sum(float(line.rpartition(" ")[2]) for line in text.splitlines()
                   if line.startswith(name + " ") or line.startswith(name + "{"))

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(workdir: Path, data_dir: Path, mirror: Path | None, db: Path, *, name: str, threads: int,
                 extra: tuple[str, ...] = ("--no-llm",)) -> ServerProcess:
    port = free_port()
    token = secrets.token_urlsafe(24)
    argv = [sys.executable, "-m", "convrec", "serve", "--dataset", DATASET, "--retriever", RETRIEVER, *extra,
            "--port", str(port), "--db", str(db), "--data-dir", str(data_dir)]
    if mirror is not None:
        argv += ["--mirror", str(mirror)]
    env = {**os.environ, "CONVREC_SERVE_TOKEN": token, "CONVREC_CACHE_DIR": str(workdir / "cache"),
           "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log_path = workdir / f"{name}.log"
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=common.PROJECT_ROOT)
    server = ServerProcess(process, port, token, log_path, argv)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"convrec serve exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if server.call("GET", "/ready", timeout=2).status == 200:
                server.start_seconds = time.perf_counter() - started
                return server
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"convrec serve was not ready within {START_TIMEOUT_S} s:\n{server.log_tail()}")


# ---------------------------------------------------------------- CPU accounting


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (Linux /proc/PID/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
        fields = handle.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_cpu_seconds() -> tuple[float, float]:
    """CPU seconds all cores spent busy (all of /proc/stat's first line but idle, iowait and steal) and stolen
    by the hypervisor (steal: time this virtual machine wanted a core and did not get one), since boot."""
    with open("/proc/stat", encoding="ascii") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


class CpuMeter:
    """CPU used during a phase by the load generator, the server and the whole machine, in cores."""

    def __init__(self, server: ServerProcess):
        self.server = server

    def __enter__(self) -> CpuMeter:
        self._wall = time.monotonic()
        self._own, self._server = own_cpu_seconds(), self.server.cpu_seconds()
        self._machine, self._steal = machine_cpu_seconds()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.monotonic() - self._wall
        own = own_cpu_seconds() - self._own
        served = self.server.cpu_seconds() - self._server if self.server.process.poll() is None else None
        machine, steal = machine_cpu_seconds()
        self.result = cpu_result(wall, own, served, machine - self._machine, steal - self._steal)


def cpu_result(wall: float, own: float, served: float | None, machine: float, steal: float) -> dict[str, Any]:
    return {
        "wall_seconds": wall, "load_generator_cpu_seconds": own, "server_cpu_seconds": served,
        "machine_busy_cpu_seconds": machine, "machine_steal_cpu_seconds": steal, "load_generator_cores": own / wall,
        "server_cores": served / wall if served is not None else None, "machine_busy_cores": machine / wall,
        "other_processes_cores": max(machine - own - (served or 0.0), 0.0) / wall, "steal_cores": steal / wall,
    }


def pooled_cpu(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several phases' CPU as one: seconds added up, cores over their total wall time."""
    total = {key: sum(r[key] for r in results) for key in ("wall_seconds", "load_generator_cpu_seconds",
                                                            "machine_busy_cpu_seconds", "machine_steal_cpu_seconds")}
    served = None if any(r["server_cpu_seconds"] is None for r in results) else sum(
        r["server_cpu_seconds"] for r in results)
    return cpu_result(total["wall_seconds"], total["load_generator_cpu_seconds"], served,
                      total["machine_busy_cpu_seconds"], total["machine_steal_cpu_seconds"])


def other_experiments() -> list[str]:
    """Command lines of running ``convrec results`` processes (what else shares the cores)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if "convrec results" in command:
            found.append(f"{entry.name}: {command[:200]}")
    return sorted(found)


# ---------------------------------------------------------------- statistics


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile, linear between closest ranks (numpy's default)."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def latency_summary(seconds: list[float]) -> dict[str, Any]:
    ms = [s * 1000 for s in seconds]
    return {"count": len(ms), "p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95),
            "p99_ms": percentile(ms, 99), "max_ms": max(ms) if ms else None,
            "mean_ms": sum(ms) / len(ms) if ms else None}


def error_counts(outcomes: list[Outcome]) -> dict[str, int]:
    return dict(Counter(o.error for o in outcomes if o.error is not None))


# ---------------------------------------------------------------- load


def dialogue_messages(dataset: Any, sessions: int, messages: int, seed: int) -> list[list[str]]:
    """``sessions`` lists of ``messages`` seeker turns, each from one ReDial test dialogue (seeded choice)."""
    plays = [[t.text for t in d.turns if t.role == "seeker" and t.text.strip()][:messages]
             for d in dataset.split("test").dialogues]
    plays = [p for p in plays if len(p) == messages]
    if not plays:
        raise SystemExit(f"no {DATASET} test dialogue has {messages} seeker turns")
    random.Random(seed).shuffle(plays)
    return [[text[:2000] for text in plays[i % len(plays)]] for i in range(sessions)]


def distinct_messages(dataset: Any, count: int, seed: int) -> list[str]:
    """``count`` different seeker turns of ReDial test dialogues (at least 20 characters; seeded order): with the
    LLM, a repeated text could be answered from the server's LLM response cache instead of by the model."""
    texts = sorted({t.text.strip()[:2000] for d in dataset.split("test").dialogues for t in d.turns
                    if t.role == "seeker" and len(t.text.strip()) >= 20})
    random.Random(seed).shuffle(texts)
    if len(texts) < count:
        raise SystemExit(f"only {len(texts)} distinct {DATASET} test seeker turns, {count} wanted")
    return texts[:count]


async def create_sessions(server: ServerProcess, count: int) -> list[str]:
    connection = Connection("127.0.0.1", server.port, server.token)
    ids = []
    for _ in range(count):
        reply = await connection.request("POST", "/api/sessions")
        if reply.status != 201:
            raise RuntimeError(f"creating a session: {reply.status} {reply.body[:200]!r}")
        ids.append(reply.json()["session_id"])
    connection.close()
    return ids


async def warm_up(server: ServerProcess, plays: list[list[str]], count: int) -> None:
    """Untimed messages first: the first turns pay one-off costs (imports, caches)."""
    [sid] = await create_sessions(server, 1)
    connection = Connection("127.0.0.1", server.port, server.token)
    texts = [text for play in plays for text in play]
    for n in range(count):
        outcome = Outcome(0, n, time.monotonic())
        await send_message(connection, sid, f"warm-{n}", texts[n % len(texts)], outcome, 60)
        if outcome.error:
            raise RuntimeError(f"warm-up message failed: {outcome.error}\n{server.log_tail()}")
    connection.close()


async def open_loop(server: ServerProcess, plays: list[list[str]], rate: float, seed: int,
                    timeout: float) -> tuple[list[Outcome], float]:
    """Phase 1 (see the module docstring): the outcomes, and the time the first message was due."""
    sessions, messages = len(plays), len(plays[0])
    ids = await create_sessions(server, sessions)
    rng = random.Random(seed)
    start = time.monotonic() + 0.5  # every connection's coroutine is waiting before the first arrival
    arrivals, clock = [], start
    for _ in range(sessions * messages):
        arrivals.append(clock)
        clock += rng.expovariate(rate)
    outcomes = [[Outcome(s, i, arrivals[i * sessions + s]) for i in range(messages)] for s in range(sessions)]

    async def play(session: int) -> None:
        connection = Connection("127.0.0.1", server.port, server.token)
        for index, outcome in enumerate(outcomes[session]):
            delay = outcome.scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await send_message(connection, ids[session], f"m{index}", plays[session][index], outcome, timeout)
        connection.close()

    await asyncio.gather(*(play(s) for s in range(sessions)))
    return [o for per_session in outcomes for o in per_session], start


def open_loop_summary(outcomes: list[Outcome], start: float, rate: float) -> dict[str, Any]:
    answered = [o for o in outcomes if o.error is None]
    finished = max((o.done for o in outcomes), default=start)
    return {
        "messages": len(outcomes), "answered": len(answered), "errors": sum(o.error is not None for o in outcomes),
        "error_kinds": error_counts(outcomes), "offered_rate_per_s": rate,
        "scheduled_span_seconds": max(o.scheduled for o in outcomes) - start,
        "achieved_throughput_per_s": len(answered) / (finished - start) if finished > start else None,
        "latency_from_schedule": latency_summary([o.done - o.scheduled for o in answered]),
        "service_time": latency_summary([o.done - o.sent for o in answered]),
        "send_lag": latency_summary([o.sent - o.scheduled for o in outcomes]),
    }


def pooled_summary(outcomes: list[Outcome], runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The repeats of the open loop as one: latencies over every message, throughput the runs' median."""
    answered = [o for o in outcomes if o.error is None]
    throughputs = sorted(r["achieved_throughput_per_s"] or 0.0 for r in runs)
    return {
        "messages": len(outcomes), "answered": len(answered), "errors": len(outcomes) - len(answered),
        "error_kinds": error_counts(outcomes), "offered_rate_per_s": runs[0]["offered_rate_per_s"],
        "achieved_throughput_per_s": percentile(throughputs, 50),
        "latency_from_schedule": latency_summary([o.done - o.scheduled for o in answered]),
        "service_time": latency_summary([o.done - o.sent for o in answered]),
        "send_lag": latency_summary([o.sent - o.scheduled for o in outcomes]),
        "p95_ms_by_run": [r["latency_from_schedule"]["p95_ms"] for r in runs],
    }


async def closed_loop(server: ServerProcess, plays: list[list[str]], clients: int, seconds: float,
                      timeout: float) -> dict[str, Any]:
    """``clients`` clients each sending back-to-back for ``seconds`` (a new session every len(play) messages)."""
    messages = len(plays[0])
    outcomes: list[Outcome] = []
    sessions_made = 0
    stop_at = time.monotonic() + seconds

    async def client(number: int) -> None:
        nonlocal sessions_made
        connection = Connection("127.0.0.1", server.port, server.token)
        turn = 0
        sid = ""
        while time.monotonic() < stop_at:
            index = turn % messages
            if index == 0:
                reply = await connection.request("POST", "/api/sessions")
                sid = reply.json()["session_id"]
                sessions_made += 1
            outcome = Outcome(number, turn, time.monotonic())
            play = plays[(number + turn // messages) % len(plays)]
            await send_message(connection, sid, f"m{turn}", play[index], outcome, timeout)
            outcomes.append(outcome)
            turn += 1
        connection.close()

    started = time.monotonic()
    await asyncio.gather(*(client(n) for n in range(clients)))
    wall = time.monotonic() - started
    answered = [o for o in outcomes if o.error is None]
    return {"clients": clients, "seconds": wall, "messages": len(outcomes), "answered": len(answered),
            "errors": len(outcomes) - len(answered), "error_kinds": error_counts(outcomes),
            "sessions_created": sessions_made, "throughput_per_s": len(answered) / wall,
            "latency": latency_summary([o.done - o.sent for o in answered])}


async def saturation(server: ServerProcess, plays: list[list[str]], seconds: float, max_clients: int,
                     timeout: float) -> dict[str, Any]:
    """Phase 2: closed-loop levels 1, 2, 4, ... until two levels in a row add < 5% throughput."""
    levels, best, flat, clients = [], 0.0, 0, 1
    while clients <= max_clients:
        with CpuMeter(server) as cpu:
            level = await closed_loop(server, plays, clients, seconds, timeout)
        level["cpu"] = cpu.result
        levels.append(level)
        print(f"    saturation, {clients} clients: {level['throughput_per_s']:.0f} messages/s, p95 "
              f"{level['latency']['p95_ms'] or 0:.0f} ms", file=sys.stderr, flush=True)
        if level["throughput_per_s"] > best * 1.05:
            best, flat = level["throughput_per_s"], 0
        else:
            best, flat = max(best, level["throughput_per_s"]), flat + 1
            if flat >= 2:
                break
        clients *= 2
    top = max(levels, key=lambda level: level["throughput_per_s"])
    return {"levels": levels, "max_throughput_per_s": top["throughput_per_s"], "at_clients": top["clients"],
            "stopped": "two levels under +5%" if flat >= 2 else f"reached --max-concurrency {max_clients}"}


# ---------------------------------------------------------------- kill -9 and restart


async def kill_phase(workdir: Path, data_dir: Path, mirror: Path | None, plays: list[list[str]], kill_at: int,
                     threads: int, timeout: float) -> dict[str, Any]:
    """Phase 4 (see the module docstring)."""
    db = workdir / "kill.sqlite3"
    sessions, messages = len(plays), len(plays[0])
    first = start_server(workdir, data_dir, mirror, db, name="kill-first", threads=threads)
    ids = await create_sessions(first, sessions)
    seen: dict[tuple[int, int], Outcome] = {}
    answered = 0
    killed = asyncio.Event()

    async def play(session: int) -> None:
        nonlocal answered
        connection = Connection("127.0.0.1", first.port, first.token)
        for index in range(messages):
            if killed.is_set():
                break
            outcome = Outcome(session, index, time.monotonic())
            seen[(session, index)] = outcome
            await send_message(connection, ids[session], f"m{index}", plays[session][index], outcome, timeout)
            if outcome.error is not None:
                break  # the server is gone: this client stops, as a person's would
            answered += 1
            if answered >= kill_at and not killed.is_set():
                first.kill()  # SIGKILL: no shutdown code runs
                killed.set()
        connection.close()

    try:
        await asyncio.gather(*(play(s) for s in range(sessions)))
    finally:
        first.kill()
    in_flight = sum(o.error is not None for o in seen.values())
    with sqlite3.connect(db) as check:
        integrity = check.execute("PRAGMA integrity_check").fetchone()[0]

    second = start_server(workdir, data_dir, mirror, db, name="kill-second", threads=threads)
    try:
        report = _check_after_restart(second, ids, plays, seen, timeout)
        report.update(turns_run_after_restart=int(second.metric("convrec_turns_total")),
                      replays_after_restart=int(second.metric("convrec_replays_total")))
    finally:
        second.stop()
    report.update(
        sessions=sessions, messages_per_session=messages, kill_after_answers=kill_at,
        answered_before_kill_seen_by_client=sum(o.error is None for o in seen.values()),
        requests_cut_off_by_the_kill=in_flight, integrity_check=integrity,
        restart_seconds=second.start_seconds)
    report["each_message_answered_once"] = (
        report["all_answered_after_resend"] and report["corrupted"] == 0 and report["sessions_lost"] == 0
        and report["turns_run_after_restart"] == report["newly_answered_after_restart"]
        and report["replays_after_restart"] == report["answered_in_store_before_resend"]
        and report["replay_mismatches"] == 0 and report["turn_sequence_errors"] == 0)
    return report


def _check_after_restart(server: ServerProcess, ids: list[str], plays: list[list[str]],
                         seen: dict[tuple[int, int], Outcome], timeout: float) -> dict[str, Any]:
    lost = corrupted = order_errors = answered_in_store = recorded_unanswered = reply_lost = 0
    replay_mismatches = newly_answered = sequence_errors = resend_errors = 0
    complete = True
    for session, sid in enumerate(ids):
        reply = server.call("GET", f"/api/sessions/{sid}")
        if reply.status != 200:
            lost += 1
            continue
        history = reply.json()["messages"]
        expected = [f"m{i}" for i in range(len(history))]
        if [m["client_message_id"] for m in history] != expected:
            order_errors += 1  # not the messages sent, in the order sent
        flags = [m["answered"] for m in history]
        if flags != sorted(flags, reverse=True) or flags.count(False) > 1:
            order_errors += 1  # answered ones first, then at most the one in flight
        stored = {m["client_message_id"]: m for m in history}
        for index, message in enumerate(history):
            outcome = seen.get((session, index))
            if message["text"] != plays[session][index]:
                corrupted += 1
            if message["answered"]:
                answered_in_store += 1
                if outcome is not None and outcome.answer is not None:
                    client = outcome.answer
                    if (message["reply"] != client["reply"] or [r["item_id"] for r in message["recommendations"]]
                            != [r["item_id"] for r in client["recommendations"]]):
                        corrupted += 1
                else:
                    reply_lost += 1  # committed, but the kill cut the reply off: a retry gets it
            else:
                recorded_unanswered += 1
        for (s, index), outcome in seen.items():  # every answer a client saw is in the store
            if s == session and outcome.answer is not None and not stored.get(f"m{index}", {}).get("answered"):
                corrupted += 1
        # every message again, with its id: answered ones replayed and identical, the others answered now
        turns = []
        for index, text in enumerate(plays[session]):
            again = server.call("POST", f"/api/sessions/{sid}/messages",
                                {"client_message_id": f"m{index}", "text": text}, timeout=timeout)
            if again.status != 200:
                resend_errors += 1
                continue
            body = again.json()
            before = stored.get(f"m{index}")
            was_answered = bool(before and before["answered"])
            if body["replayed"] != was_answered:
                replay_mismatches += 1
            if was_answered and (body["reply"] != before["reply"] or [r["item_id"] for r in body["recommendations"]]
                                 != [r["item_id"] for r in before["recommendations"]]):
                replay_mismatches += 1
            if not body["replayed"]:
                newly_answered += 1
            turns.append(body["turn"])
        if turns != list(range(1, len(plays[session]) + 1)):
            sequence_errors += 1  # each message one turn, in order, continuing the state
        final = server.call("GET", f"/api/sessions/{sid}").json()["messages"]
        if [m["client_message_id"] for m in final] != [f"m{i}" for i in range(len(plays[session]))] or not all(
                m["answered"] for m in final):
            complete = False
    return {"sessions_lost": lost, "corrupted": corrupted, "history_order_errors": order_errors,
            "answered_in_store_before_resend": answered_in_store, "recorded_unanswered": recorded_unanswered,
            "answered_but_reply_cut_off": reply_lost, "resend_errors": resend_errors,
            "replay_mismatches": replay_mismatches, "newly_answered_after_restart": newly_answered,
            "turn_sequence_errors": sequence_errors, "all_answered_after_resend": complete and resend_errors == 0}


# ---------------------------------------------------------------- the LLM over capacity


async def llm_phase(workdir: Path, data_dir: Path, mirror: Path | None, texts: list[str], model: str,
                    args: argparse.Namespace) -> dict[str, Any]:
    """Phase 5 (see the module docstring). Every message has a text of its own (``texts``)."""
    extra = ("--model", model, "--max-wait", str(args.llm_max_wait))
    server = start_server(workdir, data_dir, mirror, workdir / "llm.sqlite3", name="llm", threads=args.server_threads,
                          extra=extra)
    try:
        # capacity: sequential turns, one session each (the first one untimed: the model's first request)
        ids = await create_sessions(server, args.llm_probe_turns + 1)
        connection = Connection("127.0.0.1", server.port, server.token)
        probe = []
        for n, sid in enumerate(ids):
            outcome = Outcome(n, 0, time.monotonic())
            await send_message(connection, sid, "probe", texts[n], outcome, args.llm_timeout)
            if outcome.error is not None:
                raise RuntimeError(f"LLM probe turn failed: {outcome.error}\n{server.log_tail()}")
            if n:
                probe.append(outcome.done - outcome.sent)
        connection.close()
        service_s = percentile(probe, 50) or 1.0
        rate = args.llm_overload / service_s
        count = min(max(1, round(rate * args.llm_seconds)), len(texts) - len(ids))
        ids = await create_sessions(server, count)
        rng = random.Random(args.seed)
        start, clock, outcomes = time.monotonic() + 0.5, 0.0, []
        for n in range(count):
            outcomes.append(Outcome(n, 0, start + clock))
            clock += rng.expovariate(rate)

        async def one(outcome: Outcome) -> None:
            await asyncio.sleep(max(0.0, outcome.scheduled - time.monotonic()))
            own = Connection("127.0.0.1", server.port, server.token)
            await send_message(own, ids[outcome.session], "m0", texts[len(probe) + 1 + outcome.session], outcome,
                               args.llm_timeout)
            own.close()

        with CpuMeter(server) as cpu:
            await asyncio.gather(*(one(o) for o in outcomes))
        busy = [o for o in outcomes if o.status == 503]
        answered = [o for o in outcomes if o.error is None]
        return {
            "model": model, "max_wait_s": args.llm_max_wait, "client_timeout_s": args.llm_timeout,
            "turn_slots": 1, "probe_turn_seconds": probe, "service_seconds_median": service_s,
            "capacity_per_s": 1 / service_s, "offered_rate_per_s": rate, "overload": args.llm_overload,
            "seconds": args.llm_seconds, "messages": count, "answered": len(answered),
            "busy_503": len(busy), "busy_503_with_retry_after": sum(o.retry_after is not None for o in busy),
            "retry_after_values": dict(Counter(o.retry_after or "-" for o in busy)),
            "client_timeouts": sum(o.error == "timeout" for o in outcomes),
            "other_errors": error_counts([o for o in outcomes if o.error not in (None, "timeout")
                                          and o.status != 503]),
            "answered_latency": latency_summary([o.done - o.sent for o in answered]),
            "busy_503_latency": latency_summary([o.done - o.sent for o in busy]),
            "server_busy_counter": int(server.metric("convrec_busy_total")), "cpu": cpu.result,
        }
    finally:
        server.stop()


# ---------------------------------------------------------------- driver


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument("--quick", action="store_true", help="smoke settings (see the module docstring)")
    parser.add_argument("--sessions", type=int, default=None, help="open-loop sessions (default 100; quick 10)")
    parser.add_argument("--messages", type=int, default=None, help="messages per session (default 5; quick 3)")
    parser.add_argument("--rate", type=float, default=None, help="open-loop messages/s in total (default 100; "
                        "quick 20)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="open-loop runs, each with fresh sessions and its own arrivals (default 3; quick 1)")
    parser.add_argument("--timeout", type=float, default=30.0, help="client time-out per message, s (default 30)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed messages first (default 20; quick 3)")
    parser.add_argument("--saturation-seconds", type=float, default=None,
                        help="seconds per closed-loop level (default 8; quick 1)")
    parser.add_argument("--max-concurrency", type=int, default=None, help="last closed-loop level (default 64; "
                        "quick 4)")
    parser.add_argument("--skip-saturation", action="store_true")
    parser.add_argument("--kill-sessions", type=int, default=None, help="sessions of the kill phase (default 20; "
                        "quick 4)")
    parser.add_argument("--kill-messages", type=int, default=None, help="messages each (default 8; quick 4)")
    parser.add_argument("--kill-at", type=int, default=None,
                        help="answers before the SIGKILL (default 40% of all; quick 6)")
    parser.add_argument("--skip-kill", action="store_true")
    parser.add_argument("--llm", default=None, metavar="MODEL",
                        help="also run the LLM queueing phase with this local model (e.g. smollm2-135m)")
    parser.add_argument("--llm-max-wait", type=float, default=5.0, help="the server's --max-wait (default 5 s)")
    parser.add_argument("--llm-overload", type=float, default=3.0,
                        help="offered rate as a multiple of the measured capacity (default 3)")
    parser.add_argument("--llm-seconds", type=float, default=40.0, help="length of the overload, s (default 40)")
    parser.add_argument("--llm-timeout", type=float, default=60.0, help="client time-out with the LLM (default 60 s)")
    parser.add_argument("--llm-probe-turns", type=int, default=4, help="sequential turns measuring capacity")
    parser.add_argument("--server-threads", type=int, default=1,
                        help="the server's OMP/OpenBLAS/MKL threads (default 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mirror", type=Path, default=None,
                        help="raw data mirror (default $CONVREC_DATA_MIRROR or ../shared/data)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data dir holding (or to receive) the dataset; default: a fresh temporary dir")
    args = parser.parse_args(argv)
    defaults = {"sessions": (100, 10), "messages": (5, 3), "rate": (TARGET_RATE, 20.0), "warmup": (20, 3),
                "repeats": (3, 1),
                "saturation_seconds": (8.0, 1.0), "max_concurrency": (64, 4), "kill_sessions": (20, 4),
                "kill_messages": (8, 4)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.kill_at is None:
        args.kill_at = 6 if args.quick else max(1, int(0.4 * args.kill_sessions * args.kill_messages))
    for name in ("sessions", "messages", "repeats", "kill_sessions", "kill_messages", "kill_at", "max_concurrency",
                 "server_threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.rate <= 0 or args.saturation_seconds <= 0 or args.timeout <= 0:
        parser.error("--rate, --saturation-seconds and --timeout must be positive")
    if args.kill_at >= args.kill_sessions * args.kill_messages:
        parser.error("--kill-at must be below --kill-sessions x --kill-messages (some messages must be left)")
    return args


def _run(coroutine: Callable[[], Awaitable[Any]]) -> Any:
    return asyncio.run(coroutine())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    machine = common.machine_info()
    others_at_start = other_experiments()
    from convrec.data.load import load_dataset

    mirror = common.optional_mirror(args.mirror, args.data_dir)
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="convrec-bench-serve-data-")) if temporary else args.data_dir.resolve()
    workdir = Path(tempfile.mkdtemp(prefix="convrec-bench-serve-"))
    report: dict[str, Any] = {}
    try:
        dataset = load_dataset(DATASET, data_dir, mirror)  # fetch + convert once, before any server starts
        plays = dialogue_messages(dataset, args.sessions, args.messages, args.seed)
        kill_plays = dialogue_messages(dataset, args.kill_sessions, args.kill_messages, args.seed + 1)
        llm_texts = distinct_messages(dataset, 1500, args.seed + 2) if args.llm else []
        items = len(dataset.catalog)
        del dataset
        print(f"  starting convrec serve ({RETRIEVER}, no LLM) ...", file=sys.stderr, flush=True)
        server = start_server(workdir, data_dir, mirror, workdir / "load.sqlite3", name="load",
                              threads=args.server_threads)
        try:
            _run(lambda: warm_up(server, plays, args.warmup))
            print(f"  open loop: {args.sessions} sessions x {args.messages} messages at {args.rate:g}/s ...",
                  file=sys.stderr, flush=True)
            runs, pooled = [], []
            for repeat in range(args.repeats):
                with CpuMeter(server) as cpu:
                    outcomes, start = _run(lambda seed=args.seed + repeat: open_loop(server, plays, args.rate, seed,
                                                                                     args.timeout))
                runs.append({**open_loop_summary(outcomes, start, args.rate), "cpu": cpu.result})
                pooled += outcomes
                print(f"    run {repeat + 1}: p95 {runs[-1]['latency_from_schedule']['p95_ms'] or 0:.1f} ms",
                      file=sys.stderr, flush=True)
            report["open_loop"] = {**pooled_summary(pooled, runs), "cpu": pooled_cpu([r["cpu"] for r in runs]),
                                   "sessions": args.sessions, "messages_per_session": args.messages,
                                   "repeats": args.repeats, "runs": runs}
            if not args.skip_saturation:
                print("  saturation (closed loop) ...", file=sys.stderr, flush=True)
                report["saturation"] = _run(lambda: saturation(server, plays, args.saturation_seconds,
                                                               args.max_concurrency, args.timeout))
            report["server"] = {"argv": [a for a in server.argv if a != sys.executable][1:],
                                "start_seconds": server.start_seconds,
                                "turns_total": int(server.metric("convrec_turns_total")),
                                "busy_total": int(server.metric("convrec_busy_total")),
                                "peak_rss_mib": _peak_rss_mib(server.process.pid)}
            errors_in_log = [line for line in server.log_tail(10**7).splitlines()
                             if "unexpected error" in line or "Traceback" in line]
            report["server"]["unexpected_errors_logged"] = len(errors_in_log)
        finally:
            server.stop()
        if not args.skip_kill:
            print(f"  kill -9: {args.kill_sessions} sessions x {args.kill_messages} messages, SIGKILL after "
                  f"{args.kill_at} answers ...", file=sys.stderr, flush=True)
            report["kill_restart"] = _run(lambda: kill_phase(workdir, data_dir, mirror, kill_plays, args.kill_at,
                                                             args.server_threads, args.timeout))
        if args.llm:
            print(f"  LLM queueing with {args.llm} ...", file=sys.stderr, flush=True)
            report["llm_queueing"] = _run(lambda: llm_phase(workdir, data_dir, mirror, llm_texts, args.llm, args))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    others_at_end = other_experiments()
    loop = report["open_loop"]
    targets = {}
    if args.sessions == 100 and args.messages == 5 and args.rate == TARGET_RATE:
        targets[f"open_loop_p95_under_{TARGET_P95_MS:g}ms"] = (loop["latency_from_schedule"]["p95_ms"] or 1e9) < \
            TARGET_P95_MS
        targets["open_loop_zero_errors"] = loop["errors"] == 0
    if "kill_restart" in report:
        targets["kill_restart_no_session_lost"] = report["kill_restart"]["sessions_lost"] == 0
        targets["kill_restart_each_message_answered_once"] = report["kill_restart"]["each_message_answered_once"]
    final = common.rounded({
        "benchmark": "serve",
        "description": "convrec serve on loopback: open-loop latency and throughput (100 sessions x 5 messages at "
        "100/s), closed-loop saturation, CPU of the load generator and of the server, SIGKILL mid-load and "
        "restart, and (with --llm) queueing over capacity",
        "command": common.command_info(SCRIPT, argv),
        "machine": common.finish_machine_info(machine),
        "settings": {
            "quick": args.quick, "dataset": DATASET, "items": items, "recommender": RETRIEVER, "llm": None,
            "server": f"convrec serve --dataset {DATASET} --retriever {RETRIEVER} --no-llm (one process, uvicorn, "
            f"turn slots = CPU count, bearer token, SQLite WAL), OMP/OpenBLAS threads {args.server_threads}",
            "client": "asyncio HTTP/1.1, one keep-alive connection per session, in this process",
            "messages": f"ReDial test dialogues' seeker turns, one dialogue per session (seed {args.seed})",
            "sessions": args.sessions, "messages_per_session": args.messages, "rate_per_s": args.rate,
            "arrivals": "Poisson (seeded); message k // sessions of session k % sessions; a session waits for its "
            "previous reply; latency from the scheduled time",
            "timeout_s": args.timeout, "warmup_messages": args.warmup,
            "saturation_seconds": args.saturation_seconds, "max_concurrency": args.max_concurrency,
            "kill_sessions": args.kill_sessions, "kill_messages": args.kill_messages, "kill_at": args.kill_at,
            "llm_model": args.llm, "seed": args.seed,
            "targets": f"open loop p95 < {TARGET_P95_MS:g} ms and 0 errors at 100 sessions x 5 messages, "
            f"{TARGET_RATE:g}/s; 0 sessions lost and each message answered once across kill -9 and restart",
        },
        "other_load": {
            "convrec_results_at_start": others_at_start, "convrec_results_at_end": others_at_end,
            "note": "the load generator and the server share the machine's cores; 'other_processes_cores' in each "
            "phase's cpu is the machine's busy CPU minus both",
        },
        **report,
        "targets": targets,
        "total_seconds": time.perf_counter() - started,
    })
    print_tables(final)
    common.write_report(args.out, final)
    return final


def _peak_rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _shown(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    return common.fmt(value)


def print_tables(report: dict[str, Any]) -> None:
    fmt = common.fmt
    loop = report["open_loop"]
    rows = []
    for label, key in (("latency from schedule", "latency_from_schedule"), ("service time", "service_time"),
                       ("send lag", "send_lag")):
        s = loop[key]
        rows.append([label, fmt(s["p50_ms"], 1), fmt(s["p95_ms"], 1), fmt(s["p99_ms"], 1), fmt(s["max_ms"], 1)])
    common.print_table(f"Open loop: {loop['sessions']} sessions x {loop['messages_per_session']} messages at "
                       f"{fmt(loop['offered_rate_per_s'], 0)}/s ({report['settings']['recommender']}, no LLM), "
                       f"{loop['repeats']} run(s) pooled",
                       ["", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows)
    cpu = loop["cpu"]
    print(f"answered {loop['answered']}/{loop['messages']}, errors {loop['errors']} {loop['error_kinds'] or ''}; "
          f"throughput {fmt(loop['achieved_throughput_per_s'], 1)}/s; cores: load generator "
          f"{fmt(cpu['load_generator_cores'], 2)}, server {fmt(cpu['server_cores'], 2)}, other "
          f"{fmt(cpu['other_processes_cores'], 2)}, stolen {fmt(cpu['steal_cores'], 2)}; p95 by run (ms): "
          + ", ".join(fmt(p, 1) for p in loop["p95_ms_by_run"]))
    if "saturation" in report:
        sat = report["saturation"]
        rows = [[level["clients"], fmt(level["throughput_per_s"], 1), fmt(level["latency"]["p50_ms"], 1),
                 fmt(level["latency"]["p95_ms"], 1), fmt(level["latency"]["p99_ms"], 1), level["errors"],
                 fmt(level["cpu"]["load_generator_cores"], 2), fmt(level["cpu"]["server_cores"], 2),
                 fmt(level["cpu"]["other_processes_cores"], 2)] for level in sat["levels"]]
        common.print_table("Saturation (closed loop)", ["clients", "messages/s", "p50 ms", "p95 ms", "p99 ms",
                                                        "errors", "generator cores", "server cores",
                                                        "other cores"], rows)
        print(f"saturation throughput {fmt(sat['max_throughput_per_s'], 1)} messages/s at {sat['at_clients']} "
              f"clients ({sat['stopped']})")
    if "kill_restart" in report:
        kill = report["kill_restart"]
        keys = ("sessions", "answered_before_kill_seen_by_client", "requests_cut_off_by_the_kill", "integrity_check",
                "sessions_lost", "corrupted", "history_order_errors", "answered_in_store_before_resend",
                "answered_but_reply_cut_off", "recorded_unanswered", "replays_after_restart",
                "newly_answered_after_restart", "turns_run_after_restart", "replay_mismatches",
                "turn_sequence_errors", "each_message_answered_once")
        common.print_table("kill -9 mid-load, restart on the same SQLite file", ["", "value"],
                           [[key.replace("_", " "), _shown(kill[key])] for key in keys])
    if "llm_queueing" in report:
        llm = report["llm_queueing"]
        keys = ("model", "capacity_per_s", "offered_rate_per_s", "messages", "answered", "busy_503",
                "busy_503_with_retry_after", "client_timeouts", "other_errors")
        rows = [[key.replace("_", " "), _shown(llm[key])] for key in keys]
        rows += [["answered p50 / p95 ms", f"{fmt(llm['answered_latency']['p50_ms'], 0)} / "
                  f"{fmt(llm['answered_latency']['p95_ms'], 0)}"],
                 ["503 p50 / p95 ms", f"{fmt(llm['busy_503_latency']['p50_ms'], 0)} / "
                  f"{fmt(llm['busy_503_latency']['p95_ms'], 0)}"]]
        common.print_table(f"LLM over capacity (max wait {fmt(llm['max_wait_s'], 0)} s)", ["", "value"], rows)
    for name, met in report["targets"].items():
        print(f"{name}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
