"""The interactive protocol as a function: choose the episodes, build the system, play every episode, and
return a result record like ``convrec eval``'s (its numbers under ``metrics`` and ``stderr``).

**Transcripts and resuming.** Every finished episode is one JSON line of the transcripts file, written and
flushed (fsync) as soon as it ends; its first line is a header naming the simulation (the config, the
dataset's fingerprint, a hash of the chosen episodes). Run again with the same file and settings, a
simulation reads the episodes already there and plays only the others: an interrupted run continues where
it stopped. A line cut short by a kill is dropped (that episode is played again); a header for other settings
is an error, unless ``restart`` (a header alone, of a run that failed before its first episode, is replaced). The metrics are computed from the records of the file, in the episodes'
seeded order, so a resumed run reports what an uninterrupted one would: every episode is seeded by the run's
seed and its own id, never by its position or by the episodes before it. One process writes a file at a time
(an advisory lock).

``workers`` > 1 plays episodes on threads: worth it when the system waits on a server (an OpenAI-compatible
LLM backend); on CPU-bound recommenders the interpreter's lock makes it no faster.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import IO, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, model_validator
from tqdm import tqdm

from convrec import __version__
from convrec.agent.domain import DomainAdapter
from convrec.agent.harpo import HarpoRecommender
from convrec.agent.search.star import StarSearch
from convrec.data.dataset import CRSDataset
from convrec.data.model import RecSample
from convrec.errors import ConfigError, DataError, OutputPathError
from convrec.evaluate.protocol import Protocol
from convrec.io import iter_jsonl, sha256_text
from convrec.llm.affinity import affinity
from convrec.llm.types import LLM
from convrec.rerank.pipeline import with_default_cache
from convrec.resources import Resources
from convrec.retrieval.base import build_recommender
from convrec.simulate.episode import EpisodeRecord, run_episode
from convrec.simulate.goal import choose_samples
from convrec.simulate.llm_user import LLMUser, LLMUserOptions
from convrec.simulate.metrics import interactive_metrics
from convrec.simulate.rollout import rollout_users
from convrec.simulate.system import EngineSystem, HarpoSystem, RankingSystem, System
from convrec.simulate.user import UserOptions, UserSimulator, user_class

FORMAT = "convrec-simulate/1"
NOT_CHAT_RETRIEVERS = ("harpo", "rar")


class SimulationConfig(BaseModel):
    """Everything that decides what a simulation plays (and so what a resumed run must match)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str
    recommender: str
    options: dict[str, Any] = Field(default_factory=dict, description="the recommender's options (--set)")
    system: Literal["auto", "ranking", "agent", "chat"] = Field(
        "auto", description="ranking: the recommender's top items each turn; agent: harpo's own turns (asks and "
        "recommends); chat: convrec chat's engine over the recommender as retriever; auto: agent for harpo")
    user: str = "rule"
    user_options: SerializeAsAny[UserOptions] = Field(UserOptions(), description="the user's options, of its own "
                                                      "class (LLMUserOptions for the llm user)")
    split: Literal["valid", "test"] = "test"
    protocol: Protocol = Protocol.STANDARD
    turns: int = Field(5, ge=1, le=50, description="system turns per episode at most")
    slate: int = Field(5, ge=1, le=50, description="items recommended per system turn")
    episodes: int | None = Field(None, ge=1, description="a seeded subset of this many samples; None: all")
    seed: int = Field(0, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _options_of_the_user(cls, data: Any) -> Any:
        """``user_options`` read as the chosen user's options class (a dict, or another user's options)."""
        if not isinstance(data, dict):
            return data
        kind = user_class(data.get("user", "rule")).options_class
        options = data.get("user_options")
        if options is None or isinstance(options, dict):
            return {**data, "user_options": kind(**(options or {}))}
        if isinstance(options, UserOptions) and type(options) is not kind:
            return {**data, "user_options": kind(**options.model_dump())}
        return data

    @property
    def system_kind(self) -> str:
        if self.system != "auto":
            return self.system
        return "agent" if self.recommender == "harpo" else "ranking"


def user_factory(config: SimulationConfig, resources: Resources, llm: LLM | None = None
                 ) -> Callable[..., UserSimulator]:
    """What plays the user of each episode: its class, or for the llm user its class with the (cached) client of
    ``config``'s LLM, or ``llm`` when given."""
    users = user_class(config.user)
    if not issubclass(users, LLMUser):
        return users
    options = config.user_options
    assert isinstance(options, LLMUserOptions)
    client = llm or resources.llm(with_default_cache(options.llm, options.llm_cache, resources))
    return partial(users, llm=client)


def check_system_kind(system: str, recommender: str, option: str = "--system") -> None:
    """The system kinds :func:`build_system` cannot build, refused before anything loads; ``option``: how the
    caller's user set it ("--system", "[simulation] system")."""
    if system == "agent" and recommender != "harpo":
        raise ConfigError(f"{option} agent: {recommender!r} is not an agent (harpo is); use ranking or auto")
    if system == "chat" and recommender in NOT_CHAT_RETRIEVERS:
        raise ConfigError(f"{option} chat: {recommender!r} is no first-stage retriever for the chat engine; use "
                          "ranking or auto")


def build_system(config: SimulationConfig, dataset: CRSDataset, resources: Resources | None = None) -> System:
    """The system of ``config``, fitted on the train split (validation for its hyper-parameters, as offline)."""
    kind = config.system_kind
    check_system_kind(config.system, config.recommender)
    if kind == "chat":
        from convrec.serve.build import ChatConfig, build_engine  # the chat's stack only when asked for

        chat = ChatConfig(retriever=config.recommender, retriever_options=config.options, llm=None)
        return EngineSystem(build_engine(dataset, chat, resources=resources), config.slate)
    recommender = build_recommender(config.recommender, dataset.catalog, config.options, resources=resources)
    recommender.fit(dataset.split("train"), dataset.split("valid") if config.split != "valid" else None)
    if isinstance(recommender, HarpoRecommender) and kind == "agent":
        agent = recommender.agent_
        assert agent is not None
        users = rollout_users(agent.ctx.adapter, config.user_options, config.seed)
        return HarpoSystem(agent, config.slate, StarSearch.build(recommender.config.search, users))
    return RankingSystem(recommender, config.slate, dataset.name)


class Transcripts:
    """The transcripts file (see the module docstring): a header line, then one line per finished episode."""

    def __init__(self, path: Path, header: dict[str, Any]):
        self.path = path
        self.header = header
        self._handle: IO[str] | None = None
        self._lock = threading.Lock()

    def open(self, restart: bool = False) -> dict[str, EpisodeRecord]:
        """Lock the file and return the episodes it already holds (none after ``restart``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held open until close()
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise OutputPathError(f"--transcripts {self.path}: another convrec simulate is writing it") from None
        except OSError as err:
            raise OutputPathError(f"--transcripts {self.path}: cannot be written ({err.strerror or err})") from None
        self._handle = handle
        records = None if restart else self._read()
        if records is None:  # a fresh file, a restart, or a header alone (of any settings: nothing to lose)
            handle.truncate(0)
            self._write_line(self.header)
        return records or {}

    def _read(self) -> dict[str, EpisodeRecord] | None:
        """The episodes of the file; None when it holds none (empty, or a header alone) and needs a header."""
        data = self.path.read_bytes()
        first, newline, rest = data.partition(b"\n")
        if not data or not newline and first.startswith(b'{"format": "' + FORMAT.encode()):
            return None  # empty, or killed while writing its own header
        # checked before anything is cut: the file may be someone else's
        self._check_header(_json_or_none(first), started=bool(rest.strip()))
        if not rest.strip():
            return None
        if not data.endswith(b"\n"):
            self._cut(data.rfind(b"\n") + 1)  # a kill mid-write: that episode is played again
        records: dict[str, EpisodeRecord] = {}
        for number, value in iter_jsonl(self.path):
            if number == 1:
                continue
            try:
                record = EpisodeRecord.model_validate(value)
            except ValidationError as err:
                raise DataError(f"not an episode record ({err.errors()[0]['msg']})", self.path, number) from None
            if record.episode_id in records:
                raise DataError(f"episode {record.episode_id} is in the file twice (edited by hand, or written by "
                                "two runs at once?)", self.path, number)
            records[record.episode_id] = record
        return records

    def _cut(self, size: int) -> None:
        assert self._handle is not None
        self._handle.truncate(size)

    def _check_header(self, value: Any, started: bool) -> None:
        """A header of this simulation, or of another one that played no episode yet (it is replaced)."""
        if not isinstance(value, dict) or value.get("format") != FORMAT:
            raise DataError(f"not a convrec simulate transcripts file (its first line is no {FORMAT} header)",
                            self.path, 1, hint="choose another --transcripts file")
        differ = [key for key in self.header if key != "convrec_version" and value.get(key) != self.header[key]]
        if differ and started:
            raise ConfigError(f"--transcripts {self.path}: written by a simulation with other settings "
                              f"({', '.join(differ)} differ)",
                              hint="pass --restart to start it afresh, or choose another file")

    def append(self, record: EpisodeRecord) -> None:
        with self._lock:
            self._write_line(record.model_dump(mode="json"))

    def _write_line(self, value: dict[str, Any]) -> None:
        assert self._handle is not None
        self._handle.write(json.dumps(value, ensure_ascii=False) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing releases the lock
            self._handle = None


def _json_or_none(line: bytes) -> Any:
    try:
        return json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return None


def simulation_header(config: SimulationConfig, dataset: CRSDataset, samples: Sequence[RecSample]) -> dict[str, Any]:
    return {"format": FORMAT, "config": config.model_dump(mode="json"), "data_hash": dataset.fingerprint,
            "episodes": len(samples), "episodes_sha256": sha256_text(*(s.sample_id for s in samples))[:16],
            "convrec_version": __version__}


def simulate(config: SimulationConfig, dataset: CRSDataset, system: System | None = None, *,
             transcripts: Path | None = None, restart: bool = False, workers: int = 1, progress: bool = True,
             resources: Resources | None = None, user_llm: LLM | None = None,
             records_out: list[EpisodeRecord] | None = None) -> dict[str, Any]:
    """Run the simulation of ``config`` (see the module docstring) and return its result record. ``system``:
    an already built one (else :func:`build_system`); ``transcripts``: the JSONL file to write and resume
    from (None: the records stay in memory); ``user_llm``: the llm user's LLM (else built from its options);
    ``records_out``: receives every episode record of the run, resumed ones included, in the seeded order."""
    if resources is None:
        with Resources.from_env() as own:
            return simulate(config, dataset, system, transcripts=transcripts, restart=restart, workers=workers,
                            progress=progress, resources=own, user_llm=user_llm, records_out=records_out)
    user_class(config.user)  # an unknown user fails before anything runs
    split = dataset.split(config.split)
    if not split.samples:
        raise DataError(f"dataset {dataset.name!r} has no {config.split} samples to simulate")
    samples = choose_samples(split.samples, config.episodes, config.seed, config.protocol)
    if not samples:
        raise DataError(f"dataset {dataset.name!r}: no {config.split} sample is left under the {config.protocol} "
                        "protocol")
    header = simulation_header(config, dataset, samples)
    file = Transcripts(transcripts, header) if transcripts is not None else None
    done = file.open(restart) if file is not None else {}
    try:
        known = {s.sample_id for s in samples}
        stray = sorted(set(done) - known)
        if stray:
            raise DataError(f"holds episode {stray[0]}, which this simulation does not choose", transcripts)
        started = time.perf_counter()
        system = system or build_system(config, dataset, resources)
        fit_seconds = time.perf_counter() - started
        adapter = DomainAdapter.of(dataset.catalog, dataset.name)
        users = user_factory(config, resources, user_llm)
        todo = [(order, s) for order, s in enumerate(samples) if s.sample_id not in done]
        records = dict(done)
        started = time.perf_counter()
        for record in _play(todo, config, system, users, adapter, workers, progress):
            records[record.episode_id] = record
            if file is not None:
                file.append(record)
        seconds = time.perf_counter() - started
    finally:
        if file is not None:
            file.close()
    ordered = sorted(records.values(), key=lambda r: r.order)
    if records_out is not None:
        records_out.extend(ordered)
    subset = {"episodes": len(samples), "seed": config.seed, "of": len(split.samples),
              "kept_by_protocol": len(choose_samples(split.samples, None, config.seed, config.protocol))}
    return _result(config, dataset, system, ordered, subset,
                   run={"episodes_played": len(todo), "episodes_resumed": len(done), "seconds": round(seconds, 2),
                        "fit_seconds": round(fit_seconds, 2),
                        "episodes_per_minute": round(60 * len(todo) / seconds, 1) if todo and seconds else None,
                        "workers": workers},
                   transcripts=transcripts)


def _play(todo: Sequence[tuple[int, RecSample]], config: SimulationConfig, system: System, users, adapter,
          workers: int, progress: bool) -> Iterator[EpisodeRecord]:
    exclude_context = config.protocol is Protocol.DEDUP

    def play(entry: tuple[int, RecSample]) -> EpisodeRecord:
        order, sample = entry
        with affinity(f"episode-{order}"):  # an episode's LLM calls go to one Ray worker (its prompt prefix)
            return run_episode(sample, order, system, users, adapter, config.turns, config.seed, config.user_options,
                               exclude=sample.context_items if exclude_context else ())

    bar = tqdm(total=len(todo), desc=f"simulate {config.recommender} {config.dataset}/{config.split}",
               unit="episode", disable=not progress, leave=False)
    try:
        if workers <= 1:
            for entry in todo:
                yield play(entry)
                bar.update(1)
            return
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for record in pool.map(play, todo):
                yield record
                bar.update(1)
    finally:
        bar.close()


def _result(config: SimulationConfig, dataset: CRSDataset, system: System, records: Sequence[EpisodeRecord],
            subset: dict[str, Any], run: dict[str, Any], transcripts: Path | None) -> dict[str, Any]:
    metrics, stderr, _ = interactive_metrics(records, config.turns)
    failure = None
    options = config.user_options
    if isinstance(options, LLMUserOptions) and metrics.get("llm_fallback_share", 0.0) > options.max_fallback_share:
        failure = (f"the llm user fell back to the rule user on {metrics['llm_fallback_share']:.1%} of its turns "
                   f"(unparsable replies or failed calls; at most {options.max_fallback_share:.0%} allowed): its "
                   "results are not the LLM's")
    user_seconds = sum(r.user_seconds for r in records)
    system_seconds = sum(r.system_seconds for r in records)
    return {
        "dataset": config.dataset, "split": config.split, "protocol": str(config.protocol),
        "recommender": config.recommender, "system": config.system_kind, "user": config.user,
        "turns": config.turns, "slate": config.slate, "n_episodes": len(records), "n_items": len(dataset.catalog),
        "status": "failed" if failure else "ok", "failure": failure,
        "metrics": metrics, "stderr": stderr,
        "subset": subset,
        "config": {**system.describe(), "user_options": config.user_options.model_dump(mode="json"),
                   "options": config.options},
        "data_hash": dataset.fingerprint,
        "timing": {"system_seconds": round(system_seconds, 2), "user_seconds": round(user_seconds, 2),
                   "user_episodes_per_minute": round(60 * len(records) / user_seconds, 1) if user_seconds else None},
        "run": run,
        "transcripts": None if transcripts is None else str(transcripts),
        "convrec_version": __version__,
    }
