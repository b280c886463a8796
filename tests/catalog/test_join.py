"""The catalogue join: IMDb ids merge, (title, year) ties records without one, anchor items never change, and
every kind of conflict is counted with an example."""

from __future__ import annotations

from convrec.catalog.items import Catalog, Item
from convrec.catalog.join import SourceRecord, join_catalogs

SOURCES = ("rich", "thin")


def anchor() -> Catalog:
    return Catalog([
        Item("1", "Heat", 1995, {"imdb_id": "tt0113277", "genre": ["crime"]}),
        Item("2", "Alien", 1979, {}),  # no IMDb id: joined by title and year
        Item("3", "Heat", 1995, {"imdb_id": "tt0113277"}),  # the anchor's own duplicate
        Item("4", "A Nightmare on Elm Street", 1984, {"imdb_id": "tt1179056"}),  # a wrong IMDb id in the anchor
    ], name="anchor")


def test_anchor_items_come_first_unchanged_and_sources_merge_by_imdb_id():
    records = [
        SourceRecord("thin", "a", "Heat", 1995, "tt0113277", {"genre": ["drama"]}),
        SourceRecord("thin", "b", "Alien", 1979, "tt0078748"),
        SourceRecord("rich", "c", "Se7en", 1995, "tt0114369", {"plot": "Two detectives.", "genre": ["crime"]}),
        SourceRecord("thin", "d", "Seven", 1995, "tt0114369", {"genre": ["thriller"], "plot": "ignored"}),
        SourceRecord("thin", "e", "A Nightmare on Elm Street", 1984, "tt0087800"),
    ]
    catalog, report = join_catalogs(anchor(), records, SOURCES)
    assert [item.to_json() for item in catalog[:4]] == [item.to_json() for item in anchor()]
    added = {item.item_id: item for item in catalog[4:]}
    assert list(added) == ["tt0114369"], "Heat, Alien and the Elm Street look-alike must join anchor items"
    se7en = added["tt0114369"]
    assert se7en.title == "Se7en" and se7en.metadata["plot"] == "Two detectives."
    assert se7en.metadata["genre"] == ["crime"] and se7en.metadata["imdb_id"] == "tt0114369"
    json = report.to_json()
    assert json["items"] == 5 and json["anchor_items"] == 4 and json["added_items"] == 1
    assert json["conflicts"]["anchor items sharing an IMDb id (all kept)"] == 1
    assert json["conflicts"]["one IMDb id, different normalised titles (first source's kept)"] == 1
    assert json["conflicts"]["an anchor item's title and year under another IMDb id (joined to the anchor)"] == 1
    assert "tt0087800" in json["conflict_examples"][
        "an anchor item's title and year under another IMDb id (joined to the anchor)"][0]


def test_records_without_imdb_id_join_by_title_and_year_or_stand_alone():
    records = [
        SourceRecord("thin", "x", "The Postman", 1994, "tt0110877"),
        SourceRecord("rich", "7", "Postman, The", 1994, None, {"plot": "A poet's postman."}),  # same title key
        SourceRecord("rich", "8", "Zero Kelvin", 1995, None, {"plot": "A trapper."}),
        SourceRecord("thin", "9", "Zero Kelvin", 1995, None, {"genre": ["drama"]}),
        SourceRecord("rich", "10", "Zero Kelvin", 1996, None),  # another year: another movie
    ]
    catalog, report = join_catalogs(anchor(), records, SOURCES, title_priority=("thin", "rich"))
    added = {item.item_id: item for item in catalog[4:]}
    assert set(added) == {"tt0110877", "thin-9", "rich-10"}
    assert added["tt0110877"].metadata["plot"] == "A poet's postman."
    assert added["thin-9"].metadata == {"plot": "A trapper.", "genre": ["drama"]}  # rich's plot, thin's title
    assert report.to_json()["merged_by"]["title and year"] == 3


def test_a_title_and_year_shared_by_two_imdb_ids_is_a_reported_conflict():
    records = [
        SourceRecord("thin", "a", "Duel", 1971, "tt0067023"),
        SourceRecord("thin", "b", "Duel", 1971, "tt0067750"),
        SourceRecord("rich", "c", "Duel", 1971, None, {"plot": "A truck."}),
    ]
    catalog, report = join_catalogs(anchor(), records, SOURCES)
    assert {item.item_id for item in catalog[4:]} == {"tt0067023", "tt0067750"}
    assert report.conflicts["title and year match several IMDb ids (joined to one)"] == 1
    assert report.conflicts["one title and year, several IMDb ids (kept apart)"] == 1
    assert catalog.get("tt0067023").metadata.get("plot") == "A truck."


def test_the_real_joined_catalogue(mirror, data_dir, redial):
    from convrec.data.load import load_dataset

    joined = load_dataset("redial-joined", data_dir, mirror)
    assert 40_000 < len(joined.catalog) < 45_000
    assert joined.catalog.ids[: len(redial.catalog)] == redial.catalog.ids
    assert joined.catalog[: len(redial.catalog)] == list(redial.catalog)
    test_targets = [s.target for s in joined.split("test").samples]
    assert test_targets == [s.target for s in redial.split("test").samples]
    # No added movie repeats a ReDial movie's title and year: a target never gets a look-alike distractor.
    from convrec.catalog.titles import normalize_title

    redial_keys = {(normalize_title(i.title), i.year) for i in redial.catalog if i.year}
    look_alikes = [i for i in joined.catalog[len(redial.catalog):] if (normalize_title(i.title), i.year) in redial_keys]
    assert not look_alikes, look_alikes[:5]
    join = joined.info["report"]["join"]
    assert join["records_per_source"]["movietweetings"] > 38_000 and join["conflicts"]
    assert sum(bool(i.metadata.get("plot")) for i in joined.catalog) > 8_500  # ReDial 6.6k + MovieLens-1M
