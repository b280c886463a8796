"""The HTTP API against a real running server (``convrec serve`` in a subprocess on a free loopback port, the
fast embedded defaults: ReDial, itemknn, no LLM), started once for the module with a bearer token: every
endpoint, its limits and its errors (JSON with a request id, never a traceback), replays by
``client_message_id``, per-session serialisation and the metrics."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from http_testing import Server, metric, start_server

from convrec.data.dataset import CRSDataset

TOKEN = "test-token-0123456789abcdef"
ALIEN = "I loved Alien (1979), something similar?"


@pytest.fixture(scope="module")
def server(redial: CRSDataset, mirror: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("http-api")
    running = start_server(workdir, mirror, data_dir, workdir / "sessions.sqlite3", token=TOKEN)
    yield running
    running.stop()


def new_session(server: Server, **options) -> str:
    reply = server.request("POST", "/api/sessions", {"options": options} if options else None)
    assert reply.status == 201, reply.text
    return reply.body["session_id"]


def send(server: Server, sid: str, message_id: str, text: str):
    return server.request("POST", f"/api/sessions/{sid}/messages", {"client_message_id": message_id, "text": text})


def test_probes_and_the_start_page_need_no_token(server):
    assert server.request("GET", "/health", token=None).body == {"status": "ok"}
    ready = server.request("GET", "/ready", token=None)
    assert ready.status == 200 and ready.body["ready"] is True
    page = server.request("GET", "/", token=None)
    assert page.status == 200 and "/docs" in page.text and "convrec" in page.text
    schema = server.request("GET", "/openapi.json", token=None).body
    assert "/api/sessions/{session_id}/messages" in schema["paths"]


def test_a_message_naming_a_title_gets_related_items_with_facts_scores_and_reasons(server, redial):
    sid = new_session(server)
    reply = send(server, sid, "m1", ALIEN)
    assert reply.status == 200, reply.text
    answer = reply.body
    assert answer["replayed"] is False and answer["client_message_id"] == "m1"
    assert answer["recognised"][0]["title"] == "Alien (1979)"
    recommendations = answer["recommendations"]
    assert [r["number"] for r in recommendations] == [1, 2, 3, 4, 5]
    titles = {r["display_title"] for r in recommendations}
    # Recall sanity: the collaborative neighbours of Alien include its sequel or its prequel
    assert titles & {"Aliens (1986)", "Prometheus (2012)", "Alien: Covenant (2017)", "Alien 3 (1992)"}, titles
    for r in recommendations:
        item = redial.catalog.get(r["item_id"])
        assert (r["title"], r["year"]) == (item.title, item.year)
        assert r["facts"] == item.metadata  # on loopback nothing is withheld: plots and cast included
        assert r["score"] == r["retriever_score"] and r["llm_score"] is None
        assert r["why"].endswith(".") and len(r["why"]) > 10
    assert recommendations[0]["display_title"] in answer["reply"]
    assert [line["stage"] for line in answer["trace"]] == ["link", "retrieve", "rerank", "reply"]
    assert "Alien (1979)" not in titles  # a title the user named is not recommended back


def test_the_same_client_message_id_returns_the_stored_answer_and_runs_nothing(server):
    sid = new_session(server)
    first = send(server, sid, "once", ALIEN).body
    turns = metric(server, "convrec_turns_total")
    updated = server.request("GET", f"/api/sessions/{sid}").body["updated_at"]
    again = send(server, sid, "once", ALIEN)
    assert again.status == 200 and again.body["replayed"] is True
    assert {k: v for k, v in again.body.items() if k != "replayed"} == {k: v for k, v in first.items()
                                                                        if k != "replayed"}
    assert metric(server, "convrec_turns_total") == turns  # no turn ran
    session = server.request("GET", f"/api/sessions/{sid}").body
    assert session["updated_at"] == updated and len(session["messages"]) == 1
    reused = send(server, sid, "once", "something else entirely")
    assert reused.status == 409 and reused.body["error"]["code"] == "client_message_id_reused"


def test_feedback_by_item_id_changes_what_comes_next_and_unknown_ids_are_refused(server, redial):
    control, sid = new_session(server), new_session(server)
    for session in (control, sid):
        first = send(server, session, "a", ALIEN).body["recommendations"]
    disliked = first[3]["item_id"]  # not named in the reply (it names 3), so not in the dialogue either
    assert disliked in {r["item_id"] for r in send(server, control, "b", "more like that").body["recommendations"]}
    reply = server.request("POST", f"/api/sessions/{sid}/feedback", {"item_ids": [disliked], "kind": "dislike"})
    assert reply.status == 200, reply.text
    assert reply.body["feedback"] == {disliked: {"liked": False, "seen": False}}
    later = send(server, sid, "b", "more like that").body["recommendations"]
    assert disliked not in {r["item_id"] for r in later}
    unknown = server.request("POST", f"/api/sessions/{sid}/feedback",
                             {"item_ids": [disliked, "no-such-item"], "kind": "like"})
    assert unknown.status == 422 and "no-such-item" in unknown.body["error"]["message"]
    assert server.request("GET", f"/api/sessions/{sid}").body["feedback"][disliked]["liked"] is False  # unchanged
    too_many = server.request("POST", f"/api/sessions/{sid}/feedback",
                              {"item_ids": [disliked] * 21, "kind": "seen"})
    assert too_many.status == 422 and "item_ids" in too_many.body["error"]["message"]
    bad_kind = server.request("POST", f"/api/sessions/{sid}/feedback", {"item_ids": [disliked], "kind": "love"})
    assert bad_kind.status == 422 and "kind" in bad_kind.body["error"]["message"]
    # marks taken back: neutral undoes the dislike, unseen the seen; an item with no mark left has no feedback
    marks = {kind: server.request("POST", f"/api/sessions/{sid}/feedback", {"item_ids": [disliked], "kind": kind}
                                  ).body["feedback"] for kind in ("seen", "neutral", "unseen")}
    assert marks["seen"] == {disliked: {"liked": False, "seen": True}}
    assert marks["neutral"] == {disliked: {"liked": None, "seen": True}}
    assert marks["unseen"] == {} == server.request("GET", f"/api/sessions/{sid}").body["feedback"]
    again = send(server, sid, "c", "more like that").body["recommendations"]
    assert disliked in {r["item_id"] for r in again}  # no longer kept out


def test_history_reset_and_delete(server):
    sid = new_session(server, top=3)
    send(server, sid, "m1", ALIEN)
    send(server, sid, "m2", "and something funny?")
    session = server.request("GET", f"/api/sessions/{sid}").body
    assert session["session_id"] == sid and session["conversation"] == 1 and session["options"]["top"] == 3
    assert [(m["client_message_id"], m["answered"], m["conversation"]) for m in session["messages"]] == [
        ("m1", True, 1), ("m2", True, 1)]
    assert all(len(m["recommendations"]) == 3 and m["reply"] for m in session["messages"])
    reset = server.request("POST", f"/api/sessions/{sid}/reset")
    assert reset.status == 200 and reset.body["conversation"] == 2 and len(reset.body["messages"]) == 2
    after = send(server, sid, "m3", "anything?").body
    assert after["conversation"] == 2 and after["turn"] == 1 and after["recognised"] == []
    assert server.request("DELETE", f"/api/sessions/{sid}").status == 204
    gone = server.request("GET", f"/api/sessions/{sid}")
    assert gone.status == 404 and gone.body["error"]["code"] == "session_not_found"
    assert server.request("DELETE", f"/api/sessions/{sid}").status == 404
    assert send(server, sid, "m4", "hello").status == 404


def test_title_search_and_items(server, redial):
    hits = server.request("GET", "/api/catalog/search?q=alien&limit=5").body["results"]
    assert hits[0]["display_title"] == "Alien (1979)" and len(hits) == 5
    assert all("alien" in h["title"].lower() for h in hits)
    dated = server.request("GET", "/api/catalog/search?q=The%20Matrix%20(1999)").body["results"]
    assert dated[0]["display_title"] == "The Matrix (1999)"
    typo = server.request("GET", "/api/catalog/search?q=Terminater%202&limit=5").body["results"]
    assert any(h["title"].startswith("Terminator 2") for h in typo), typo
    assert server.request("GET", "/api/catalog/search?q=&limit=5").status == 422
    assert server.request("GET", "/api/catalog/search?q=alien&limit=500").status == 422
    item_id = hits[0]["item_id"]
    item = server.request("GET", f"/api/items/{item_id}").body
    assert item["facts"] == redial.catalog.get(item_id).metadata and item["year"] == 1979
    missing = server.request("GET", "/api/items/no-such-item")
    assert missing.status == 404 and missing.body["error"]["code"] == "item_not_found"


def test_limits_and_errors_are_clear_json_without_a_traceback(server):
    sid = new_session(server)
    long = send(server, sid, "long", "x" * 2001)
    assert long.status == 422 and "body.text" in long.body["error"]["message"]
    assert "2000" in long.body["error"]["message"]
    assert send(server, sid, "bad id!", "hi").status == 422
    blank = send(server, sid, "blank", "   ")
    assert blank.status == 422 and "empty" in blank.body["error"]["message"]
    extra = server.request("POST", f"/api/sessions/{sid}/messages",
                           {"client_message_id": "x", "text": "hi", "temperature": 2})
    assert extra.status == 422 and "temperature" in extra.body["error"]["message"]
    broken = server.request("POST", f"/api/sessions/{sid}/messages", raw=b"{not json")
    assert broken.status == 422
    huge = server.request("POST", f"/api/sessions/{sid}/messages", raw=b"x" * 100_000)
    assert huge.status == 413
    assert server.request("POST", "/api/sessions", {"options": {"top": 11}}).status == 422
    unknown = server.request("GET", "/api/sessions/" + "A" * 32)
    assert unknown.status == 404
    assert server.request("GET", "/no/such/path").status == 404
    assert server.request("PUT", "/api/sessions").status == 405
    chosen = server.request("GET", "/api/sessions/nope", headers={"X-Request-ID": "client-chosen-42"})
    assert chosen.body["error"]["request_id"] == "client-chosen-42"
    assert "client-chosen-42 GET /api/sessions/nope 404" in server.log()  # the request id starts its log line
    assert "Traceback" not in server.log()


def test_the_token_is_needed_for_the_api_and_the_metrics(server):
    for method, path in (("POST", "/api/sessions"), ("GET", "/api/catalog/search?q=alien"), ("GET", "/metrics")):
        for token in (None, "wrong-token-0123456789", TOKEN + "x"):
            reply = server.request(method, path, token=token)
            assert reply.status == 401, (method, path, token)
            assert reply.headers["www-authenticate"].startswith("Bearer")
    basic = server.request("GET", "/api/catalog/search?q=alien", token=None,
                           headers={"Authorization": f"Basic {TOKEN}"})
    assert basic.status == 401
    assert server.request("GET", "/api/catalog/search?q=alien").status == 200


def test_session_ids_are_unguessable(server):
    ids = [new_session(server) for _ in range(5)]
    assert len(set(ids)) == 5
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{32}", sid) for sid in ids)  # secrets.token_urlsafe(24): 192 bits


def test_two_messages_at_once_to_one_session_are_both_answered_in_order(server):
    sid = new_session(server)
    replies = {}

    def post(message_id: str, text: str) -> None:
        replies[message_id] = send(server, sid, message_id, text)

    threads = [threading.Thread(target=post, args=(f"c{i}", text))
               for i, text in enumerate((ALIEN, "I also liked The Matrix (1999)"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert {k: r.status for k, r in replies.items()} == {"c0": 200, "c1": 200}
    session = server.request("GET", f"/api/sessions/{sid}").body
    messages = session["messages"]
    assert sorted(m["client_message_id"] for m in messages) == ["c0", "c1"] and all(m["answered"] for m in messages)
    # the message recorded first was answered first: turn numbers follow the history's order
    turns = [replies[m["client_message_id"]].body["turn"] for m in messages]
    assert turns == [1, 2]
    second = replies[messages[1]["client_message_id"]].body
    first = replies[messages[0]["client_message_id"]].body
    # the second turn continued the first one's state: what the first recommended is not recommended again
    assert not {r["item_id"] for r in first["recommendations"][:3]} & {r["item_id"] for r in
                                                                       second["recommendations"]}


def test_metrics_count_requests_by_route_and_status(server):
    before = metric(server, "convrec_http_requests_total", method="GET", route="/api/items/{item_id}",
                    status="404")
    for _ in range(3):
        server.request("GET", "/api/items/nothing-here")
    after = metric(server, "convrec_http_requests_total", method="GET", route="/api/items/{item_id}", status="404")
    assert after == before + 3
    assert metric(server, "convrec_http_request_duration_seconds_count", method="GET",
                  route="/api/items/{item_id}") >= 3
    assert metric(server, "convrec_sessions") >= 1
