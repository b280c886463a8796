"""``convrec chat``: talk to the two-stage recommender in a terminal, or script it with ``--message``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape

from convrec.agent.domain import DomainAdapter
from convrec.agent.operations import VTOS
from convrec.agent.search.star import RolloutUsers
from convrec.cli import chat_view as view
from convrec.cli.common import (
    add_data_options,
    check_output_dir,
    check_output_file,
    data_dir,
    mirror,
    parse_options,
)
from convrec.data.dataset import CRSDataset
from convrec.data.load import load_dataset
from convrec.errors import ConfigError, ConvrecError
from convrec.io import write_json
from convrec.llm import LLMConfig, LocalOptions, ModelNotAvailableError, resolve_local_model
from convrec.llm.config import DEFAULT_LOCAL_MODEL
from convrec.rerank.pipeline import default_llm_cache
from convrec.resources import Resources
from convrec.retrieval import RECOMMENDERS
from convrec.serve.background import BackgroundTraining, TrainingProgress, is_finished_run
from convrec.serve.build import (
    CHAT_PROMPT,
    ITEM_ONLY,
    QUICK_RETRIEVER,
    TRAIN_HINT,
    ChatConfig,
    build_engine,
    build_retriever,
)
from convrec.serve.engine import Engine, NoSuchRecommendation
from convrec.serve.state import FeedbackKind, SessionOptions, SessionState

DEFAULT_K = 4
K_HELP = (
    "candidates the LLM re-ranks per turn (default 4). Pointwise asks the LLM once per candidate; the dialogue "
    "is cached as the shared prompt prefix, so a turn costs reading the new messages (the last reply and the "
    f"new message, ~80 prompt tokens) plus ~26 tokens per candidate. With {DEFAULT_LOCAL_MODEL} on an idle "
    "2-core machine (~20-24 prompt tokens/s with 2 threads, the default there) a turn took 9.7-10.1 s with "
    "4 candidates (the 10 s target) and 10.7-11.7 s with 5; with 1 thread about twice that. Beside other CPU "
    "work it is slower still: keep 1 thread there and lower --k."
)
DESCRIPTION = """\
A conversation with RAR's two stages: a retriever scores the whole catalogue for the dialogue so far, an
LLM re-ranks its top-k, and a reply names the top items (only catalogue titles, never invented ones).

  convrec chat                                   # ReDial, itemknn retriever, local qwen2.5-coder-1.5b
  convrec chat --checkpoint runs/lrurec-text-redial   # RAR's trained retriever (lrurec-text)
  convrec chat --train-in-background runs/lrurec-text-redial  # talk now, RAR's retriever when trained
  convrec chat --model smollm2-135m              # a tiny model for a quick try (weak answers)
  convrec chat --no-llm                          # the retriever alone
  convrec chat --agent harpo                     # the HARPO agent (state, constraints, Critic, reasons)
  convrec chat -m "I loved Alien (1979), something similar?" -m "/why 1" --json turns.json
  convrec chat --state me.json                   # continue the conversation saved in me.json (saved each turn)
  convrec chat --llm-backend openai --model gpt-4o-mini --api-key-env OPENAI_API_KEY --strategy listwise

