"""The ``Recommender`` interface every retriever and baseline implements, and the registry of names."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from convrec.catalog.items import Catalog
from convrec.data.dataset import Split
from convrec.data.model import RecSample
from convrec.errors import ConfigError


class RecommenderConfig(BaseModel):
    """Base of every recommender's config: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Recommender(ABC):
    """Scores the whole catalogue for each sample; higher is better. ``fit`` before ``score``."""

    name: ClassVar[str]
    config_class: ClassVar[type[RecommenderConfig]] = RecommenderConfig

    def __init__(self, catalog: Catalog, config: RecommenderConfig | None = None):
        self.catalog = catalog
        self.config = config or self.config_class()

    def fit(self, train: Split, valid: Split | None = None) -> None:  # noqa: B027 - many need no training
        """Learn from the training split; ``valid`` may be used to choose hyper-parameters, never ``test``."""

    @abstractmethod
    def score(self, samples: Sequence[RecSample]) -> np.ndarray:
        """(len(samples), len(catalog)) float32 scores."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config.model_dump()}


RECOMMENDERS: dict[str, type[Recommender]] = {}


def register(cls: type[Recommender]) -> type[Recommender]:
    RECOMMENDERS[cls.name] = cls
    return cls


def recommender_class(name: str) -> type[Recommender]:
    """The registered class of ``name``; an unknown name is a :class:`ConfigError` listing the known ones."""
    if name not in RECOMMENDERS:
        raise ConfigError(f"unknown recommender {name!r}: choose one of {', '.join(sorted(RECOMMENDERS))} "
                          f"(`convrec recommenders` lists their options)")
    return RECOMMENDERS[name]


def build_recommender(name: str, catalog: Catalog, options: dict[str, Any] | None = None) -> Recommender:
    cls = recommender_class(name)
    try:
        config = cls.config_class(**(options or {}))
    except ValidationError as err:
        problem = err.errors()[0]
        field = ".".join(str(p) for p in problem["loc"])
        raise ConfigError(f"recommender '{name}', option '{field}': {problem['msg']} "
                        f"(see `convrec recommenders`)") from None
    return cls(catalog, config)


def item_counts(split: Split) -> np.ndarray:
    """How often each item is mentioned in a split's dialogues: the popularity every baseline shares."""
    counts = np.zeros(len(split.catalog), dtype=np.float64)
    for dialogue in split.dialogues:
        for item in dialogue.items_in_order():
            counts[split.catalog.index_of[item]] += 1
    return counts


def fill_empty_contexts(scores: np.ndarray, samples: Sequence[RecSample], fallback: np.ndarray) -> np.ndarray:
    """In place: rows whose context mentions no item get ``fallback`` scores (usually popularity), since an
    item-based model has nothing to go on there."""
    for row, sample in enumerate(samples):
        if not sample.context_items:
            scores[row] = fallback
    return scores


ScoreFn = Callable[[Sequence[RecSample]], np.ndarray]
