"""Property-based fuzzing of the HTTP API from its own OpenAPI schema (schemathesis), against a real running
server (``convrec serve`` in a subprocess on a free loopback port: ReDial, itemknn, no LLM, a bearer token
that every call carries).

Every operation of ``/openapi.json`` gets a bounded number of generated requests, valid ones and invalid ones
(schemathesis's positive and negative modes: wrong types, missing fields, out-of-range numbers, strings too
long, odd unicode). A path that names a session gets, as hypothesis draws it, the generated id (a session
that does not exist), a live session with answered messages, or a session made just for this call (so a
DELETE or a reset has something to act on); an item path or a feedback body gets real catalogue item ids as
often as made-up ones, and a message sometimes reuses a ``client_message_id`` that was answered before, with
its text (a replay) or with another text (a 409). Checked on every response:

- no 5xx (``not_a_server_error``), whatever the request;
- the status code, content type, headers and body are what the schema documents for that operation
  (``status_code_conformance``, ``content_type_conformance``, ``response_headers_conformance``,
  ``response_schema_conformance``);
- a request the schema says is invalid is refused with a 4xx (``negative_data_rejection``);
- no traceback text in any body, every error is ``{"error": {code, message, request_id}}`` with the request id
  of ``X-Request-ID``, and nothing was logged as an unexpected error by the server.

Two fuzzing tests, one per operation each: schemathesis's own cases (its deterministic boundary cases, the
"coverage" phase, then generated ones) and the steered ones above (hypothesis's ``given``, which switches the
coverage phase off). Bounded to run in well under a minute on two busy cores: ``MAX_EXAMPLES`` generated
requests per operation and test, about 900 requests in all. What it found, now fixed and pinned below: a body
of bytes that are not UTF-8 was an undocumented 400, and ``"top": true`` was taken as 1. Bodies no schema can
describe (chunked over the size limit, not UTF-8, another content type) are sent by hand.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from http_testing import Server, start_server
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from convrec.data.dataset import CRSDataset

OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "api" / "openapi.json"
TOKEN = "fuzz-token-0123456789abcdef"
MAX_EXAMPLES = 40
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_headers_conformance,
          response_schema_conformance, negative_data_rejection]
LIVE_MESSAGES = (("m1", "I loved Alien (1979), something similar?"), ("m2", "and something funny?"))


@pytest.fixture(scope="module")
def server(redial: CRSDataset, mirror: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    workdir = tmp_path_factory.mktemp("http-fuzz")
    running = start_server(workdir, mirror, data_dir, workdir / "sessions.sqlite3", token=TOKEN, name="fuzz")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def live_session(server: Server) -> str:
    """A session with answered messages (so its history, replays and feedback have something to work on)."""
    sid = server.request("POST", "/api/sessions").body["session_id"]
    for message_id, text in LIVE_MESSAGES:
        reply = server.request("POST", f"/api/sessions/{sid}/messages", {"client_message_id": message_id,
                                                                         "text": text})
        assert reply.status == 200, reply.text
    return sid


@pytest.fixture(scope="module")
def item_ids(redial: CRSDataset) -> list[str]:
    return [item.item_id for item in list(redial.catalog)[:50]]


# The committed schema, which test_http_inprocess.py checks is what the app publishes (and the first test here
# checks the running server serves). Loaded at import: schemathesis's fixture-based loader does not work with
# pytest 9 (it sets Function._nodeid, which pytest 9 no longer has).
schema = schemathesis.openapi.from_path(OPENAPI)


def test_the_server_publishes_the_schema_being_fuzzed(server):
    assert server.request("GET", "/openapi.json").body == json.loads(OPENAPI.read_text(encoding="utf-8"))


def _steer(case, data, server: Server, live_session: str, item_ids: list[str]) -> None:
    """Give the generated request real things to act on some of the time (see the module docstring)."""
    params = case.path_parameters or {}
    if "session_id" in params:
        which = data.draw(st.sampled_from(["generated", "live", "fresh"]), label="session")
        if which == "live":
            case.path_parameters = {**params, "session_id": live_session}
        elif which == "fresh":
            sid = server.request("POST", "/api/sessions").body["session_id"]
            case.path_parameters = {**params, "session_id": sid}
    if "item_id" in params and data.draw(st.booleans(), label="real item"):
        case.path_parameters = {**case.path_parameters, "item_id": data.draw(st.sampled_from(item_ids))}
    body = case.body
    if isinstance(body, dict) and isinstance(body.get("item_ids"), list) and body["item_ids"] and data.draw(
            st.booleans(), label="real items"):
        real = data.draw(st.lists(st.sampled_from(item_ids), min_size=1, max_size=len(body["item_ids"])))
        case.body = {**body, "item_ids": real}
    if isinstance(body, dict) and "client_message_id" in body and isinstance(body.get("text"), str):
        reuse = data.draw(st.sampled_from(["generated", "replay", "other text"]), label="message id")
        if reuse != "generated":
            message_id, text = LIVE_MESSAGES[0]
            case.body = {**body, "client_message_id": message_id,
                         "text": text if reuse == "replay" else body["text"]}


FUZZ_SETTINGS = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))


def check(case, server: Server):
    """Send ``case`` with the token, run the schema's checks, then ours (no traceback, clean JSON errors)."""
    response = case.call_and_validate(base_url=server.base, headers={"Authorization": f"Bearer {TOKEN}"},
                                      checks=CHECKS, timeout=60)
    text = response.text
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    request_id = response.headers.get("x-request-id")
    assert request_id, "every response carries X-Request-ID"
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "request_id"}, text
        assert body["error"]["request_id"] == (request_id[0] if isinstance(request_id, list) else request_id)