Inside the chat: /why N, /like N, /dislike N, /seen N, /reset, /trace, /status, /help, /quit (or Ctrl-D).
"""


def add_parser(commands) -> None:
    chat = commands.add_parser(
        "chat", help="talk to the recommender (retriever + LLM re-ranker) in the terminal",
        description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chat.add_argument("--dataset", default="redial", help="catalogue and training dialogues (default redial)")
    chat.add_argument("--retriever", default=None,
                      help=f"stage 1 (default: lrurec-text with --checkpoint, else {QUICK_RETRIEVER}, which fits "
                      "in a second; ease fits in ~30 s; any name of `convrec recommenders`)")
    chat.add_argument("--checkpoint", type=Path, default=None,
                      help="a `convrec train` run dir for the retriever (lrurec, lrurec-text)")
    chat.add_argument("--agent", choices=["harpo"], default=None,
                      help="harpo: the HARPO agent answers instead of retriever + LLM re-ranker: it tracks what you "
                      "like, dislike, have seen and ask for (eras, genres, people) over the same retriever, asks "
                      "when it knows nothing yet, checks its slate (Critic) and gives a reason for each item from "
                      "the catalogue (ask it \"why the second one?\" too); /trace shows its steps. It needs no LLM (the reply is a template) unless --explainer llm")
    chat.add_argument("--explainer", choices=["template", "llm"], default="template",
                      help="with --agent harpo: template (default, no LLM), or llm: the chat's LLM (see the LLM "
                      "options) rewrites the agent's reply, kept only if it names the same titles and states no "
                      "genre or person the items lack; the turn records which text stands and why (/trace)")
    chat.add_argument("--agent-set", dest="agent_options", action="append", metavar="KEY=VALUE",
                      help="with --agent harpo: an agent option (repeatable), e.g. --agent-set search.kind=value "
                      "--agent-set search.value_network=results/runs/star-redial: STAR chooses each move, and "
                      "/trace shows the searched tree (see `convrec recommenders`, harpo)")
    chat.add_argument("--train-in-background", type=Path, default=None, metavar="RUN_DIR",
                      help="RAR's retriever without the wait: a finished `convrec train` run in RUN_DIR is loaded "
                      f"at once (as with --checkpoint); otherwise the chat opens at once on {QUICK_RETRIEVER} while "
                      "`convrec train --recommender lrurec-text --out RUN_DIR` runs at the lowest CPU priority "
                      "(log in RUN_DIR/train.log), and the trained retriever answers from the first turn after "
                      "it is done (/status shows its progress). Ending the chat stops the training; the next "
                      "start resumes it where it stopped")
    chat.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE",
                      help="a retriever option, e.g. --set neighbors=50 (repeatable)")
    chat.add_argument("--k", type=int, default=DEFAULT_K, help=K_HELP)
    chat.add_argument("--top", type=int, default=5,
                      help="recommendations shown per turn (default 5; at most --k when an LLM re-ranks)")
    chat.add_argument("--include-mentioned", action="store_true",
                      help="allow items already in the dialogue (yours or recommended) to be recommended again")
    llm = chat.add_argument_group("LLM")
    llm.add_argument("--no-llm", action="store_true", help="no LLM: the retriever's order, template replies")
    llm.add_argument("--llm-backend", choices=["local", "openai"], default="local",
                     help="local: llama.cpp in this process (default); openai: any OpenAI-compatible server")
    llm.add_argument("--model", default=None,
                     help=f"local: a model name ({DEFAULT_LOCAL_MODEL} (default), smollm2-135m) or a GGUF file; "
                     "openai: the server's model name (required)")
    llm.add_argument("--base-url", default=None, help="openai: the server, e.g. http://localhost:8000/v1")
    llm.add_argument("--api-key-env", default=None, help="openai: the environment variable holding the API key")
    llm.add_argument("--threads", type=int, default=None,
                     help=f"local: llama.cpp threads (default {chat_threads()}: every core up to 8, since a chat "
                     "waits for its answer; on a machine busy with other work use 1, as llama.cpp threads then "
                     "spin-wait on each other and get much slower)")
    llm.add_argument("--strategy", choices=["pointwise", "listwise"], default="pointwise",
                     help="pointwise: P(yes) per candidate (default; works with small models); listwise: the LLM "
                     "orders all k titles in one answer (for strong models; small ones copy the input order)")
    llm.add_argument("--fusion-weight", type=float, default=0.5,
                     help="w in (1-w)*retriever + w*LLM (default 0.5; `convrec eval --recommender rar` chooses it "
                     "on validation)")
    llm.add_argument("--people", type=int, default=CHAT_PROMPT.max_people,
                     help="names of people (director or author, cast) the LLM reads per candidate (default "
                     f"{CHAT_PROMPT.max_people}; 2 adds ~25 prompt tokens a candidate, about 2 s more per candidate "
                     "with 1 thread)")
    llm.add_argument("--plot-chars", type=int, default=CHAT_PROMPT.plot_chars,
                     help=f"characters of plot the LLM reads per candidate (default {CHAT_PROMPT.plot_chars}: a "
                     "100-character plot adds ~25 prompt tokens, about double the cost of a candidate on CPU)")
    llm.add_argument("--polish", action="store_true",
                     help="the LLM rewrites the reply (kept only if it names exactly the recommended titles); "
                     "several seconds more per turn on CPU")
    llm.add_argument("--llm-cache", type=Path, default=None,
                     help=f"SQLite cache of LLM replies (default {default_llm_cache()})")
    llm.add_argument("--no-llm-cache", action="store_true", help="do not cache LLM replies")
    chat.add_argument("-m", "--message", action="append", default=None,
                      help="run this message (or command, e.g. /reset) as a turn, then exit (repeatable)")
    chat.add_argument("--json", type=Path, default=None, metavar="OUT.json",
                      help="write every turn with its recommendations, scores and timing as JSON at the end")
    chat.add_argument("--state", type=Path, default=None, metavar="FILE.json",
                      help="the conversation's saved state: continued if FILE exists (under this run's options), "
                      "saved after every turn and command, atomically (a killed chat loses nothing)")
    add_data_options(chat)
    chat.set_defaults(handler=run_chat)


def chat_threads() -> int:
    """llama.cpp threads for a chat: every core (at most 8). Unlike batch jobs, which default to half the cores
    so they can share the machine, a chat turn is the one thing the user is waiting for (measured on 2 cores:
    ~10 s a turn with 2 threads, ~20 s with 1)."""
    return max(1, min(8, os.cpu_count() or 1))


# The option of `convrec chat` that sets each field of LLMConfig / LocalOptions, to name it in an error.
_LLM_OPTIONS = {"base_url": "--base-url", "n_threads": "--threads", "model": "--model",
                "api_key_env": "--api-key-env", "cache_path": "--llm-cache"}


def chat_config(args: argparse.Namespace) -> ChatConfig:
    if args.k < 1 or args.top < 1:
        raise ConfigError(f"--k and --top must be at least 1, got --k {args.k} --top {args.top}")
    if not 0.0 <= args.fusion_weight <= 1.0:
        raise ConfigError(f"--fusion-weight must be in [0, 1], got {args.fusion_weight}")
    if args.explainer == "llm" and (args.agent is None or args.no_llm):
        raise ConfigError("--explainer llm is the agent's LLM rewrite of its reply: use it with --agent harpo and "
                          "without --no-llm")
    llm = None
    # the agent needs an LLM only to rewrite its replies (--explainer llm); the two-stage chat re-ranks with one
    if not args.no_llm and (args.agent is None or args.explainer == "llm"):
        if args.llm_backend == "openai" and not args.model:
            raise ConfigError("--llm-backend openai needs --model: the model name the server knows")
        cache = None if args.no_llm_cache else (args.llm_cache or default_llm_cache())
        try:
            llm = LLMConfig(backend=args.llm_backend, model=args.model, base_url=args.base_url,
                            api_key_env=args.api_key_env, cache_path=cache, max_concurrency=1,
                            local=LocalOptions(n_threads=args.threads or chat_threads()))
        except ValidationError as err:
            problem = err.errors()[0]
            field = str(problem["loc"][-1]) if problem["loc"] else ""
            raise ConfigError(f"{_LLM_OPTIONS.get(field, field)}: {problem['msg']}") from None
    if args.retriever is not None:
        check_retriever_name(args.retriever)
    if args.plot_chars < 0 or args.people < 0:
        raise ConfigError(f"--plot-chars and --people must be at least 0, got --plot-chars {args.plot_chars} "
                          f"--people {args.people}")
    checkpoint = args.checkpoint
    if args.train_in_background is not None:
        if args.checkpoint is not None or args.retriever is not None:
            raise ConfigError("--train-in-background chooses the retriever itself (lrurec-text when trained, "
                              f"{QUICK_RETRIEVER} until then): leave out --checkpoint and --retriever")
        if is_finished_run(args.train_in_background):
            checkpoint = args.train_in_background
    # k is what the LLM re-ranks (its cost); without an LLM, candidates are free and --top decides
    k = args.k if llm is not None and args.agent is None else max(args.k, args.top)
    session = SessionOptions(k=k, top=min(args.top, k), include_mentioned=args.include_mentioned)
    return ChatConfig(agent=args.agent, retriever=args.retriever, retriever_options=parse_options(args.options),
                      checkpoint=str(checkpoint) if checkpoint else None, llm=llm,
                      agent_options={"explainer": args.explainer, **parse_options(args.agent_options)}
                      if args.agent is not None else {},
                      strategy=args.strategy, fusion_weight=args.fusion_weight, polish=args.polish,
                      prompt=CHAT_PROMPT.model_copy(update={"plot_chars": args.plot_chars, "max_people": args.people}), session=session)


def chat_rollout_users(adapter: DomainAdapter) -> RolloutUsers:
    """STAR's roll-out users for the chat's agent: rule users whose goals are drawn from its belief."""
    from convrec.simulate.rollout import rollout_users  # the simulator: only when roll-outs are asked for

    return rollout_users(adapter)


def check_retriever_name(name: str, option: str = "--retriever") -> None:
    """A retriever the chat's first stage can be: any registered recommender but rar (two stages itself)."""
    if name not in RECOMMENDERS or name == "rar":
        choices = ", ".join(sorted(known for known in RECOMMENDERS if known != "rar"))
        raise ConfigError(f"{option} {name!r}: choose one of {choices}")


