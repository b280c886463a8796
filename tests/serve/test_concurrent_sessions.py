"""Many conversations over one :class:`~convrec.serve.engine.Engine` at once (issue 14, item 1): 4 sessions
driven from threads (8 until 2026-12-06: the test took 100 s of the suite; 4 overlap just as well), with the real SmolLM2 behind a loopback HTTP server and no response cache, say what
the same sessions say one after another, and the LLM usage each turn reports (counted from its own
responses) adds up to what the server saw.

The server side is counted by :class:`CountingProxy`, a small HTTP forwarder in front of llama.cpp's own
OpenAI-compatible endpoint: it counts the chat requests and adds up the token counts of the answers it
passes on. Real INSPIRED data, itemknn retriever, pointwise re-ranking of 2 candidates and the LLM's
rewrite of each reply (``polish``), so both kinds of request are counted.

The model runs here without llama.cpp's prompt-prefix cache (``cache_prompt=False``), because that cache
makes answers depend on what was asked before, concurrent or not: a prompt whose prefix comes from the
cache is computed in other batches than one read whole, and the logits differ. Measured with SmolLM2 on
these 16 turns (3 candidates each, 2026-12-04): two sequential runs one after the other gave P(yes) up to
0.06 apart and another order in 1 turn of 16, and so did a concurrent run against a sequential one; with
the cache off, sequential, repeated and concurrent runs gave identical scores to the last bit.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from convrec.data.dataset import CRSDataset
from convrec.llm import LLMClient
from convrec.llm.config import LocalOptions
from convrec.llm.local import LocalLLM
from convrec.llm.models import resolve_local_model
from convrec.llm.openai_backend import OpenAICompatibleLLM
from convrec.serve.build import ChatConfig, build_engine
from convrec.serve.engine import Engine
from convrec.serve.state import SessionOptions, TurnRecord

# Four different conversations of two messages each (titles of the INSPIRED catalogue).
SCRIPTS = [
    ("I loved The Conjuring, something scary?", "Maybe older ones"),
    ("Toy Story is my favourite", "Something for the whole family"),
    ("I liked Avengers: Endgame", "More action please"),
]  # three sessions: enough to overlap on 2 cores (each turn is 3 real LLM calls)


class CountingProxy:
    """Forwards every request to ``target`` (an http://host:port) and counts the chat completions it passes
    on, with the tokens their answers report. Loopback only; stopped by :meth:`close`."""

    def __init__(self, target: str):
        self.target = target
        self.lock = threading.Lock()
        self.reset()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the client expects

            def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")}
                forward = urllib.request.Request(proxy.target + self.path, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(forward, timeout=120) as answer:
                    status, payload = answer.status, answer.read()
                if self.path.endswith("/chat/completions"):
                    proxy.count(json.loads(payload).get("usage") or {})
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def reset(self) -> None:
        with self.lock:
            self.requests = self.prompt_tokens = self.completion_tokens = 0

    def count(self, usage: dict) -> None:
        with self.lock:
            self.requests += 1
            self.prompt_tokens += int(usage.get("prompt_tokens", 0))
            self.completion_tokens += int(usage.get("completion_tokens", 0))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def smollm2_uncached() -> Iterator[LocalLLM]:
    """SmolLM2 without the prompt-prefix cache (see the module docstring), one thread as in ``smollm2``."""
    options = LocalOptions(n_ctx=1024, n_threads=1, cache_prompt=False)
    with LocalLLM(resolve_local_model("smollm2-135m"), options, timeout_s=120) as llm:
        yield llm


@pytest.fixture(scope="module")
def proxy(smollm2_uncached: LocalLLM) -> Iterator[CountingProxy]:
    counting = CountingProxy(smollm2_uncached.http_base_url.removesuffix("/v1"))
    yield counting
    counting.close()


@pytest.fixture(scope="module")
def engine(inspired: CRSDataset, smollm2_uncached: LocalLLM, proxy: CountingProxy) -> Engine:
    backend = OpenAICompatibleLLM("smollm2-135m", proxy.base_url, smollm2_uncached.http_api_key, timeout_s=120)
    client = LLMClient(backend, cache=None, max_concurrency=len(SCRIPTS))  # no response cache: every call is real
    config = ChatConfig(polish=True, session=SessionOptions(k=2, top=2))
    return build_engine(inspired, config, llm=client)


def converse(engine: Engine, script: tuple[str, ...]) -> list[TurnRecord]:
    state = engine.new_state()
    records = []
    for message in script:
        state, record = engine.turn(state, message)
        records.append(record)
    return records


def said(records: list[TurnRecord]) -> list[tuple]:
    """What a conversation showed: per turn, the recommendations with their scores and the reply."""
    return [(record.recommendations, record.reply.text, record.reply.source, record.fallback) for record in records]


def usage(records: list[TurnRecord]) -> tuple[int, int, int]:
    """Requests sent (calls not answered by a cache), prompt and completion tokens, as the turns report them."""
    return (sum(r.timing.llm_calls - r.timing.cache_hits for r in records),
            sum(r.timing.prompt_tokens for r in records), sum(r.timing.completion_tokens for r in records))


@pytest.mark.slow
def test_concurrent_sessions_say_what_sequential_ones_say_and_count_their_own_usage(engine, proxy):
    proxy.reset()
    one_by_one = [converse(engine, script) for script in SCRIPTS]
    sequential_seen = (proxy.requests, proxy.prompt_tokens, proxy.completion_tokens)
    proxy.reset()
    with ThreadPoolExecutor(max_workers=len(SCRIPTS)) as pool:
        at_once = list(pool.map(lambda script: converse(engine, script), SCRIPTS))
    concurrent_seen = (proxy.requests, proxy.prompt_tokens, proxy.completion_tokens)

    assert [said(records) for records in at_once] == [said(records) for records in one_by_one]
    # Each turn asked the LLM about its 2 candidates and for its reply's rewrite: 3 requests, no failures.
    for records in at_once:
        assert [(r.timing.llm_calls, r.timing.cache_hits, r.fallback) for r in records] == [(3, 0, None)] * 2
        assert all(r.timing.prompt_tokens > 0 and r.timing.completion_tokens > 0 for r in records)
    # What each session reports adds up to what the server saw, whether the sessions overlapped or not.
    assert tuple(map(sum, zip(*(usage(records) for records in at_once), strict=True))) == concurrent_seen
    assert tuple(map(sum, zip(*(usage(records) for records in one_by_one), strict=True))) == sequential_seen
    assert concurrent_seen[0] == len(SCRIPTS) * 2 * 3
