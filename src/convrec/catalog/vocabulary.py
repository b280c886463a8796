"""The words of a domain: what its items are called, who makes them, how a reply gives a reason, and which
capitalised words are not titles.

Prompts (:mod:`convrec.rerank.prompts`), replies (:mod:`convrec.rerank.reply`) and the chat take their words
from a :class:`Vocabulary`, so that a book recommender talks of books "written by" their author and never of
movies "directed by" anyone. :func:`domain_for` chooses a dataset's domain: the bundled datasets' domains are
known; an imported catalogue is read as movies or books when most of its items name a director or an author,
else it gets the generic words ("item"), which are true of any catalogue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from convrec.catalog.items import Catalog
from convrec.catalog.mentions import NOT_TITLES_ALONE

Domain = Literal["movies", "books", "items"]
CreatorField = Literal["director", "author"]


@dataclass(frozen=True)
class Creator:
    """Who makes an item, as the catalogue's metadata records it: ``field`` holds the names, ``made_by`` is how
    a reply says it ("written by")."""

    field: CreatorField
    made_by: str


@dataclass(frozen=True)
class Vocabulary:
    """``asked_genre`` and ``genres`` are the reason templates for a genre the seeker named and for the item's
    first genres; they may use ``{a}`` (the article of the genre), ``{genre}``/``{genres}`` and ``{noun}``."""

    domain: Domain
    noun: str
    plural: str
    creators: tuple[Creator, ...]
    cast_field: str | None  # the metadata field naming who is in it, for a domain that has a cast
    asked_genre: str
    genres: str
    not_titles: frozenset[str]  # capitalised words that are rarely meant as an item of the same name

    @property
    def a_noun(self) -> str:
        return f"{article(self.noun)} {self.noun}"

    @property
    def creator_fields(self) -> tuple[str, ...]:
        return tuple(creator.field for creator in self.creators)


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


MOVIES = Vocabulary(
    domain="movies", noun="movie", plural="movies", creators=(Creator("director", "directed by"),),
    cast_field="star", asked_genre="It is {a} {genre} {noun}, like you asked about.",
    genres="It is {a} {genres} {noun}.",
    not_titles=NOT_TITLES_ALONE | {"netflix", "hulu", "disney", "pixar", "marvel", "dc", "hbo", "amazon", "imdb",
                                   "hollywood"},
)
# A book's genres are often nouns ("romance novel", "young-adult fiction"): "a romance novel book" would not do.
BOOKS = Vocabulary(
    domain="books", noun="book", plural="books", creators=(Creator("author", "written by"),), cast_field=None,
    asked_genre="It is listed under {genre}, like you asked about.", genres="It is listed under {genres}.",
    not_titles=NOT_TITLES_ALONE | {"kindle", "audible", "goodreads", "amazon"},
)
GENERIC = Vocabulary(
    domain="items", noun="item", plural="items",
    creators=(Creator("director", "directed by"), Creator("author", "written by")), cast_field="star",
    asked_genre="It is listed under {genre}, like you asked about.", genres="It is listed under {genres}.",
    not_titles=NOT_TITLES_ALONE,
)
VOCABULARIES: dict[str, Vocabulary] = {vocabulary.domain: vocabulary for vocabulary in (MOVIES, BOOKS, GENERIC)}

BUNDLED_DOMAINS: dict[str, Domain] = {"redial": "movies", "redial-joined": "movies", "inspired": "movies",
                                      "movielens": "movies", "opendialkg-books": "books"}
# The share of an imported catalogue's items that must name a director (or an author) to read it as movies
# (or books): a few books in a movie catalogue do not make it a bookshop.
MAJORITY = 0.5


def domain_for(dataset_name: str, catalog: Catalog) -> Domain:
    """The domain of a dataset: known for a bundled one, read from the catalogue's metadata otherwise."""
    if dataset_name in BUNDLED_DOMAINS:
        return BUNDLED_DOMAINS[dataset_name]
    if not len(catalog):
        return "items"
    share = {field: sum(bool(item.metadata.get(field)) for item in catalog) / len(catalog)
             for field in ("director", "author")}
    if share["author"] > max(MAJORITY, share["director"]):
        return "books"
    if share["director"] > MAJORITY:
        return "movies"
    return "items"
