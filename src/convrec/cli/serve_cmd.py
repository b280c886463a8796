"""``convrec serve``: the chat's engine as an HTTP API (FastAPI on uvicorn), sessions kept in SQLite.

The engine is built as ``convrec chat`` builds it (:func:`convrec.cli.chat_cmd.load_engine`) from a
:class:`ServeConfig`: the ``[engine]`` table of ``--config FILE.toml`` (a
:class:`~convrec.serve.build.ChatConfig`) and its ``[server]`` table (a
:class:`~convrec.serve.http.settings.ServeSettings`), then the flags, which override both. ``configs/serve.toml``
writes the defaults out. The web stack is the optional extra ``convrec[serve]``, imported only here, once the
settings are known to be good.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from convrec.cli.chat_cmd import check_retriever_name, load_engine, local_model_problem
from convrec.cli.common import add_data_options, data_dir, mirror
from convrec.errors import ConfigError
from convrec.llm import LLMConfig
from convrec.rerank.pipeline import with_default_cache
from convrec.resources import Resources
from convrec.serve.build import ChatConfig
from convrec.serve.http import check_extra
from convrec.serve.http.settings import TOKEN_ENV, ServeSettings, is_loopback, token_from_env
from convrec.serve.state import SessionOptions

log = logging.getLogger("convrec.serve")

# The engine a server gets without --config (configs/serve.toml writes it out): the chat's, with the LLM's
# requests one at a time (a local model on CPU answers one at a time anyway; the server queues in front of it,
# see convrec.serve.http.concurrency) and fewer turn records kept per session, since every turn rewrites them.
DEFAULT_ENGINE = ChatConfig(llm=LLMConfig(max_concurrency=1),
                            session=SessionOptions(k=4, top=5, max_history=20))

DESCRIPTION = f"""\
Serve the recommender over HTTP: sessions, messages with recommended items (facts, scores, a reason each),
feedback, history, title search, /health, /ready, /metrics, the API's documentation at /docs and its schema at
/openapi.json. Sessions live in SQLite (--db) and survive restarts.

  convrec serve --no-llm                                # ReDial, itemknn, no LLM, http://127.0.0.1:8000
  convrec serve --config configs/serve.toml             # the documented defaults, to copy and edit
  convrec serve --agent harpo --no-llm --port 8080      # the HARPO agent
  CONVREC_SERVE_TOKEN=... convrec serve --host 0.0.0.0  # reachable from other machines: use a token
  convrec serve --print-openapi > docs/api/openapi.json # the API's schema, without loading anything

Beyond loopback (--host other than 127.0.0.1 / localhost / ::1), research-only item text (plots, cast,
writers, keywords: IMDb-derived) is withheld from every response unless --no-withhold-research-text.
The token: --token, or ${TOKEN_ENV} (better: a command line is visible to other users of the machine).
"""


class ServeConfig(BaseModel):
    """What ``convrec serve --config FILE.toml`` reads: the dataset, ``[server]`` and ``[engine]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dataset: str = Field("redial", description="the catalogue and the dialogues the retriever is fit on")
    server: ServeSettings = ServeSettings()
    engine: ChatConfig = DEFAULT_ENGINE


