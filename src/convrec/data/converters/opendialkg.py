"""OpenDialKG's book dialogues into the generic model: a second, non-movie domain.

The catalogue is every book named in a turn's ``item`` list (the KG entity name, which is also the title);
users are seekers and assistants recommenders. No official split exists: 80/10/10 by a hash of the line.

Genre entities are not books: the release tags two of them, "Drama" and "Mystery", as items in about 75
turns (its known quirk); they are dropped from the turns' items, so they are neither catalogue items nor
recommendation targets. The release does not type its entities, so :data:`GENRE_ENTITIES` lists the ones
that name a genre (see there).

Book metadata:

- author and year from goodbooks-10k (``catalog/goodbooks10k_books.csv``): a book matches a goodbooks row
  whose title, lower-cased without punctuation, articles or a trailing "(Series, #n)", is the book's, or whose
  ``original_title`` is. Where several rows match ("Zodiac" by Neal Stephenson and by Robert Graysmith), the
  row whose first author a train dialogue about the book names wins, then a match of ``title`` over one of
  ``original_title``, then the most rated. The author is the first one listed (goodbooks lists translators and
  illustrators after the author); the year is ``original_publication_year``, left out when it is not a year
  of the common era ("The Odyssey", -720);
- genres from the genre entities that train dialogues name in the same turn as the book (never valid or test
  text: that would put the held-out conversations into the item texts), most often named first.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from convrec.catalog.items import Catalog, Item
from convrec.catalog.titles import normalize_title
from convrec.data.converters.common import held_out, read_csv_rows
from convrec.data.dataset import Conversion, Converter
from convrec.data.model import Dialogue, Turn
from convrec.io import DataError, iter_jsonl

ROLE = {"user": "seeker", "assistant": "recommender"}
DIALOGS = "opendialkg_books/dialogs.jsonl"
GOODBOOKS = "catalog/goodbooks10k_books.csv"

# The entity names of the book dialogues that name a genre or a literary form, lower-cased. Picked by hand
# from the 172 distinct entity names that are neither a book (of the dialogues' items or of goodbooks-10k), an
# author of goodbooks-10k nor a year; left out as no genre: "Book", "Novel", "Literature", "English", subjects
# ("History", "Science", "Greek mythology"), awards, places, people, films. "drama" and "mystery" are the two
# the release tags as items.
GENRE_ENTITIES = frozenset((
    "adventure", "adventure fiction", "anthology", "autobiographical novel", "autobiography", "biography",
    "black comedy", "children's literature", "classics", "comedy", "coming of age", "crime fiction", "cyberpunk",
    "detective fiction", "drama", "dystopia", "erotic romance novels", "essay", "fairy tale", "family saga",
    "fantasy", "fiction", "gothic fiction", "heroic fantasy", "high fantasy", "historical fiction",
    "historical novel", "historical period drama", "horror", "literary fiction", "magic realism", "memoir",
    "mystery", "non-fiction", "paranormal romance", "philosophy", "picture book", "play", "poetry",
    "post-apocalyptic fiction", "postmodern literature", "prose poetry", "psychological thriller", "reference",
    "romance novel", "romanticism", "satire", "science fantasy", "science fiction", "self-help",
    "shakespearean comedy", "short story", "social criticism", "social novel", "southern gothic",
    "speculative fiction", "suspense", "teen drama", "thriller", "time travel", "tragedy", "tragicomedy",
    "treatise", "urban fantasy", "utopian and dystopian fiction", "vampire literature", "war novel", "western",
    "young-adult fiction",
))
# goodbooks-10k titles end in the series they belong to: "The Hunger Games (The Hunger Games, #1)".
_SERIES = re.compile(r"\s*\([^()]*#[^()]*\)\s*$")


def book_id(name: str) -> str:
    return re.sub(r"\s+", "-", normalize_title(name)) or "untitled"


def genre_of(name: str) -> str | None:
    """The genre an entity name names (lower-cased, spaces collapsed), or None when it names no genre."""
    key = " ".join(name.lower().split())
    return key if key in GENRE_ENTITIES else None


@dataclass(frozen=True)
class GoodbooksRow:
    line: int
    author: str | None
    year: int | None
    ratings: int


class GoodbooksIndex:
    """goodbooks-10k rows by normalised title: tier 0 from ``title`` (series removed), tier 1 from
    ``original_title``."""

    def __init__(self, path: Path):
        self._by_key: dict[str, list[tuple[int, GoodbooksRow]]] = defaultdict(list)
        required = ("authors", "original_publication_year", "original_title", "title", "ratings_count")
        for line, row in read_csv_rows(path, required):
            authors = [name.strip() for name in row["authors"].split(",") if name.strip()]
            book = GoodbooksRow(line, authors[0] if authors else None,
                                _year(row["original_publication_year"], path, line),
                                _count(row["ratings_count"], "ratings_count", path, line))
            for tier, title in enumerate((_SERIES.sub("", row["title"]), row["original_title"])):
                key = normalize_title(title)
                if key and all(existing.line != line for _, existing in self._by_key[key]):
                    self._by_key[key].append((tier, book))

    def match(self, title: str, named: Iterable[str] = ()) -> tuple[GoodbooksRow | None, int]:
        """The row for the book ``title`` and how many rows matched; ``named`` holds the normalised names a
        train dialogue about the book mentions, which choose between rows of the same title."""
        candidates = self._by_key.get(normalize_title(title), [])
        if not candidates:
            return None, 0
        named = set(named)

        def preference(candidate: tuple[int, GoodbooksRow]) -> tuple[bool, int, int, int]:
            tier, book = candidate
            author_named = book.author is not None and normalize_title(book.author) in named
            return (not author_named, tier, -book.ratings, book.line)

        return min(candidates, key=preference)[1], len(candidates)


def _year(value: str, path: Path, line: int) -> int | None:
    if not value.strip():
        return None
    try:
        year = int(float(value))
    except ValueError:
        raise DataError(f"original_publication_year must be a number, got {value!r}", path, line) from None
    return year if year > 0 else None


def _count(value: str, column: str, path: Path, line: int) -> int:
    try:
        return int(value)
    except ValueError:
        raise DataError(f"{column} must be an integer, got {value!r}", path, line) from None


def _names(raw: dict[str, Any], field: str, path: Path, line: int, number: int) -> list[str]:
    value = raw.get(field) or []
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise DataError(f"turn {number}: '{field}' must be a list of names", path, line)
    return [name.strip() for name in value if name.strip()]


def convert(files: dict[str, Path]) -> Conversion:
    path = files[DIALOGS]
    titles: dict[str, str] = {}
    dialogues: list[Dialogue] = []
    entities: list[list[list[str]]] = []  # per dialogue, per turn: the entity names, for the book metadata
    genre_items: Counter[str] = Counter()  # genre entities the release tags as items: turns dropped from
    for line, turns_raw in iter_jsonl(path):
        if not isinstance(turns_raw, list):
            raise DataError("expected a list of turns", path, line)
        turns: list[Turn] = []
        turn_entities: list[list[str]] = []
        for number, raw in enumerate(turns_raw, start=1):
            if not isinstance(raw, dict):
                raise DataError(f"turn {number}: expected an object", path, line)
            role = ROLE.get(raw.get("role"))
            if role is None:
                raise DataError(f"turn {number}: role must be user or assistant, got {raw.get('role')!r}", path, line)
            ids = []
            for name in _names(raw, "item", path, line, number):
                genre = genre_of(name)
                if genre is not None:
                    genre_items[genre] += 1
                    continue
                titles.setdefault(book_id(name), name)
                ids.append(book_id(name))
            turns.append(Turn(role, str(raw.get("text", "")), tuple(dict.fromkeys(ids))))  # type: ignore[arg-type]
            turn_entities.append(_names(raw, "entity", path, line, number))
        key = f"line-{line}"
        split = "test" if held_out(key, 0.1, "odkg-test") else ("valid" if held_out(key, 0.1 / 0.9, "odkg-valid") else "train")
        dialogues.append(Dialogue(f"odkg-{line:05d}", split, turns, {}, {"source": path.name}))
        entities.append(turn_entities)
    catalog, report = _catalog(titles, dialogues, entities, GoodbooksIndex(files[GOODBOOKS]))
    report["genre_items_dropped"] = dict(sorted(genre_items.items()))
    return Conversion(catalog, dialogues, report)


def _catalog(titles: dict[str, str], dialogues: list[Dialogue], entities: list[list[list[str]]],
             goodbooks: GoodbooksIndex) -> tuple[Catalog, dict[str, Any]]:
    """The books with the metadata described in the module docstring, and what the join did."""
    genres_beside: dict[str, Counter[str]] = defaultdict(Counter)
    named_in_dialogue: dict[str, set[str]] = defaultdict(set)
    genre_turns: Counter[str] = Counter()
    for dialogue, turn_entities in zip(dialogues, entities, strict=True):
        if dialogue.split != "train":
            continue
        everything = {normalize_title(name) for names in turn_entities for name in names}
        for turn, names in zip(dialogue.turns, turn_entities, strict=True):
            books = set(turn.items) | {book_id(name) for name in names if book_id(name) in titles}
            genres = {genre for name in names if (genre := genre_of(name)) is not None}
            genre_turns.update(genres)
            for book in books:
                genres_beside[book].update(genres)
                named_in_dialogue[book] |= everything
    items = []
    unmatched, ambiguous = [], 0
    for item_id, title in sorted(titles.items()):
        row, n_rows = goodbooks.match(title, named_in_dialogue[item_id])
        metadata: dict[str, Any] = {}
        if row is None:
            unmatched.append(title)
        elif row.author:
            metadata["author"] = [row.author]
        ambiguous += n_rows > 1
        counts = genres_beside[item_id]
        if counts:
            metadata["genre"] = sorted(counts, key=lambda genre: (-counts[genre], -genre_turns[genre], genre))
        items.append(Item(item_id, title, row.year if row is not None else None, metadata))
    report = {
        "books": len(items),
        "goodbooks": {"matched": len(items) - len(unmatched), "several_rows": ambiguous, "unmatched": unmatched},
        "books_with_genres": sum(bool(item.metadata.get("genre")) for item in items),
        "genre_source": "genre entities named beside each book in train dialogues",
    }
    return Catalog(items, name="opendialkg-books"), report


OPENDIALKG_BOOKS = Converter(name="opendialkg-books", sources=("opendialkg-books", "goodbooks-10k"), version="2",
                             convert=convert)
