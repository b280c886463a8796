"""What a catalogue's items can be described, filtered and linked by: its attribute schema, read from the items'
metadata, never from a per-domain table.

Each metadata field becomes at most one :class:`Attribute` of one kind:

- ``person``: names of people (director, writer, star, author, and any field whose values look like personal
  names: two to five capitalised words);
- ``numeric``: numbers (a generic catalogue's ``rating`` or ``pages``); the item's ``year`` is one, with a
  categorical ``decade`` derived from it;
- ``categorical``: short strings that items share (genre, a generic ``color`` or ``format``);
- ``keyword``: words of the items' long texts (a movie's plot) that a few items share, derived on first use,
  and the tags of a ``keywords`` field (TMDB's "boarding school", "orphan"): asked for as "a movie about
  orphans", never a value any word of a message names (read as a genre is, every tag that is also a common
  word, "time", "love", "mine", became a wish);
- a long text (the plot) is no attribute itself: it is where keywords come from.

Fields that say nothing about the item are left out: the counts converters record (``mentions``: how often
the training dialogues name the item, a statistic of the data), identifiers (``imdb_id``, any field whose
values are unique codes with digits), values that are neither strings nor numbers. When a catalogue has several
people fields, ``person`` is also a virtual attribute over all of them, for a seeker who names someone without
saying their role.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from convrec.catalog.items import Catalog
from convrec.catalog.vocabulary import Vocabulary

AttributeKind = Literal["categorical", "person", "numeric", "keyword"]

YEAR = "year"
DECADE = "decade"
KEYWORD = "keyword"
PERSON = "person"  # the virtual attribute over every people field
# Fields known to hold people's names in any catalogue that uses them (the conventional ones and their kin).
PERSON_FIELDS = frozenset(("director", "writer", "star", "author", "actor", "actors", "cast", "creator",
                           "artist", "composer", "illustrator", "narrator", "screenwriter", "editor"))
# Lower-case words that may sit inside a personal name ("Ursula K. Le Guin", "Guillermo del Toro").
_NAME_PARTICLES = frozenset(("de", "del", "della", "der", "van", "von", "la", "le", "da", "di", "du", "bin",
                             "al", "el", "y", "st", "jr", "sr"))


class SchemaConfig(BaseModel):
    """How metadata fields are read as attributes."""

    model_config = ConfigDict(frozen=True)

    ignore_fields: tuple[str, ...] = Field(
        ("mentions", "imdb_id"), description="metadata fields that are no attribute: counts about the data and ids")
    text_min_words: float = Field(8.0, description="a string field whose values average more words is a long "
                                                   "text (keyword source), not a categorical attribute")
    person_share: float = Field(0.9, description="share of a field's values that must look like personal names "
                                                 "for an unknown field to be read as people")
    identifier_share: float = Field(0.95, description="a field whose values are this distinct and hold digits is "
                                                     "an identifier")
    plot_keywords: bool = Field(True, description="derive a keyword attribute from the long texts")
    keyword_fields: tuple[str, ...] = Field(
        ("keywords",), description="metadata fields that list an item's keyword tags: part of the keyword "
        "attribute (asked for with 'about'), not a categorical attribute whose values any message word names")


class Attribute(BaseModel):
    """One attribute of the catalogue: ``fields`` are the metadata fields it reads (``year`` is the item's
    year; the virtual ``person`` reads every people field), ``label`` is how a sentence states it ("directed
    by"), ``items`` how many items have a value."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: AttributeKind
    fields: tuple[str, ...]
    label: str
    items: int = Field(ge=0)
    derived: bool = False


class Schema(BaseModel):
    """The attributes of one catalogue, in a stable order: categorical, people, numeric, keyword."""

    model_config = ConfigDict(frozen=True)

    attributes: tuple[Attribute, ...]
    text_fields: tuple[str, ...] = ()  # long-text fields: where keywords come from
    tag_fields: tuple[str, ...] = ()  # fields listing keyword tags (SchemaConfig.keyword_fields)

    def get(self, name: str) -> Attribute | None:
        return next((a for a in self.attributes if a.name == name), None)

    def names(self, kind: AttributeKind | None = None) -> list[str]:
        return [a.name for a in self.attributes if kind is None or a.kind == kind]

    @property
    def people_fields(self) -> tuple[str, ...]:
        return tuple(a.name for a in self.attributes if a.kind == "person" and a.name != PERSON)


def as_strings(value: Any) -> list[str]:
    """A metadata value as its strings: a list's strings, a comma-separated genre string split, "" dropped."""
    if value is None or isinstance(value, bool):
        return []
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, list | tuple):
        # a plain loop with ``type(v) is``: this runs for every value of every item
        strings = []
        for v in value:
            if type(v) is str:
                v = v.strip()
            elif type(v) is int or type(v) is float:
                v = str(v)
            else:
                continue
            if v:
                strings.append(v)
        return strings
    return []


def field_strings(field: str, value: Any) -> list[str]:
    """Like :func:`as_strings`, with a genre given as one comma-separated string split (as ``Item.genres``)."""
    if field == "genre" and isinstance(value, str):
        return [g.strip() for g in value.split(",") if g.strip()]
    return as_strings(value)


