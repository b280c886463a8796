"""A real ``convrec serve`` for the HTTP API's tests: started as a subprocess on a free loopback port with the
fast embedded defaults (redial, itemknn, no LLM), waited for on ``/ready``, talked to with urllib, and
killed (SIGKILL, for the restart tests) or stopped. Every error answer it gets is checked on the way: JSON
``{"error": {code, message, request_id}}`` and no traceback."""

from __future__ import annotations

import codecs
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

START_TIMEOUT_S = 120
PORT_TRIES = 3  # starts of a server whose probed port another process took first


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any  # parsed JSON, or the text when it is not JSON
    text: str


@dataclass
class Event:
    kind: str
    data: Any
    read: int  # which read of the socket brought it: events that arrive apart come in different reads
    at: float  # time.monotonic() when it arrived


def assert_clean_error(reply: Reply) -> None:
    """An error answer as the API promises: its JSON shape, a request id, and no stack trace anywhere."""
    assert "Traceback" not in reply.text and 'File "' not in reply.text, reply.text
    assert isinstance(reply.body, dict) and set(reply.body) == {"error"}, reply.text
    error = reply.body["error"]
    assert set(error) == {"code", "message", "request_id"} and error["code"] and error["message"], reply.text
    assert error["request_id"] == reply.headers.get("x-request-id"), (error, reply.headers)


@dataclass
class Server:
    process: subprocess.Popen
    base: str
    log_path: Path
    token: str | None = None
    argv: list[str] = field(default_factory=list)

    def request(self, method: str, path: str, body: Any = None, *, token: str | None | bool = True,
                headers: dict[str, str] | None = None, raw: bytes | None = None, timeout: float = 60) -> Reply:
        """``token`` True: the server's token (if any); a string: that one; None or False: none."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        bearer = self.token if token is True else (token or None)
        if bearer:
            request.add_header("Authorization", f"Bearer {bearer}")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status, got, content = response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            status, got, content = error.code, dict(error.headers), error.read()
        text = content.decode("utf-8", errors="replace")
        try:
            parsed = json.loads(text) if text else None
        except json.JSONDecodeError:
            parsed = text
        reply = Reply(status, {k.lower(): v for k, v in got.items()}, parsed, text)
        if status >= 400:
            assert_clean_error(reply)
        return reply

    def events(self, path: str, body: Any, timeout: float = 120) -> tuple[Reply, list[Event]]:
        """POST ``body`` to a server-sent-events endpoint and read the events as they arrive. An answer that is
        not an event stream (an error) comes back as the Reply, with no events."""
        url = urllib.parse.urlsplit(self.base)
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=timeout)
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {self.token}"} if self.token
                                                           else {})}
        try:
            connection.request("POST", path, body=json.dumps(body).encode(), headers=headers)
            response = connection.getresponse()
            got = {k.lower(): v for k, v in response.getheaders()}
            if response.status != 200 or not got.get("content-type", "").startswith("text/event-stream"):
                text = response.read().decode("utf-8", errors="replace")
                reply = Reply(response.status, got, json.loads(text) if text else None, text)
                if reply.status >= 400:
                    assert_clean_error(reply)
                return reply, []
            events: list[Event] = []
            buffer, reads = "", 0
            decoder = codecs.getincrementaldecoder("utf-8")()  # a character may be split between two reads
            while chunk := response.read1(65536):
                reads += 1
                buffer += decoder.decode(chunk)
                while "\n\n" in buffer:
                    block, buffer = buffer.split("\n\n", 1)
                    fields = dict(line.split(": ", 1) for line in block.splitlines())
                    events.append(Event(fields["event"], json.loads(fields["data"]), reads, time.monotonic()))
            assert buffer == "", f"the stream ended inside an event: {buffer!r}"
            return Reply(200, got, None, ""), events
        finally:
            connection.close()

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


def start_server(workdir: Path, mirror: Path, data_dir: Path, db: Path, *extra: str, token: str | None = None,
                 name: str = "server", model: str | None = None) -> Server:
    """``convrec serve --no-llm --retriever itemknn`` on redial (with ``model``: that local LLM re-ranks and
    writes the replies), waited for until /ready says ready. The free port is probed before the server binds
    it, so another process can take it in between (seen once in CI): a server that lost that race is started
    again on a fresh port, up to ``PORT_TRIES`` times; any other exit fails the test."""
    for attempt in range(1, PORT_TRIES + 1):
        server = _start_server_once(workdir, mirror, data_dir, db, *extra, token=token, name=name, model=model)
        if server.process.poll() is None or "address already in use" not in server.log() or attempt == PORT_TRIES:
            break
    if server.process.poll() is not None:
        raise AssertionError(f"the server exited with {server.process.returncode}:\n{server.log()[-3000:]}")
    return server


def _start_server_once(workdir: Path, mirror: Path, data_dir: Path, db: Path, *extra: str, token: str | None,
                       name: str, model: str | None) -> Server:
    """One start on one probed port: the server once ready, or the exited process (its log says why)."""
    port = free_port()
    log_path = workdir / f"{name}-{port}.log"
    llm = ["--model", model] if model else ["--no-llm"]
    argv = [sys.executable, "-m", "convrec", "serve", "--dataset", "redial", *llm, "--retriever", "itemknn",
            "--port", str(port), "--db", str(db), "--data-dir", str(data_dir), "--mirror", str(mirror), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CONVREC_CACHE_DIR": str(workdir / "cache")}
    env.pop("CONVREC_SERVE_TOKEN", None)
    if token is not None:
        env["CONVREC_SERVE_TOKEN"] = token
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT)
    server = Server(process, f"http://127.0.0.1:{port}", log_path, token, argv)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return server
        try:
            if server.request("GET", "/ready", timeout=2).body.get("ready"):
                return server
        except (urllib.error.URLError, ConnectionError, TimeoutError, AssertionError):
            pass
        time.sleep(0.1)
    server.kill()
    raise AssertionError(f"the server was not ready within {START_TIMEOUT_S} s:\n{server.log()[-3000:]}")


# The LLM writes the replies (the text that streams): SmolLM2, one llama.cpp thread
LLM_SERVE_CONFIG = """\
dataset = "redial"
[engine]
polish = true
[engine.llm]
backend = "local"
max_concurrency = 1
[engine.llm.local]
n_threads = 1
n_ctx = 2048
"""


def start_llm_server(workdir: Path, mirror: Path, data_dir: Path, db: Path, *extra: str, name: str) -> Server:
    """:func:`start_server` with SmolLM2 re-ranking and writing the replies (``LLM_SERVE_CONFIG``)."""
    config = workdir / f"{name}-serve.toml"
    config.write_text(LLM_SERVE_CONFIG, encoding="utf-8")
    return start_server(workdir, mirror, data_dir, db, "--config", str(config), "--max-wait", "120", *extra,
                        name=name, model="smollm2-135m")


def metric(server: Server, name: str, **labels: str) -> float:
    """One sample of /metrics (0 when absent)."""
    text = server.request("GET", "/metrics").text
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        if key == wanted or (labels and _same_sample(key, name, labels)):
            total += float(value)
    return total


def _same_sample(key: str, name: str, labels: dict[str, str]) -> bool:
    if not key.startswith(name + "{"):
        return False
    got = dict(part.split("=", 1) for part in key[len(name) + 1:-1].split(",") if "=" in part)
    return all(got.get(k) == f'"{v}"' for k, v in labels.items())
