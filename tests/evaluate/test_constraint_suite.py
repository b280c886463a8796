"""The constraint suite of issue 15 (HARPO, item 6a), written before the agent logic: the suite itself (real
titles, people and genres of the ReDial and OpenDialKG-books catalogues, varied phrasings, satisfiable
constraints), the metadata-only checker on real items, and the report of a system run through it.

The reference system is today's chat engine without an LLM (``build_engine`` with ``ChatConfig(llm=None)``,
the default itemknn retriever): "the retriever alone" row of the issue. Its adapter, :func:`engine_converse`,
lives here because ``evaluate`` must not import ``serve``. :func:`assert_suite_holds` is what an agent's
tests call (the issue's target: at most 5% of (slate, constraint) pairs violated, no seen or disliked item
ever recommended again); here it passes on an oracle that filters by the checker and fails on the reference.
Re-measure the reference with ``pytest tests/evaluate/test_constraint_suite.py -k reference -s``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import islice
from pathlib import Path

import pytest

from convrec.catalog.items import Catalog
from convrec.data.dataset import CRSDataset
from convrec.data.load import load_dataset
from convrec.errors import DataError
from convrec.evaluate.constraints import (
    ITEM_KINDS,
    PERSON_KINDS,
    SUITE_PATH,
    Constraint,
    ConstraintKind,
    ConstraintSuite,
    Converse,
    SuiteReport,
    check_references,
    clustered_rate,
    load_suite,
    reference_problems,
    run_suite,
    violates,
)
from convrec.serve.build import ChatConfig, build_engine

MAX_VIOLATION_RATE = 0.05  # the target for the agent
SLATE = 5  # the chat's recommendations per turn (SessionOptions.top)


@pytest.fixture(scope="module")
def suite() -> ConstraintSuite:
    return load_suite()


@pytest.fixture(scope="module")
def books(mirror: Path, data_dir: Path) -> CRSDataset:
    return load_dataset("opendialkg-books", data_dir, mirror)


@pytest.fixture(scope="module")
def datasets(redial: CRSDataset, books: CRSDataset) -> dict[str, CRSDataset]:
    return {"redial": redial, "opendialkg-books": books}


@pytest.fixture(scope="module")
def catalogs(datasets: dict[str, CRSDataset]) -> dict[str, Catalog]:
    return {name: dataset.catalog for name, dataset in datasets.items()}


def engine_converse(datasets: Mapping[str, CRSDataset]) -> Converse:
    """The chat engine (no LLM, itemknn) as a system under test: a new session per conversation, the slate of
    each turn is its recommendations."""
    engines = {name: build_engine(dataset, ChatConfig(llm=None)) for name, dataset in datasets.items()}

    def converse(dataset: str, messages: Sequence[str]) -> list[list[str]]:
        engine = engines[dataset]
        state, slates = engine.new_state(), []
        for message in messages:
            state, record = engine.turn(state, message)
            slates.append([r.item_id for r in record.recommendations])
        return slates

    return converse


def oracle_converse(suite: ConstraintSuite, catalogs: Mapping[str, Catalog]) -> Converse:
    """A system that knows each conversation's constraints and recommends the first catalogue items the checker
    clears of every constraint stated so far (never an item the messages name as liked)."""
    by_messages = {(c.dataset, c.messages): c for c in suite.conversations}

    def converse(dataset: str, messages: Sequence[str]) -> list[list[str]]:
        conversation = by_messages[(dataset, tuple(messages))]
        catalog = catalogs[dataset]
        slates = []
        for turn in range(1, len(messages) + 1):
            active = [c for c in conversation.constraints if c.from_turn <= turn]
            clear = (item.item_id for item in catalog if item.item_id not in conversation.liked
                     and all(violates(item.item_id, c, catalog) is False for c in active))
            slates.append(list(islice(clear, SLATE)))
        return slates

    return converse


def check_report(report: SuiteReport) -> None:
    """The issue's targets for an agent on the suite (see the module docstring)."""
    assert not report.unknown_items, f"recommended ids outside the catalogue: {report.unknown_items[:5]}"
    untested = sorted({(p.conversation, p.kind.value) for p in report.pairs}
                      - {(p.conversation, p.kind.value) for p in report.pairs if p.checked})
    assert not untested, f"constraints never followed by a recommendation: {untested[:5]}"
    for kind in ITEM_KINDS:
        estimate = report.by_kind.get(kind.value)
        assert estimate is None or estimate.violated == 0, (
            f"{kind} violated in {estimate.violated} slates: "
            f"{[(p.conversation, p.turn, p.violating) for p in report.pairs if p.kind is kind and p.violating][:5]}")
    assert report.overall.rate is not None and report.overall.rate <= MAX_VIOLATION_RATE, (
        f"violation rate {report.overall.cell()} above {MAX_VIOLATION_RATE}:\n{report.table()}")