def _looks_like_name(value: str) -> bool:
    words = value.replace(".", ". ").split()
    if not 2 <= len(words) <= 5:
        return False
    return all(w[:1].isupper() or w.lower().strip(".,") in _NAME_PARTICLES for w in words)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# How many items (evenly spread over the catalogue) decide what kind of values a field holds: enough to tell
# names from genres and texts from labels, and it keeps building an adapter for 7,000 items fast.
SAMPLE_ITEMS = 2000


class _FieldStats:
    """What one metadata field holds: counted over every item (``items``, ``numbers``), read in full over the
    sample (``sampled``, ``sampled_numbers``, ``strings``...)."""

    def __init__(self) -> None:
        self.items = 0
        self.numbers = 0
        self.sampled = 0
        self.sampled_numbers = 0
        self.strings: Counter[str] = Counter()
        self.words = 0
        self.values = 0

    def add(self, field: str, value: Any, sampled: bool) -> None:
        if value is None or value == "" or value == []:
            return
        self.items += 1
        number = _is_number(value)
        self.numbers += number
        if not sampled:
            return
        self.sampled += 1
        if number:
            self.sampled_numbers += 1
            return
        for text in field_strings(field, value):
            self.strings[text] += 1
            self.values += 1
            self.words += text.count(" ") + 1


def _label(field: str, vocabulary: Vocabulary) -> str:
    for creator in vocabulary.creators:
        if creator.field == field:
            return creator.made_by
    return {"genre": "genre", "writer": "written by", "star": "starring", "author": "written by",
            YEAR: "from", DECADE: "from the", KEYWORD: "about", PERSON: "with"}.get(field,
                                                                                         field.replace("_", " "))


def discover_schema(catalog: Catalog, vocabulary: Vocabulary, config: SchemaConfig | None = None) -> Schema:
    """Read ``catalog``'s attribute schema from its items (see the module docstring)."""
    config = config or SchemaConfig()
    stats: dict[str, _FieldStats] = {}
    step = max(1, len(catalog) // SAMPLE_ITEMS)
    for position, item in enumerate(catalog):
        sampled = position % step == 0
        for field, value in item.metadata.items():
            if field not in config.ignore_fields:
                seen = stats.get(field)
                if seen is None:
                    seen = stats[field] = _FieldStats()
                seen.add(field, value, sampled)
    known_people = PERSON_FIELDS | set(vocabulary.creator_fields) | {vocabulary.cast_field or ""}
    categorical, people, numeric, text_fields, tag_fields = [], [], [], [], []
    for field, seen in stats.items():
        if seen.items == 0 or seen.sampled == 0:
            continue
        if field in config.keyword_fields and seen.values:
            tag_fields.append(field)
            continue
        if seen.sampled_numbers >= 0.9 * seen.sampled:
            numeric.append(Attribute(name=field, kind="numeric", fields=(field,), label=_label(field, vocabulary),
                                     items=seen.numbers))
            continue
        if not seen.values:
            continue  # bools, objects: nothing convrec can say of an item
        if seen.words / seen.values > config.text_min_words:
            text_fields.append(field)
            continue
        attribute = Attribute(name=field, kind="categorical", fields=(field,), label=_label(field, vocabulary),
                              items=seen.items)
        named = sum(count for text, count in seen.strings.items() if _looks_like_name(text))
        if field in known_people or (field != "genre" and named >= config.person_share * seen.values):
            people.append(attribute.model_copy(update={"kind": "person"}))
        elif not _is_identifier(seen, config):
            categorical.append(attribute)
    years = sum(item.year is not None for item in catalog)
    if years:
        numeric.insert(0, Attribute(name=YEAR, kind="numeric", fields=(YEAR,), label=_label(YEAR, vocabulary),
                                    items=years))
        categorical.append(Attribute(name=DECADE, kind="categorical", fields=(YEAR,),
                                     label=_label(DECADE, vocabulary), items=years, derived=True))
    if len(people) > 1:
        people.append(Attribute(name=PERSON, kind="person", fields=tuple(a.name for a in people),
                                label=_label(PERSON, vocabulary), items=_items_with_any(catalog, people),
                                derived=True))
    keywords = []
    sources = [*(text_fields if config.plot_keywords else []), *tag_fields]
    if sources:
        keywords.append(Attribute(name=KEYWORD, kind="keyword", fields=tuple(sources),
                                  label=_label(KEYWORD, vocabulary), items=max(stats[f].items for f in sources),
                                  derived=True))
    return Schema(attributes=(*categorical, *people, *numeric, *keywords), text_fields=tuple(text_fields),
                  tag_fields=tuple(tag_fields))


def _is_identifier(seen: _FieldStats, config: SchemaConfig) -> bool:
    distinct = len(seen.strings)
    with_digits = sum(1 for text in seen.strings if any(ch.isdigit() for ch in text))
    return distinct >= config.identifier_share * seen.values and with_digits >= config.identifier_share * distinct


def _items_with_any(catalog: Catalog, attributes: Iterable[Attribute]) -> int:
    fields = [f for a in attributes for f in a.fields]
    return sum(any(item.metadata.get(f) for f in fields) for item in catalog)
