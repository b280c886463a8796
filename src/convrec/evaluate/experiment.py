"""A results-table experiment as data: which datasets, recommenders, protocols and split.

``configs/baselines.toml`` is this model written out; the defaults here are the embedded defaults that
``convrec results`` runs when given no file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from convrec.evaluate.metrics import known_metric_names
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.report import TABLE_METRICS
from convrec.io import DataError, open_input


class RecommenderEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None

    @property
    def display(self) -> str:
        return self.label or self.name


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
    columns: list[str] = Field(list(TABLE_METRICS), description="metrics shown in the table (every metric is in "
                               "the JSON); e.g. head:recall@10 / tail:recall@10 split by target popularity")
    baseline: str | None = Field(None, description="label (or name) of one recommender: every other row also "
                                 "gets its paired per-sample difference from it on the same samples, mean ± SE "
                                 "(a second table), which resolves differences the unpaired errors cannot")
    recommenders: list[RecommenderEntry] = Field([
        RecommenderEntry(name="popularity"),
        RecommenderEntry(name="repeat"),
        RecommenderEntry(name="itemknn"),
        RecommenderEntry(name="ease"),
        RecommenderEntry(name="dense-text"),
    ], min_length=1)

    @model_validator(mode="after")
    def _known_baseline(self) -> ResultsExperiment:
        labels = [entry.display for entry in self.recommenders]
        if self.baseline is not None and self.baseline not in labels:
            raise ValueError(f"baseline {self.baseline!r} is none of the recommenders ({', '.join(labels)})")
        if self.baseline is not None and labels.count(self.baseline) > 1:
            raise ValueError(f"baseline {self.baseline!r} names {labels.count(self.baseline)} recommenders; give "
                             "them distinct labels")
        return self

    @field_validator("columns")
    @classmethod
    def _known_columns(cls, columns: list[str]) -> list[str]:
        unknown = [c for c in columns if c not in known_metric_names()]
        if unknown:
            raise ValueError(f"unknown metric(s) {unknown}; known: {', '.join(known_metric_names())}")
        return columns


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
