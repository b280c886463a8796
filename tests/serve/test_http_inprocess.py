"""The HTTP API's parts that need a hand on the server: uvicorn in a thread of this process over a real engine
(ReDial, itemknn, no LLM), so a test can hold the turn slot a long LLM turn would hold (a 503 with
Retry-After, then the same message answered once), put an endpoint that fails into the app (a 500 with the
request id, the traceback in the log only), and read what the withholding of research text left out. Also:
the committed OpenAPI schema and configs/serve.toml agree with the code, and the command's flags are
checked with one-line errors."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from http_testing import Server, free_port

from convrec.cli.serve_cmd import DEFAULT_ENGINE, ServeConfig, openapi_document, read_config
from convrec.data.dataset import CRSDataset
from convrec.llm.errors import TransientLLMError
from convrec.llm.stream import active_sink, text_for_the_person
from convrec.serve.build import ChatConfig, build_engine
from convrec.serve.engine import Engine
from convrec.serve.http.app import create_app
from convrec.serve.http.concurrency import Admission, Busy, SessionLocks
from convrec.serve.http.present import Presenter
from convrec.serve.http.settings import RESEARCH_TEXT_FIELDS, ServeSettings
from convrec.serve.http.store import SessionStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def engine(redial: CRSDataset) -> Engine:
    return build_engine(redial, ChatConfig(llm=None))


class InProcess(Server):
    """A :class:`Server` whose uvicorn runs in a thread here (``app`` at hand)."""

    def __init__(self, app, uvicorn_server: uvicorn.Server, thread: threading.Thread, base: str):
        self.app, self.uvicorn_server, self.thread = app, uvicorn_server, thread
        super().__init__(None, base, Path("/dev/null"))  # type: ignore[arg-type]

    def stop(self) -> None:
        self.uvicorn_server.should_exit = True
        self.thread.join(20)


def serve_in_thread(engine: Engine, store: SessionStore, settings: ServeSettings, before=None) -> InProcess:
    app = create_app(engine, store, settings)
    if before is not None:
        before(app)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    return InProcess(app, server, thread, f"http://127.0.0.1:{port}")


@pytest.fixture(scope="module")
def held(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    """One turn at a time, waited for 0.3 s; research text withheld (explicitly: it listens on loopback)."""
    store = SessionStore(tmp_path_factory.mktemp("inprocess") / "s.db", "redial")

    def add_failing_route(app) -> None:
        @app.get("/api/fail")
        def fail() -> None:
            raise RuntimeError("a bug with a secret path /srv/secret.txt")

    settings = ServeSettings(turn_slots=1, max_wait_s=0.3, withhold_research_text=True)
    server = serve_in_thread(engine, store, settings, add_failing_route)
    yield server
    server.stop()
    store.close()


def test_a_turn_that_waits_too_long_is_a_503_with_retry_after_and_is_answered_once_later(held):
    sid = held.request("POST", "/api/sessions").body["session_id"]
    service = held.app.state.service
    with service.admission.enter():  # the only slot, held as a long LLM turn would hold it
        started = time.monotonic()
        busy = held.request("POST", f"/api/sessions/{sid}/messages", {"client_message_id": "m1", "text": "hi"})
        waited = time.monotonic() - started
    assert busy.status == 503 and busy.body["error"]["code"] == "busy"
    assert int(busy.headers["retry-after"]) >= 1 and 0.3 <= waited < 5  # waited max_wait_s, then answered
    history = held.request("GET", f"/api/sessions/{sid}").body["messages"]
    assert [(m["client_message_id"], m["answered"]) for m in history] == [("m1", False)]
    retried = held.request("POST", f"/api/sessions/{sid}/messages", {"client_message_id": "m1", "text": "hi"})
    assert retried.status == 200 and retried.body["replayed"] is False and retried.body["turn"] == 1
    assert held.request("POST", f"/api/sessions/{sid}/messages",
                        {"client_message_id": "m1", "text": "hi"}).body["replayed"] is True


def test_an_unexpected_error_is_a_500_with_the_request_id_and_its_traceback_goes_to_the_log(held, caplog):
    with caplog.at_level(logging.ERROR, logger="convrec.serve.http"):
        reply = held.request("GET", "/api/fail", headers={"X-Request-ID": "trace-me-1"})
    assert reply.status == 500 and reply.body["error"] == {
        "code": "internal_error", "message": reply.body["error"]["message"], "request_id": "trace-me-1"}
    assert "secret" not in reply.text and "RuntimeError" not in reply.text
    logged = [r for r in caplog.records if "trace-me-1" in r.getMessage()]
    assert logged and logged[0].exc_info and "secret.txt" in str(logged[0].exc_info[1])


def test_withheld_research_text_is_in_no_response(held, engine, redial):
    sid = held.request("POST", "/api/sessions").body["session_id"]
    message = "I love Jim Carrey in The Mask (1994)"
    answer = held.request("POST", f"/api/sessions/{sid}/messages", {"client_message_id": "m", "text": message}).body
    # the same turn, shown with research text: its reply and reasons name the cast (so something was withheld)
    state, record = engine.turn(engine.new_state(), message)
    shown = Presenter(engine).answer(state, record)["open"]
    assert "It stars Jim Carrey" in shown["reply"] and [r["item_id"] for r in shown["recommendations"]] == [
        r["item_id"] for r in answer["recommendations"]]
    items = [redial.catalog.get(r["item_id"]) for r in answer["recommendations"]]
    kept = {str(v).lower() for item in items for k, values in item.metadata.items() if k not in RESEARCH_TEXT_FIELDS
            for v in (values if isinstance(values, list) else [values])}
    withheld = {str(v).lower() for item in items for k in ("star", "writer")
                for v in item.metadata.get(k) or []} - kept
    plots = [item.metadata["plot"].lower() for item in items if item.metadata.get("plot")]
    assert withheld and plots
    session = held.request("GET", f"/api/sessions/{sid}").body
    item = held.request("GET", f"/api/items/{items[0].item_id}").body
    for text in (json.dumps(answer).lower(), json.dumps(session).lower(), json.dumps(item).lower()):
        assert not [name for name in withheld if name in text.replace(message.lower(), "")], text
        assert not [plot for plot in plots if plot[:40] in text]
        assert '"plot"' not in text and '"star"' not in text and '"writer"' not in text
    assert answer["reply"].startswith("How about Liar Liar (1997)?") and "genre" in answer["recommendations"][0][
        "facts"]


def test_a_stream_that_fails_after_its_first_words_ends_with_an_error_event(engine, tmp_path, monkeypatch):
    store = SessionStore(tmp_path / "s.db", "redial")
    server = serve_in_thread(engine, store, ServeSettings(withhold_research_text=False))
    try:
        sid = server.request("POST", "/api/sessions").body["session_id"]

        def writes_then_fails(state, text):  # a fault injector: the LLM's connection drops mid-reply
            with text_for_the_person():
                active_sink()("How about ")
            raise TransientLLMError("injected: the connection dropped mid-reply")

        monkeypatch.setattr(engine, "turn", writes_then_fails)
        body = {"client_message_id": "m1", "text": "I loved Alien (1979)"}
        reply, events = server.events(f"/api/sessions/{sid}/messages/stream", body)
        assert reply.status == 200 and [e.kind for e in events] == ["token", "error"]
        assert events[0].data == {"text": "How about "}
        failed = events[1].data
        assert failed["status"] == 503 and failed["error"]["code"] == "llm_unavailable"
        assert failed["retry_after"] >= 1 and failed["error"]["request_id"] == reply.headers["x-request-id"]
        assert "Traceback" not in json.dumps(failed) and "injected" not in json.dumps(failed)
        monkeypatch.undo()  # the LLM is back: the same id is answered, once
        history = server.request("GET", f"/api/sessions/{sid}").body["messages"]
        assert [(m["client_message_id"], m["answered"]) for m in history] == [("m1", False)]
        _, events = server.events(f"/api/sessions/{sid}/messages/stream", body)
        assert [e.kind for e in events] == ["answer"] and events[0].data["replayed"] is False
    finally:
        server.stop()
        store.close()


def test_the_harpo_agent_answers_through_the_api_with_its_reasons_and_action(redial, tmp_path):
    agent = build_engine(redial, ChatConfig(llm=None, agent="harpo"))
    store = SessionStore(tmp_path / "s.db", "redial")
    server = serve_in_thread(agent, store, ServeSettings())
    try:
        def talk(sid: str, message_id: str, text: str) -> dict:
            return server.request("POST", f"/api/sessions/{sid}/messages",
                                  {"client_message_id": message_id, "text": text}).body

        control, sid = (server.request("POST", "/api/sessions").body["session_id"] for _ in range(2))
        for session in (control, sid):
            answer = talk(session, "a1", "I love Jim Carrey in The Mask (1994)")
        assert answer["action"] == "recommend" and len(answer["recommendations"]) == 5
        # the agent's own reasons (not the two-stage engine's template), one per item
        assert all("you asked for Jim Carrey" in r["why"] for r in answer["recommendations"][:2])
        seen = talk(control, "a2", "more like that")["recommendations"][0]["item_id"]
        marked = server.request("POST", f"/api/sessions/{sid}/feedback", {"item_ids": [seen], "kind": "seen"})
        assert marked.status == 200
        assert seen not in {r["item_id"] for r in talk(sid, "a2", "more like that")["recommendations"]}
    finally:
        server.stop()
        store.close()


def test_cors_is_off_unless_origins_are_given(engine, tmp_path):
    store = SessionStore(tmp_path / "s.db", "redial")
    closed = serve_in_thread(engine, store, ServeSettings())
    opened = serve_in_thread(engine, store, ServeSettings(cors_origins=("https://example.org",)))
    try:
        origin = {"Origin": "https://example.org"}
        assert "access-control-allow-origin" not in closed.request("GET", "/health", headers=origin).headers
        allowed = opened.request("GET", "/health", headers=origin).headers
        assert allowed["access-control-allow-origin"] == "https://example.org"
        other = opened.request("GET", "/health", headers={"Origin": "https://evil.example"}).headers
        assert "access-control-allow-origin" not in other
    finally:
        closed.stop()
        opened.stop()
        store.close()


def test_session_locks_serialise_one_session_and_are_dropped_when_unused():
    locks = SessionLocks()
    order: list[str] = []
    with locks.hold("a", 1):
        assert len(locks) == 1
        with locks.hold("b", 0.1):  # another session runs meanwhile
            order.append("b")
        with pytest.raises(Busy) as busy, locks.hold("a", 0.05):
            order.append("never")
        assert busy.value.retry_after_s >= 1
    assert order == ["b"] and len(locks) == 0


def test_admission_admits_its_slots_and_refuses_after_waiting():
    admission = Admission(2, max_wait_s=0.05)
    with admission.enter(), admission.enter():
        assert admission.running == 2
        with pytest.raises(Busy), admission.enter():
            pass
    admission.record(7.2)
    assert admission.running == 0 and admission.retry_after_s() == 3  # 0.8 * 1 + 0.2 * 7.2 = 2.24 -> 3
    with admission.enter():
        pass


def test_the_committed_openapi_schema_is_what_the_app_publishes():
    committed = json.loads((ROOT / "docs" / "api" / "openapi.json").read_text(encoding="utf-8"))
    assert committed == json.loads(openapi_document()), (
        "docs/api/openapi.json is stale: convrec serve --print-openapi > docs/api/openapi.json")
    paths = committed["paths"]
    for path in ("/api/sessions", "/api/sessions/{session_id}", "/api/sessions/{session_id}/messages",
                 "/api/sessions/{session_id}/feedback", "/api/sessions/{session_id}/reset",
                 "/api/catalog/search", "/api/items/{item_id}", "/health", "/ready", "/metrics"):
        assert path in paths, path
    assert committed["components"]["schemas"]["MessageIn"]["properties"]["text"]["maxLength"] == 2000


def test_configs_serve_toml_writes_out_the_built_in_defaults():
    assert read_config(ROOT / "configs" / "serve.toml") == ServeConfig()
    assert ServeConfig().engine == DEFAULT_ENGINE


@pytest.mark.parametrize(("argv", "fragments"), [
    (["--retriever", "nope"], ["--retriever 'nope': choose one of"]),
    (["--port", "70000"], ["--port:", "65535"]),
    (["--retention-days", "0"], ["--retention-days:", "greater than 0"]),
    (["--token", "short"], ["at least 16 characters"]),
    (["--model", "x", "--no-llm"], ["--model", "--no-llm"]),
    (["--config", "/no/such/file.toml"], ["--config /no/such/file.toml: cannot be read"]),
])
def test_bad_flags_are_one_line_errors(run_cli, argv, fragments):
    assert run_cli("serve", *argv).failed_with(*fragments)


def test_a_config_with_a_misspelt_field_names_it(run_cli, tmp_path):
    config = tmp_path / "serve.toml"
    config.write_text('[server]\nprot = 8000\n', encoding="utf-8")
    assert run_cli("serve", "--config", config).failed_with(f"--config {config}: server.prot:")


def test_without_the_serve_extra_the_core_runs_and_serve_says_what_to_install():
    def run(*argv: str) -> subprocess.CompletedProcess:
        code = ("import sys; sys.modules['fastapi'] = None; sys.modules['uvicorn'] = None\n"  # not installed
                "from convrec.cli.main import main; sys.exit(main(sys.argv[1:]))")
        return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=120)

    helped = run("chat", "--help")
    assert helped.returncode == 0 and "convrec chat" in helped.stdout, helped.stderr
    served = run("serve", "--no-llm")
    assert served.returncode == 2 and "Traceback" not in served.stderr, served.stderr
    assert "fastapi, uvicorn" in served.stderr and "pip install 'convrec[serve]'" in served.stderr


@pytest.mark.parametrize(("host", "explicit", "withheld"), [
    ("127.0.0.1", None, False), ("localhost", None, False), ("::1", None, False), ("0.0.0.0", None, True),
    ("192.168.1.5", None, True), ("example.org", None, True), ("0.0.0.0", False, False), ("127.0.0.1", True, True),
])
def test_research_text_is_withheld_by_default_beyond_loopback(host, explicit, withheld):
    assert ServeSettings(host=host, withhold_research_text=explicit).withholds_research_text is withheld
