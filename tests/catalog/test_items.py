"""Items, their text form, and the catalogue's JSONL reading with located errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convrec.catalog.items import Catalog, Item, item_from_json
from convrec.io import DataError

MATRIX = Item(
    "m1",
    "The Matrix",
    1999,
    {
        "genre": ["action", "sci-fi"],
        "plot": "A hacker learns the truth about his reality.",
        "director": ["Lana Wachowski", "Lilly Wachowski"],
        "imdb_id": "tt0133093",
        "mentions": 12,
    },
)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_text_form_has_title_year_and_metadata_in_order():
    assert MATRIX.text() == (
        "The Matrix (1999). genre: action, sci-fi. director: Lana Wachowski, Lilly Wachowski. "
        "plot: A hacker learns the truth about his reality."
    )
    # Fields outside the text fields (ids, counts) stay out of the text.
    assert "tt0133093" not in MATRIX.text()
    assert "12" not in MATRIX.text()


def test_text_form_without_year_or_metadata():
    assert Item("x", "Untitled Thing").text() == "Untitled Thing"
    assert Item("x", "Untitled Thing").display_title == "Untitled Thing"


def test_text_form_cuts_long_plot_at_a_word():
    item = Item("p", "Long", 2000, {"plot": "word " * 200})
    text = item.text(max_plot_chars=23)
    assert text == "Long (2000). plot: word word word word..."


def test_text_form_keeps_five_list_values():
    item = Item("s", "Crowd", None, {"star": ["a", "b", "c", "d", "e", "f", "g"]})
    assert item.text() == "Crowd. star: a, b, c, d, e"


def test_genres_from_list_or_string():
    assert MATRIX.genres() == {"action", "sci-fi"}
    assert Item("x", "X", None, {"genre": "Comedy, Drama ,"}).genres() == {"comedy", "drama"}
    assert Item("x", "X").genres() == frozenset()


def test_catalog_lookup_and_order():
    catalog = Catalog([MATRIX, Item("b", "B"), Item("a", "A")], name="c")
    assert catalog.ids == ["m1", "b", "a"]
    assert catalog.index_of == {"m1": 0, "b": 1, "a": 2}
    assert catalog.indices(["a", "m1"]) == [2, 0]
    assert "b" in catalog and "zz" not in catalog
    assert catalog.get("a").title == "A"
    with pytest.raises(KeyError, match="'zz' is not in catalogue 'c'"):
        catalog.get("zz")


def test_catalog_rejects_duplicate_ids():
    with pytest.raises(DataError, match="duplicate item id 'a'"):
        Catalog([Item("a", "First"), Item("a", "Second")])


def test_jsonl_round_trip(tmp_path):
    catalog = Catalog([MATRIX, Item("n", "Nosferatu", None, aliases=("Nosferatu, a Symphony of Horror",))])
    path = tmp_path / "catalog.jsonl"
    catalog.write_jsonl(path)
    back = Catalog.read_jsonl(path)
    assert list(back) == list(catalog)
    assert back.name == "catalog.jsonl"
    assert back.content_hash() == catalog.content_hash()


def test_item_from_json_accepts_integer_ids():
    item = item_from_json({"item_id": 7, "title": "  Seven  ", "year": 1995})
    assert item == Item("7", "Seven", 1995)


def test_read_jsonl_truncated_line_is_located(tmp_path):
    path = write_lines(
        tmp_path / "cat.jsonl",
        ['{"item_id": "a", "title": "A"}', '{"item_id": "b", "title": "B', '{"item_id": "c", "title": "C"}'],
    )
    with pytest.raises(DataError) as caught:
        Catalog.read_jsonl(path)
    assert str(caught.value).startswith(f"{path} line 2: not valid JSON")
    assert caught.value.line == 2
    assert caught.value.path == str(path)


def test_read_jsonl_missing_title(tmp_path):
    path = write_lines(
        tmp_path / "cat.jsonl", ['{"item_id": "a", "title": "A"}', '{"item_id": "b", "year": 2000}']
    )
    with pytest.raises(DataError, match=r"line 2: missing field 'title'"):
        Catalog.read_jsonl(path)


@pytest.mark.parametrize("year", ['"1999"', "1999.5", "true", "[1999]"])
def test_read_jsonl_bad_year_type(tmp_path, year):
    path = write_lines(tmp_path / "cat.jsonl", ['{"item_id": "a", "title": "A", "year": ' + year + "}"])
    with pytest.raises(DataError, match=r"cat.jsonl line 1: field 'year' must be an integer or null"):
        Catalog.read_jsonl(path)


@pytest.mark.parametrize(
    ("record", "message"),
    [
        ('["a", "A"]', "expected a JSON object, got list"),
        ('{"title": "A"}', "missing field 'item_id'"),
        ('{"item_id": "", "title": "A"}', "field 'item_id' must be a non-empty string"),
        ('{"item_id": "a", "title": "   "}', "field 'title' must be a non-empty string"),
        ('{"item_id": "a", "title": "A", "metadata": ["x"]}', "field 'metadata' must be an object"),
        ('{"item_id": "a", "title": "A", "aliases": "Alpha"}', "field 'aliases' must be a list of strings"),
    ],
)
def test_read_jsonl_other_field_errors(tmp_path, record, message):
    path = write_lines(tmp_path / "cat.jsonl", [record])
    with pytest.raises(DataError, match=f"line 1: {message}"):
        Catalog.read_jsonl(path)


def test_read_jsonl_duplicate_id_names_both_lines(tmp_path):
    path = write_lines(
        tmp_path / "cat.jsonl",
        [
            '{"item_id": "a", "title": "A"}',
            "",
            '{"item_id": "b", "title": "B"}',
            '{"item_id": "a", "title": "A2"}',
        ],
    )
    with pytest.raises(DataError, match=r"line 4: duplicate item id 'a' \(first on line 1\)"):
        Catalog.read_jsonl(path)


def test_read_jsonl_empty_file(tmp_path):
    path = write_lines(tmp_path / "cat.jsonl", ["", "  "])
    with pytest.raises(DataError, match="the catalogue is empty"):
        Catalog.read_jsonl(path)


def test_content_hash_follows_every_field():
    base = Catalog([MATRIX, Item("b", "B", 2000)])
    same = Catalog(
        [Item(MATRIX.item_id, MATRIX.title, MATRIX.year, dict(MATRIX.metadata)), Item("b", "B", 2000)]
    )
    assert same.content_hash() == base.content_hash()
    changed_plot = Catalog(
        [Item("m1", "The Matrix", 1999, {**MATRIX.metadata, "plot": "Another plot."}), Item("b", "B", 2000)]
    )
    changed_year = Catalog([MATRIX, Item("b", "B", 2001)])
    changed_title = Catalog([MATRIX, Item("b", "Bee", 2000)])
    reordered = Catalog([Item("b", "B", 2000), MATRIX])
    hashes = {c.content_hash() for c in (base, changed_plot, changed_year, changed_title, reordered)}
    assert len(hashes) == 5


def test_written_file_is_json_lines(tmp_path):
    path = tmp_path / "out" / "catalog.jsonl"  # the parent folder is created
    Catalog([Item("é", "Amélie", 2001)]).write_jsonl(path)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == [{"item_id": "é", "title": "Amélie", "year": 2001}]
    assert "Amélie" in lines[0]  # written as UTF-8, not \u escapes
    assert [p.name for p in path.parent.iterdir()] == ["catalog.jsonl"]  # no temporary file left behind