def missing_model_message(model: str, error: Exception, command: str = "chat") -> str:
    return (
        f"convrec {command}: the local model {model!r} is not available.\n  {error}\n"
        f"Install the default model with: bash scripts/install_qwen.sh\n"
        f"For a quick try with a tiny model: convrec {command} --model smollm2-135m   (or without an LLM: --no-llm)"
    )


def local_model_problem(config: ChatConfig, command: str = "chat") -> str | None:
    """Why the config's local model cannot be loaded (the message to print), or None: checked before the
    data, since a missing model should not cost a minute of loading first."""
    if config.llm is None or config.llm.backend != "local":
        return None
    try:
        resolve_local_model(config.llm.model_name, config.llm.local.models_dir)
    except ModelNotAvailableError as exc:
        return missing_model_message(config.llm.model_name, exc, command)
    return None


@dataclass(frozen=True)
class LoadedEngine:
    """What :func:`load_engine` built: the engine, the dataset it was built from, its LLM client (None without
    one) and the seconds the retriever took to fit or load."""

    engine: Engine
    dataset: CRSDataset
    llm: Any
    fit_s: float


def load_engine(config: ChatConfig, dataset_name: str, data: Path, mirror_dir: Path | None, resources: Resources,
                status: Callable[[str], AbstractContextManager[Any]]) -> LoadedEngine:
    """The engine of ``convrec chat`` and ``convrec serve``: the LLM first (a missing model or API key fails
    before the data are loaded), then the dataset, the retriever fit on its train split (or loaded from the
    config's checkpoint) and the engine over them. ``status(text)`` shows each step while it runs; the LLM is
    ``resources``' client, closed by ``resources.close()``."""
    llm = None
    if config.llm is not None:
        with status(f"loading the LLM {config.llm.model_name} ..."):
            llm = resources.llm(config.llm)
    with status(f"loading {dataset_name} ..."):
        dataset = load_dataset(dataset_name, data, mirror_dir)
    with status(f"fitting the retriever {config.retriever_name} ..."):
        fit_started = time.monotonic()
        retriever = build_retriever(dataset, config, resources=resources)
        fit_s = time.monotonic() - fit_started
    return LoadedEngine(build_engine(dataset, config, llm, retriever, resources=resources,
                                     rollout_users=chat_rollout_users), dataset, llm, fit_s)


