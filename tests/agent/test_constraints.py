"""Constraints read from messages on the real ReDial (movies) and OpenDialKG (books) catalogues: eras, genres to
want or avoid with their negation scope, people by role, no constraint where none is stated, and the
conversation's constraint state.

Relative eras are measured against the catalogue's newest year: ReDial's is 2019 ("recent" = 2015-, "classic"
= -1989), the OpenDialKG books' 2016 ("recent" = 2012-, "classic" = -1986). Both are asserted below, so a
change of catalogue shows up as such rather than as a wrong expectation.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from convrec.agent.constraints import Constraint, ConstraintState, extract_constraints
from convrec.agent.domain import DomainAdapter
from convrec.agent.normalise import value_key
from convrec.data.load import load_dataset


@pytest.fixture(scope="module")
def movies(redial) -> DomainAdapter:
    return DomainAdapter.of(redial.catalog, redial.name)


@pytest.fixture(scope="module")
def books(mirror: Path, data_dir: Path) -> DomainAdapter:
    dataset = load_dataset("opendialkg-books", data_dir, mirror)
    return DomainAdapter.of(dataset.catalog, dataset.name)


def want(attribute: str, value: str | None = None, low: int | None = None, high: int | None = None) -> tuple:
    return ("want", attribute, value_key(value) if value else None, low, high)


def avoid(attribute: str, value: str | None = None, low: int | None = None, high: int | None = None) -> tuple:
    return ("avoid", attribute, value_key(value) if value else None, low, high)


def era(low: int | None = None, high: int | None = None) -> tuple:
    return want("year", low=low, high=high)


def read(constraint: Constraint) -> tuple:
    return (constraint.polarity, constraint.attribute, value_key(constraint.value) if constraint.value else None,
            constraint.low, constraint.high)


MOVIE_CASES = [
    # eras
    ("any movies after 2010?", [era(2011)]),
    ("I'd like something from the 90s", [era(1990, 1999)]),
    ("older than 1980 would be great", [era(high=1979)]),
    ("something recent", [era(2015)]),
    ("I love the classics", [era(high=1989)]),
    ("nothing before 2000", [era(2000)]),
    ("not before 2000 please", [era(2000)]),
    ("between 1995 and 2005", [era(1995, 2005)]),
    ("from 2010 to 2015", [era(2010, 2015)]),
    ("2010 or later", [era(2010)]),
    ("newer than 2012", [era(2013)]),
    ("something made in 2015", [era(2015, 2015)]),
    ("a movie released in 1999", [era(1999, 1999)]),
    ("anything from the last ten years", [era(2010, 2019)]),
    ("I don't want anything older than 1990", [era(1990)]),
    ("maybe something from the nineties", [era(1990, 1999)]),
    # genres, wanted and avoided
    ("no horror", [avoid("genre", "horror")]),
    ("I don't like horror movies", [avoid("genre", "horror")]),
    ("anything but romance", [avoid("genre", "romance")]),
    ("not too scary please", [avoid("genre", "horror")]),
    ("I want a funny movie", [want("genre", "comedy")]),
    ("Do you know any good sci-fi films?", [want("genre", "sci-fi")]),
    ("I'm into science fiction", [want("genre", "sci-fi")]),
    ("I hate romantic comedies", [avoid("genre", "romance"), avoid("genre", "comedy")]),
    ("No horror or thrillers please", [avoid("genre", "horror"), avoid("genre", "thriller")]),
    ("I like comedies but not romance", [want("genre", "comedy"), avoid("genre", "romance")]),
    ("horror is not my thing", [avoid("genre", "horror")]),
    ("Comedy? No thanks.", [avoid("genre", "comedy")]),
    ("I'm not in the mood for anything scary", [avoid("genre", "horror")]),
    ("I don't mind horror", [want("genre", "horror")]),
    ("no musicals, no westerns", [avoid("genre", "musical"), avoid("genre", "western")]),
    ("I'd rather watch a comedy than a horror", [want("genre", "comedy"), avoid("genre", "horror")]),
    ("neither horror nor romance", [avoid("genre", "horror"), avoid("genre", "romance")]),
    ("not a fan of musicals", [avoid("genre", "musical")]),
    ("a good documentary", [want("genre", "documentary")]),
    ("a war movie", [want("genre", "war")]),
    ("something animated for kids", [want("genre", "animation"), want("genre", "family")]),
    # genres and eras together
    ("a thriller from the 2000s", [want("genre", "thriller"), era(2000, 2009)]),
    ("late 80s action movies", [era(1986, 1989), want("genre", "action")]),
    ("sports movies from the 80s", [want("genre", "sport"), era(1980, 1989)]),
    ("nothing before 2000, and no horror or romance",
     [era(2000), avoid("genre", "horror"), avoid("genre", "romance")]),
    # people
    ("Something with Hugh Grant please", [want("star", "Hugh Grant")]),
    ("starring Tom Hanks", [want("star", "Tom Hanks")]),
    ("a movie by Stephen King", [want("writer", "Stephen King")]),
    ("directed by Christopher Nolan", [want("director", "Christopher Nolan")]),
    ("anything but Adam Sandler", [avoid("person", "Adam Sandler")]),
    ("I can't stand Adam Sandler", [avoid("person", "Adam Sandler")]),
    ("Nothing with Jim Carrey", [avoid("star", "Jim Carrey")]),
    ("something with Madonna", [want("star", "Madonna")]),
    ("I'm looking for something from the nineties with Julia Roberts",
     [era(1990, 1999), want("star", "Julia Roberts")]),
    ("a comedy with Hugh Grant after 2000", [want("genre", "comedy"), want("star", "Hugh Grant"), era(2001)]),
    # plot keywords
    ("a movie about sharks", [want("keyword", "shark")]),
    # lifting a constraint
    ("any year is fine", [("any", "year", None, None, None)]),
]

BOOK_CASES = [
    ("something by Stephen King", [want("author", "Stephen King")]),
    ("I don't want anything by Dan Brown", [avoid("author", "Dan Brown")]),
    ("fantasy books after 2000", [want("genre", "fantasy"), era(2001)]),
    ("no romance novels", [avoid("genre", "romance novel")]),
    ("young adult fiction please", [want("genre", "young-adult fiction")]),
    ("I like science fiction", [want("genre", "science fiction")]),
    ("I'm into sci-fi", [want("genre", "science fiction")]),
    ("any good thrillers?", [want("genre", "thriller")]),
    ("nothing too scary", [avoid("genre", "horror")]),
    ("classic novels", [era(high=1986)]),
    ("anything but non-fiction", [avoid("genre", "non-fiction")]),
    ("something from the 90s by J.K. Rowling", [era(1990, 1999), want("author", "J.K. Rowling")]),
    ("I like mysteries but not romance", [want("genre", "mystery"), avoid("genre", "romance")]),
    ("books for kids", [want("genre", "children")]),
    ("historical novels", [want("genre", "historical novel")]),
    ("I don't care about the genre", [("any", "genre", None, None, None)]),
    ("a recent book", [era(2012)]),
    ("written by George R.R. Martin", [want("author", "George R.R. Martin")]),
    ("not J.K. Rowling", [avoid("author", "J.K. Rowling")]),
    ("I'd like a biography", [want("genre", "biography")]),
    ("a romance please", [want("genre", "romance")]),
    ("books published before 1950", [era(high=1949)]),
]

# Messages that state no constraint, though they hold words that could be read as one.
MOVIE_NEGATIVES = [
    "Hi! How are you today?",
    "I loved The Dark Knight",
    "It won an award last year",  # "war" is not in "award"
    "the warden was awful",
    "I watched it in 2010 with my wife",  # a year alone is no era
    "My son is 10 years old",
    "I'm in my 30s",  # an age, not a decade
    "Ray was great in that one",  # one word of a name
    "I saw Grant yesterday",
    "That was funny",  # an adjective outside a request
    "Thanks, I will check it out!",
    "I have seen that one already",
    "Good news, I found it",
    "I loved Scary Movie",  # a title, not a wish for horror
    "Not sure yet",
    "King is a great name",
]
BOOK_NEGATIVES = [
    "I read it in 2010",
    "King is my favourite",  # a surname alone
    "Thanks, that sounds great",
    "my kids loved it",
]


def test_relative_eras_are_measured_from_each_catalogue(movies, books):
    assert movies.year_range[1] == 2019 and books.year_range[1] == 2016


@pytest.mark.parametrize(("message", "expected"), MOVIE_CASES, ids=[c[0] for c in MOVIE_CASES])
def test_movie_constraints(movies, message, expected):
    found = extract_constraints(message, movies)
    assert sorted(map(read, found), key=str) == sorted(expected, key=str)
    assert all(message[c.start : c.end] == c.text and c.text for c in found)


@pytest.mark.parametrize(("message", "expected"), BOOK_CASES, ids=[c[0] for c in BOOK_CASES])
def test_book_constraints(books, message, expected):
    found = extract_constraints(message, books)
    assert sorted(map(read, found), key=str) == sorted(expected, key=str)


@pytest.mark.parametrize("message", MOVIE_NEGATIVES)
def test_no_movie_constraint_where_none_is_stated(movies, message):
    assert extract_constraints(message, movies) == []


@pytest.mark.parametrize("message", BOOK_NEGATIVES)
def test_no_book_constraint_where_none_is_stated(books, message):
    assert extract_constraints(message, books) == []


def table_scores(adapter: DomainAdapter, cases, negatives) -> tuple[int, int, int]:
    """(true positives, predicted, expected) over a case table: constraints counted one by one."""
    hits = predicted = expected = 0
    for message, wanted in [*cases, *((m, []) for m in negatives)]:
        found = [read(c) for c in extract_constraints(message, adapter)]
        hits += sum(1 for c in found if c in wanted)
        predicted += len(found)
        expected += len(wanted)
    return hits, predicted, expected


def test_precision_and_recall_on_the_case_tables(movies, books):
    """The measured numbers of the report; every case is also its own test above."""
    scores = [table_scores(movies, MOVIE_CASES, MOVIE_NEGATIVES), table_scores(books, BOOK_CASES, BOOK_NEGATIVES)]
    hits, predicted, expected = (sum(s[i] for s in scores) for i in range(3))
    print(f"\nconstraint extraction on the case tables ({len(MOVIE_CASES) + len(MOVIE_NEGATIVES)} movie and "
          f"{len(BOOK_CASES) + len(BOOK_NEGATIVES)} book messages, {expected} constraints): "
          f"precision {hits / predicted:.3f}, recall {hits / expected:.3f}")
    assert hits / predicted >= 0.95 and hits / expected >= 0.95


def test_titles_the_caller_found_are_not_read_again(movies):
    message = "no horror please"
    assert [read(c) for c in extract_constraints(message, movies, titles=[])] == [avoid("genre", "horror")]


def test_a_title_found_only_by_its_words_gives_way_to_an_era(movies):
    # "The Last Five Years" (2014) is a ReDial title; in this sentence the words ask for an era.
    assert any(m.text == "the last five years" for m in movies.find_titles("movies from the last five years"))
    assert [read(c) for c in extract_constraints("movies from the last five years", movies)] == [era(2015, 2019)]


def test_turn_index_and_spans_are_kept(movies):
    message = "I like comedies, but nothing with Adam Sandler after 2010"
    found = extract_constraints(message, movies, turn=3)
    assert {c.turn for c in found} == {3}
    assert [c.text for c in found] == ["comedies", "Adam Sandler", "after 2010"]


def test_bad_input_gets_no_constraint_and_no_error(movies):
    assert extract_constraints("", movies) == []
    assert extract_constraints("   \n ", movies) == []
    assert extract_constraints("?!?!,,,;;", movies) == []


def test_a_100_kb_message_is_read_in_reasonable_time(movies):
    message = ("I like comedies but no horror, something after 2010 with Hugh Grant. " * 1500)[:100_000]
    started = time.process_time()
    found = extract_constraints(message, movies)
    elapsed = time.process_time() - started
    assert {read(c) for c in found} == {want("genre", "comedy"), avoid("genre", "horror"), era(2011),
                                        want("star", "Hugh Grant")}
    assert elapsed < 6.0, f"{elapsed:.1f} s of CPU for 100 KB"


def test_extraction_is_fast_per_message(movies):
    messages = [m for m, _ in MOVIE_CASES] + MOVIE_NEGATIVES
    extract_constraints(messages[0], movies)  # first use builds the people index and title linker
    started = time.process_time()
    for message in messages:
        extract_constraints(message, movies)
    per_message = (time.process_time() - started) / len(messages)
    assert per_message < 0.01, f"{per_message * 1000:.1f} ms of CPU per message"


# ---- the constraint state -------------------------------------------------------------------------------


def state_after(adapter: DomainAdapter, *messages: str) -> list[tuple]:
    state = ConstraintState()
    for turn, message in enumerate(messages):
        state = state.update(extract_constraints(message, adapter, turn=turn))
    return sorted(map(read, state.constraints), key=str)


def test_a_later_era_replaces_an_earlier_one(movies):
    assert state_after(movies, "something after 2010", "actually from the 90s") == [era(1990, 1999)]


def test_an_open_era_narrows_the_earlier_one_it_meets(movies):
    assert state_after(movies, "after 2010", "but before 2015") == [era(2011, 2014)]
    assert state_after(movies, "from the 90s", "after 1995") == [era(1996, 1999)]
    assert state_after(movies, "after 2010", "before 1990") == [era(high=1989)]  # no overlap: replaced


def test_wants_of_one_turn_are_alternatives_and_a_later_turn_moves_on(movies):
    assert state_after(movies, "a comedy or a romance") == [want("genre", "comedy"), want("genre", "romance")]
    assert state_after(movies, "a comedy", "how about horror") == [want("genre", "horror")]


def test_avoids_accumulate_until_revoked(movies):
    assert state_after(movies, "no horror", "no musicals either") == [avoid("genre", "horror"),
                                                                      avoid("genre", "musical")]
    assert state_after(movies, "no horror", "actually horror is fine") == [want("genre", "horror")]


def test_any_lifts_an_attribute(movies):
    assert state_after(movies, "after 2010 and no horror", "any year is fine") == [avoid("genre", "horror")]


def test_state_constraints_hold_across_turns_on_other_attributes(movies):
    assert state_after(movies, "something with Hugh Grant", "from after 2010") == [
        want("star", "Hugh Grant"), era(2011)]


def test_the_state_is_json_and_back():
    state = ConstraintState().update([Constraint(attribute="year", low=2011, text="after 2010", start=0, end=10),
                                      Constraint(attribute="genre", value="horror", polarity="avoid", turn=1)])
    assert ConstraintState.model_validate_json(state.model_dump_json()) == state
    assert state.describe() == ["year 2011..", "genre != horror"]


@pytest.mark.parametrize("fields", [
    {"attribute": "genre"},  # neither value nor range
    {"attribute": "year", "value": "1999", "low": 1999},  # both
    {"attribute": "year", "low": 2010, "high": 2000},  # empty range
    {"attribute": "year", "low": 2010, "polarity": "any"},  # "any" with a range
])
def test_malformed_constraints_are_refused(fields):
    with pytest.raises(ValidationError):
        Constraint(**fields)
