"""Named components of one kind (recommenders now; re-rankers, agents and user simulators next).

Every built-in component is declared here by name and ``module:Class`` path, and imported only when it is
first asked for: listing them never depends on which modules happen to have been imported (``rar`` lives in
``convrec.rerank``, above the retrievers, and is listed all the same), and a command pays only for the
components it uses. A component registers itself with ``@REGISTRY.register`` where it is defined; a name
registered twice by different classes is an error, so a plug-in cannot silently replace a built-in.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

from convrec.errors import ConfigError

T = TypeVar("T")

BUILTIN_RECOMMENDERS = {
    "popularity": "convrec.retrieval.baselines:Popularity",
    "repeat": "convrec.retrieval.baselines:Repeat",
    "itemknn": "convrec.retrieval.baselines:ItemKNN",
    "ease": "convrec.retrieval.baselines:EASE",
    "dense-text": "convrec.retrieval.dense:DenseText",
    "lrurec": "convrec.retrieval.lrurec.recommender:LRURecRecommender",
    "lrurec-text": "convrec.retrieval.lrurec.recommender:LRURecTextRecommender",
    "rar": "convrec.rerank.pipeline:RAR",
    "harpo": "convrec.agent.harpo:HarpoRecommender",
    "learned-ranker": "convrec.agent.quality.relevance:LearnedRanker",
    "bridge": "convrec.agent.bridge:Bridge",
}


class DuplicateComponentError(TypeError):
    """Two different classes claim one name (a programming error, raised at import time)."""


class Registry(Mapping[str, type[T]], Generic[T]):
    """``name -> class`` for one kind of component; classes name themselves with a ``name`` attribute."""

    def __init__(self, kind: str, builtins: Mapping[str, str] | None = None):
        self.kind = kind
        self._builtins = dict(builtins or {})
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: ``@RECOMMENDERS.register``. Registering the same class again is harmless."""
        name = cls.name  # type: ignore[attr-defined]
        path = f"{cls.__module__}:{cls.__qualname__}"
        known = self._classes.get(name)
        if known is not None and known is not cls:
            raise DuplicateComponentError(f"{self.kind} {name!r} is already registered "
                                          f"({known.__module__}:{known.__qualname__}); cannot register {path}")
        declared = self._builtins.get(name)
        if known is None and declared is not None and declared != path:
            raise DuplicateComponentError(f"{self.kind} {name!r} is a built-in ({declared}); cannot register {path}")
        self._classes[name] = cls
        return cls

    def get_class(self, name: str) -> type[T]:
        """The class registered as ``name``; an unknown name is a ConfigError that lists the known ones."""
        if name not in self:
            raise ConfigError(f"unknown {self.kind} {name!r}: choose one of {', '.join(self)}")
        return self[name]

    def __getitem__(self, name: str) -> type[T]:
        if name not in self._classes and name in self._builtins:
            module, _, attribute = self._builtins[name].partition(":")
            cls = getattr(importlib.import_module(module), attribute)
            self.register(cls)  # a no-op when the module's own decorator already did
        return self._classes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._classes or name in self._builtins

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._builtins.keys() | self._classes.keys()))

    def __len__(self) -> int:
        return len(self._builtins.keys() | self._classes.keys())
