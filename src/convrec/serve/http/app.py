"""The HTTP API over one :class:`~convrec.serve.engine.Engine`: :func:`create_app`, a FastAPI application.

Every endpoint that runs the engine or SQLite is a plain ``def``: FastAPI runs it in its thread pool, so
turns of different sessions run at once while the event loop stays free for ``/health``, ``/ready`` and
``/metrics`` (``async``, and cheap). A request of a session waits for the session's other request
(:class:`~convrec.serve.http.concurrency.SessionLocks`), a turn for a turn slot (``Admission``), each with a
time limit after which it is answered 503 with ``Retry-After`` rather than left hanging.

A message carries the client's id: the message is recorded before its turn runs, and its answer is committed
with the session's new state in one SQLite transaction (:mod:`~convrec.serve.http.store`), so after a crash
the history says which messages were answered, and sending the same id again returns the stored answer
(``replayed``) without running anything.

Every error a client gets is JSON ``{"error": {"code", "message", "request_id"}}``; the request id (the
client's ``X-Request-ID`` if it sent a sane one, else a new one) is sent back in ``X-Request-ID`` and starts
the server's log line of the request. An unexpected exception is logged with its traceback and the request
id, and the client gets a 500 that says only that. With a token set, ``/api/*`` and ``/metrics`` need
``Authorization: Bearer <token>`` (compared in constant time); ``/health``, ``/ready``, the page and the API's
documentation do not.
"""

from __future__ import annotations

import asyncio
import datetime
import gc
import hmac
import logging
import os
import re
import secrets
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from convrec import __version__
from convrec.errors import DataError
from convrec.llm.errors import LLMError
from convrec.serve.engine import Engine
from convrec.serve.http.concurrency import Admission, Busy, SessionLocks
from convrec.serve.http.present import Presenter
from convrec.serve.http.schemas import (
    MAX_QUERY_CHARS,
    MAX_SEARCH_RESULTS,
    Answer,
    ErrorBody,
    FeedbackIn,
    FeedbackResult,
    Health,
    ItemView,
    MessageIn,
    Ready,
    SearchResult,
    SessionCreate,
    SessionCreated,
    SessionView,
)
from convrec.serve.http.settings import ServeSettings
from convrec.serve.http.store import SessionStore, StaleSession, StoredMessage, StoredSession
from convrec.serve.http.streaming import EVENTS, SSE_EVENT, EventStream, answer_events
from convrec.serve.state import SessionState

log = logging.getLogger("convrec.serve.http")

STATIC_DIR = Path(__file__).parent / "static"
# How long a thread holding the GIL keeps it when another wants it (Python's default: 5 ms). A turn's thread
# gives the GIL up around every SQLite call and must then wait out another turn's whole interval to get it
# back (the convoy effect): a dozen calls a turn made a 5 ms turn take 50 ms under load.
SWITCH_INTERVAL_S = 0.0005
MAX_BODY_BYTES = 64 * 1024  # a message is at most 2,000 characters: anything much larger is not a request of ours
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                 405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
                 422: "invalid_request", 429: "too_many_requests", 500: "internal_error", 503: "unavailable"}
# The error responses the OpenAPI schema documents for the API's endpoints.
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": description} for code, description in (
        (401, "no or a wrong bearer token (when the server has one)"),
        (404, "no such session or item"),
        (422, "the request breaks a limit; the message names the field"),
        (503, "busy (with Retry-After) or not ready"),
    )}
DESCRIPTION = """\
Conversational recommendation over HTTP: create a session, send messages, get replies with recommended
catalogue items (facts, scores and a reason each), give feedback, read the history. Sessions live in SQLite
and survive restarts; each message carries a client-chosen `client_message_id`, and sending it again returns
the stored answer without running anything. Errors are `{"error": {"code", "message", "request_id"}}`.
"""


SessionId = Annotated[str, PathParam(min_length=1, max_length=100, description="the id POST /api/sessions returned")]
SearchQuery = Annotated[str, Query(min_length=1, max_length=MAX_QUERY_CHARS, description="a title, as typed")]
SearchLimit = Annotated[int, Query(ge=1, le=MAX_SEARCH_RESULTS, description="at most this many results")]
OptionalSessionCreate = Annotated[SessionCreate | None, Body()]
ItemId = Annotated[str, PathParam(min_length=1, max_length=200, description="a catalogue item id")]