def assert_suite_holds(converse: Converse, suite: ConstraintSuite | None = None,
                       catalogs: Mapping[str, Catalog] | None = None) -> SuiteReport:
    """Run ``converse`` on the suite and assert the issue's targets; the report, for more checks."""
    suite = suite or load_suite()
    report = run_suite(converse, suite, catalogs)
    check_report(report)
    return report


@pytest.fixture(scope="module")
def reference_report(suite: ConstraintSuite, datasets, catalogs) -> SuiteReport:
    report = run_suite(engine_converse(datasets), suite, catalogs)
    print(f"\nchat engine (itemknn, no LLM) on the constraint suite v{report.suite_version}: "
          f"{report.conversations} conversations, {report.slates} slates, {len(report.pairs)} (slate, constraint) "
          f"pairs; rate = violated / determined pairs, SE clustered by conversation\n{report.table()}")
    return report


# ------------------------------------------------------------------------------------------------ the suite

def test_the_suite_has_enough_conversations_in_both_domains_and_every_kind(suite):
    datasets = Counter(c.dataset for c in suite.conversations)
    assert len(suite.conversations) >= 60 and set(datasets) == {"redial", "opendialkg-books"}
    assert 0.55 <= datasets["redial"] / len(suite.conversations) <= 0.75  # about two thirds movies
    assert {c.kind for _, c in suite.constraints()} == set(ConstraintKind)
    kinds = Counter(c.kind for _, c in suite.constraints())
    assert min(count for kind, count in kinds.items() if kind is not ConstraintKind.GENRE_WANT) >= 5
    assert all(1 <= len(c.messages) <= 4 for c in suite.conversations)
    assert sum(len(c.messages) >= 3 for c in suite.conversations) >= 15  # constraints must outlive a turn
    # Most constraints follow an opening that named something: stated at once they test less.
    assert sum(c.from_turn >= 2 for _, c in suite.constraints()) >= 0.9 * sum(kinds.values())


def test_every_referenced_item_person_and_genre_is_in_its_catalogue(suite, catalogs):
    assert reference_problems(suite, catalogs) == []
    check_references(suite, catalogs)
    broken = suite.model_copy(update={"conversations": (
        suite.conversations[0].model_copy(update={"liked": ("no-such-item",), "constraints": (
            Constraint(kind="person_want", value="Nobody Atall", from_turn=1, quote="I"),
            Constraint(kind="genre_avoid", value="space opera", from_turn=1, quote="I"),
            Constraint(kind="seen_item", value="0", from_turn=1, quote="I"))}),)})
    problems = reference_problems(broken, catalogs)
    assert len(problems) == 4 and all(suite.conversations[0].id in p for p in problems)
    with pytest.raises(DataError, match="Nobody Atall"):
        check_references(broken, catalogs)


def _words(text: str) -> str:
    return " " + " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split()) + " "


def _title_words(catalog: Catalog, item_id: str) -> str:
    """The item's title as words, without a leading "the" (people write "I loved Notebook" too)."""
    words = _words(catalog.get(item_id).title)
    return words[4:] if words.startswith(" the ") else words


