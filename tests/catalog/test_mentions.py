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


# Titles made only of function words, and titles whose year decides between items: the traps of a year read as
# a title's year ("from 2010 to 2015", "a 2012 movie") beside the real short titles typed with their year.
SHORT_TITLES = [
    Item("to", "To", 2015), Item("a", "A", 2012), Item("it", "It", 2017), Item("it90", "It", 1990),
    Item("up", "Up", 2009), Item("her", "Her", 2013), Item("us", "Us", 2019), Item("after", "After", 2019),
    Item("may", "May", 2002), Item("mebefore", "Me Before You", 2016), Item("insideout", "Inside Out", 2015),
    Item("9to5", "9 to 5", 1980), Item("2012", "2012", 2009), Item("watch", "The Watch", 2012),
    Item("yes", "Yes", 2004), Item("d", "D", 2005), Item("robots", "Robots", 2005), Item("post", "The Post", 2017),
    Item("saw", "Saw", 2004), Item("meet", "Meet the Parents", 2000), Item("meet-again", "Meet the Parents", 2000),
    Item("alien", "Alien", 1979), Item("halloween", "Halloween", 1978),
]


@pytest.fixture(scope="module")
def short_linker() -> TitleLinker:
    return TitleLinker(Catalog(SHORT_TITLES, name="short titles"))


@pytest.mark.parametrize(
    "message",
    [
        "something from 2010 to 2015",  # "To" (2015): a range of years
        "a 2012 movie please",  # "A" (2012): an article before a year
        "A 2012 movie please",  # ... capitalised only because it starts the sentence
        "After 2019 please",  # "After" (2019): a preposition before a year
        "I saw her 2013 album",  # a possessive before a year
        "anything from May 2002",  # a date, not "May" (2002)
        "call me before you go",  # three function words are no title ("Me Before You")
        "like post 2014",  # real (ReDial train 14460): no "The Post" is from 2014
        "yes 2012: Ice Age is my favorite part",  # real (ReDial train 9320): "Yes" is from 2004
        "yes!!",  # a reply, not the film "Yes"
        "lol",
        "take your time i need a good one :D",  # real (ReDial test 21425): a face, not the film "D"
        "it",  # function words in lower case as a whole message
    ],
)
def test_function_words_before_a_year_are_not_titles(short_linker, message):
    assert find_titles(message, short_linker) == []


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("It (2017)", [("It", "it")]),
        ("It 2017", [("It", "it")]),
        ("Up 2009", [("Up", "up")]),
        ("Her (2013)", [("Her", "her")]),
        ("Us 2019", [("Us", "us")]),
        ("I loved Us 2019 and Her 2013", [("Us", "us"), ("Her", "her")]),  # capitalised mid-sentence
        ("It 2017 was too much for me", [("It", "it")]),  # no prose puts a year after a pronoun
        ("i have seen it 1990 and up 2009", [("it", "it90"), ("up", "up")]),  # nor after a particle
        ("we liked it (1990), the old one", [("it", "it90")]),  # a year in brackets is a title's year
        ("i also loved inside out 2015", [("inside out", "insideout")]),
        ("She loved 9 to 5 1980 , for example", [("9 to 5", "9to5")]),  # a number is no function word
        ("I liked Me Before You", [("Me Before You", "mebefore")]),
        ("I'll watch 2012 (2009)", [("2012", "2012")]),  # real (ReDial train 18409): "2012" is the title
        ("Alien 1980 was better than Halloween 1978", [("Alien", "alien"), ("Halloween", "halloween")]),
        ("I really love Robots :D", [("Robots", "robots")]),  # the face after it is no capitalised name
        ("Yes (2004)", [("Yes", "yes")]),  # a reply word with its year in brackets is the title
        ('I said "Yes"', [("Yes", "yes")]),
    ],
)
def test_short_titles_with_their_year_are_found(short_linker, message, expected):
    assert [(m.text, m.item_id) for m in find_titles(message, short_linker)] == expected


