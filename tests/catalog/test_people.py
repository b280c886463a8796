"""People found in typed messages: full names of the catalogue's authors (or directors), in the forms people
type them, and nothing shorter."""

from __future__ import annotations

import pytest

from convrec.catalog.items import Catalog, Item
from convrec.catalog.people import PeopleIndex, find_people

BOOKS = Catalog([
    Item("dome", "Under the Dome", 2009, {"author": ["Stephen King"]}),
    Item("crew", "Skeleton Crew", 1985, {"author": "Stephen King"}),  # a single string is a name too
    Item("hp1", "Harry Potter and the Philosopher's Stone", 1997, {"author": ["J.K. Rowling"]}),
    Item("got", "A Game of Thrones", 1996, {"author": ["George R.R. Martin"]}),
    Item("cradle", "Cat's Cradle", 1963, {"author": ["Kurt Vonnegut Jr."]}),
    Item("sophie", "Le Monde de Sophie", 1991, {"author": ["Jostein Gaarder"]}),
    Item("amelie", "Stupeur et tremblements", 1999, {"author": ["Amélie Nothomb"]}),
    Item("odyssey", "The Odyssey", None, {"author": ["Homer"]}),
    Item("alien", "Alien", 1979, {"director": ["Ridley Scott"]}),
], name="people")


@pytest.fixture(scope="module")
def authors() -> PeopleIndex:
    return PeopleIndex(BOOKS, ["author"])


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("I enjoyed The Shining by Stephen King", [("Stephen King", "Stephen King", ("dome", "crew"))]),
        ("anything from stephen king's early years?", [("stephen king", "Stephen King", ("dome", "crew"))]),
        ("I like J. K. Rowling and JK Rowling", [("J. K. Rowling", "J.K. Rowling", ("hp1",))]),  # each person once
        ("george rr martin please", [("george rr martin", "George R.R. Martin", ("got",))]),
        ("Kurt Vonnegut made me laugh", [("Kurt Vonnegut", "Kurt Vonnegut Jr.", ("cradle",))]),
        ("Amelie Nothomb or Jostein Gaarder?", [("Amelie Nothomb", "Amélie Nothomb", ("amelie",)),
                                               ("Jostein Gaarder", "Jostein Gaarder", ("sophie",))]),
    ],
)
def test_full_names_are_found(authors, message, expected):
    found = find_people(message, authors)
    assert [(p.text, p.name, p.item_ids) for p in found] == expected
    assert all(message[p.start : p.end] == p.text and p.field == "author" for p in found)


@pytest.mark.parametrize(
    "message",
    [
        "I love King and Rowling",  # surnames alone are ordinary words too often
        "Homer is my favourite",  # a one-word name
        "Stephen is a friend; King Lear is a play",
        "Ridley Scott films",  # a director, and only authors were indexed
    ],
)
def test_partial_names_and_other_fields_are_not_people(authors, message):
    assert find_people(message, authors) == []


def test_spans_taken_by_titles_are_not_names(authors):
    message = "Stephen King by Stephen King"
    found = find_people(message, authors, taken=[(0, 12)])
    assert [(p.start, p.end) for p in found] == [(16, 28)]


def test_the_fields_indexed_are_the_domains():
    directors = PeopleIndex(BOOKS, ["director"])
    assert len(directors) == 1
    assert [p.item_ids for p in find_people("Ridley Scott films", directors)] == [("alien",)]
    assert find_people("I enjoyed The Shining by Stephen King", directors) == []
