"""``POST /api/sessions/{id}/messages/stream`` against real servers: with SmolLM2 writing the replies, the reply's
words arrive as ``token`` events in several reads before the ``answer`` event, which equals what the plain
endpoint stores (a repeat of the id replays it, as one event); errors before the first event are the plain
JSON errors; a server without an LLM, or one withholding research text, sends the answer alone."""

from __future__ import annotations

from pathlib import Path

import pytest
from http_testing import Server, start_llm_server, start_server

from convrec.data.dataset import CRSDataset

pytestmark = pytest.mark.slow

MESSAGE = "I loved Alien (1979) and The Matrix (1999), something scary please"


@pytest.fixture(scope="module")
def workdir(redial: CRSDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("http-stream")


def stream(server: Server, sid: str, message_id: str, text: str = MESSAGE):
    return server.events(f"/api/sessions/{sid}/messages/stream", {"client_message_id": message_id, "text": text})


def test_the_llm_reply_streams_then_the_answer_comes_whole(workdir, mirror, data_dir):
    server = start_llm_server(workdir, mirror, data_dir, workdir / "llm.sqlite3", name="llm")
    try:
        sid = server.request("POST", "/api/sessions").body["session_id"]
        reply, events = stream(server, sid, "m1")
        assert reply.headers["cache-control"] == "no-cache" and reply.headers.get("x-request-id")
        kinds = [e.kind for e in events]
        assert kinds[-1] == "answer" and set(kinds[:-1]) == {"token"}, kinds
        tokens = events[:-1]
        assert len(tokens) >= 5 and len({e.read for e in tokens}) >= 2  # piece by piece, not in one lump
        written = "".join(e.data["text"] for e in tokens)
        answer = events[-1].data
        assert answer["replayed"] is False and answer["recommendations"]
        reply_line = next(line for line in answer["trace"] if line["stage"] == "reply")
        if answer["reply"] == written.strip():
            assert reply_line["output"].startswith("llm: ")
        else:  # the check refused the words (SmolLM2 names other titles): the template reply stands, and says so
            assert reply_line["output"].startswith("template: ") and "the LLM's text was refused" in reply_line["output"]
        # the stored answer is the streamed one
        stored = server.request("GET", f"/api/sessions/{sid}").body["messages"]
        assert [(m["client_message_id"], m["reply"]) for m in stored] == [("m1", answer["reply"])]
        # the same id again: the stored answer alone, nothing runs, nothing streams
        _, again = stream(server, sid, "m1")
        assert [e.kind for e in again] == ["answer"] and again[0].data["replayed"] is True
        assert again[0].data["reply"] == answer["reply"]
        # failures before the first event are the plain endpoint's JSON errors with their status
        missing, none = stream(server, "no-such-session", "m2")
        assert missing.status == 404 and missing.body["error"]["code"] == "session_not_found" and none == []
        reused, none = stream(server, sid, "m1", "another text")
        assert reused.status == 409 and reused.body["error"]["code"] == "client_message_id_reused" and none == []
        invalid, none = server.events(f"/api/sessions/{sid}/messages/stream", {"text": "no id"})
        assert invalid.status == 422 and none == []
    finally:
        server.stop()


def test_withheld_research_text_is_never_streamed(workdir, mirror, data_dir):
    server = start_llm_server(workdir, mirror, data_dir, workdir / "withheld.sqlite3", "--withhold-research-text",
                              name="withheld")
    try:
        sid = server.request("POST", "/api/sessions").body["session_id"]
        _, events = stream(server, sid, "m1")
        assert [e.kind for e in events] == ["answer"]  # a plot in the words could not be taken back
        assert events[0].data["reply"] and events[0].data["recommendations"]
    finally:
        server.stop()


def test_a_template_reply_arrives_whole(workdir, mirror, data_dir):
    server = start_server(workdir, mirror, data_dir, workdir / "plain.sqlite3", name="plain")
    try:
        sid = server.request("POST", "/api/sessions").body["session_id"]
        _, events = stream(server, sid, "m1")
        assert [e.kind for e in events] == ["answer"]
        plain = server.request("POST", f"/api/sessions/{sid}/messages", {"client_message_id": "m1", "text": MESSAGE})
        assert plain.body["replayed"] is True
        assert {k: v for k, v in plain.body.items() if k != "replayed"} == {
            k: v for k, v in events[0].data.items() if k != "replayed"}
    finally:
        server.stop()
