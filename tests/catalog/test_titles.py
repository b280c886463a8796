"""Title parsing, normalisation and year-aware linking, on a catalogue small enough to check by hand."""

from __future__ import annotations

import pytest

from convrec.catalog.items import Catalog, Item
from convrec.catalog.titles import Link, LinkReport, TitleLinker, normalize_title, split_year


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Police Academy  (1984)", ("Police Academy", 1984)),  # ReDial's double space before the year
        ("American Pie ", ("American Pie", None)),  # no year, trailing space
        ("(500) Days of Summer (2009)", ("(500) Days of Summer", 2009)),  # only the last (YYYY) is a year
        ("(500) Days of Summer", ("(500) Days of Summer", None)),
        ("Doctor Who (2005-)", ("Doctor Who", 2005)),  # a series' year range keeps its first year
        ("Blade Runner 2049", ("Blade Runner 2049", None)),  # a number in the title is not a year
    ],
)
def test_split_year(raw, expected):
    assert split_year(raw) == expected


def test_normalize_title_articles_case_punctuation():
    assert normalize_title("Matrix, The") == normalize_title("The Matrix") == "matrix"
    assert normalize_title("Star Is Born, A") == normalize_title("A Star Is Born") == "star is born"
    assert normalize_title("  Spider-Man:   Homecoming ") == "spider man homecoming"


def test_normalize_title_accents_and_ampersand():
    assert normalize_title("Amélie") == "amelie"
    assert normalize_title("Léon: The Professional") == normalize_title("Leon - the professional")
    assert normalize_title("Fast & Furious") == normalize_title("Fast and Furious") == "fast and furious"


def test_normalize_title_keeps_inner_articles():
    # Only a leading article goes: "the" inside a title is part of it.
    assert normalize_title("Return of the Jedi") == "return of the jedi"


@pytest.fixture
def linker() -> TitleLinker:
    catalog = Catalog(
        [
            Item("m1", "The Matrix", 1999),
            Item("tr90", "Total Recall", 1990),  # remakes: same title, different years
            Item("tr12", "Total Recall", 2012),
            Item("sw", "Star Wars: Episode IV - A New Hope", 1977, aliases=("Star Wars",)),
            Item("shaw", "The Shawshank Redemption", 1994),
            Item("nd", "Nosferatu", None),  # undated entry
            Item("up", "Up", 2009),
        ],
        name="tiny",
    )
    return TitleLinker(catalog)


def test_link_exact(linker):
    assert linker.link("The Matrix (1999)") == Link("m1", 100.0, "exact")
    assert linker.link("matrix, the") == Link("m1", 100.0, "exact")  # no year: the only candidate


def test_link_year_disambiguates_remakes(linker):
    assert linker.link("Total Recall (2012)").item_id == "tr12"
    assert linker.link("Total Recall (1990)").item_id == "tr90"
    assert linker.link("Total Recall", year=2012).item_id == "tr12"  # year passed separately
    # No year at all: the first catalogue entry with the title.
    assert linker.link("Total Recall") == Link("tr90", 100.0, "exact")


def test_link_near_year(linker):
    assert linker.link("Total Recall (2011)") == Link("tr12", 100.0, "exact-near-year")
    assert linker.link("Total Recall (1991)") == Link("tr90", 100.0, "exact-near-year")
    assert linker.link("The Matrix (2000)") == Link("m1", 100.0, "exact-near-year")
    # Two years off is not "near" (max_year_gap=1), and no other title is close: no link.
    assert linker.link("Total Recall (2000)") is None
    assert linker.link("The Matrix (2001)") is None


def test_link_undated_catalogue_entry_accepts_any_year(linker):
    assert linker.link("Nosferatu (1922)") == Link("nd", 100.0, "exact-any-year")


def test_link_alias(linker):
    assert linker.link("Star Wars (1977)") == Link("sw", 100.0, "exact")


def test_link_fuzzy_typo(linker):
    link = linker.link("The Shawshank Redemtion (1994)")  # one letter missing
    assert link is not None
    assert link.item_id == "shaw"
    assert link.method == "fuzzy"
    assert 90.0 <= link.score < 100.0
    # The fuzzy match still respects the year: a remake year too far off is refused.
    assert linker.link("The Shawshank Redemtion (1960)") is None


def test_link_non_match(linker):
    assert linker.link("A Completely Different Film (2003)") is None
    assert linker.link("") is None
    assert linker.link("(2015)") is None  # a year and no title
    # Short titles link only exactly: "Upp" is not fuzzily "Up".
    assert linker.link("Up (2009)").item_id == "up"
    assert linker.link("Upp (2009)") is None


def test_fuzzy_threshold_is_configurable(linker):
    strict = TitleLinker(linker.catalog, fuzzy_threshold=99.0)
    assert strict.link("The Shawshank Redemtion") is None
    assert strict.link("The Shawshank Redemption").item_id == "shaw"


def test_link_report_counts(linker):
    report = LinkReport()
    links = linker.link_all(
        [
            "The Matrix (1999)",
            "Total Recall (2011)",
            "Nope Nothing (1950)",
            "Nope Nothing (1950)",
            "Matrix, The",
        ],
        report,
    )
    assert [link.item_id if link else None for link in links] == ["m1", "tr12", None, None, "m1"]
    assert report.attempted == 5
    assert report.linked == 3
    assert report.by_method == {"exact": 2, "exact-near-year": 1}
    assert report.failures == {"Nope Nothing (1950)": 2}
    assert report.failure_rate == pytest.approx(2 / 5)
    as_json = report.to_json()
    assert as_json["failure_rate"] == 0.4
    assert as_json["most_common_failures"] == [["Nope Nothing (1950)", 2]]


def test_empty_link_report():
    report = LinkReport()
    assert report.failure_rate == 0.0
    assert report.to_json()["attempted"] == 0
