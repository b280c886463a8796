"""Retries, timeouts, error reporting, cache hygiene and the concurrency limit, against failures on purpose.

``FaultyOpenAIServer`` is a FAKE: a stdlib HTTP server on 127.0.0.1 that answers chat-completion requests
with a scripted sequence of faults (500, 429 with Retry-After, a hang past the client timeout, malformed
JSON, 400) and plain echo replies. The client under test is the real one (SDK, retry loop, SQLite cache).
Waits are bounded: backoff bases are milliseconds, hangs end when the server stops.
"""

from __future__ import annotations

import http.server
import json
import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from convrec.llm import (
    ChatRequest,
    LLMClient,
    LLMRequestError,
    Prices,
    ResponseCache,
    RetriesExhaustedError,
    RetryPolicy,
)
from convrec.llm.openai_backend import OpenAICompatibleLLM
from convrec.llm.stream import stream_text_to, text_for_the_person

HANG_LIMIT_S = 10.0  # a "hang" reply never waits longer than this, even if the test forgets to stop it


class FaultyOpenAIServer:
    """FAKE OpenAI-compatible server for fault injection; each POST consumes the next scripted action.

    Actions: ``"ok"`` (echo the last user message), ``"500"``, ``"503"``, ``"400"``, ``"429:<seconds>"``
    (with ``Retry-After``), ``"hang"`` (no reply until the server stops), ``"malformed"`` (invalid JSON with
    status 200), ``"no_choices"`` (valid JSON that is no chat completion). After the script, ``"ok"``.
    ``ok_delay_s`` slows "ok" replies to make overlapping requests observable.
    """

    def __init__(self, script: list[str] | None = None, ok_delay_s: float = 0.0):
        self.script = list(script or [])
        self.ok_delay_s = ok_delay_s
        self.requests: list[dict] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def request_count(self) -> int:
        with self._lock:
            return len(self.requests)

    def __enter__(self) -> FaultyOpenAIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next_action(self, body: dict) -> str:
        with self._lock:
            self.requests.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.script.pop(0) if self.script else "ok"

    def _done(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def _handler_class(self) -> type[http.server.BaseHTTPRequestHandler]:
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
                action = server._next_action(body)
                try:
                    self._reply(action, body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up first (timeouts): expected
                finally:
                    server._done()

            def _reply(self, action: str, body: dict) -> None:
                if action == "ok" and body.get("stream"):
                    self._send_events(_chunks(body))
                elif action == "ok":
                    time.sleep(server.ok_delay_s)
                    self._send(200, _completion(body))
                elif action == "stream_error":  # a piece of the reply, then the server's error inside the stream
                    self._send_events([*_chunks(body)[:1], {"error": {"message": "scripted mid-stream error"}}])
                elif action == "stream_cut":  # a piece of the reply, then the connection closes: no final chunk
                    self._send_events(_chunks(body)[:1])
                elif action in {"500", "503", "400"}:
                    self._send(int(action), {"error": {"message": f"scripted {action}", "type": "fake"}})
                elif action.startswith("429:"):
                    headers = {"Retry-After": action.split(":", 1)[1]}
                    self._send(429, {"error": {"message": "scripted rate limit", "type": "fake"}}, headers)
                elif action == "hang":
                    server._stopping.wait(HANG_LIMIT_S)
                elif action == "malformed":
                    self._send_raw(200, b'{"id": "x", "choices": [ {not json')
                elif action == "no_choices":
                    self._send(200, {"id": "x", "object": "chat.completion"})
                else:
                    raise AssertionError(f"unknown scripted action {action!r}")

            def _send(self, status: int, payload: dict, headers: dict[str, str] | None = None) -> None:
                self._send_raw(status, json.dumps(payload).encode(), headers)

            def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _send_events(self, events: list[dict]) -> None:
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("connection", "close")
                self.end_headers()
                for event in events:
                    self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                    self.wfile.flush()
                if events and "error" not in events[-1] and events[-1]["choices"][-1]["finish_reason"]:
                    self.wfile.write(b"data: [DONE]\n\n")
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        return Handler


def _completion(body: dict) -> dict:
    last = body["messages"][-1]["content"]
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": f"echo: {last}"},
            }
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def _chunks(body: dict) -> list[dict]:
    """The echo reply as a chat-completion stream: two pieces, then the finish reason."""
    text = f"echo: {body['messages'][-1]['content']}"

    def chunk(content: str | None, finish: str | None) -> dict:
        return {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}]}

    return [chunk(text[:4], None), chunk(text[4:], None), chunk(None, "stop")]


