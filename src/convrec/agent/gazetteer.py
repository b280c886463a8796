"""Every attribute value of a catalogue with the items that have it, and the words a seeker uses for them.

Values are compared by :func:`~convrec.agent.normalise.value_key` (case, accents, plurals, "sci-fi" =
"science fiction"). A value also stands for the values that hold it as whole words: "thriller" covers
"psychological thriller", "romance" covers "romance novel" and "paranormal romance", "fiction" does not cover
"non-fiction". So a book seeker's "romance" finds the books listed under "romance novel", while each book's
facts keep the catalogue's own words.

What a message can name (:meth:`Gazetteer.lookup`) is, per categorical attribute: every value the catalogue
holds; the genre words of :data:`GENRE_WORDS` that some value holds ("romance" in a bookshop that only lists
"romance novel"); and the hints of :data:`HINTS` ("scary" -> horror, "rom-com" -> romance and comedy) whose
target the catalogue holds. These tables are English words for kinds of stories, shared by every domain:
they only ever point at values the catalogue itself has. Words that are as often ordinary words ("short",
"family", "music") or adjectives ("funny") name a value only in a request context, which the constraint
extractor checks (``needs_context``).
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from convrec.agent.normalise import contains_run, fold, singular, value_key
from convrec.agent.schema import DECADE, KEYWORD, Schema, field_strings
from convrec.catalog.items import Catalog, Item

# Genre words a seeker types that a catalogue may only hold inside longer values (see the module docstring).
GENRE_WORDS = frozenset(value_key(w) for w in (
    "romance", "thriller", "fantasy", "mystery", "horror", "comedy", "drama", "adventure", "crime", "fiction",
    "historical", "young adult", "dystopian", "detective", "war", "sci-fi", "biography", "memoir", "poetry",
    "suspense", "paranormal", "gothic", "satire", "tragedy", "noir", "action", "animation", "documentary",
    "western", "musical", "family", "history", "sport", "children", "fairy tale", "short story", "self help",
    "cyberpunk", "spy", "superhero", "zombie", "vampire", "fable", "mythology",
))
# Hints: a word or phrase -> the values it implies (each that the catalogue holds), and whether it needs a request context ("a funny movie", "nothing too scary"; "that was funny" is no request).
HINTS: dict[str, tuple[tuple[str, ...], bool]] = {
    **{w: (("horror",), True) for w in ("scary", "spooky", "creepy", "frightening", "terrifying", "horrifying")},
    **{w: (("comedy",), True) for w in ("funny", "hilarious", "comedic", "lighthearted", "light hearted")},
    "romantic": (("romance",), True),
    "love story": (("romance",), False),
    "rom com": (("romance", "comedy"), False),
    "romantic comedy": (("romance", "comedy"), False),
    "animated": (("animation",), True),
    "cartoon": (("animation",), False),
    "anime": (("animation",), False),
    "biopic": (("biography",), False),
    "historical": (("history", "historical"), True),
    "suspenseful": (("thriller", "suspense"), True),
    "thrilling": (("thriller", "suspense"), True),
    "whodunit": (("mystery",), False),
    "suspense": (("thriller", "suspense"), False),
    "cowboy": (("western",), True),
    "world war": (("war",), False),
    "kid": (("family", "children"), True),
    "child": (("family", "children"), True),
    "family friendly": (("family", "children"), False),
    "tearjerker": (("drama",), False),
}
# Catalogue values that are as often ordinary words: a value only in a request context.
AMBIGUOUS = frozenset(value_key(w) for w in (
    "short", "news", "music", "family", "history", "sport", "children", "kid", "child", "game", "talk",
    "reality", "play", "reference", "tragedy", "literary", "philosophy",
))
_NOT_NAME = re.compile(r"[\W_]+")
_PLOT_WORD = re.compile(r"[^\W\d_]{4,}")
# Words too common in any long text to link two items: function words and story verbs (a block of words is
# easier to read and extend than a list literal).
_STOPWORDS = frozenset("""
about above after again against also among another anyone anything around away back because been before being
below between both came come comes coming could does doing down during each either else even ever every find
finds found from gets getting give given gives goes going gone have having here herself himself into just keep
know known last least less like little long made make makes making many more most much must never next once only
other others over own place same seems should since some something soon still such take takes taking than that
their them themselves then there these they thing things this those though through together under until upon very
want wants were what when where whether which while whose will with within without would year years your also
life lives world new young woman women girl girls boy boys story tells begins becomes become another where
first second third three four five time times must help helps tries trying try turn turns days together soon
their people person family friend friends home town city school love father mother daughter son brother sister
wife husband meets meet discovers learns decides return returns left leaves leave ends end set sets series
kind kinds hundred hundreds thousand thousands million millions idea ideas original personal part parts way ways
""".split())  # noqa: SIM905


@dataclass(frozen=True)
class ValueHit:
    """What a message's words may name: ``value`` (as the catalogue writes it, or the genre word) of
    ``attribute``; ``needs_context``: only in a request context (see the module docstring)."""

    attribute: str
    value: str
    needs_context: bool


def decade_of(year: int) -> str:
    return f"{year // 10 * 10}s"


class Gazetteer:
    """The values of the schema's categorical, people and keyword attributes, each with its items (catalogue
    positions, ascending), and the words a message may use for them."""

    def __init__(self, catalog: Catalog, schema: Schema, keyword_min_items: int = 3,
                 keyword_max_share: float = 0.01):
        self._catalog = catalog
        self._schema = schema
        self._keyword_min_items = keyword_min_items
        self._keyword_max_share = keyword_max_share
        self._values: dict[str, dict[str, list[int]]] = {}  # attribute -> key -> item positions
        self._spellings: dict[str, dict[str, dict[str, int]]] = {}
        self._item_values: dict[str, list[tuple[str, ...]]] = {}  # attribute -> per item, values as written
        self._concepts: dict[tuple[str, str], np.ndarray] = {}
        self._lock = threading.Lock()
        for attribute in schema.attributes:
            if attribute.kind in ("categorical", "person") and attribute.name != "person":
                self._index(attribute.name, [self._strings(attribute.name, attribute.fields, item)
                                             for item in catalog],
                            person=attribute.kind == "person")

    @staticmethod
    def _strings(name: str, fields: tuple[str, ...], item: Item) -> tuple[str, ...]:
        if name == DECADE:
            return (decade_of(item.year),) if item.year is not None else ()
        if len(fields) == 1:
            values = field_strings(fields[0], item.metadata.get(fields[0]))
        else:
            values = [v for field in fields for v in field_strings(field, item.metadata.get(field))]
        if name == "genre":
            values = [v.lower() for v in values]  # as Item.genres() reads them
        return tuple(values) if len(values) < 2 else tuple(dict.fromkeys(values))

    def _index(self, attribute: str, per_item: list[tuple[str, ...]], person: bool) -> None:
        values: dict[str, list[int]] = {}
        spellings: dict[str, dict[str, int]] = {}
        entries: dict[str, tuple[list[int], dict[str, int]] | None] = {}  # text as written -> its key's entries
        for position, strings in enumerate(per_item):
            for text in strings:
                entry = entries.get(text, False)
                if entry is False:
                    key = person_key(text) if person else value_key(text)
                    entry = entries[text] = (values.setdefault(key, []), spellings.setdefault(key, {})) if key \
                        else None
                if entry is None:
                    continue
                positions, spelling = entry
                if not positions or positions[-1] != position:
                    positions.append(position)
                spelling[text] = spelling.get(text, 0) + 1
        self._values[attribute] = values
        self._spellings[attribute] = spellings
        self._item_values[attribute] = per_item

    def _keywords(self) -> None:
        """Keywords of the long texts: nouns of 4+ letters, not function words, that at least
        ``keyword_min_items`` and at most ``keyword_max_share`` of the items use (rarer links nothing, commoner
        says nothing). A noun, without a tagger: the texts also use its plural (or it is one), never an "-ed" or
        "-ing" form of it (a verb), and write it in lower case somewhere (not only a name: "Regina"). Tags of
        the schema's tag fields (a ``keywords`` list) join them under the same item counts, as written (they
        are curated: no noun test). Built on first use: about 0.3 s on ReDial's 6,500 plots."""
        with self._lock:
            if KEYWORD in self._values:
                return
            attribute = self._schema.get(KEYWORD)
            sources = set(attribute.fields) if attribute is not None else set()
            text_fields = [f for f in self._schema.text_fields if f in sources]
            tag_fields = [f for f in self._schema.tag_fields if f in sources]
            per_item_words: list[dict[str, str]] = []
            per_item_tags: list[dict[str, str]] = []
            document_frequency: Counter[str] = Counter()
            tag_frequency: Counter[str] = Counter()
            lower_case: set[str] = set()
            for item in self._catalog:
                words: dict[str, str] = {}
                for field in text_fields:
                    for text in field_strings(field, item.metadata.get(field)):
                        for word in _PLOT_WORD.findall(text):
                            folded = fold(word)
                            if word[0].islower():
                                lower_case.add(folded)
                            if folded not in _STOPWORDS:
                                words.setdefault(folded, word.lower())
                per_item_words.append(words)
                document_frequency.update({singular(w) for w in words})
                tags: dict[str, str] = {}
                for field in tag_fields:
                    for tag in field_strings(field, item.metadata.get(field)):
                        key = value_key(tag)
                        if key and key not in _STOPWORDS:
                            tags.setdefault(key, tag)
                per_item_tags.append(tags)
                tag_frequency.update(tags.keys())
            most = max(self._keyword_min_items, int(self._keyword_max_share * len(self._catalog)))
            kept = {key for key, n in document_frequency.items()
                    if self._keyword_min_items <= n <= most and len(key) >= 4 and key not in _STOPWORDS
                    and _is_noun(key, lower_case)}
            kept_tags = {key for key, n in tag_frequency.items() if self._keyword_min_items <= n <= most}
            per_item = [tuple(dict.fromkeys([*(written for folded, written in words.items() if singular(folded) in kept),
                                             *(written for key, written in tags.items() if key in kept_tags)]))
                        for words, tags in zip(per_item_words, per_item_tags, strict=True)]
            self._index(KEYWORD, per_item, person=False)

    def _ensure(self, attribute: str) -> None:
        if attribute == KEYWORD:
            self._keywords()
        if attribute not in self._values:
            raise KeyError(attribute)

    def values_of(self, attribute: str, position: int) -> tuple[str, ...]:
        """The item's values of ``attribute`` as the catalogue writes them."""
        self._ensure(attribute)
        return self._item_values[attribute][position]

    def keys_of(self, attribute: str, position: int) -> list[str]:
        self._ensure(attribute)
        person = self._is_person(attribute)
        return [person_key(v) if person else value_key(v) for v in self._item_values[attribute][position]]

    def _is_person(self, attribute: str) -> bool:
        found = self._schema.get(attribute)
        return found is not None and found.kind == "person"

    def key(self, attribute: str, value: str) -> str:
        return person_key(value) if self._is_person(attribute) else value_key(value)

    def positions(self, attribute: str, value: str) -> np.ndarray:
        """Catalogue positions of the items with ``value`` of ``attribute``, or a value that holds it."""
        self._ensure(attribute)
        key = self.key(attribute, value)
        cached = self._concepts.get((attribute, key))
        if cached is not None:
            return cached
        values = self._values[attribute]
        if self._is_person(attribute) or attribute == DECADE:
            found = np.asarray(values.get(key, ()), dtype=np.int64)
        else:
            groups = [positions for value_key_, positions in values.items() if contains_run(value_key_, key)]
            found = np.unique(np.concatenate([np.asarray(g, dtype=np.int64) for g in groups])) if groups \
                else np.zeros(0, dtype=np.int64)
        self._concepts[(attribute, key)] = found
        return found

    def covers(self, attribute: str, item_key: str, wanted_key: str) -> bool:
        """Does an item's value (``item_key``) satisfy a constraint's value (``wanted_key``)?"""
        if self._is_person(attribute) or attribute == DECADE:
            return item_key == wanted_key
        return contains_run(item_key, wanted_key)

    def value_keys(self, attribute: str) -> dict[str, list[int]]:
        """Every value key of ``attribute`` with its item positions (the graph's value nodes)."""
        self._ensure(attribute)
        return self._values[attribute]

    def spelling(self, attribute: str, key: str) -> str:
        """A value key as the catalogue writes it most often (the key itself for a genre word)."""
        self._ensure(attribute)
        spellings = self._spellings[attribute].get(key)
        return max(spellings, key=spellings.__getitem__) if spellings else key

    @cached_property
    def surface(self) -> dict[str, list[ValueHit]]:
        """Message word keys -> the values they may name (see the module docstring). Built on first use."""
        table: dict[str, list[ValueHit]] = {}

        def add(key: str, hit: ValueHit) -> None:
            hits = table.setdefault(key, [])
            if hit not in hits:
                hits.append(hit)

        for attribute in self._schema.attributes:
            if attribute.kind != "categorical" or attribute.name == DECADE:
                continue
            values = self._values[attribute.name]
            for key in values:
                add(key, ValueHit(attribute.name, self.spelling(attribute.name, key), key in AMBIGUOUS))
            held = {word for word in GENRE_WORDS if any(contains_run(key, word) for key in values)}
            for word in held - values.keys():
                add(word, ValueHit(attribute.name, word, word in AMBIGUOUS))
            for surface, (targets, needs_context) in HINTS.items():
                for target in targets:
                    target_key = value_key(target)
                    if target_key in values or target_key in held:
                        add(value_key(surface), ValueHit(attribute.name, self.spelling(attribute.name, target_key),
                                                         needs_context))
        return table

    @cached_property
    def max_words(self) -> int:
        return max((len(key.split()) for key in self.surface), default=1)

    def lookup(self, key: str) -> list[ValueHit]:
        return self.surface.get(key, [])

    def keyword(self, word: str) -> str | None:
        """The keyword ``word`` names (as the texts write it), if the catalogue has a keyword attribute."""
        if self._schema.get(KEYWORD) is None:
            return None
        self._keywords()
        key = value_key(word)
        return self.spelling(KEYWORD, key) if key in self._values[KEYWORD] else None


def _is_noun(word: str, lower_case: set[str]) -> bool:
    """``word`` (singular, folded) is used as a noun in texts whose lower-case words are ``lower_case``: in
    the plural or the singular, never with "-ed" / "-ing"."""
    stem = word[:-1] if word.endswith("e") else word
    plurals = (word + "s", word + "es", word[:-1] + "ies" if word.endswith("y") else "")
    verb_forms = (word + "ed", word + "d", stem + "ing", word + "ing", word + word[-1] + "ing", word + word[-1] + "ed")
    return any(p in lower_case for p in plurals) and not any(v in lower_case for v in verb_forms)


def person_key(name: str) -> str:
    """A name's key: folded, punctuation as spaces ("J.K. Rowling" -> "j k rowling"); no plurals."""
    return " ".join(_NOT_NAME.sub(" ", fold(name)).split())