def test_named_titles_and_people_are_written_in_the_messages(suite, catalogs):
    """An id in the suite is the item the message names: its title (or a person's surname) is in the text."""
    for conversation in suite.conversations:
        catalog = catalogs[conversation.dataset]
        text = _words(" ".join(conversation.messages))
        named = list(conversation.liked) + [c.value for c in conversation.constraints if c.kind in ITEM_KINDS]
        for item_id in named:
            assert _title_words(catalog, str(item_id)) in text, (conversation.id, item_id)
        for constraint in conversation.constraints:
            if constraint.kind in ITEM_KINDS:
                said = _words(conversation.messages[constraint.from_turn - 1])
                assert _title_words(catalog, str(constraint.value)) in said, (conversation.id, constraint.value)
            if constraint.kind in PERSON_KINDS:
                assert _words(str(constraint.value).split()[-1]) in text, (conversation.id, constraint.value)


def test_every_constraint_is_satisfiable_and_excludes_something(suite, catalogs):
    """A full slate of items the messages did not name clears all of a conversation's constraints, and each
    constraint rules out at least one catalogue item (else no system could fail it)."""
    for conversation in suite.conversations:
        catalog = catalogs[conversation.dataset]
        named = set(conversation.liked) | {str(c.value) for c in conversation.constraints if c.kind in ITEM_KINDS}
        clear = [item.item_id for item in catalog if item.item_id not in named
                 and all(violates(item.item_id, c, catalog) is False for c in conversation.constraints)]
        assert len(clear) >= SLATE, (conversation.id, len(clear))
        for constraint in conversation.constraints:
            assert any(violates(item.item_id, constraint, catalog) for item in catalog), (conversation.id, constraint)


def _masked(constraint: Constraint, catalog: Catalog) -> str:
    """The phrasing with the value taken out: one template with the value swapped gives one masked text."""
    text = _words(constraint.quote)
    value = str(constraint.value)
    words = catalog.get(value).title if constraint.kind in ITEM_KINDS else value
    for word in _words(words).split():
        text = text.replace(f" {word} ", " _ ")
    return " ".join(re.sub(r"\d+", "#", text).split())


def test_phrasings_vary(suite, catalogs):
    messages = [m for c in suite.conversations for m in c.messages]
    assert len(set(messages)) == len(messages)
    phrasings: dict[str, str] = {}
    for conversation, constraint in suite.constraints():
        masked = _masked(constraint, catalogs[conversation.dataset])
        first = phrasings.setdefault(masked, conversation.id)
        assert first == conversation.id, f"{conversation.id} and {first} phrase a constraint alike: {masked!r}"
    assert len(phrasings) >= 0.95 * sum(1 for _ in suite.constraints())


BAD_SUITES = {
    "year as text": ('kind = "year_after", value = "2010"', "conversation 'x1'", "constraints[0]", "a year"),
    "turn past the end": ('kind = "year_after", value = 2010, from_turn = 3', "conversation 'x1'", "from_turn is 3"),
    "quote not said": ('kind = "year_after", value = 2010, quote = "after 2011"', "'x1'", "is not in message 2"),
    "unknown kind": ('kind = "mood", value = "happy"', "'x1'", "constraints[0].kind"),
    "odd decade": ('kind = "decade", value = 1985', "'x1'", "a decade is the year it starts"),
    "no person": ('kind = "person_want", value = " "', "'x1'", "a person"),
}


def _suite_text(constraint: str, conversation_id: str = "x1") -> str:
    fields = {"from_turn": "2", "quote": '"after 2010"'}
    written = [part.split("=")[0].strip() for part in constraint.split(",")]
    extra = ", ".join(f"{key} = {value}" for key, value in fields.items() if key not in written)
    return (f'version = 1\n[[conversation]]\nid = "{conversation_id}"\ndataset = "redial"\n'
            f'messages = ["I loved Alien (1979)", "only after 2010"]\n'
            f"constraints = [{{ {constraint}, {extra} }}]\n")


@pytest.mark.parametrize("case", BAD_SUITES, ids=list(BAD_SUITES))
def test_a_bad_suite_is_a_data_error_naming_the_conversation_and_field(case, tmp_path):
    constraint, *fragments = BAD_SUITES[case]
    path = tmp_path / "suite.toml"
    path.write_text(_suite_text(constraint))
    with pytest.raises(DataError) as raised:
        load_suite(path)
    assert str(path) in str(raised.value) and all(f in str(raised.value) for f in fragments), str(raised.value)