@pytest.fixture
def make_client(tmp_path) -> Iterator:
    clients: list[LLMClient] = []

    def make(
        server: FaultyOpenAIServer, max_retries: int = 3, timeout_s: float = 2.0, **options
    ) -> LLMClient:
        backend = OpenAICompatibleLLM("fake-model", server.base_url, "fake-key", timeout_s=timeout_s)
        retry = RetryPolicy(max_retries=max_retries, base_s=0.01, max_s=0.05)
        cache = ResponseCache(tmp_path / f"cache-{len(clients)}.sqlite")
        client = LLMClient(backend, cache, retry, rng=random.Random(0), **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def ask(text: str = "hi") -> ChatRequest:
    return ChatRequest.from_prompt(text, max_tokens=8)


def test_server_errors_are_retried_until_success(make_client):
    with FaultyOpenAIServer(["500", "503", "ok"]) as server:
        client = make_client(server)
        assert client.complete(ask()).text == "echo: hi"
    assert server.request_count == 3
    assert client.usage.retries == 2 and client.usage.backend_calls == 3 and client.usage.failures == 0


def test_rate_limit_waits_as_long_as_retry_after_says(make_client):
    with FaultyOpenAIServer(["429:0.3", "ok"]) as server:
        client = make_client(server)
        started = time.monotonic()
        assert client.complete(ask()).text == "echo: hi"
        elapsed = time.monotonic() - started
    assert server.request_count == 2
    assert 0.3 <= elapsed < 3  # the backoff alone would have been about 0.01 s


def test_a_hang_past_the_timeout_is_cut_and_retried(make_client):
    with FaultyOpenAIServer(["hang", "ok"]) as server:
        client = make_client(server, timeout_s=0.4)
        started = time.monotonic()
        assert client.complete(ask()).text == "echo: hi"
        elapsed = time.monotonic() - started
    assert server.request_count == 2
    assert 0.4 <= elapsed < 3


def test_malformed_replies_are_retried(make_client):
    with FaultyOpenAIServer(["malformed", "no_choices", "ok"]) as server:
        client = make_client(server)
        assert client.complete(ask()).text == "echo: hi"
    assert server.request_count == 3


def test_attempts_are_bounded_and_the_final_error_says_what_happened(make_client):
    with FaultyOpenAIServer(["500", "hang", "malformed", "500", "ok"]) as server:
        client = make_client(server, max_retries=2, timeout_s=0.3)
        with pytest.raises(RetriesExhaustedError) as caught:
            client.complete(ask())
    assert server.request_count == 3 and caught.value.attempts == 3
    message = str(caught.value)
    assert "gave up after 3 attempts (max_retries=2)" in message
    assert server.base_url in message and "fake-model" in message
    assert "attempt 1:" in message and "HTTP 500" in message
    assert "attempt 2:" in message and "timeout_s=0.3" in message
    assert "attempt 3:" in message and "not a valid chat completion" in message
    assert client.usage.failures == 1 and client.usage.calls == 0


def test_client_errors_are_not_retried(make_client):
    with FaultyOpenAIServer(["400", "ok"]) as server:
        client = make_client(server)
        with pytest.raises(LLMRequestError, match="HTTP 400.*scripted 400") as caught:
            client.complete(ask())
        assert caught.value.status_code == 400
        assert server.request_count == 1
        assert client.complete(ask()).text == "echo: hi"  # the next call is fine


def test_failures_never_reach_the_cache(make_client):
    with FaultyOpenAIServer(["500", "malformed", "500", "ok"]) as server:
        client = make_client(server, max_retries=2)
        with pytest.raises(RetriesExhaustedError):
            client.complete(ask())
        assert len(client.cache) == 0
        good = client.complete(ask())
        assert good.text == "echo: hi" and not good.cached and len(client.cache) == 1
        again = client.complete(ask())
        assert again.cached and again.text == "echo: hi"
        assert server.request_count == 4


def test_concurrency_limit_bounds_requests_in_flight(make_client):
    with FaultyOpenAIServer(ok_delay_s=0.15) as server:
        client = make_client(server, max_concurrency=2)
        requests = [ask(f"question {i}") for i in range(6)]
        responses = client.complete_many(requests, max_workers=6)
    assert [r.text for r in responses] == [f"echo: question {i}" for i in range(6)]
    assert server.max_in_flight == 2


def test_identical_requests_in_flight_are_sent_once(make_client):
    with FaultyOpenAIServer(ok_delay_s=0.2) as server:
        client = make_client(server, max_concurrency=4)
        responses = client.complete_many([ask("same")] * 4, max_workers=4)
    assert server.request_count == 1
    assert {r.text for r in responses} == {"echo: same"}
    assert client.usage.calls == 4 and client.usage.backend_calls == 1


def test_complete_many_can_return_failures_in_place(make_client):
    with FaultyOpenAIServer(["400"]) as server:
        client = make_client(server, max_concurrency=1)
        results = client.complete_many([ask("a"), ask("b")], return_exceptions=True)
    assert isinstance(results[0], LLMRequestError) and results[1].text == "echo: b"


def test_connection_refused_is_retried_then_reported(tmp_path):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = OpenAICompatibleLLM("fake-model", f"http://127.0.0.1:{port}/v1", "fake-key", timeout_s=1)
    client = LLMClient(backend, retry=RetryPolicy(max_retries=2, base_s=0.01), rng=random.Random(0))
    with pytest.raises(RetriesExhaustedError, match="connection failed") as caught:
        client.complete(ask())
    assert caught.value.attempts == 3
    client.close()


def test_usage_counts_tokens_and_cost_of_generated_replies_only(make_client):
    with FaultyOpenAIServer(["500"]) as server:
        prices = Prices(prompt_usd_per_1m=2.0, completion_usd_per_1m=8.0)
        client = make_client(server, prices=prices)
        for text in ["a", "b", "a"]:
            client.complete(ask(text))
    usage = client.usage
    assert (usage.calls, usage.cache_hits, usage.retries) == (3, 1, 1)
    assert (usage.prompt_tokens, usage.completion_tokens) == (20, 10)
    assert usage.cost_usd == pytest.approx((20 * 2.0 + 10 * 8.0) / 1e6)
    assert usage.wall_s > 0 and "3 calls (1 cached, 1 retries, 0 failed)" in usage.summary()


@pytest.mark.parametrize("fault", ["stream_error", "stream_cut"])
def test_a_stream_that_fails_mid_reply_is_retried_and_its_words_voided(make_client, fault):
    pieces, resets = [], []
    with FaultyOpenAIServer([fault, "ok"]) as server:
        client = make_client(server)
        with stream_text_to(pieces.append, lambda: resets.append(1)), text_for_the_person():
            response = client.complete(ask("hello"))
    assert response.text == "echo: hello" and response.finish_reason == "stop"
    assert client.usage.retries == 1 and resets == [1]
    assert pieces == ["echo", "echo", ": hello"]  # the failed attempt's piece, voided by the reset, then the retry
