"""Finding the people who make items (authors, directors) in a message a person typed: "I enjoyed The Shining
by Stephen King" names Stephen King, whose books the catalogue's metadata lists, even though The Shining itself
is not in the catalogue.

:class:`PeopleIndex` holds every name of the given metadata fields (``Vocabulary.creator_fields``: "author" for
books, "director" for movies). A name is found when the message holds all of it, two words or more, in any case
and with accents, punctuation and a possessive ignored ("stephen king's", "J. K. Rowling"); initials may be
typed together ("JK Rowling" for "J.K. Rowling") and a "Jr." left out. A surname alone ("King") or a one-word
name is not looked for: too many of them are ordinary words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from convrec.catalog.items import Catalog

_WORD = re.compile(r"[^\W_]+")
_SUFFIXES = frozenset(("jr", "sr"))
MAX_NAME_WORDS = 6


@dataclass(frozen=True)
class PersonMention:
    """A person found in a message: ``text`` as written, at ``message[start:end]``; ``name`` as the catalogue
    writes it, the metadata ``field`` it was found in, and the catalogue items that name them there."""

    text: str
    start: int
    end: int
    name: str
    field: str
    item_ids: tuple[str, ...]


def _word(token: str) -> str:
    text = unicodedata.normalize("NFKD", token)
    return "".join(ch for ch in text if not unicodedata.combining(ch)).lower()


def _keys(name: str) -> set[str]:
    """The forms of ``name`` a message may hold: as written, with initials joined, without "Jr."."""
    words = [_word(token) for token in _WORD.findall(name)]
    forms = [words]
    joined: list[str] = []
    for word in words:
        if len(word) == 1 and joined and len(joined[-1]) < 3 and joined[-1].isalpha() and len(words) > 2:
            joined[-1] += word  # "j k rowling" -> "jk rowling" ("jk" itself may be two initials joined)
        else:
            joined.append(word)
    forms.append(joined)
    forms += [form[:-1] for form in list(forms) if form and form[-1] in _SUFFIXES]
    return {" ".join(form) for form in forms if len(form) >= 2}


class PeopleIndex:
    """The names of ``fields`` across ``catalog``, each with the items that name them (catalogue order)."""

    def __init__(self, catalog: Catalog, fields: Iterable[str]):
        self._by_key: dict[str, tuple[str, str]] = {}  # key -> (name as written, field)
        self._items: dict[tuple[str, str], list[str]] = {}
        for item in catalog:
            for field in fields:
                value = item.metadata.get(field) or ()
                for name in [value] if isinstance(value, str) else value:
                    name = " ".join(str(name).split())
                    for key in _keys(name):
                        entry = self._by_key.setdefault(key, (name, field))
                        items = self._items.setdefault(entry, [])
                        if not items or items[-1] != item.item_id:
                            items.append(item.item_id)

    def __len__(self) -> int:
        return len(self._items)

    def lookup(self, key: str) -> tuple[str, str, tuple[str, ...]] | None:
        entry = self._by_key.get(key)
        return None if entry is None else (*entry, tuple(self._items[entry]))


def find_people(message: str, index: PeopleIndex, taken: Sequence[tuple[int, int]] = ()) -> list[PersonMention]:
    """The people of ``index`` that ``message`` names, in order of appearance, each once; spans that overlap
    ``taken`` (``(start, end)`` of titles already found there) are not read as names."""
    tokens = [(match.start(), match.end(), _word(match.group())) for match in _WORD.finditer(message)]
    found: dict[str, PersonMention] = {}
    i = 0
    while i < len(tokens):
        for j in range(min(len(tokens), i + MAX_NAME_WORDS), i + 1, -1):
            start, end = tokens[i][0], tokens[j - 1][1]
            if any(start < taken_end and taken_start < end for taken_start, taken_end in taken):
                continue
            entry = index.lookup(" ".join(word for _, _, word in tokens[i:j]))
            if entry is not None:
                name, field, item_ids = entry
                found.setdefault(name, PersonMention(message[start:end], start, end, name, field, item_ids))
                i = j - 1
                break
        i += 1
    return list(found.values())
