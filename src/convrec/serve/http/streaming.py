"""A message answered as server-sent events: the reply's words as the LLM writes them, then the whole answer.

``POST /api/sessions/{id}/messages/stream`` runs the same :meth:`Service.send` as the plain endpoint, in a worker
thread, inside :func:`convrec.llm.stream.stream_text_to`: the reply writer marks its LLM call as text for the
person, and each piece the model writes becomes an event: :data:`EVENTS` says which.

Nothing is sent before the first event: a failure before it (no such session, busy, invalid) is the plain
endpoint's JSON error with its status. A client that goes away does not stop the turn: its answer is stored,
and the same ``client_message_id`` sent again returns it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from convrec.llm.stream import stream_text_to

# The events, in markdown: the OpenAPI schema's description of the endpoint's 200 answer (a constant, not the
# docstring, so that `python -OO`, which drops docstrings, still runs)
EVENTS = """ (`text/event-stream`, each `data` one JSON object):

- `token` `{"text": piece}`: the next piece of the reply being written (only when an LLM writes it);
- `reset` `{}`: the pieces so far are void (an attempt failed and is being retried);
- `answer`: the Answer, exactly what the plain endpoint returns; its `reply` is the one to keep, which differs
  from the streamed words when the check refused them (a title not recommended, say: the template reply
  stands) and is the only text when the reply is a template, a replay, or research text is withheld (then
  nothing streams: a withheld plot could be in the words);
- `error` `{"status", "error": {"code", "message", "request_id"}}` (and `retry_after`, seconds, for a 503):
  what the plain endpoint would have answered with that status, for a failure after the first event."""
# one event as the schema documents it (the stream is a sequence of these)
SSE_EVENT = {"type": "object", "required": ["event", "data"], "properties": {
    "event": {"type": "string", "enum": ["token", "reset", "answer", "error"]},
    "data": {"type": "string", "description": "one JSON object: see the events above"}}}
_RUNNING: set[asyncio.Future[Any]] = set()  # turns whose client may have gone: kept until they finish


class EventStream(StreamingResponse):
    media_type = "text/event-stream"


def event(kind: str, data: dict[str, Any]) -> bytes:
    """One server-sent event; the data is one line of JSON (JSON escapes every newline)."""
    return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


async def answer_events(request: Request, send: Callable[[], dict[str, Any]], stream_text: bool) -> EventStream:
    """Run ``send`` (one turn) in a worker thread and answer with its events; see the module docstring."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()

    def put(kind: str, data: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, (kind, data))

    def work() -> None:
        try:
            if stream_text:
                with stream_text_to(lambda piece: put("token", {"text": piece}), lambda: put("reset", {})):
                    answer = send()
            else:
                answer = send()
        except Exception as exc:  # noqa: BLE001 - handed to the event loop, answered like the plain endpoint's
            put("failed", exc)
            return
        put("answer", answer)

    running = asyncio.ensure_future(run_in_threadpool(work))
    _RUNNING.add(running)
    running.add_done_callback(_RUNNING.discard)
    kind, data = await queue.get()
    if kind == "failed":
        raise data  # nothing sent yet: the exception handlers answer with the status and JSON error

    async def events() -> AsyncIterator[bytes]:
        nonlocal kind, data
        while True:
            if kind == "failed":
                yield await _error_event(request, data)
                return
            yield event(kind, data)
            if kind == "answer":
                return
            kind, data = await queue.get()

    # no-cache and X-Accel-Buffering: a proxy must pass each event on as it comes, not buffer the answer
    return EventStream(events(), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _error_event(request: Request, exc: Exception) -> bytes:
    """The error the app's exception handlers make of ``exc``, as an event (the status line is long gone)."""
    handlers = request.app.exception_handlers
    handler = next((handlers[cls] for cls in type(exc).__mro__ if cls in handlers), handlers[Exception])
    response = await handler(request, exc)
    data = {"status": response.status_code, **json.loads(bytes(response.body))}
    if response.headers.get("retry-after", "").isdigit():
        data["retry_after"] = int(response.headers["retry-after"])
    return event("error", data)