class ApiError(Exception):
    """An error a client is told about: the HTTP status, a stable code and a message for a person."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class BodyTooLarge(Exception):
    """A request body (sent without Content-Length, e.g. chunked) grew past MAX_BODY_BYTES while being read."""


class BodyLimit:
    """Stops reading a request body at ``limit`` bytes, however it is sent. The frame refuses a Content-Length
    over the limit before anything is read; a chunked body has none, and FastAPI would read all of it into
    memory. Here its reading fails with :class:`BodyTooLarge` once past the limit; FastAPI turns that into
    its body-parsing 400 (the exception as its cause), which ``http_error`` answers 413."""

    def __init__(self, app: Any, limit: int):
        self.app = app
        self.limit = limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        received = 0

        async def limited() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise BodyTooLarge(f"the request body is over {self.limit:,} bytes")
            return message

        await self.app(scope, limited, send)


def _body_too_large(error: BaseException | None) -> bool:
    """Is ``error`` BodyTooLarge, or a group holding one (the frame's call_next runs the app in a task group)?"""
    if isinstance(error, BaseExceptionGroup):
        return error.subgroup(BodyTooLarge) is not None
    return isinstance(error, BodyTooLarge)


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).isoformat(timespec="milliseconds")


def new_session_id() -> str:
    """192 random bits, URL-safe: a session is reached only by whoever was given its id."""
    return secrets.token_urlsafe(24)


class Metrics:
    """The Prometheus metrics of one app (its own registry, so several apps in one process do not clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("convrec_http_requests", "HTTP requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("convrec_http_request_duration_seconds", "time to answer an HTTP request",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
        self.turns = Counter("convrec_turns", "messages answered by the engine (replays not counted)",
                             registry=self.registry)
        self.turn_seconds = Histogram("convrec_turn_seconds", "time the engine took for one turn",
                                      registry=self.registry, buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 20, 60))
        self.replays = Counter("convrec_replays", "messages answered from the store (same client_message_id)",
                               registry=self.registry)
        self.busy = Counter("convrec_busy", "requests refused with 503 after waiting", ["what"],
                            registry=self.registry)
        self.purged = Counter("convrec_sessions_purged", "sessions deleted after the retention period",
                              registry=self.registry)


class Service:
    """What the endpoints work with: the engine, the store, how answers are presented, who runs when."""

    def __init__(self, engine: Engine, store: SessionStore, settings: ServeSettings, metrics: Metrics):
        self.engine = engine
        self.store = store
        self.settings = settings
        self.metrics = metrics
        self.presenter = Presenter(engine)
        self.withhold = settings.withholds_research_text
        self.variant = "withheld" if self.withhold else "open"
        self.locks = SessionLocks()
        self.admission = Admission(settings.turn_slots or default_turn_slots(engine), settings.max_wait_s)
        Gauge("convrec_sessions", "sessions in the store", registry=metrics.registry).set_function(store.count)
        Gauge("convrec_turns_running", "turns running now", registry=metrics.registry).set_function(
            lambda: self.admission.running)

    # -- sessions --------------------------------------------------------------------------------------------

    def load(self, session_id: str) -> tuple[StoredSession, SessionState]:
        stored = self.store.get(session_id)
        if stored is None:
            raise ApiError(404, "session_not_found", "no session with this id (it may have expired or been deleted)")
        try:
            return stored, SessionState.from_json(stored.state, self.engine.catalog, "the stored session")
        except DataError as exc:
            raise ApiError(409, "session_unreadable", f"this session cannot be continued: {exc.reason}") from None

    def hold(self, session_id: str):
        return self.locks.hold(session_id, self.settings.session_wait_s)

    def view(self, stored: StoredSession, state: SessionState) -> dict[str, Any]:
        return {
            "session_id": stored.session_id, "created_at": iso(stored.created_at),
            "updated_at": iso(stored.updated_at), "conversation": state.conversation,
            "options": state.options.model_dump(mode="json"),
            "messages": [self.message_view(m) for m in self.store.messages(stored.session_id)],
            "feedback": {item_id: mark.model_dump(mode="json") for item_id, mark in state.feedback.items()},
        }

    def message_view(self, message: StoredMessage) -> dict[str, Any]:
        answer = message.answer[self.variant] if message.answer is not None else None
        return {"client_message_id": message.client_message_id, "text": message.text,
                "created_at": iso(message.created_at), "answered": answer is not None,
                "answered_at": iso(message.answered_at),
                "conversation": answer["conversation"] if answer else None,
                "reply": answer["reply"] if answer else None,
                "recommendations": answer["recommendations"] if answer else []}

    def replay(self, message: StoredMessage, text: str) -> dict[str, Any]:
        if message.text != text:
            raise ApiError(409, "client_message_id_reused", "this client_message_id was sent before with another "
                           "text; use a new id for a new message")
        self.metrics.replays.inc()
        assert message.answer is not None
        return {"client_message_id": message.client_message_id, "replayed": True, **message.answer[self.variant]}

    def send(self, session_id: str, body: MessageIn) -> dict[str, Any]:
        if self.store.get(session_id) is None:
            raise ApiError(404, "session_not_found", "no session with this id (it may have expired or been deleted)")
        done = self.store.message(session_id, body.client_message_id)
        if done is not None and done.answered:
            return self.replay(done, body.text)
        with self.hold(session_id):
            done = self.store.message(session_id, body.client_message_id)
            if done is not None and done.answered:  # answered while this request waited for the session
                return self.replay(done, body.text)
            if done is not None and done.text != body.text:
                raise ApiError(409, "client_message_id_reused", "this client_message_id was sent before with "
                               "another text; use a new id for a new message")
            stored, state = self.load(session_id)
            if done is None:  # recorded before the turn runs: after a crash, the history shows it unanswered
                self.store.add_message(session_id, body.client_message_id, body.text)
            with self.admission.enter():
                started = time.monotonic()
                new_state, record = self.engine.turn(state, body.text)
                seconds = time.monotonic() - started
                self.admission.record(seconds)
                answer = self.presenter.answer(new_state, record)
                self.store.answer(session_id, body.client_message_id, stored.version, new_state.to_json(), answer)
            self.metrics.turns.inc()
            self.metrics.turn_seconds.observe(seconds)
        return {"client_message_id": body.client_message_id, "replayed": False, **answer[self.variant]}


def default_turn_slots(engine: Engine) -> int:
    """Turns at once: the LLM client's concurrency limit when the engine has an LLM, else one per core."""
    llm = getattr(engine.writer, "llm", None)
    limit = getattr(llm, "max_concurrency", None)
    return int(limit) if limit else max(1, os.cpu_count() or 1)


