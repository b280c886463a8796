"""The ``Recommender`` interface every retriever and baseline implements, the optional capabilities a
recommender may declare, and the registry of names."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from convrec.catalog.items import Catalog
from convrec.data.dataset import Split
from convrec.data.model import ContextView
from convrec.errors import ConfigError
from convrec.registry import BUILTIN_RECOMMENDERS, Registry
from convrec.resources import Resources


class RecommenderConfig(BaseModel):
    """Base of every recommender's config: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Recommender(ABC):
    """Scores the whole catalogue for each sample; higher is better. ``fit`` before ``score``.

    ``uses_resources``: the class takes shared :class:`~convrec.resources.Resources` (text encoders, LLM
    clients, the cache folder) as the keyword argument ``resources`` of its constructor, None meaning
    :meth:`Resources.from_env`; :func:`build_recommender` then passes on the ones it is given.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[RecommenderConfig]] = RecommenderConfig
    uses_resources: ClassVar[bool] = False

    def __init__(self, catalog: Catalog, config: RecommenderConfig | None = None):
        self.catalog = catalog
        self.config = config or self.config_class()

    def fit(self, train: Split, valid: Split | None = None) -> None:  # noqa: B027 - many need no training
        """Learn from the training split; ``valid`` may be used to choose hyper-parameters, never ``test``."""

    @abstractmethod
    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        """(len(samples), len(catalog)) float32 scores."""

    def retrieve(self, samples: Sequence[ContextView], k: int,
                 exclude: Sequence[Iterable[str]] | None = None,
                 prefer: Sequence[Iterable[str]] | None = None) -> list[Candidates]:
        """Per sample, the ``k`` best items (best first; ties in catalogue order), leaving out the item ids of
        ``exclude[row]``. The item ids of ``prefer[row]`` come first, the best of them (up to ``k``) in this
        recommender's order, then the best of the rest: the chat puts the items of a person the user named
        first, however low the retriever ranks them. The default ranks :meth:`score`'s full row; a recommender
        with a faster way to the top items (an approximate index) overrides it, scoring the few preferred
        items exactly."""
        return top_candidates(self.catalog, self.score(samples), k, exclude, prefer)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "config": self.config.model_dump()}


@dataclass(frozen=True)
class Candidates:
    """One sample's retrieved items, best first, with the recommender's score of each."""

    item_ids: list[str]
    scores: np.ndarray  # (len(item_ids),) float64


def top_indices(scores: np.ndarray, k: int, exclude: Iterable[int] = (),
                prefer: Iterable[int] = ()) -> np.ndarray:
    """Columns of the ``k`` best of (n_items,) ``scores``, best first, ties in column (catalogue) order.

    NaN counts as the worst score; ``exclude`` columns are left out (fewer than ``k`` are returned only when
    the catalogue minus ``exclude`` is smaller). ``prefer`` columns come first: the best of them, then the
    best of the others, each part best first.
    """
    exclude, prefer = list(exclude), list(prefer)
    if prefer:
        others = np.ones(len(scores), dtype=bool)
        others[prefer] = False
        first = _top_indices(scores, k, np.flatnonzero(others).tolist() + exclude)
        return np.concatenate([first, _top_indices(scores, k - len(first), exclude + first.tolist())])
    return _top_indices(scores, k, exclude)


def _top_indices(scores: np.ndarray, k: int, exclude: list[int]) -> np.ndarray:
    values = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=-np.inf)
    keep = np.ones(len(values), dtype=bool)
    keep[list(exclude)] = False
    columns = np.flatnonzero(keep)
    values = values[columns]
    k = min(k, len(columns))
    if k == 0:
        return columns[:0]
    if k < len(values):
        # Everything better than the k-th best value, then the items tied with it in catalogue order
        # (argpartition alone picks an arbitrary subset of the tied items).
        # np.partition slows ~10x on an array that is mostly one tied value (item-kNN's zeros, excluded
        # items): partition only the values above the lowest, which hold the k-th best whenever there are k.
        lowest = values.min()
        above = values[values > lowest]
        kth = np.partition(above, len(above) - k)[len(above) - k] if len(above) >= k else lowest
        better = np.flatnonzero(values > kth)
        top = np.concatenate([better, np.flatnonzero(values == kth)[: k - len(better)]])
    else:
        top = np.arange(len(values))
    top = top[np.lexsort((top, -values[top]))]
    return columns[top]


def top_candidates(catalog: Catalog, scores: np.ndarray, k: int,
                   exclude: Sequence[Iterable[str]] | None = None,
                   prefer: Sequence[Iterable[str]] | None = None) -> list[Candidates]:
    """:func:`top_indices` of each row of (n_samples, n_items) ``scores`` as item ids and their scores."""
    result = []
    for row in range(len(scores)):
        excluded = catalog.indices(set(exclude[row])) if exclude is not None else []
        preferred = catalog.indices(set(prefer[row])) if prefer is not None else []
        top = top_indices(scores[row], k, excluded, preferred)
        result.append(Candidates([catalog.id_at(i) for i in top], scores[row, top].astype(np.float64)))
    return result


# -- optional capabilities: declared by implementing the method, checked with isinstance --------------------
@runtime_checkable
class Trainable(Protocol):
    """Its trained weights can be written as a run directory that its ``checkpoint`` option loads."""

    def save_checkpoint(self, run_dir: Path, extra: dict[str, Any] | None = None) -> None: ...


@runtime_checkable
class EvaluatesSubset(Protocol):
    """Too slow for a whole split (an LLM on CPU): asks the harness for a seeded subset,
    ``(max_samples, seed)``, or None for the whole split."""

    def evaluation_subset(self) -> tuple[int, int] | None: ...


@runtime_checkable
class CountsRunStats(Protocol):
    """Keeps statistics of its scoring (LLM calls, fallbacks) that the harness resets per protocol."""

    def reset_stats(self) -> None: ...


RECOMMENDERS: Registry[Recommender] = Registry("recommender", BUILTIN_RECOMMENDERS)
register = RECOMMENDERS.register


def recommender_class(name: str) -> type[Recommender]:
    """The registered class of ``name``; an unknown name is a :class:`ConfigError` listing the known ones."""
    return RECOMMENDERS.get_class(name)


def build_recommender(name: str, catalog: Catalog, options: dict[str, Any] | None = None,
                      resources: Resources | None = None) -> Recommender:
    """The recommender ``name`` with ``options`` checked against its config (a :class:`ConfigError` naming
    the option otherwise); ``resources`` go to a class that :attr:`~Recommender.uses_resources` (None: it
    takes :meth:`Resources.from_env`), and are ignored by the others."""
    cls = recommender_class(name)
    try:
        config = cls.config_class(**(options or {}))
    except ValidationError as err:
        problem = err.errors()[0]
        field = ".".join(str(p) for p in problem["loc"])
        raise ConfigError(f"recommender '{name}', option '{field}': {problem['msg']} "
                        f"(see `convrec recommenders`)") from None
    if cls.uses_resources:
        return cls(catalog, config, resources=resources)
    return cls(catalog, config)


def item_counts(split: Split) -> np.ndarray:
    """How often each item is mentioned in a split's dialogues: the popularity every baseline shares."""
    counts = np.zeros(len(split.catalog), dtype=np.float64)
    for dialogue in split.dialogues:
        for item in dialogue.items_in_order():
            counts[split.catalog.index_of[item]] += 1
    return counts


def fill_empty_contexts(scores: np.ndarray, samples: Sequence[ContextView], fallback: np.ndarray) -> np.ndarray:
    """In place: rows whose context mentions no item get ``fallback`` scores (usually popularity), since an
    item-based model has nothing to go on there."""
    for row, sample in enumerate(samples):
        if not sample.context_items:
            scores[row] = fallback
    return scores


ScoreFn = Callable[[Sequence[ContextView]], np.ndarray]
