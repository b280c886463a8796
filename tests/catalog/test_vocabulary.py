"""A dataset's domain: known for the bundled datasets, read from an imported catalogue's metadata."""

from __future__ import annotations

import pytest

from convrec.catalog.items import Catalog, Item
from convrec.catalog.vocabulary import BOOKS, GENERIC, MOVIES, VOCABULARIES, domain_for


def catalogue(n_authors: int, n_directors: int, n_bare: int) -> Catalog:
    items = [Item(f"a{n}", f"Book {n}", None, {"author": ["Someone"]}) for n in range(n_authors)]
    items += [Item(f"d{n}", f"Film {n}", None, {"director": ["Someone"]}) for n in range(n_directors)]
    items += [Item(f"b{n}", f"Thing {n}") for n in range(n_bare)]
    return Catalog(items, name="mine")


@pytest.mark.parametrize(
    ("counts", "domain"),
    [
        ((6, 0, 4), "books"),
        ((6, 3, 1), "books"),
        ((1, 8, 1), "movies"),
        ((5, 0, 5), "items"),  # half is not most
        ((0, 5, 5), "items"),
        ((0, 0, 3), "items"),
    ],
)
def test_an_imported_catalogue_is_read_from_its_metadata(counts, domain):
    assert domain_for("mine", catalogue(*counts)) == domain


def test_bundled_datasets_have_their_domain():
    bare = catalogue(0, 0, 3)  # whatever the metadata: MovieLens names no director
    assert [domain_for(name, bare) for name in ("redial", "inspired", "movielens", "opendialkg-books")] == [
        "movies", "movies", "movies", "books"]


def test_each_domain_has_its_words():
    assert VOCABULARIES == {"movies": MOVIES, "books": BOOKS, "items": GENERIC}
    assert (BOOKS.a_noun, BOOKS.plural, BOOKS.creator_fields) == ("a book", "books", ("author",))
    assert (GENERIC.a_noun, GENERIC.creator_fields) == ("an item", ("director", "author"))
    assert [creator.made_by for creator in BOOKS.creators] == ["written by"]
    assert BOOKS.cast_field is None and MOVIES.cast_field == "star"