def error_response(request: Request | None, status: int, code: str, message: str,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    request_id = getattr(request.state, "request_id", "") if request is not None else ""
    return JSONResponse({"error": {"code": code, "message": message, "request_id": request_id}},
                        status_code=status, headers=headers)


def _validation_message(error: RequestValidationError) -> str:
    """The first problem, with the field named ("body.text: String should have at most 2000 characters");
    the value itself is never echoed back."""
    problems = error.errors()
    if not problems:
        return "the request is not valid"
    first = problems[0]
    where = ".".join(str(part) for part in first.get("loc", ()))
    message = str(first.get("msg", "invalid"))
    more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
    return f"{where}: {message}{more}" if where else message + more


def _needs_token(path: str) -> bool:
    return path.startswith("/api/") or path == "/api" or path == "/metrics"


def create_app(engine: Engine | None, store: SessionStore | None, settings: ServeSettings) -> FastAPI:
    """The API over ``engine`` and ``store`` (both None: an app that only describes itself, for the OpenAPI
    schema; every endpoint of the API then answers 503 not ready)."""
    metrics = Metrics()
    service = Service(engine, store, settings, metrics) if engine is not None and store is not None else None
    token = settings.token_value()
    token_bytes = token.encode("utf-8") if token else None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        purger = None
        if service is not None and settings.retention_days is not None:
            await asyncio.to_thread(_purge, service)  # before the first request: expired sessions are never served
            purger = threading.Thread(target=_purge_loop, args=(service, stop), name="convrec-purge", daemon=True)
            purger.start()
        if service is not None:
            # The engine, the catalogue and the dataset behind them are ~500k objects that live as long as the
            # process. A full collection scanned them all: a ~300 ms pause with the GIL held, every request
            # waiting (seen under load by bench/bench_serve.py). Frozen, collections scan only what came later.
            gc.collect()
            gc.freeze()
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        try:
            yield
        finally:
            stop.set()
            if purger is not None:
                await asyncio.to_thread(purger.join, 10)

    app = FastAPI(title="convrec", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.service = service
    app.state.metrics = metrics

    def ready() -> Service:
        if service is None:
            raise ApiError(503, "not_ready", "the engine is not loaded")
        return service

    # -- the frame around every request: request id, body size, auth, catch-all, metrics, log line ----------

    @app.middleware("http")
    async def frame(request: Request, call_next):
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.state.request_id = request_id
        started = time.perf_counter()
        path = request.url.path
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > MAX_BODY_BYTES:
            response = error_response(request, 413, "too_large", f"the request body is over {MAX_BODY_BYTES:,} bytes")
        elif token_bytes is not None and _needs_token(path) and request.method != "OPTIONS" and not _authorised(
                request.headers.get("authorization", ""), token_bytes):
            response = error_response(request, 401, "unauthorized", "this server needs 'Authorization: Bearer "
                                      "<token>'", headers={"WWW-Authenticate": 'Bearer realm="convrec"'})
        else:
            try:
                response = await call_next(request)
            except Exception:  # a bug: its traceback goes to the log, never to the client
                log.exception("%s %s %s: unexpected error", request_id, request.method, path)
                response = error_response(request, 500, "internal_error", "an unexpected error on the server; "
                                          "it is logged under this request_id")
        response.headers["X-Request-ID"] = request_id
        if path == "/" or path.startswith("/static/"):  # revalidated each load (304 if unchanged): never stale
            response.headers.setdefault("Cache-Control", "no-cache")
        route = request.scope.get("route")
        label = getattr(route, "path", None) or "unmatched"
        seconds = time.perf_counter() - started
        metrics.requests.labels(request.method, label, str(response.status_code)).inc()
        metrics.latency.labels(request.method, label).observe(seconds)
        log.info("%s %s %s %d %.1f ms", request_id, request.method, path, response.status_code, seconds * 1000)
        return response

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    if settings.cors_origins:  # added after the frame: the outer layer, so a preflight needs no token
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins),
                           allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
                           expose_headers=["X-Request-ID", "Retry-After"])

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(Busy)
    async def busy(request: Request, exc: Busy) -> JSONResponse:
        metrics.busy.labels("session" if "session" in exc.what else "turn_slot").inc()
        return error_response(request, 503, "busy", str(exc), {"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(StaleSession)
    async def stale(request: Request, exc: StaleSession) -> JSONResponse:
        return error_response(request, 409, "session_changed", f"{exc}; read the session and try again")

    @app.exception_handler(LLMError)
    async def llm_failed(request: Request, exc: LLMError) -> JSONResponse:
        log.warning("%s the LLM failed: %s: %s", getattr(request.state, "request_id", "-"), type(exc).__name__, exc)
        retry = service.admission.retry_after_s() if service is not None else 5
        return error_response(request, 503, "llm_unavailable", "the language model could not answer now; the "
                              "message is recorded unanswered: send it again with the same client_message_id",
                              {"Retry-After": str(retry)})

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, 422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI's only 400: a body it could not read or decode
            if _body_too_large(exc.__cause__):
                return error_response(request, 413, "too_large", f"the request body is over {MAX_BODY_BYTES:,} "
                                      "bytes")
            # bytes that are not UTF-8: a body that is not JSON is a 422 (json_invalid) everywhere else, and 422
            # is what the schema documents for it
            return error_response(request, 422, "invalid_request", "body: not valid JSON (it must be UTF-8 JSON)")
        message = exc.detail if isinstance(exc.detail, str) else "the request cannot be answered"
        return error_response(request, exc.status_code, _STATUS_CODES.get(exc.status_code, "error"), message,
                              dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:  # a backstop: the frame catches first
        log.error("%s unexpected error", getattr(request.state, "request_id", "-"), exc_info=exc)
        return error_response(request, 500, "internal_error", "an unexpected error on the server; it is logged "
                              "under this request_id")

    # -- probes and metrics ----------------------------------------------------------------------------------

    @app.get("/health", response_model=Health, tags=["probes"])
    async def health() -> dict[str, Any]:
        """The process is up and answering."""
        return {"status": "ok"}

    @app.get("/ready", response_model=Ready, tags=["probes"],
             responses={503: {"model": ErrorBody, "description": "not ready: the error says why"}})
    async def readiness(request: Request) -> Any:
        """The engine is built and the session store can be read: the server can answer messages."""
        if service is None:
            return error_response(request, 503, "not_ready", "the engine is not loaded")
        try:
            sessions = service.store.count()
        except Exception as exc:  # noqa: BLE001 - any failure of the store means not ready; the probe says why
            log.warning("%s the session store cannot be read: %s", request.state.request_id, exc)
            return error_response(request, 503, "not_ready", "the session store cannot be read")
        return {"ready": True, "sessions": sessions}

    @app.get("/metrics", tags=["probes"], response_class=Response,
             responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
    async def prometheus() -> Response:
        """Request counts and latencies by route and status, turns, replays and refusals, in Prometheus format."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    # -- sessions --------------------------------------------------------------------------------------------

    @app.post("/api/sessions", status_code=201, response_model=SessionCreated, responses=ERRORS,
              tags=["sessions"])
    def create_session(body: OptionalSessionCreate = None) -> dict[str, Any]:
        """A new session. Its id is the only key to it: keep it secret."""
        svc = ready()
        options = svc.engine.options
        if body is not None and body.options is not None:
            top = body.options.top
            # without a re-ranker candidates are free; with one, k is what the LLM reads per turn (its cost)
            k = options.k if svc.engine.reranker is not None else max(options.k, top)
            options = options.model_copy(update={"top": min(top, k), "k": k})
        state = svc.engine.new_state(options)
        stored = svc.store.create(new_session_id(), state.to_json())
        return {"session_id": stored.session_id, "created_at": iso(stored.created_at),
                "options": state.options.model_dump(mode="json")}

    @app.get("/api/sessions/{session_id}", response_model=SessionView, responses=ERRORS, tags=["sessions"])
    def get_session(session_id: SessionId) -> dict[str, Any]:
        """The session: its messages (answered or not, with their replies and recommendations) and feedback."""
        svc = ready()
        stored, state = svc.load(session_id)
        return svc.view(stored, state)

    @app.post("/api/sessions/{session_id}/messages", response_model=Answer,
              responses={**ERRORS, 409: {"model": ErrorBody, "description": "client_message_id reused with "
                                         "another text"}}, tags=["sessions"])
    def send_message(body: MessageIn, session_id: SessionId) -> dict[str, Any]:
        """Answer a message: the reply and the recommended items. The same ``client_message_id`` again returns
        the stored answer (``replayed``: true) and runs nothing."""
        return ready().send(session_id, body)

    # the errors are JSON: said explicitly, since a "model" would be documented in the stream's media type
    json_errors = {code: {"description": error["description"], "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/ErrorBody"}}}} for code, error in ERRORS.items()}
    json_errors[409] = {**json_errors[404], "description": "client_message_id reused with another text, or the "
                        "session changed or cannot be read"}

    @app.post("/api/sessions/{session_id}/messages/stream", response_class=EventStream, tags=["sessions"],
              responses={**json_errors, 200: {"description": "server-sent events" + EVENTS,
                                              "content": {"text/event-stream": {"schema": SSE_EVENT}}}})
    async def stream_message(request: Request, body: MessageIn, session_id: SessionId) -> EventStream:
        """Answer a message as server-sent events: the reply's words as the LLM writes them (``token``), then
        the whole answer (``answer``, as the plain endpoint returns it: its ``reply`` replaces the streamed
        words). A template reply, a replay, or a server that withholds research text sends the answer alone."""
        svc = ready()
        return await answer_events(request, lambda: svc.send(session_id, body), stream_text=not svc.withhold)

    @app.post("/api/sessions/{session_id}/feedback", response_model=FeedbackResult, responses=ERRORS,
              tags=["sessions"])
    def give_feedback(body: FeedbackIn, session_id: SessionId) -> dict[str, Any]:
        """Mark catalogue items liked, disliked or seen, or take a mark back (``neutral``: neither liked nor
        disliked; ``unseen``): disliked and seen items are not recommended again in this conversation, liked
        ones count as items the user named."""
        svc = ready()
        unknown = [item_id for item_id in dict.fromkeys(body.item_ids) if item_id not in svc.engine.catalog]
        if unknown:
            listed = ", ".join(repr(i[:40]) for i in unknown[:5]) + (f" (+{len(unknown) - 5} more)"
                                                                    if len(unknown) > 5 else "")
            raise ApiError(422, "unknown_item", f"item_ids: not in the catalogue: {listed}")
        with svc.hold(session_id):
            stored, state = svc.load(session_id)
            for item_id in dict.fromkeys(body.item_ids):
                state = svc.engine.mark(state, item_id, body.kind)
            svc.store.save_state(session_id, stored.version, state.to_json())
        items = [{"item_id": i, "display_title": svc.engine.catalog.get(i).display_title}
                 for i in dict.fromkeys(body.item_ids)]
        return {"session_id": session_id, "kind": body.kind, "items": items,
                "feedback": {i: mark.model_dump(mode="json") for i, mark in state.feedback.items()}}

    @app.post("/api/sessions/{session_id}/reset", response_model=SessionView, responses=ERRORS, tags=["sessions"])
    def reset_session(session_id: SessionId) -> dict[str, Any]:
        """A new conversation in the same session: the dialogue and the feedback are forgotten (the history of
        messages stays)."""
        svc = ready()
        with svc.hold(session_id):
            stored, state = svc.load(session_id)
            new_state = svc.engine.reset(state).to_json()
            svc.store.save_state(session_id, stored.version, new_state)
        stored, state = svc.load(session_id)
        return svc.view(stored, state)

    @app.delete("/api/sessions/{session_id}", status_code=204, response_class=Response, responses=ERRORS,
                tags=["sessions"])
    def delete_session(session_id: SessionId) -> Response:
        """Delete the session and its messages, for good."""
        svc = ready()
        with svc.hold(session_id):
            deleted = svc.store.delete(session_id)
            if not deleted:
                raise ApiError(404, "session_not_found", "no session with this id (it may have expired or been "
                               "deleted)")
        return Response(status_code=204)

    # -- the catalogue ---------------------------------------------------------------------------------------

    @app.get("/api/catalog/search", response_model=SearchResult, responses=ERRORS, tags=["catalogue"])
    def search_catalog(q: SearchQuery, limit: SearchLimit = 10) -> dict[str, Any]:
        """Catalogue items by title: exact, then prefix, word and fuzzy matches; a year in the query narrows."""
        svc = ready()
        hits = svc.presenter.search_index.search(q, limit)
        return {"query": q, "results": [{"item_id": item.item_id, "title": item.title, "year": item.year,
                                         "display_title": item.display_title, "score": score}
                                        for item, score in hits]}

    @app.get("/api/items/{item_id}", response_model=ItemView, responses=ERRORS, tags=["catalogue"])
    def get_item(item_id: ItemId) -> dict[str, Any]:
        """One catalogue item and its facts."""
        svc = ready()
        if item_id not in svc.engine.catalog:
            raise ApiError(404, "item_not_found", "no catalogue item with this id")
        return svc.presenter.item(item_id, svc.withhold)

    # -- the page --------------------------------------------------------------------------------------------

    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> Response:
        index = STATIC_DIR / "index.html"
        if index.is_file():
            return FileResponse(index, media_type="text/html")
        return HTMLResponse("<!doctype html><title>convrec</title><p>convrec API: see <a href=/docs>/docs</a>.")

    return app


def _authorised(header: str, token: bytes) -> bool:
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode("utf-8"), token)


def _purge(service: Service) -> None:
    """Delete the sessions not used for the retention period."""
    days = service.settings.retention_days
    assert days is not None
    try:
        purged = service.store.purge(days * 86400.0)
    except Exception:  # noqa: BLE001 - the next round tries again; the server keeps answering meanwhile
        log.exception("purging expired sessions failed")
        return
    if purged:
        service.metrics.purged.inc(purged)
        log.info("deleted %d session(s) not used for %g days", purged, days)


def _purge_loop(service: Service, stop: threading.Event) -> None:
    """:func:`_purge` every ``purge_interval_s`` until ``stop``."""
    while not stop.wait(service.settings.purge_interval_s):
        _purge(service)