def test_suite_file_errors_are_data_errors(tmp_path):
    good = _suite_text('kind = "year_after", value = 2010')
    assert load_suite(_write(tmp_path / "good.toml", good)).conversations[0].id == "x1"
    cases = {
        "twice.toml": (good + good.split("\n", 1)[1], "already used by conversation number 1"),
        "broken.toml": ("version = 1\n[[conversation]\n", "not valid TOML"),
        "empty.toml": ("version = 1\n", "no [[conversation]] tables"),
        "extra.toml": ("versions = 1\n" + good, "unknown top-level key(s) versions"),
    }
    for name, (text, fragment) in cases.items():
        with pytest.raises(DataError, match=re.escape(fragment)):
            load_suite(_write(tmp_path / name, text))
    with pytest.raises(DataError, match="cannot read"):
        load_suite(tmp_path / "missing.toml")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_the_suite_is_package_data():
    assert SUITE_PATH.is_file() and SUITE_PATH.parent.name == "suites"
    pyproject = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert '"convrec.evaluate" = ["suites/*.toml"]' in pyproject


# ---------------------------------------------------------------------------------------------- the checker

def _c(kind: str, value: int | str) -> Constraint:
    return Constraint(kind=kind, value=value, from_turn=1, quote="-")


def test_the_checker_reads_real_movie_metadata(catalogs):
    movies = catalogs["redial"]
    matrix, inception, batman_begins = "85036", "101264", "198977"  # 1999, 2010, no year in ReDial
    assert (movies.get(matrix).year, movies.get(inception).year, movies.get(batman_begins).year) == (1999, 2010, None)
    assert violates(matrix, _c("year_after", 2010), movies) is True
    assert violates(inception, _c("year_after", 2010), movies) is False  # inclusive
    assert violates(batman_begins, _c("year_after", 2010), movies) is None
    assert violates(matrix, _c("year_before", 1998), movies) is True
    assert violates(matrix, _c("decade", 1990), movies) is False and violates(inception, _c("decade", 1990), movies)
    assert violates(inception, _c("decade", 2000), movies) is True  # 2000 to 2009
    shining, up = "202190", "133249"
    assert violates(shining, _c("genre_avoid", "horror"), movies) is True
    assert violates(up, _c("genre_avoid", "Horror"), movies) is False
    assert violates(up, _c("genre_want", "animation"), movies) is False
    assert violates(shining, _c("genre_want", "animation"), movies) is True
    no_genre = next(item for item in movies if not item.genres())
    assert violates(no_genre.item_id, _c("genre_avoid", "horror"), movies) is None
    notting_hill, titanic = "191932", "175096"
    assert violates(notting_hill, _c("person_want", "Hugh Grant"), movies) is False  # a star
    assert violates(titanic, _c("person_want", "hugh  grant"), movies) is True
    assert violates(titanic, _c("person_avoid", "James Cameron"), movies) is True  # a director
    nobody = next(item for item in movies if not any(item.metadata.get(f) for f in ("director", "star", "writer")))
    assert violates(nobody.item_id, _c("person_avoid", "James Cameron"), movies) is None


def test_seen_and_disliked_items_cover_duplicate_entries_of_the_same_work(catalogs):
    movies = catalogs["redial"]
    jurassic_park, without_year, part_three = "148231", "101158", "151596"  # (1993), "Jurassic Park", III (2001)
    assert movies.get(without_year).title == movies.get(jurassic_park).title and movies.get(without_year).year is None
    seen = _c("seen_item", jurassic_park)
    assert violates(jurassic_park, seen, movies) is True
    assert violates(without_year, seen, movies) is True  # the same title, Spielberg both times
    assert violates(part_three, seen, movies) is False
    titanic_1997, titanic_2012 = "175096", "205480"  # same title, other years: other works
    assert violates(titanic_2012, _c("disliked_item", titanic_1997), movies) is False