def run_chat(args: argparse.Namespace) -> int:
    out = Console() if sys.stdout.isatty() else Console(width=120)
    err = Console(stderr=True)
    config = chat_config(args)
    if args.json is not None:  # the turns are written at the end: an unwritable path must fail before them
        check_output_file(args.json, "--json")
    problem = local_model_problem(config)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    if args.state is not None:
        check_output_file(args.state, "--state")
    if args.train_in_background is not None:
        check_output_dir(args.train_in_background, "--train-in-background")
    started = time.monotonic()
    llm = None
    chat: Chat | None = None
    resources = Resources.from_env(data_dir=data_dir(args))
    try:
        loaded = load_engine(config, args.dataset, data_dir(args), mirror(args), resources, err.status)
        engine, llm = loaded.engine, loaded.llm
        chat = Chat(engine, _initial_state(engine, args.state), args.state)
        if args.train_in_background is not None and config.checkpoint is None:
            chat.train_in_background(args, loaded.dataset, llm, resources)
        view.banner(out, _banner_lines(args, engine.config, chat, loaded.fit_s, time.monotonic() - started))
        screen = view.Screen(out, config.llm is not None, config.retriever_name in ITEM_ONLY, engine.vocabulary,
                             config.retriever_name)
        if args.message is not None:
            for message in args.message:
                out.print(f"[bold]you[/bold]> {escape(message)}")
                if not _handle(message, chat, screen):
                    break
        else:
            _interactive(chat, screen)
    except ModelNotAvailableError as exc:
        print(missing_model_message(config.llm.model_name if config.llm else "?", exc), file=sys.stderr)
        return 2
    finally:
        if chat is not None and chat.training is not None:
            progress = chat.training.stop()
            if progress.phase == "stopped":
                err.print(f"stopped the background training ({progress.describe()}); the same command resumes it")
        resources.close()
    if args.json is not None:
        write_json(args.json, _report(args, chat, llm))
        err.print(f"wrote {args.json}")
    return 0


