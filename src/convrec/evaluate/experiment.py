"""A results-table experiment as data: which datasets, recommenders, protocols and split.

``configs/baselines.toml`` is this model written out; the defaults here are the embedded defaults that
``convrec results`` runs when given no file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from convrec.evaluate.metrics import known_metric_names
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.report import TABLE_METRICS
from convrec.io import DataError


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

    name: str = "baselines"
    datasets: list[str] = ["redial", "inspired"]
    split: str = "test"
    protocols: list[Protocol] = [Protocol.STANDARD, Protocol.DEDUP]
    seed: int = 0
    limit: int | None = Field(None, ge=1, description="evaluate every recommender on the same seeded subset of "
                              "this many samples (for slow LLM stages on CPU); recorded in each result")
    columns: list[str] = Field(list(TABLE_METRICS), description="metrics shown in the table (every metric is in "
                               "the JSON); e.g. head:recall@10 / tail:recall@10 split by target popularity")
    baseline: str | None = Field(None, description="label (or name) of one recommender: every other row also "
                                 "gets its paired per-sample difference from it on the same samples, mean ± SE "
                                 "(a second table), which resolves differences the unpaired errors cannot")
    recommenders: list[RecommenderEntry] = [
        RecommenderEntry(name="popularity"),
        RecommenderEntry(name="repeat"),
        RecommenderEntry(name="itemknn"),
        RecommenderEntry(name="ease"),
        RecommenderEntry(name="dense-text"),
    ]

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
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise DataError(f"not valid TOML ({err})", path) from None
    try:
        return ResultsExperiment(**raw)
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise DataError(f"field '{field}': {first['msg']}", path) from None
