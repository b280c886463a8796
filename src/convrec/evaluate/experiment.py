"""A results-table experiment as data: which datasets, recommenders, protocols and split.

``configs/baselines.toml`` is this model written out; the defaults here are the embedded defaults that
``convrec results`` runs when given no file.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from convrec.evaluate.protocol import Protocol
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
    recommenders: list[RecommenderEntry] = [
        RecommenderEntry(name="popularity"),
        RecommenderEntry(name="repeat"),
        RecommenderEntry(name="itemknn"),
        RecommenderEntry(name="ease"),
        RecommenderEntry(name="dense-text"),
    ]


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