@dataclass
class Chat:
    """The terminal's conversation: the shared engine, the current state, and where it is saved (if anywhere).

    With training in the background, the engine of the trained retriever is built in the training's watcher
    thread and handed over here (:meth:`take_ready`); the terminal swaps it in between two turns, so a turn
    never sees two engines."""

    engine: Engine
    state: SessionState
    state_path: Path | None = None
    training: BackgroundTraining | None = None
    _ready: Engine | None = field(default=None, repr=False)
    _problem: BaseException | TrainingProgress | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def update(self, state: SessionState) -> None:
        self.state = state
        if self.state_path is not None:
            state.save(self.state_path)

    def train_in_background(self, args: argparse.Namespace, dataset: Any, llm: Any, resources: Resources) -> None:
        config = self.engine.config

        def load_trained(run_dir: Path) -> None:
            try:
                trained = config.model_copy(update={"retriever": None, "checkpoint": str(run_dir)})
                engine = build_engine(dataset, trained, llm, build_retriever(dataset, trained, resources=resources),
                                      resources=resources, rollout_users=chat_rollout_users)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which reports or raises it
                self._hand_over(problem=exc)
            else:
                self._hand_over(engine=engine)

        extra = [*(["--data-dir", str(args.data_dir)] if args.data_dir else []),
                 *(["--mirror", str(args.mirror)] if args.mirror else [])]
        self.training = BackgroundTraining(args.dataset, args.train_in_background, extra_args=extra,
                                           on_finished=load_trained,
                                           on_failed=lambda progress: self._hand_over(problem=progress)).start()

    def _hand_over(self, engine: Engine | None = None, problem: BaseException | TrainingProgress | None = None):
        with self._lock:
            self._ready, self._problem = engine, problem

    def take_ready(self) -> tuple[Engine | None, BaseException | TrainingProgress | None]:
        """The trained retriever's engine (now this chat's engine) or what went wrong, each at most once."""
        with self._lock:
            ready, problem, self._ready, self._problem = self._ready, self._problem, None, None
        if ready is not None:
            self.engine = ready
        return ready, problem