def add_parser(commands) -> None:
    serve = commands.add_parser("serve", help="serve the recommender over HTTP (sessions, messages, feedback)",
                                description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    serve.add_argument("--config", type=Path, default=None, metavar="FILE.toml",
                       help="dataset, [server] and [engine] settings (default: the built-in ones, written out in "
                       "configs/serve.toml); the flags below override it")
    serve.add_argument("--dataset", default=None, help="catalogue and training dialogues (default redial)")
    engine = serve.add_argument_group("engine (as convrec chat)")
    engine.add_argument("--retriever", default=None,
                        help="stage 1 (default itemknn, or lrurec-text with --checkpoint); any name of "
                        "`convrec recommenders` but rar")
    engine.add_argument("--checkpoint", type=Path, default=None,
                        help="a `convrec train` run dir for the retriever (lrurec, lrurec-text)")
    engine.add_argument("--agent", choices=["harpo"], default=None,
                        help="harpo: the HARPO agent answers (tracked state, Critic, a reason per item); it needs "
                        "no LLM unless [engine] agent_options.explainer = \"llm\"")
    engine.add_argument("--no-llm", action="store_true", help="no LLM: the retriever's order, template replies")
    engine.add_argument("--model", default=None, help="the LLM ([engine.llm] model): a local model name or GGUF "
                        "file, or the OpenAI-compatible server's model name")
    server = serve.add_argument_group("server")
    server.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1: this machine only)")
    server.add_argument("--port", type=int, default=None, help="port (default 8000)")
    server.add_argument("--token", default=None,
                        help=f"bearer token every /api call and /metrics must carry (default ${TOKEN_ENV}; none: "
                        "no auth, fine on loopback only)")
    server.add_argument("--db", type=Path, default=None,
                        help="the sessions' SQLite file (default $CONVREC_CACHE_DIR/serve/sessions.sqlite3)")
    server.add_argument("--retention-days", type=float, default=None,
                        help="delete conversations not used for this many days (default 30)")
    server.add_argument("--max-wait", type=float, default=None, metavar="SECONDS",
                        help="how long a message may wait for the LLM before a 503 with Retry-After (default 10)")
    server.add_argument("--cors-origin", action="append", default=None, metavar="ORIGIN",
                        help="allow browser calls from this origin, e.g. https://example.org (repeatable; "
                        "default: none, CORS off)")
    server.add_argument("--withhold-research-text", action=argparse.BooleanOptionalAction, default=None,
                        help="leave plots, cast, writers and keywords (research-use-only text) out of every "
                        "response (default: on unless --host is loopback)")
    serve.add_argument("--print-openapi", action="store_true",
                       help="print the API's OpenAPI schema (JSON) and exit, loading nothing")
    add_data_options(serve)
    serve.set_defaults(handler=run_serve)


def read_config(path: Path | None) -> ServeConfig:
    if path is None:
        return ServeConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"--config {path}: cannot be read ({exc.strerror or exc})") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"--config {path}: not valid TOML ({exc})") from None
    try:
        return ServeConfig(**raw)
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"])
        raise ConfigError(f"--config {path}: {field}: {problem['msg']}") from None


def serve_config(args: argparse.Namespace) -> ServeConfig:
    """The config file's settings with the flags applied; ConfigError for a bad value, naming the flag."""
    config = read_config(args.config)
    engine, server = config.engine, config.server
    updates: dict[str, Any] = {}
    if args.retriever is not None:
        check_retriever_name(args.retriever)
        updates["retriever"] = args.retriever
    if args.checkpoint is not None:
        updates["checkpoint"] = str(args.checkpoint)
    if args.agent is not None:
        updates["agent"] = args.agent
    if args.model is not None:
        if args.no_llm:
            raise ConfigError("--model names the LLM and --no-llm asks for none: choose one")
        llm = engine.llm or DEFAULT_ENGINE.llm
        updates["llm"] = llm.model_copy(update={"model": args.model})
    if args.no_llm:
        updates["llm"] = None
    engine = engine.model_copy(update=updates)
    if engine.retriever is not None:
        check_retriever_name(engine.retriever, "[engine] retriever")
    if engine.agent is not None and engine.agent_options.get("explainer", "template") != "llm":
        engine = engine.model_copy(update={"llm": None})  # the agent's templates need no LLM: none is loaded
    # As the chat: k is what the LLM re-ranks (its cost), top at most k; without a re-ranker candidates are free
    session = engine.session
    if engine.llm is None or engine.agent is not None:
        session = session.model_copy(update={"k": max(session.k, session.top)})
    engine = engine.model_copy(update={"session": session.model_copy(update={"top": min(session.top, session.k)})})
    settings: dict[str, Any] = {}
    for flag, key in (("host", "host"), ("port", "port"), ("db", "db"), ("retention_days", "retention_days"),
                      ("max_wait", "max_wait_s"), ("withhold_research_text", "withhold_research_text")):
        if getattr(args, flag) is not None:
            settings[key] = getattr(args, flag)
    if args.cors_origin:
        settings["cors_origins"] = tuple(args.cors_origin)
    token = args.token if args.token is not None else token_from_env()
    if token is not None:
        if not token.strip() or len(token) < 16:
            raise ConfigError(f"the token (--token or ${TOKEN_ENV}) must have at least 16 characters",
                              hint='make one with: python -c "import secrets; print(secrets.token_urlsafe(32))"')
        settings["token"] = SecretStr(token)
    try:
        server = ServeSettings(**{**server.model_dump(exclude_unset=True), **settings})
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = str(problem["loc"][0]) if problem["loc"] else ""
        flag = {"max_wait_s": "--max-wait", "retention_days": "--retention-days"}.get(field,
                                                                                  "--" + field.replace("_", "-"))
        raise ConfigError(f"{flag}: {problem['msg']}") from None
    return config.model_copy(update={"dataset": args.dataset or config.dataset, "server": server,
                                     "engine": engine})