def test_a_year_that_fits_no_item_of_the_title_is_no_evidence(short_linker):
    """"I saw 1922" is a year of watching; "Saw" (2004) is not from then, and lower case is no title."""
    assert find_titles("I saw 1922 on Netflix", short_linker) == []
    # a capitalised title with another year is still found by its capitals, and the year is not used up
    [mention] = find_titles("I watched Alien 2015 on a plane", short_linker)
    assert (mention.item_id, mention.evidence, mention.text) == ("alien", "capitals", "Alien")


def test_a_year_chooses_the_most_popular_item_of_that_title_and_year(short_linker):
    """A catalogue may list one film twice (ReDial has two "Meet the Parents (2000)"): the more popular wins."""
    message = "I love Meet the Parents (2000)"
    assert [m.item_id for m in find_titles(message, short_linker)] == ["meet"]  # catalogue order
    popular = {"meet": 4.0, "meet-again": 38.0}
    assert [m.item_id for m in find_titles(message, short_linker, popular)] == ["meet-again"]
    assert [m.item_id for m in find_titles('"Meet the Parents (2000)"', short_linker, popular)] == ["meet-again"]


@pytest.fixture(scope="module")
def redial_titles(redial):
    from convrec.retrieval.base import item_counts

    popularity = dict(zip(redial.catalog.ids, item_counts(redial.split("train")).tolist(), strict=True))
    return TitleLinker(redial.catalog), popularity


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        # ReDial's own seeker messages (dialogue ids in brackets) against its 6,924-movie catalogue
        ("something from 2010 to 2015", []),  # "To" (1964)
        ("I haven't heard of it but it's a 2018 movie.", []),  # train 18013: "A" (1998)
        ("yes!!", []),  # "Yes" (2004), eleven times in the test split
        ("Awesome!", []),  # "Awesome" (2006)
        ("Ah The Departed (2006) is a classic by now everybody have seen it :D", ["The Departed (2006)"]),
        ("I don't think I have seen gamer 2009", ["Gamer (2009)"]),  # train 599
        ("Have you seen Jumanji (1995) Jumanji 2018 one!", ["Jumanji (1995)", "Jumanji (2017)"]),  # test 21084
        ("It 2017 was a bit too much for me", ["It (2017)"]),
        ("Up 2009", ["Up (2009)"]),
        ("Her (2013)", ["Her (2013)"]),
    ],
)
def test_real_redial_messages(redial_titles, message, expected):
    linker, popularity = redial_titles
    found = find_titles(message, linker, popularity, not_titles=MOVIES.not_titles)
    assert [linker.catalog.get(m.item_id).display_title for m in found] == expected


def test_the_gold_meet_the_parents_of_redial_test_is_linked(redial_titles, redial):
    """ReDial test dialogue 21113 marks "Meet the Parents (2000)" as @170722, the more mentioned of two."""
    linker, popularity = redial_titles
    [turn] = [t for d in redial.split("test").dialogues if d.dialogue_id == "21113" for t in d.turns
              if t.role == "seeker" and "Ben Stiller. Meet the Parents" in t.text]
    found = find_titles(turn.text, linker, popularity, not_titles=MOVIES.not_titles)
    assert [m.item_id for m in found] == list(turn.items) == ["170722"]


def test_skipping_positions_no_title_can_begin_at_finds_the_same_titles(redial, inspired, monkeypatch):
    """``may_begin_title`` only saves time: over every ReDial and INSPIRED test message (thousands, with
    titles, years, quotes, articles and punctuation as people type them) the titles found are the same with the
    test as without it (every position tried), and the test does skip most positions."""
    for dataset in (redial, inspired):
        linker = TitleLinker(dataset.catalog)
        messages = [turn.text for dialogue in dataset.split("test").dialogues for turn in dialogue.turns][:4000]
        with_test = [find_titles(message, linker) for message in messages]
        asked, skipped = [], []
        original = TitleLinker.may_begin_title

        def every_position(self, word, asked=asked, skipped=skipped, original=original):
            asked.append(word)
            if not original(self, word):
                skipped.append(word)
            return True

        monkeypatch.setattr(TitleLinker, "may_begin_title", every_position)
        assert [find_titles(message, linker) for message in messages] == with_test
        monkeypatch.undo()
        assert sum(len(found) for found in with_test) > 300  # titles were found, so the comparison means something
        assert len(skipped) > 0.2 * len(asked)