def _initial_state(engine: Engine, path: Path | None) -> SessionState:
    """A new conversation, or the one saved at ``path``, continued under this run's options."""
    if path is None or not path.exists():
        return engine.new_state()
    return SessionState.load(path, engine.catalog).model_copy(update={"options": engine.options})


def _interactive(chat: Chat, screen: view.Screen) -> None:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401  (line editing and history for input())
    while True:
        try:
            line = input("you> ")
        except (EOFError, KeyboardInterrupt):
            screen.console.print()
            return
        if not _handle(line, chat, screen):
            return


FEEDBACK: dict[str, FeedbackKind] = {"/like": "like", "/dislike": "dislike", "/seen": "seen"}


def _handle(line: str, chat: Chat, screen: view.Screen) -> bool:
    """Run one line: a command or a message. False when the chat should end."""
    out = screen.console
    text = line.strip()
    if not text:
        return True
    _swap_if_trained(chat, screen)
    engine = chat.engine
    if text.startswith("/"):
        command, _, argument = text.partition(" ")
        command = command.lower()
        if command in ("/quit", "/exit", "/q"):
            return False
        try:
            if command == "/reset":
                chat.update(engine.reset(chat.state))
                out.print("[cyan](new conversation: the dialogue so far is forgotten)[/cyan]")
            elif command == "/why":
                view.show_why(out, engine.why(chat.state, _number(argument)))
            elif command in FEEDBACK:
                state, item = engine.feedback(chat.state, _number(argument), FEEDBACK[command])
                chat.update(state)
                view.show_feedback(out, item, FEEDBACK[command])
            elif command == "/trace":
                view.show_trace(out, chat.state.last, lambda item_id: engine.catalog.get(item_id).display_title)
            elif command == "/status":
                _show_status(chat, screen)
            elif command in ("/help", "/?"):
                view.show_help(out, engine.vocabulary)
            else:
                out.print(f"[yellow]unknown command {escape(command)}; commands: {view.COMMANDS}[/yellow]")
        except NoSuchRecommendation as exc:
            view.show_no_such_recommendation(out, command, exc)
        return True
    state, turn = engine.turn(chat.state, text)
    chat.update(state)
    screen.turn(turn, engine.catalog)
    return True


def _swap_if_trained(chat: Chat, screen: view.Screen) -> None:
    """Swap in the trained retriever if its training finished since the last line, and say so."""
    ready, problem = chat.take_ready()
    out = screen.console
    if ready is not None:
        progress = chat.training.progress() if chat.training else None
        score = (f" (validation Recall@10 {progress.best_valid_recall:.3f})"
                 if progress and progress.best_valid_recall is not None else "")
        name = ready.config.retriever_name
        screen.retriever, screen.item_only = name, name in ITEM_ONLY
        out.print(f"[green](the trained retriever {escape(name)}{score} answers from now on)[/green]")
    elif isinstance(problem, TrainingProgress):
        out.print(f"[yellow]note[/yellow]: the background {escape(problem.describe())}; "
                  f"{escape(screen.retriever)} keeps answering")
    elif isinstance(problem, ConvrecError):
        out.print(f"[yellow]note[/yellow]: the trained retriever could not be loaded ({escape(str(problem))}); "
                  f"{escape(screen.retriever)} keeps answering")
    elif problem is not None:
        raise problem  # a bug: the CLI's boundary logs it