def test_the_checker_reads_real_book_metadata(catalogs):
    books = catalogs["opendialkg-books"]
    assert violates("11-22-63", _c("person_avoid", "Stephen King"), books) is True
    assert violates("11-22-63", _c("year_before", 1980), books) is True
    assert violates("dracula", _c("genre_avoid", "horror"), books) is True
    assert violates("11-22-63", _c("genre_avoid", "horror"), books) is None  # OpenDialKG's genres are sparse
    undated = next(item for item in books if item.year is None)
    assert violates(undated.item_id, _c("year_after", 2000), books) is None
    with pytest.raises(KeyError):
        violates("no-such-book", _c("year_after", 2000), books)


def test_clustered_standard_error_by_hand():
    estimate = clustered_rate([(1, 1, 0), (0, 2, 0), (2, 0, 1)])
    assert (estimate.violated, estimate.clean, estimate.undetermined, estimate.conversations) == (3, 3, 1, 3)
    assert estimate.rate == 0.5
    # residuals v_i - r n_i: 0, -1, 1; sqrt(3/2 * 2) / 6
    assert estimate.se == pytest.approx(3 ** 0.5 / 6)
    assert clustered_rate([(0, 0, 4)]).rate is None and clustered_rate([(1, 3, 0)]).se is None


# ---------------------------------------------------------------------------------------------- the report

def test_the_reference_engine_report(reference_report, suite):
    report = reference_report
    assert report.conversations == len(suite.conversations) and not report.unknown_items
    expected_pairs = sum(len(c.messages) - k.from_turn + 1 for c in suite.conversations for k in c.constraints)
    assert len(report.pairs) == expected_pairs
    assert set(report.by_conversation) == {c.id for c in suite.conversations}
    assert set(report.by_domain) == {"movies", "books"} and set(report.by_kind) == {k.value for k in ConstraintKind}
    assert report.items_checked == sum(p.checked for p in report.pairs) >= SLATE * len(report.pairs) * 0.9
    counted = report.overall
    assert counted.determined + counted.undetermined == len(report.pairs)
    assert counted.violated == sum(e.violated for e in report.by_kind.values())
    assert 0 < counted.se < 0.2 and counted.conversations >= 60
    assert report.by_domain["books"].undetermined >= 1  # a genre OpenDialKG does not record for most books
    # The suite can fail: the retriever alone ignores "from after 2010" (the example) and most eras.
    terminator = report.by_conversation["movies-after-2010-terminator"]
    assert terminator.violated == terminator.determined == 1
    assert report.by_kind["year_after"].rate > 0.5
    with pytest.raises(AssertionError, match="violated"):
        check_report(report)


def test_an_oracle_that_filters_by_the_checker_holds_the_suite(suite, catalogs):
    report = assert_suite_holds(oracle_converse(suite, catalogs), suite, catalogs)
    assert report.overall.rate == 0.0 and report.empty_slates == 0
    assert report.items_checked == SLATE * len(report.pairs)


def test_assert_suite_holds_fails_on_a_repeated_seen_item_or_an_unknown_id(suite, catalogs):
    oracle = oracle_converse(suite, catalogs)
    seen = next(c for c in suite.conversations if c.constraints[0].kind is ConstraintKind.SEEN_ITEM)

    def repeats(dataset: str, messages: Sequence[str]) -> list[list[str]]:
        slates = oracle(dataset, messages)
        if tuple(messages) == seen.messages:
            slates[-1] = [str(seen.constraints[0].value), *slates[-1][1:]]
        return slates

    with pytest.raises(AssertionError, match="seen_item violated in 1 slates"):
        assert_suite_holds(repeats, suite, catalogs)
    with pytest.raises(AssertionError, match="outside the catalogue"):
        assert_suite_holds(lambda d, m: [[*s, "no-such-item"] for s in oracle(d, m)], suite, catalogs)
    with pytest.raises(AssertionError, match="never followed by a recommendation"):
        assert_suite_holds(lambda d, m: [[] for _ in m], suite, catalogs)
    with pytest.raises(ValueError, match="returned 1 slates"):
        run_suite(lambda d, m: [oracle(d, m)[0]], suite, catalogs)
