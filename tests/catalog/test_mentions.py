"""Titles found in typed messages: marked spans, exact titles with evidence, and the ordinary-word traps."""

from __future__ import annotations

import pytest

from convrec.catalog.items import Catalog, Item
from convrec.catalog.mentions import NOT_TITLES_ALONE, find_titles
from convrec.catalog.titles import TitleLinker
from convrec.catalog.vocabulary import BOOKS, GENERIC, MOVIES

ITEMS = [
    Item("alien", "Alien", 1979), Item("aliens", "Aliens", 1986), Item("up", "Up", 2009),
    Item("getout", "Get Out", 2017), Item("darkknight", "The Dark Knight", 2008),
    Item("halloween78", "Halloween", 1978), Item("halloween07", "Halloween", 2007), Item("it", "It", 2017),
    Item("scary", "Scary Movie", 2000), Item("br2049", "Blade Runner 2049", 2017), Item("home", "Home Alone", 1990),
    Item("friday", "Friday", 1995), Item("ray", "Ray", 2004), Item("nb13", "The Notebook", 2013),
    Item("nb04", "The Notebook", 2004), Item("1917", "1917", 2019),
]


@pytest.fixture(scope="module")
def linker() -> TitleLinker:
    return TitleLinker(Catalog(ITEMS, name="mentions"))


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("I loved the dark knight and Alien (1979)", [("the dark knight", "darkknight"), ("Alien", "alien")]),
        ("Alien", [("Alien", "alien")]),  # a message that is only a title
        ("home alone", [("home alone", "home")]),
        ("I watched Get Out", [("Get Out", "getout")]),
        ("Have you seen \"Up\"? and 'aliens'", [("Up", "up"), ("aliens", "aliens")]),  # marked: any case
        ("*The Dark Knight* please", [("The Dark Knight", "darkknight")]),
        ("I saw Blade Runner 2049 yesterday", [("Blade Runner 2049", "br2049")]),  # 2049 is not its year
        ("Halloween 2007 was bad", [("Halloween", "halloween07")]),  # a year picks the remake
        ("I loved It", [("It", "it")]),
        ("On Friday I watched Up.", [("Up", "up")]),  # weekdays alone are not films
        ("I'm sure it is fine", []),  # the apostrophe of I'm opens no quote
    ],
)
def test_titles_found(linker, message, expected):
    assert [(m.text, m.item_id) for m in find_titles(message, linker)] == expected


@pytest.mark.parametrize(
    "message",
    [
        "Get out of here",  # sentence start: only "Get" is capitalised
        "a scary movie please",  # prose, not "Scary Movie"
        "I love Ray Liotta",  # part of a capitalised name
        "It was great",  # sentence start
        "something for Halloween",  # a holiday
        "I watched 1917 last week",  # a bare number
    ],
)
def test_ordinary_words_are_not_titles(linker, message):
    assert find_titles(message, linker) == []


def test_offsets_evidence_and_each_item_once(linker):
    message = "Alien (1979) or maybe Alien again, and Aliens"
    mentions = find_titles(message, linker)
    assert [m.item_id for m in mentions] == ["alien", "aliens"]
    first = mentions[0]
    assert message[first.start : first.end] == "Alien" and first.evidence == "year"


def test_popularity_breaks_ties_between_items_of_one_title(linker):
    assert [m.item_id for m in find_titles("I cried at The Notebook", linker)] == ["nb13"]  # catalogue order
    popular = {"nb04": 40.0, "nb13": 2.0}
    assert [m.item_id for m in find_titles("I cried at The Notebook", linker, popular)] == ["nb04"]
    assert [m.item_id for m in find_titles("The Notebook (2013)", linker, popular)] == ["nb13"]  # year wins


def test_each_domain_has_its_words_that_are_not_titles():
    """"Kindle" mid-sentence is a device to a book reader; a movie catalogue's "Netflix" is where one watches."""
    linker = TitleLinker(Catalog([Item("kindle", "Kindle", 2011), Item("netflix", "Netflix", 2019)], name="words"))
    assert find_titles("I read it on my Kindle", linker, not_titles=BOOKS.not_titles) == []
    assert [m.item_id for m in find_titles("I read it on my Kindle", linker, not_titles=MOVIES.not_titles)] == [
        "kindle"]
    assert find_titles("I saw it on Netflix", linker, not_titles=MOVIES.not_titles) == []
    assert [m.item_id for m in find_titles("I saw it on Netflix", linker, not_titles=BOOKS.not_titles)] == [
        "netflix"]
    # Weekdays are no titles in any domain, by default too.
    linker = TitleLinker(Catalog([Item("friday", "Friday", 1995)], name="days"))
    for not_titles in (NOT_TITLES_ALONE, BOOKS.not_titles, MOVIES.not_titles, GENERIC.not_titles):
        assert find_titles("See you on Friday", linker, not_titles=not_titles) == []