def _show_status(chat: Chat, screen: view.Screen) -> None:
    out = screen.console
    out.print(f"retriever: {escape(chat.engine.config.retriever_name)}")
    if chat.training is not None:
        out.print(escape(chat.training.progress().describe()))


def _number(argument: str) -> int:
    try:
        return int(argument.strip())
    except ValueError:
        return 0  # no recommendation has number 0: the command's usage is shown


def _banner_lines(args: argparse.Namespace, config: ChatConfig, chat: Chat, fit_s: float,
                  startup_s: float) -> list[tuple[str, str]]:
    name = config.retriever_name
    retriever = f"{name}, " + (f"loaded from {escape(config.checkpoint)}" if config.checkpoint
                               else f"fit on the {args.dataset} train split in {fit_s:.1f} s")
    engine = chat.engine
    lines = [("catalogue", f"{args.dataset}: {len(engine.catalog):,} {engine.vocabulary.plural}"),
             ("retriever", retriever)]
    if chat.training is not None:
        lines.append(("", f"RAR's retriever lrurec-text is training in the background into "
                      f"{escape(str(chat.training.run_dir))} (log {escape(str(chat.training.log_path))}); it "
                      "answers from the first turn after it is done"))
    elif not config.checkpoint:
        if name in ITEM_ONLY:
            lines.append(("", "sees only the titles mentioned; until one is, it proposes popular items"
                          + (" for the LLM to choose from" if config.llm and config.agent is None else "")))
        lines.append(("", "RAR's trained retriever: " + TRAIN_HINT.format(dataset=args.dataset)
                      + f", then --checkpoint runs/lrurec-text-{args.dataset} (or, without waiting: "
                      f"--train-in-background runs/lrurec-text-{args.dataset})"))
    if config.agent is not None:
        lines.append(("agent", f"{config.agent}: tracked state, {len(VTOS)} VTOs, Critic and Explainer over the "
                      "retriever's candidates; /trace shows its steps"))
    elif config.llm is None:
        lines.append(("re-ranker", "none (--no-llm): the retriever's order"))
    else:
        threads = config.llm.local.n_threads or chat_threads()
        hint = "" if threads > 1 or (os.cpu_count() or 1) < 2 else "; --threads 2 is ~2x faster on an idle machine"
        where = (f"local, {threads} thread{'s' if threads > 1 else ''}{hint}" if config.llm.backend == "local"
                 else f"openai-compatible, {config.llm.base_url or 'api.openai.com'}")
        lines.append(("re-ranker", f"{config.strategy} with {escape(config.llm.model_name)} ({where}); "
                      f"{config.session.k} candidates, fusion weight {config.fusion_weight}"))
        cache = escape(str(config.llm.cache_path)) if config.llm.cache_path else "off"
        lines.append(("LLM cache", cache))
    reply = "LLM rewrite of the template, checked" if config.polish and config.llm else "template over catalogue facts"
    lines.append(("replies", f"{reply}; names only recommended catalogue titles"))
    lines.append(("commands", view.COMMANDS))
    if chat.state_path is not None:
        turns = len(chat.state.turns) // 2
        lines.append(("state", f"{escape(str(chat.state_path))}: " + (
            f"continuing a conversation of {turns} turn{'s' if turns != 1 else ''}" if turns else "a new conversation")
            + ", saved after every turn"))
    lines.append(("started", f"in {startup_s:.1f} s"))
    return lines


def _report(args: argparse.Namespace, chat: Chat, llm: Any) -> dict[str, Any]:
    backend = getattr(llm, "backend", None)
    return {
        "dataset": args.dataset,
        "retriever": chat.engine.config.retriever_name,
        "llm": None if llm is None else {"backend": getattr(backend, "backend", None),
                                         "model": getattr(backend, "identity", None)},
        "settings": chat.engine.config.model_dump(mode="json"),
        "turns": [turn.to_json(chat.engine.catalog) for turn in chat.state.history],
    }
