"""A domain adapter: everything the agent knows about one catalogue, with no per-domain code.

:class:`DomainAdapter` is built from any :class:`~convrec.catalog.items.Catalog`. Its words (movie, book,
"written by") come from :mod:`convrec.catalog.vocabulary`; its attribute schema is read from the items'
metadata (:mod:`convrec.agent.schema`), so ReDial and INSPIRED get genre, director, writer, star, year, decade
and plot keywords, OpenDialKG books get author, genre, year, decade, and an imported catalogue whatever fields
its items carry. On top of the schema it offers:

- the gazetteer (:mod:`convrec.agent.gazetteer`): value -> items, matched by a normalised key, with genre
  words and hints; :meth:`~DomainAdapter.items_with`;
- constraints on items: :meth:`~DomainAdapter.match` (True, False, or None when the item's metadata does not
  say) and :meth:`~DomainAdapter.filter` (see its docstring for how several constraints combine);
- what may be said of an item: :meth:`~DomainAdapter.facts` (the only facts an explainer may state) and
  :meth:`~DomainAdapter.item_text`;
- the knowledge graph (:mod:`convrec.agent.graph`): :meth:`~DomainAdapter.neighbours` and
  :meth:`~DomainAdapter.paths`;
- people and titles named in a message (:mod:`convrec.catalog.people`, :mod:`convrec.catalog.mentions`).

Building one reads each item's metadata once (ReDial, 6,924 items: about 0.2 s of CPU); the people index,
title linker, plot keywords and graph are built on first use (about 0.2, 0.04, 0.3 and 0.05 s).
:meth:`DomainAdapter.of` keeps one adapter per catalogue object, so every conversation over a catalogue shares
it. An adapter is read-only after it is built (its lazy parts are filled in once), so any number of threads
may use it.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from convrec.agent.constraints import Constraint
from convrec.agent.gazetteer import Gazetteer, person_key
from convrec.agent.graph import KnowledgeGraph
from convrec.agent.schema import (
    DECADE,
    PERSON,
    YEAR,
    Attribute,
    AttributeKind,
    Schema,
    SchemaConfig,
    discover_schema,
)
from convrec.catalog.items import TEXT_FIELDS, Catalog, Item
from convrec.catalog.mentions import TitleMention, find_titles
from convrec.catalog.people import PeopleIndex, find_people
from convrec.catalog.titles import TitleLinker
from convrec.catalog.vocabulary import VOCABULARIES, Domain, Vocabulary, domain_for
from convrec.errors import ConfigError, DataError

ItemRef = Item | str  # an item, or its id


class DomainConfig(BaseModel):
    """How an adapter reads its catalogue."""

    model_config = ConfigDict(frozen=True)

    schema_config: SchemaConfig = Field(default_factory=SchemaConfig)
    keyword_min_items: int = Field(3, ge=2, description="a plot word links items when at least this many use it")
    keyword_max_share: float = Field(0.01, gt=0, le=1, description="... and at most this share of the items")


class Fact(BaseModel):
    """One thing the catalogue states about an item: ``value`` of ``attribute`` (as the catalogue writes it)."""

    model_config = ConfigDict(frozen=True)

    attribute: str
    value: str | int | float
    kind: AttributeKind

    def __str__(self) -> str:
        return f"{self.attribute}: {self.value}"


class Neighbour(BaseModel):
    """An item linked to another through the values they share (``shared``, rarest first)."""

    model_config = ConfigDict(frozen=True)

    item_id: str
    score: float
    shared: tuple[Fact, ...]


@dataclass(frozen=True)
class PersonHit:
    """A person named in a message at ``message[start:end]``: ``name`` as the catalogue writes it, and the
    people attributes (metadata fields) that name them, the one with most of their items first."""

    text: str
    start: int
    end: int
    name: str
    fields: tuple[str, ...]


_ADAPTERS: weakref.WeakKeyDictionary[Catalog, dict[tuple[str | None, DomainConfig], DomainAdapter]] = \
    weakref.WeakKeyDictionary()
_ADAPTERS_LOCK = threading.Lock()
_MASK_CACHE_SIZE = 4096


class DomainAdapter:
    """One catalogue seen through its attribute schema (see the module docstring)."""

    def __init__(self, catalog: Catalog, dataset_name: str | None = None, config: DomainConfig | None = None):
        if not len(catalog):
            raise DataError(f"catalogue '{catalog.name}' is empty: a domain needs items")
        self.catalog = catalog
        self.config = config or DomainConfig()
        self.domain: Domain = domain_for(dataset_name or catalog.name, catalog)
        self.vocabulary: Vocabulary = VOCABULARIES[self.domain]
        self.schema: Schema = discover_schema(catalog, self.vocabulary, self.config.schema_config)
        self.gazetteer = Gazetteer(catalog, self.schema, self.config.keyword_min_items, self.config.keyword_max_share)
        self._numbers: dict[str, np.ndarray] = {YEAR: np.asarray(
            [np.nan if item.year is None else float(item.year) for item in catalog], dtype=np.float64)}
        self._masks: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
        self._value_keys: dict[tuple, list[frozenset[str]]] = {}
        self._lock = threading.Lock()

    @classmethod
    def of(cls, catalog: Catalog, dataset_name: str | None = None,
           config: DomainConfig | None = None) -> DomainAdapter:
        """The adapter of ``catalog``, built once per catalogue object (and dataset name, config)."""
        config = config or DomainConfig()
        with _ADAPTERS_LOCK:
            adapters = _ADAPTERS.setdefault(catalog, {})
            adapter = adapters.get((dataset_name, config))
            if adapter is None:
                adapter = adapters[(dataset_name, config)] = cls(catalog, dataset_name, config)
            return adapter

    # ---- the schema -------------------------------------------------------------------------------------

    @property
    def attributes(self) -> tuple[Attribute, ...]:
        return self.schema.attributes

    def attribute(self, name: str) -> Attribute:
        found = self.schema.get(name)
        if found is None:
            raise ConfigError(f"catalogue '{self.catalog.name}' has no attribute {name!r}; its attributes are: "
                              f"{', '.join(self.schema.names())}")
        return found

    @cached_property
    def year_range(self) -> tuple[int, int] | None:
        """The oldest and newest year of the catalogue's items, or None when no item has a year."""
        years = self._numbers[YEAR]
        known = years[~np.isnan(years)]
        return (int(known.min()), int(known.max())) if len(known) else None

    # ---- items and values --------------------------------------------------------------------------------

    def position(self, item: ItemRef) -> int:
        item_id = item.item_id if isinstance(item, Item) else item
        position = self.catalog.index_of.get(item_id)
        if position is None:
            raise DataError(f"item {item_id!r} is not in catalogue '{self.catalog.name}'")
        return position

    def _value_fields(self, attribute: Attribute) -> tuple[str, ...]:
        return attribute.fields if attribute.name == PERSON else (attribute.name,)

    def items_with(self, attribute: str, value: str | int | float) -> list[str]:
        """The ids of the items (catalogue order) whose ``attribute`` is ``value``, or a value holding it
        ("thriller" finds "psychological thriller"); for a numeric attribute, exactly that number."""
        found = self.attribute(attribute)
        if found.kind == "numeric":
            numbers = self._numbers_of(found)
            positions = np.flatnonzero(numbers == float(value))
        else:
            positions = self._positions(found, str(value))
        return [self.catalog.items[p].item_id for p in positions]

    def _positions(self, attribute: Attribute, value: str) -> np.ndarray:
        groups = [self.gazetteer.positions(field, value) for field in self._value_fields(attribute)]
        return groups[0] if len(groups) == 1 else np.unique(np.concatenate(groups))

    def _numbers_of(self, attribute: Attribute) -> np.ndarray:
        numbers = self._numbers.get(attribute.name)
        if numbers is None:
            field = attribute.fields[0]
            numbers = np.asarray([_number(item.metadata.get(field)) for item in self.catalog], dtype=np.float64)
            self._numbers[attribute.name] = numbers
        return numbers

    def values(self, item: ItemRef, attribute: str) -> tuple[str, ...]:
        """The item's values of a categorical, people or keyword attribute, as the catalogue writes them."""
        found = self.attribute(attribute)
        position = self.position(item)
        return tuple(v for field in self._value_fields(found) for v in self.gazetteer.values_of(field, position))

    def value_keys(self, attribute: str) -> list[frozenset[str]]:
        """Every item's normalised value keys of a categorical, people or keyword attribute (catalogue order),
        computed once: what "shares a value" compares, as :meth:`match` does."""
        found = self.attribute(attribute)
        cache_key = ("value_keys", attribute)
        cached = self._value_keys.get(cache_key)
        if cached is None:
            fields = self._value_fields(found)
            cached = [frozenset(k for field in fields for k in self.gazetteer.keys_of(field, position))
                      for position in range(len(self.catalog))]
            with self._lock:
                self._value_keys[cache_key] = cached
        return cached

    # ---- constraints -------------------------------------------------------------------------------------

    def match(self, item: ItemRef, constraint: Constraint) -> bool | None:
        """Does the item satisfy ``constraint``? None when its metadata does not say (no year, no genre...);
        a constraint that lifts a restriction (polarity "any") is satisfied by every item."""
        attribute = self.attribute(constraint.attribute)
        if constraint.polarity == "any":
            return True
        position = self.position(item)
        if attribute.kind == "numeric":
            number = float(self._numbers_of(attribute)[position])
            if np.isnan(number):
                return None
            inside = _within(number, constraint)
        else:
            fields = self._value_fields(attribute)
            held = [(field, key) for field in fields for key in self.gazetteer.keys_of(field, position)]
            if not held:
                return None
            wanted = self.gazetteer.key(fields[0], str(constraint.value))
            inside = any(self.gazetteer.covers(field, key, wanted) for field, key in held)
        return inside if constraint.polarity == "want" else not inside

    def mask(self, constraint: Constraint) -> tuple[np.ndarray, np.ndarray]:
        """Over the whole catalogue: (satisfied, known) boolean arrays; ``match`` for every item at once."""
        attribute = self.attribute(constraint.attribute)
        cache_key = (constraint.attribute, constraint.value, constraint.low, constraint.high, constraint.polarity)
        cached = self._masks.get(cache_key)
        if cached is not None:
            return cached
        n = len(self.catalog)
        if constraint.polarity == "any":
            result = (np.ones(n, dtype=bool), np.ones(n, dtype=bool))
        else:
            if attribute.kind == "numeric":
                numbers = self._numbers_of(attribute)
                known = ~np.isnan(numbers)
                low = -np.inf if constraint.low is None else constraint.low
                high = np.inf if constraint.high is None else constraint.high
                with np.errstate(invalid="ignore"):
                    inside = known & (numbers >= low) & (numbers <= high)
            else:
                known = self._known(attribute)
                inside = np.zeros(n, dtype=bool)
                inside[self._positions(attribute, str(constraint.value))] = True
            result = (inside if constraint.polarity == "want" else known & ~inside, known)
        for array in result:
            array.flags.writeable = False
        with self._lock:
            if len(self._masks) >= _MASK_CACHE_SIZE:
                self._masks.clear()
            self._masks[cache_key] = result
        return result

    def _known(self, attribute: Attribute) -> np.ndarray:
        cache_key = ("known", attribute.name)
        cached = self._masks.get(cache_key)
        if cached is not None:
            return cached[0]
        known = np.zeros(len(self.catalog), dtype=bool)
        for field in self._value_fields(attribute):
            for positions in self.gazetteer.value_keys(field).values():
                known[positions] = True
        self._masks[cache_key] = (known, known)
        return known

    def filter(self, item_ids: Iterable[str], constraints: Sequence[Constraint],
               unknown: Literal["drop", "keep"] = "drop") -> list[str]:
        """The items of ``item_ids`` (order kept) that satisfy ``constraints``.

        An item passes when, for every attribute with "want" constraints, it has at least one of the wanted
        values (or is inside one of the wanted ranges): wants on one attribute are alternatives, wants on
        different attributes all hold; and it has none of the "avoid" ones. ``unknown`` decides an item whose
        metadata does not say (no year for "after 2010", no genre for "no horror"): "drop" (the default, safe
        for a recommender that must not break a stated constraint) or "keep"."""
        ids = list(item_ids)
        positions = np.asarray([self.position(i) for i in ids], dtype=np.int64)
        keep = np.ones(len(ids), dtype=bool)
        wants: dict[str, np.ndarray] = {}
        for constraint in constraints:
            if constraint.polarity == "any":
                continue
            satisfied, known = self.mask(constraint)
            passes = satisfied[positions] | (~known[positions] if unknown == "keep" else False)
            if constraint.polarity == "want":
                wants[constraint.attribute] = wants.get(constraint.attribute, np.zeros(len(ids), dtype=bool)) | passes
            else:
                keep &= passes
        for passes in wants.values():
            keep &= passes
        return [item_id for item_id, kept in zip(ids, keep, strict=True) if kept]

    # ---- what may be said of an item ---------------------------------------------------------------------

    def facts(self, item: ItemRef, attributes: Iterable[str] | None = None) -> list[Fact]:
        """What the catalogue states about the item, attribute by attribute in schema order (the virtual
        ``person`` is left out: each person is stated under their own role). The only facts an explainer may
        state."""
        position = self.position(item)
        entry = self.catalog.items[position]
        wanted = None if attributes is None else set(attributes)
        facts: list[Fact] = []
        for attribute in self.schema.attributes:
            if attribute.name == PERSON or (wanted is not None and attribute.name not in wanted):
                continue
            if attribute.kind == "numeric":
                number = self._numbers_of(attribute)[position]
                if not np.isnan(number):
                    raw = entry.year if attribute.name == YEAR else entry.metadata.get(attribute.fields[0])
                    facts.append(Fact(attribute=attribute.name, value=raw, kind="numeric"))
                continue
            for value in self.gazetteer.values_of(attribute.name, position):
                facts.append(Fact(attribute=attribute.name, value=value, kind=attribute.kind))
        return facts

    def item_text(self, item: ItemRef) -> str:
        """The item's text form (:meth:`Item.text`), plus the attributes of a generic catalogue that it
        leaves out ("color: red")."""
        entry = self.catalog.items[self.position(item)]
        parts = [entry.text()]
        for attribute in self.schema.attributes:
            if attribute.derived or attribute.name == YEAR or attribute.fields[0] in TEXT_FIELDS:
                continue
            if attribute.kind == "numeric":
                value = entry.metadata.get(attribute.fields[0])
                shown = "" if np.isnan(_number(value)) else str(value)
            else:
                shown = ", ".join(self.values(entry, attribute.name)[:5])
            if shown:
                parts.append(f"{attribute.name.replace('_', ' ')}: {shown}")
        return ". ".join(parts)

    # ---- the knowledge graph -----------------------------------------------------------------------------

    @cached_property
    def graph(self) -> KnowledgeGraph:
        """Built on first use, over every categorical, people and keyword attribute."""
        attributes = [a.name for a in self.schema.attributes if a.kind != "numeric" and a.name != PERSON]
        return KnowledgeGraph(self.gazetteer, attributes, len(self.catalog))

    def _via(self, via: str | Iterable[str] | None) -> list[str] | None:
        if via is None:
            return None
        names = [via] if isinstance(via, str) else list(via)
        fields: list[str] = []
        for name in names:
            attribute = self.attribute(name)
            if attribute.kind == "numeric":
                raise ConfigError(f"attribute {name!r} is numeric: the graph links items through categorical, "
                                  f"people and keyword values (use '{DECADE}' for years)")
            fields += self._value_fields(attribute)
        return fields

    def _fact(self, attribute: str, key: str) -> Fact:
        return Fact(attribute=attribute, value=self.gazetteer.spelling(attribute, key),
                    kind=self.attribute(attribute).kind)

    def neighbours(self, item: ItemRef, via: str | Iterable[str] | None = None, k: int = 10) -> list[Neighbour]:
        """The ``k`` items that share the most (rarest) values with the item, through ``via`` (an attribute,
        several, or ``person`` for every people field) or through all of them."""
        graph = self.graph
        found = graph.neighbours(self.position(item), self._via(via), k)
        return [Neighbour(item_id=self.catalog.items[p].item_id, score=score,
                          shared=tuple(self._fact(graph.nodes[n].attribute, graph.nodes[n].key) for n in nodes))
                for p, score, nodes in found]

    def paths(self, item_a: ItemRef, item_b: ItemRef, via: str | Iterable[str] | None = None) -> list[Fact]:
        """The values the two items share (item -- value -- item paths), rarest first, each written as
        ``item_a`` writes it: one key may be spelt two ways ("soldiers" in one plot, "soldier" in the other),
        and a reason about ``item_a`` states its own facts (:meth:`facts`)."""
        graph = self.graph
        position = self.position(item_a)
        nodes = graph.shared(position, self.position(item_b), self._via(via))
        found: list[Fact] = []
        for n in nodes:
            attribute, key = graph.nodes[n].attribute, graph.nodes[n].key
            own = next((value for value, value_key_ in zip(self.gazetteer.values_of(attribute, position),
                                                           self.gazetteer.keys_of(attribute, position), strict=True)
                        if value_key_ == key), None)
            found.append(self._fact(attribute, key) if own is None else
                         Fact(attribute=attribute, value=own, kind=self.attribute(attribute).kind))
        return found

    # ---- what a message names ----------------------------------------------------------------------------

    @cached_property
    def _people_index(self) -> PeopleIndex:
        return PeopleIndex(self.catalog, self.schema.people_fields)

    def people_fields_of(self, name: str) -> tuple[str, ...]:
        """The people attributes that name ``name``, the one with most of their items first (ties: schema
        order): Stephen King wrote many movies and directed one."""
        key = person_key(name)
        counts = {f: len(self.gazetteer.value_keys(f).get(key, ())) for f in self.schema.people_fields}
        return tuple(sorted((f for f, n in counts.items() if n), key=lambda f: -counts[f]))

    def find_people(self, message: str, taken: Sequence[tuple[int, int]] = ()) -> list[PersonHit]:
        """Full names (two words or more) of the catalogue's people in ``message`` (see
        :mod:`convrec.catalog.people`), each with the roles the catalogue gives them."""
        if not self.schema.people_fields:
            return []
        return [PersonHit(m.text, m.start, m.end, m.name, self.people_fields_of(m.name))
                for m in find_people(message, self._people_index, taken)]

    @cached_property
    def _single_names(self) -> dict[str, str]:
        """One-word names ("Madonna", "Cher") that are no ordinary word: never written in lower case in the
        catalogue's long texts, and no value a message may name. Folded name -> the name as written."""
        candidates: dict[str, str] = {}
        for field in self.schema.people_fields:
            for key in self.gazetteer.value_keys(field):
                if " " not in key and key.isalpha() and len(key) >= 3:
                    candidates.setdefault(key, self.gazetteer.spelling(field, key))
        if not candidates:
            return {}
        pattern = re.compile(r"\b(" + "|".join(re.escape(key) for key in sorted(candidates)) + r")\b")
        ordinary: set[str] = set()
        for item in self.catalog:
            for field in self.schema.text_fields:
                text = item.metadata.get(field)
                if isinstance(text, str):
                    ordinary.update(pattern.findall(text))  # case-sensitive: only lower-case uses count
        surface = self.gazetteer.surface
        return {key: name for key, name in candidates.items() if key not in ordinary and key not in surface}

    def single_name(self, word: str) -> str | None:
        """The catalogue's one-word name ``word`` is, if it is one (see ``_single_names``)."""
        return self._single_names.get(person_key(word))

    @cached_property
    def _linker(self) -> TitleLinker:
        return TitleLinker(self.catalog)

    @cached_property
    def _popularity(self) -> dict[str, float]:
        return {item.item_id: float(item.metadata["mentions"]) for item in self.catalog
                if isinstance(item.metadata.get("mentions"), int | float)}

    def find_titles(self, message: str) -> list[TitleMention]:
        """The catalogue titles ``message`` names (:func:`convrec.catalog.mentions.find_titles`)."""
        return find_titles(message, self._linker, self._popularity or None, not_titles=self.vocabulary.not_titles)


def _number(value: object) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return float("nan")


def _within(number: float, constraint: Constraint) -> bool:
    return ((constraint.low is None or number >= constraint.low)
            and (constraint.high is None or number <= constraint.high))