@schema.parametrize()
@FUZZ_SETTINGS
def test_every_operation_answers_as_documented_and_never_5xx(case, server):
    """schemathesis's own cases: its deterministic boundary cases (the coverage phase: missing fields, wrong
    types, limits +- 1, unexpected methods) and generated ones, valid and invalid, as they come."""
    check(case, server)


@schema.parametrize()
@schema.given(data=st.data())
@FUZZ_SETTINGS
def test_with_live_sessions_real_items_and_reused_message_ids(case, data, server, live_session, item_ids):
    """Generated cases steered to act on real things (``given`` turns the coverage phase off: hence two tests)."""
    _steer(case, data, server, live_session, item_ids)
    check(case, server)


def raw_post(server: Server, path: str, chunks: list[bytes], content_type: str = "application/json",
             chunked: bool = True) -> tuple[int, dict[str, Any]]:
    """POST ``chunks`` as a chunked body (no Content-Length), which neither urllib nor schemathesis sends."""
    host, port = server.base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": content_type}
        body = iter(chunks) if chunked else b"".join(chunks)
        connection.request("POST", path, body=body, headers=headers, encode_chunked=chunked)
        response = connection.getresponse()
        text = response.read().decode("utf-8", errors="replace")
        assert "Traceback" not in text, text
        return response.status, json.loads(text)
    finally:
        connection.close()


def test_bodies_the_schema_cannot_describe_are_refused_cleanly(server, live_session):
    """A chunked body over the 64 KiB limit (no Content-Length for the frame to check): 413 once the limit is
    read, not the whole body read into memory; bytes that are not UTF-8: 422 like any body that is not JSON."""
    messages = f"/api/sessions/{live_session}/messages"
    status, body = raw_post(server, messages, [b"x" * 10_000] * 10)
    assert status == 413 and body["error"]["code"] == "too_large", body
    status, body = raw_post(server, "/api/sessions", [b"{", b'"options": {"top": 3}', b"}"])
    assert status == 201 and body["options"]["top"] == 3  # a small chunked body is fine
    for chunked in (True, False):
        status, body = raw_post(server, messages, [b'{"client_message_id": "x", "text": "\xff\xfe"}'],
                                chunked=chunked)
        assert status == 422 and body["error"]["code"] == "invalid_request", body
    status, body = raw_post(server, messages, [b'{"client_message_id": "x", "text": "hi"}'], content_type="text/plain")
    assert status == 422, body


@pytest.mark.parametrize("body", [{"options": {"top": True}}, {"options": {"top": "5"}}, {"options": {"top": 5.0}}])
def test_json_types_are_strict(server, body):
    """What the fuzzer first found: ``"top": true`` was taken as 1. A value of another JSON type is a 422."""
    reply = server.request("POST", "/api/sessions", body)
    assert reply.status == 422 and "options.top" in reply.body["error"]["message"], reply.text


def test_the_fuzzing_left_no_unexpected_error_in_the_log(server):
    """Runs after the fuzzing (same module, same server): nothing the fuzzer sent hit the catch-all."""
    log = server.log()
    assert "unexpected error" not in log and "Traceback" not in log, log[-3000:]
    assert server.request("GET", "/ready").body["ready"] is True