def openapi_document() -> str:
    """The API's OpenAPI schema as the JSON text committed in docs/api/openapi.json."""
    from convrec.serve.http.app import create_app

    return json.dumps(create_app(None, None, ServeSettings()).openapi(), indent=2, ensure_ascii=False) + "\n"


@contextmanager
def _logged(text: str) -> Iterator[None]:
    started = time.monotonic()
    log.info("%s", text)
    yield
    log.info("  done in %.1f s", time.monotonic() - started)


def run_serve(args: argparse.Namespace) -> int:
    check_extra()
    if args.print_openapi:
        sys.stdout.write(openapi_document())
        return 0
    config = serve_config(args)
    settings = config.server
    problem = local_model_problem(config.engine, "serve")
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    from convrec.serve.http.app import create_app
    from convrec.serve.http.store import SessionStore

    resources = Resources.from_env(data_dir=data_dir(args))
    engine_config = config.engine
    if engine_config.llm is not None:
        engine_config = engine_config.model_copy(update={"llm": with_default_cache(engine_config.llm,
                                                                                   resources=resources)})
    store = None
    try:
        db = settings.db_path(resources.cache_dir)
        store = SessionStore(db, config.dataset)  # before the engine: a bad --db fails in a second
        loaded = load_engine(engine_config, config.dataset, data_dir(args), mirror(args), resources, _logged)
        app = create_app(loaded.engine, store, settings)
        _describe(config, loaded, db)
        server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=settings.port, log_config=None,
                                               access_log=False, timeout_graceful_shutdown=10))
        server.run()
    finally:
        if store is not None:
            store.close()
        resources.close()
    return 0


def _describe(config: ServeConfig, loaded: Any, db: Path) -> None:
    settings, engine = config.server, loaded.engine
    llm = engine.config.llm
    what = (f"the {engine.config.agent} agent" if engine.config.agent else
            f"{engine.config.retriever_name} + " + (f"{llm.model_name} re-ranking" if llm else "no LLM"))
    log.info("serving %s (%s %s) with %s; sessions in %s (kept %s)", config.dataset, f"{len(engine.catalog):,}",
             engine.vocabulary.plural, what, db,
             f"{settings.retention_days:g} days" if settings.retention_days else "for ever")
    log.info("research-only item text: %s; auth: %s; CORS: %s",
             "withheld" if settings.withholds_research_text else "shown",
             "bearer token" if settings.token else "none", ", ".join(settings.cors_origins) or "off")
    if settings.token is None and not is_loopback(settings.host):
        log.warning("listening on %s without a token: anyone who can reach it can use it (--token or $%s)",
                    settings.host, TOKEN_ENV)
    log.info("listening on http://%s:%d (API docs at /docs)", settings.host, settings.port)
