"""A results-table experiment as data: which datasets, recommenders, protocols and split.

``configs/baselines.toml`` is this model written out; the defaults here are the embedded defaults that
``convrec results`` runs when given no file.

An experiment with a ``[simulation]`` table is interactive (``configs/simulate.toml``): every row is a
``convrec simulate`` run (a simulated user talks to the recommender) instead of an offline evaluation, its
columns are interactive metrics, and each row keeps its transcripts under ``OUT/NAME/transcripts`` so that a
killed run resumes. ``convrec.simulate`` is imported only inside the functions that need it: it imports
``convrec.evaluate``, and an offline experiment never needs it.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from convrec.evaluate.metrics import known_metric_names
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.report import TABLE_METRICS
from convrec.io import DataError, open_input

if TYPE_CHECKING:
    from convrec.simulate.runner import SimulationConfig

# The interactive columns shown when a simulated experiment names none (every metric is in the JSON).
SIMULATION_COLUMNS = ("success@1", "success", "recall@10", "turn_recall@10", "rejection_rate")


class RecommenderEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None
    episodes: int | None = Field(None, ge=1, description="simulated experiments only: play this row on the first "
                                 "this many episodes of the experiment's seeded order (a slow row, e.g. an LLM "
                                 "stage); it is paired with the others on the episodes they share")

    @property
    def display(self) -> str:
        return self.label or self.name

    @property
    def slug(self) -> str:
        """The label as a file-name part: lower case, runs of anything but letters and digits as one '-'."""
        return re.sub(r"[^a-z0-9]+", "-", self.display.lower()).strip("-") or "row"


class SimulationSettings(BaseModel):
    """The ``[simulation]`` table: how every row of a simulated experiment is played (``convrec simulate``'s
    options; the split, protocols and seed are the experiment's)."""

    model_config = ConfigDict(extra="forbid")

    user: str = Field("rule", description="the simulated user (convrec simulate --user)")
    user_options: dict[str, Any] = Field(default_factory=dict, description="the user's options (--user-set)")
    turns: int = Field(5, ge=1, le=50, description="system turns per episode at most")
    slate: int = Field(5, ge=1, le=50, description="items recommended per system turn")
    episodes: int | None = Field(None, ge=1, description="a seeded subset of this many samples; None: all")
    system: Literal["auto", "ranking", "agent", "chat"] = "auto"

    def config(self, dataset: str, recommender: str, options: dict[str, Any], split: str, protocol: Protocol,
               seed: int, episodes: int | None = None) -> SimulationConfig:
        """The simulation of one row (``episodes``: the row's own number, else this table's)."""
        from convrec.simulate.runner import SimulationConfig  # see the module docstring

        try:
            return SimulationConfig(dataset=dataset, recommender=recommender, options=options, system=self.system,
                                    user=self.user, user_options=self.user_options, split=split, protocol=protocol,
                                    turns=self.turns, slate=self.slate, episodes=episodes or self.episodes,
                                    seed=seed)
        except ValidationError as err:  # one line: the first problem, located
            first = err.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            message = first["msg"].removeprefix("Value error, ")  # raised by a validator: pydantic's prefix
            raise ValueError(f"{where + ': ' if where else ''}{message}") from None

    @model_validator(mode="after")
    def _playable(self) -> SimulationSettings:
        """The user and its options as ``convrec simulate`` reads them: a typo fails before any run."""
        self.config("-", "-", {}, "test", Protocol.STANDARD, 0)
        return self

    def metric_names(self) -> list[str]:
        """The interactive metrics a simulation of ``turns`` turns reports (success@1..T depends on T)."""
        from convrec.simulate.metrics import interactive_metrics

        return list(interactive_metrics([], self.turns)[0])


class ResultsExperiment(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The name of the files written (NAME.json, .md, .png in --out): a plain file name, never a path.
    name: str = Field("baselines", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", max_length=100)
    datasets: list[str] = Field(["redial", "inspired"], min_length=1)
    split: Literal["valid", "test"] = "test"
    protocols: list[Protocol] = Field([Protocol.STANDARD, Protocol.DEDUP], min_length=1)
    seed: int = Field(0, ge=0)
    limit: int | None = Field(None, ge=1, description="evaluate every recommender on the same seeded subset of "
                              "this many samples (for slow LLM stages on CPU); recorded in each result")
    simulation: SimulationSettings | None = Field(None, description="present: a simulated (interactive) "
                                                  "experiment, see the module docstring")
    columns: list[str] = Field(list(TABLE_METRICS), description="metrics shown in the table (every metric is in "
                               "the JSON); e.g. head:recall@10 / tail:recall@10 split by target popularity")
    baseline: str | None = Field(None, description="label (or name) of one recommender: every other row also "
                                 "gets its paired per-sample difference from it on the same samples, mean ± SE "
                                 "(a second table), which resolves differences the unpaired errors cannot")
    baseline_dataset: str | None = Field(None, description="one of the datasets, whose samples every other "
                                         "dataset shares (redial-joined shares redial's, with more distractors): "
                                         "each row on another dataset also gets its paired per-sample difference "
                                         "from the same recommender and protocol on this dataset (a table of its "
                                         "own)")
    recommenders: list[RecommenderEntry] = Field([
        RecommenderEntry(name="popularity"),
        RecommenderEntry(name="repeat"),
        RecommenderEntry(name="itemknn"),
        RecommenderEntry(name="ease"),
        RecommenderEntry(name="dense-text"),
    ], min_length=1)

    @model_validator(mode="after")
    def _known_baseline_dataset(self) -> ResultsExperiment:
        if self.baseline_dataset is not None and self.baseline_dataset not in self.datasets:
            raise ValueError(f"baseline_dataset {self.baseline_dataset!r} is none of the datasets "
                             f"({', '.join(self.datasets)})")
        return self

    @model_validator(mode="after")
    def _known_baseline(self) -> ResultsExperiment:
        labels = [entry.display for entry in self.recommenders]
        if self.baseline is not None and self.baseline not in labels:
            raise ValueError(f"baseline {self.baseline!r} is none of the recommenders ({', '.join(labels)})")
        if self.baseline is not None and labels.count(self.baseline) > 1:
            raise ValueError(f"baseline {self.baseline!r} names {labels.count(self.baseline)} recommenders; give "
                             "them distinct labels")
        return self

    @model_validator(mode="after")
    def _known_columns(self) -> ResultsExperiment:
        """Offline columns are the metric registry's; simulated ones the interactive metrics (the default
        columns then are :data:`SIMULATION_COLUMNS`)."""
        if self.simulation is not None and "columns" not in self.model_fields_set:
            self.columns = list(SIMULATION_COLUMNS)
        known = known_metric_names() if self.simulation is None else self.simulation.metric_names()
        unknown = [c for c in self.columns if c not in known]
        if unknown:
            kind = "" if self.simulation is None else "interactive "
            raise ValueError(f"unknown {kind}metric(s) {unknown}; known: {', '.join(known)}")
        return self

    @model_validator(mode="after")
    def _simulation_fields(self) -> ResultsExperiment:
        """limit is offline's, a row's episodes simulated's; each simulated row has its own transcripts file."""
        if self.simulation is not None and self.limit is not None:
            raise ValueError("limit is not used by a simulated experiment; [simulation] episodes (or a "
                             "recommender's episodes) says how many episodes are played")
        for number, entry in enumerate(self.recommenders, start=1):
            if self.simulation is None and entry.episodes is not None:
                raise ValueError(f"recommenders entry {number} ({entry.display}): episodes is for simulated "
                                 "experiments only (a [simulation] table); an offline experiment uses limit")
        if self.simulation is not None:
            slugs = [entry.slug for entry in self.recommenders]
            clashing = sorted({entry.display for entry in self.recommenders if slugs.count(entry.slug) > 1})
            if clashing:
                raise ValueError(f"recommenders {clashing} would share a transcripts file; give them distinct "
                                 "labels")
        return self

    def transcripts_path(self, out: Path, dataset: str, entry: RecommenderEntry, protocol: Protocol) -> Path:
        """Where a simulated row keeps its episodes (and resumes from them)."""
        return out / self.name / "transcripts" / f"{dataset}-{entry.slug}-{protocol.value}.jsonl"


def load_experiment(path: Path | None) -> ResultsExperiment:
    if path is None:
        return ResultsExperiment()
    with open_input(path, "an experiment TOML file") as handle:
        content = handle.read()
    try:
        raw = tomllib.loads(content.decode("utf-8"))
    except UnicodeDecodeError as err:
        raise DataError(f"byte 0x{err.object[err.start]:02x} at byte {err.start} is not UTF-8; TOML files are "
                        "UTF-8", path) from None
    except tomllib.TOMLDecodeError as err:
        raise DataError(f"not valid TOML ({err})", path) from None
    try:
        return ResultsExperiment(**raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise DataError(f"field '{field}': {first['msg']}", path) from None
