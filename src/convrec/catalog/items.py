"""The item catalogue: one ``Item`` per recommendable thing, in a fixed order that defines score columns."""

from __future__ import annotations

import json
import os
import reprlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from convrec.io import DataError, atomic_write, iter_jsonl, sha256_text

# Metadata fields that go into an item's text form, in this order; anything else stays out of the text.
TEXT_FIELDS = ("genre", "director", "star", "writer", "plot", "author", "keywords")
# Metadata fields convrec reads (text form, prompts, replies, genre matching, linking items across catalogues
# by IMDb id), and what each may hold besides null. Any other field is kept as it is and never read.
SINGLE_STRING_FIELDS = ("plot", "imdb_id")
STRING_OR_LIST_FIELDS = tuple(key for key in TEXT_FIELDS if key not in SINGLE_STRING_FIELDS)


@dataclass(frozen=True)
class Item:
    """One catalogue entry. ``metadata`` values are strings or lists of strings (genre, plot, star...)."""

    item_id: str
    title: str
    year: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def display_title(self) -> str:
        return f"{self.title} ({self.year})" if self.year else self.title

    def text(self, max_plot_chars: int = 400) -> str:
        """The text form used for embeddings: title, year, then the known metadata fields."""
        parts = [self.display_title]
        for key in TEXT_FIELDS:
            value = self.metadata.get(key)
            if not value:
                continue
            if isinstance(value, list | tuple):
                value = ", ".join(str(v) for v in value[:5])
            value = str(value)
            if key == "plot" and len(value) > max_plot_chars:
                value = value[:max_plot_chars].rsplit(" ", 1)[0] + "..."
            parts.append(f"{key}: {value}")
        return ". ".join(parts)

    def genres(self) -> frozenset[str]:
        value = self.metadata.get("genre") or ()
        if isinstance(value, str):
            value = value.split(",")
        return frozenset(g.strip().lower() for g in value if g and g.strip())

    def to_json(self) -> dict[str, Any]:
        record: dict[str, Any] = {"item_id": self.item_id, "title": self.title, "year": self.year}
        if self.metadata:
            record["metadata"] = self.metadata
        if self.aliases:
            record["aliases"] = list(self.aliases)
        return record


def is_id(value: Any) -> bool:
    """An id in the generic format: a non-empty string or an integer (read as a string). A bool is an int to
    Python and null would become "None": both are refused, as are floats, whose text form is not stable."""
    return (isinstance(value, str) and value != "") or (isinstance(value, int) and not isinstance(value, bool))


def item_from_json(record: Any, path: str | os.PathLike | None = None, line: int | None = None) -> Item:
    """Validate one catalogue JSONL record (see docs/data-format.md)."""
    if not isinstance(record, dict):
        raise DataError(f"expected a JSON object, got {type(record).__name__}", path, line)
    for key in ("item_id", "title"):
        if key not in record:
            raise DataError(f"missing field '{key}'", path, line)
    item_id = record["item_id"]
    if not is_id(item_id):
        raise DataError(f"field 'item_id' must be a non-empty string (or an integer), got {reprlib.repr(item_id)}",
                        path, line)
    title = record["title"]
    if not isinstance(title, str) or not title.strip():
        raise DataError("field 'title' must be a non-empty string", path, line)
    year = record.get("year")
    if year is not None and (isinstance(year, bool) or not isinstance(year, int)):
        raise DataError(f"field 'year' must be an integer or null, got {year!r}", path, line)
    metadata = {} if record.get("metadata") is None else record["metadata"]
    if not isinstance(metadata, dict):
        raise DataError("field 'metadata' must be an object", path, line)
    check_metadata(metadata, path, line)
    aliases = [] if record.get("aliases") is None else record["aliases"]
    if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
        raise DataError("field 'aliases' must be a list of strings", path, line)
    return Item(str(item_id), title.strip(), year, metadata, tuple(aliases))


def check_metadata(metadata: dict[str, Any], path: str | os.PathLike | None = None, line: int | None = None) -> None:
    """The fields convrec reads must have the types it reads them as (docs/data-format.md), checked at import
    rather than found by ``Item.genres()`` in the middle of every later evaluation."""
    for key in SINGLE_STRING_FIELDS:
        value = metadata.get(key)
        if value is not None and not isinstance(value, str):
            raise DataError(f"field 'metadata.{key}' must be a string or null, got {reprlib.repr(value)}", path, line)
    for key in STRING_OR_LIST_FIELDS:
        value = metadata.get(key)
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise DataError(f"field 'metadata.{key}' must be a string, a list of strings or null, "
                            f"got {reprlib.repr(value)}", path, line)


class Catalog(Sequence[Item]):
    """Items in a fixed order; ``index_of[item_id]`` is the item's column in every score matrix."""

    def __init__(self, items: Iterable[Item], name: str = "catalog"):
        self.items: list[Item] = list(items)
        self.name = name
        self.index_of: dict[str, int] = {}
        for position, item in enumerate(self.items):
            if item.item_id in self.index_of:
                raise DataError(f"duplicate item id {item.item_id!r} in catalogue '{name}'")
            self.index_of[item.item_id] = position
        self._ids = tuple(self.index_of)  # ids in order; the items never change after this

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, position):  # type: ignore[override]
        return self.items[position]

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.index_of

    def get(self, item_id: str) -> Item:
        try:
            return self.items[self.index_of[item_id]]
        except KeyError:
            raise KeyError(f"item {item_id!r} is not in catalogue '{self.name}'") from None

    def indices(self, item_ids: Iterable[str]) -> list[int]:
        return [self.index_of[i] for i in item_ids]

    @property
    def ids(self) -> list[str]:
        """A new list of every id, in order (a copy of a kept tuple: fast, and the caller may change it)."""
        return list(self._ids)

    def id_at(self, position: int) -> str:
        return self._ids[position]

    def texts(self) -> list[str]:
        return [item.text() for item in self.items]

    def content_hash(self) -> str:
        """Changes whenever an id, title, year or metadata value changes: keys caches of item embeddings."""
        return sha256_text(*(json.dumps(item.to_json(), sort_keys=True) for item in self.items))[:16]

    def write_jsonl(self, path: str | os.PathLike) -> None:
        with atomic_write(path) as handle:
            for item in self.items:
                handle.write(json.dumps(item.to_json(), ensure_ascii=False) + "\n")

    @classmethod
    def read_jsonl(cls, path: str | os.PathLike, name: str | None = None) -> Catalog:
        items = []
        seen: dict[str, int] = {}
        for line, record in iter_jsonl(path):
            item = item_from_json(record, path, line)
            if item.item_id in seen:
                raise DataError(f"duplicate item id {item.item_id!r} (first on line {seen[item.item_id]})", path, line)
            seen[item.item_id] = line
            items.append(item)
        if not items:
            raise DataError("the catalogue is empty", path)
        return cls(items, name=name or os.path.basename(os.fspath(path)))
