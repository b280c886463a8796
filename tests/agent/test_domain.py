"""Domain adapters over real catalogues (ReDial and INSPIRED movies, OpenDialKG books), the shared 40-item test
world, the generic-format example bookshop and an imported catalogue with fields no code knows: one API,
its schema read from the metadata."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from convrec.agent.constraints import Constraint, extract_constraints
from convrec.agent.domain import DomainAdapter, DomainConfig
from convrec.catalog.items import Catalog, Item
from convrec.data.load import load_dataset
from convrec.errors import ConfigError, DataError

EXAMPLE_BOOKS = Path(__file__).resolve().parents[2] / "docs" / "examples" / "books" / "catalog.jsonl"
NOTTING_HILL, LOVE_ACTUALLY = "191932", "142573"  # ReDial ids


@pytest.fixture(scope="module")
def movies(redial) -> DomainAdapter:
    return DomainAdapter.of(redial.catalog, redial.name)


@pytest.fixture(scope="module")
def books_dataset(mirror: Path, data_dir: Path):
    return load_dataset("opendialkg-books", data_dir, mirror)


@pytest.fixture(scope="module")
def books(books_dataset) -> DomainAdapter:
    return DomainAdapter.of(books_dataset.catalog, books_dataset.name)


def wines() -> Catalog:
    """An imported catalogue with fields no convrec code names: a grape (categorical), a winemaker (people, told
    by the look of the values), a price (numeric), tasting notes (long text), a stock code (an identifier) and
    an "organic" flag (a bool: no attribute)."""
    grapes = ["Merlot", "Pinot Noir", "Riesling", "Syrah"]
    makers = ["Jane Smith", "Pierre Dubois", "Ana Lopez", "Marco Rossi", "Helen Park"]
    notes = ["Dark cherry and plum with soft tannins and a long smoky finish from oak barrels aged two years.",
             "Bright acidity with green apple, lime zest and a mineral finish from slate vineyard soils.",
             "Ripe blackberry, black pepper and violet with firm tannins and a smoky finish of oak."]
    return Catalog([Item(f"w{n}", f"Cuvée {n}", 2008 + n % 12, {
        "grape": grapes[n % 4], "winemaker": [makers[n % 5]], "price": 10.0 + n, "tasting_notes": notes[n % 3],
        "sku": f"SKU-{1000 + n}", "organic": n % 2 == 0, "mentions": n}) for n in range(40)], name="wines")


def test_movie_schemas_are_read_from_the_metadata(movies, inspired):
    expected = [("genre", "categorical"), ("decade", "categorical"), ("director", "person"), ("writer", "person"),
                ("star", "person"), ("person", "person"), ("year", "numeric"), ("keyword", "keyword")]
    for adapter in (movies, DomainAdapter.of(inspired.catalog, inspired.name)):
        assert adapter.domain == "movies" and adapter.vocabulary.noun == "movie"
        assert [(a.name, a.kind) for a in adapter.attributes] == expected
    # the converters' counts and the IMDb ids are no attribute
    assert "mentions" not in movies.schema.names() and "imdb_id" not in movies.schema.names()
    assert movies.attribute("person").fields == ("director", "writer", "star")


def test_book_schema_is_read_from_the_metadata(books):
    assert books.domain == "books" and books.vocabulary.noun == "book"
    assert [(a.name, a.kind) for a in books.attributes] == [("genre", "categorical"), ("decade", "categorical"),
                                                          ("author", "person"), ("year", "numeric")]


def test_an_imported_catalogue_gets_an_adapter_from_its_fields():
    # 40 wines share three notes: a word links up to half of them (the default, 1%, is for large catalogues)
    adapter = DomainAdapter(wines(), config=DomainConfig(keyword_max_share=0.5))
    assert adapter.domain == "items"
    assert [(a.name, a.kind) for a in adapter.attributes] == [
        ("grape", "categorical"), ("decade", "categorical"), ("winemaker", "person"), ("year", "numeric"),
        ("price", "numeric"), ("keyword", "keyword")]
    assert adapter.schema.text_fields == ("tasting_notes",)
    # the same API as for movies and books
    assert adapter.items_with("grape", "merlot") == [f"w{n}" for n in range(0, 40, 4)]
    assert adapter.items_with("winemaker", "jane smith") == [f"w{n}" for n in range(0, 40, 5)]
    assert adapter.items_with("price", 12) == ["w2"]
    # nouns that a third of the notes use; "tannins" is in two thirds, "smoky" and "finish" are no nouns
    assert adapter.values("w0", "keyword") == ("barrels",)
    assert adapter.items_with("keyword", "barrel") == [f"w{n}" for n in range(0, 40, 3)]
    found = extract_constraints("A Merlot by Jane Smith, but nothing before 2015 please", adapter)
    assert [c.describe() for c in found] == ["grape = Merlot", "winemaker = Jane Smith", "year 2015.."]
    assert adapter.filter(adapter.catalog.ids, found) == ["w20"]
    assert adapter.match("w20", Constraint(attribute="price", low=25, high=35)) is True
    facts = {(f.attribute, f.value) for f in adapter.facts("w20")}
    assert {("grape", "Merlot"), ("winemaker", "Jane Smith"), ("year", 2016), ("price", 30.0)} <= facts
    assert "grape: Merlot" in adapter.item_text("w20") and "price: 30.0" in adapter.item_text("w20")
    neighbours = adapter.neighbours("w0", via="winemaker", k=3)
    assert [n.item_id for n in neighbours] == ["w5", "w10", "w15"]
    assert all(str(f) == "winemaker: Jane Smith" for n in neighbours for f in n.shared)


def test_keyword_tags_are_asked_for_about_a_plot_never_read_from_any_word():
    """A ``keywords`` list (TMDB's tags, as redial-joined's MovieLens movies carry) joins the plot keywords. Read
    as a genre is, every tag that is also a common word became a wish: "a favourite of mine" wanted the tag
    "mine", and the slate was filled with the few obscure films that carry it."""
    tags = [["orphan", "boarding school"], ["mine", "time travel"], ["time", "love"], ["orphan", "love"]]
    catalog = Catalog([Item(f"m{n}", f"Film {n}", 1990 + n % 20, {
        "genre": ["Comedy", "Horror"][n % 2], "director": [["Ann Lee", "Bo Kim"][n % 2]],
        "keywords": tags[n % 4] if n < 32 else None}) for n in range(40)], name="tagged")
    adapter = DomainAdapter(catalog, config=DomainConfig(keyword_max_share=0.5))
    assert [(a.name, a.kind) for a in adapter.attributes] == [
        ("genre", "categorical"), ("decade", "categorical"), ("director", "person"), ("year", "numeric"),
        ("keyword", "keyword")]
    assert adapter.schema.tag_fields == ("keywords",) and adapter.attribute("keyword").fields == ("keywords",)
    assert adapter.values("m0", "keyword") == ("orphan", "boarding school")
    assert adapter.items_with("keyword", "orphans") == [f"m{n}" for n in range(32) if n % 4 in (0, 3)]
    for message in ("Film 3 will always be a favourite of mine", "I have time tonight, I love comedies"):
        assert [c.describe() for c in extract_constraints(message, adapter)] in ([], ["genre = comedy"]), message
    assert [c.describe() for c in extract_constraints("a movie about orphans", adapter)] == ["keyword = orphan"]


def test_redial_joined_reads_real_seeker_turns_as_redial_does(redial, movies, mirror, data_dir):
    """ReDial test seekers' words that are TMDB tags of redial-joined's added movies ("mine", "time", "love",
    "boyfriends") are no wish there either: before the tags became keywords, harpo filled slates with the
    films that carry them (Recall@10 -0.053 against itself on ReDial's 6,924 movies)."""
    joined = load_dataset("redial-joined", data_dir, mirror)
    adapter = DomainAdapter.of(joined.catalog, joined.name)
    assert "keywords" not in adapter.schema.names() and adapter.schema.tag_fields == ("keywords",)
    for message in ("Yes Scream (1996) will always be a favorite of mine.",
                    "Like Black Panther (2018) or Avengers: Infinity War (2018) what would you recommend me?",
                    "Yesss I watched it. Million time soon I actually might watch it today",
                    "Looking for a movie to watch with my boyfriend. I want to make him uncomortable."):
        assert extract_constraints(message, adapter) == extract_constraints(message, movies) == [], message
    assert [c.describe() for c in extract_constraints("a movie about orphans", adapter)] == ["keyword = orphan"]


def test_the_example_bookshop_of_the_generic_format(tmp_path):
    adapter = DomainAdapter(Catalog.read_jsonl(EXAMPLE_BOOKS, name="example-books"))
    assert adapter.domain == "books"
    assert {"genre", "author", "year"} <= set(adapter.schema.names())
    found = extract_constraints("some fantasy by Ursula K. Le Guin", adapter)
    assert [c.describe() for c in found] == ["genre = fantasy", "author = Ursula K. Le Guin"]
    assert adapter.filter(adapter.catalog.ids, found) == ["fan3"]


def test_the_test_world(test_world):
    adapter = DomainAdapter(test_world.catalog)
    assert adapter.items_with("genre", "horror") == [f"horror{n}" for n in range(12)]
    assert adapter.items_with("genre", "documentaries") == ["whales", "chess", "climb"]
    neighbours = adapter.neighbours("horror0", via="genre", k=20)
    assert [n.item_id for n in neighbours] == [f"horror{n}" for n in range(1, 12)]
    kept = adapter.filter(adapter.catalog.ids, extract_constraints("no horror or romance", adapter))
    assert kept == [*(f"animation{n}" for n in range(12)), "heist", "whales", "chess", "climb"]


def test_values_match_by_a_normalised_key(movies):
    sci_fi = movies.items_with("genre", "sci-fi")
    assert len(sci_fi) > 500
    for spelling in ("Sci-Fi", "science fiction", "SCI FI", "scifi"):
        assert movies.items_with("genre", spelling) == sci_fi
    assert movies.items_with("genre", "comedies") == movies.items_with("genre", "comedy")
    assert movies.items_with("star", "Penelope Cruz") == movies.items_with("star", "Penélope Cruz") != []


def test_a_value_covers_the_values_that_hold_it(books):
    """A book seeker's "romance" finds "romance novel" and "paranormal romance"; "fiction" is not
    "non-fiction"."""
    genres = lambda ids: {g for i in ids for g in books.catalog.get(i).genres()}  # noqa: E731
    assert {"romance novel", "paranormal romance"} <= genres(books.items_with("genre", "romance"))
    assert set(books.items_with("genre", "romance novel")) < set(books.items_with("genre", "romance"))
    fiction = set(books.items_with("genre", "fiction"))
    assert not fiction & set(books.items_with("genre", "non-fiction"))
    assert "psychological thriller" in genres(books.items_with("genre", "thriller"))


CONSTRAINTS = [
    Constraint(attribute="year", low=2011),
    Constraint(attribute="year", low=1990, high=1999, polarity="avoid"),
    Constraint(attribute="genre", value="horror", polarity="avoid"),
    Constraint(attribute="genre", value="comedy"),
    Constraint(attribute="star", value="Hugh Grant"),
    Constraint(attribute="person", value="Clint Eastwood"),
    Constraint(attribute="decade", value="1980s"),
    Constraint(attribute="keyword", value="shark"),
]


@pytest.mark.parametrize("constraint", CONSTRAINTS, ids=[c.describe() for c in CONSTRAINTS])
def test_match_and_mask_agree_on_every_item(movies, constraint):
    satisfied, known = movies.mask(constraint)
    for position, item in enumerate(movies.catalog):
        expected = None if not known[position] else bool(satisfied[position])
        assert movies.match(item, constraint) is expected, item.item_id
    assert satisfied.sum() > 0 and (~known).sum() >= 0


def test_match_says_none_when_the_metadata_does_not_say(movies):
    no_year = next(i for i in movies.catalog if i.year is None)
    no_genre = next(i for i in movies.catalog if not i.genres())
    assert movies.match(no_year, Constraint(attribute="year", low=2011)) is None
    assert movies.match(no_genre, Constraint(attribute="genre", value="horror", polarity="avoid")) is None
    assert movies.match(NOTTING_HILL, Constraint(attribute="star", value="hugh grant")) is True
    assert movies.match(NOTTING_HILL, Constraint(attribute="genre", value="romance", polarity="avoid")) is False


def test_filter_wants_are_alternatives_per_attribute_and_avoids_all_hold(movies):
    ids = movies.catalog.ids
    comedy = Constraint(attribute="genre", value="comedy")
    romance = Constraint(attribute="genre", value="romance")
    grant = Constraint(attribute="star", value="Hugh Grant")
    no_drama = Constraint(attribute="genre", value="drama", polarity="avoid")
    either = set(movies.filter(ids, [comedy, romance]))
    assert either == set(movies.items_with("genre", "comedy")) | set(movies.items_with("genre", "romance"))
    both_attributes = movies.filter(ids, [comedy, grant])
    assert set(both_attributes) == set(movies.items_with("genre", "comedy")) & set(movies.items_with("star",
                                                                                                     "Hugh Grant"))
    assert not set(movies.filter(ids, [grant, no_drama])) & set(movies.items_with("genre", "drama"))
    # an item without a year is dropped by default and kept on request
    no_year = next(i.item_id for i in movies.catalog if i.year is None)
    after = Constraint(attribute="year", low=2011)
    assert movies.filter([no_year], [after]) == [] and movies.filter([no_year], [after], unknown="keep") == [no_year]
    assert movies.filter(list(reversed(ids[:50])), []) == list(reversed(ids[:50]))  # order kept


def test_facts_are_what_the_metadata_says(movies):
    notting_hill = {(f.attribute, f.value) for f in movies.facts(NOTTING_HILL)}
    assert {("genre", "romance"), ("director", "Roger Michell"), ("writer", "Richard Curtis"),
            ("star", "Hugh Grant")} <= notting_hill
    assert not any(attribute in ("year", "decade", "person") for attribute, _ in notting_hill)  # no year in data
    rng = np.random.default_rng(15)
    for position in rng.choice(len(movies.catalog), 300, replace=False):
        item = movies.catalog[int(position)]
        for fact in movies.facts(item):
            if fact.attribute == "year":
                assert fact.value == item.year
            elif fact.attribute == "decade":
                assert item.year is not None and fact.value == f"{item.year // 10 * 10}s"
            elif fact.attribute == "keyword":
                assert str(fact.value).lower() in str(item.metadata.get("plot", "")).lower()
            elif fact.attribute == "genre":
                assert fact.value in item.genres()
            else:
                assert fact.value in item.metadata[fact.attribute]


def test_graph_neighbours_and_paths(movies):
    paths = [str(f) for f in movies.paths(NOTTING_HILL, LOVE_ACTUALLY)]
    assert paths[:2] == ["writer: Richard Curtis", "star: Hugh Grant"]  # rarest first
    assert {str(f) for f in movies.paths(LOVE_ACTUALLY, NOTTING_HILL)} == set(paths)
    assert [str(f) for f in movies.paths(NOTTING_HILL, LOVE_ACTUALLY, via="person")] == paths[:2]
    by_star = movies.neighbours(NOTTING_HILL, via="star", k=50)
    grant = set(movies.items_with("star", "Hugh Grant")) - {NOTTING_HILL}
    assert {n.item_id for n in by_star} >= grant and len(grant) >= 10
    assert all(any(f.attribute == "star" for f in n.shared) for n in by_star)
    best = movies.neighbours(NOTTING_HILL, k=5)
    assert LOVE_ACTUALLY in {n.item_id for n in best}
    assert [n.score for n in best] == sorted((n.score for n in best), reverse=True)
    assert NOTTING_HILL not in {n.item_id for n in movies.neighbours(NOTTING_HILL, k=100)}


def test_people_and_their_roles(movies):
    hits = movies.find_people("anything with clint eastwood or by Quentin Tarantino")
    assert [(h.name, set(h.fields)) for h in hits][0] == ("Clint Eastwood", {"director", "star"})
    assert hits[1].name == "Quentin Tarantino" and "director" in hits[1].fields
    assert movies.people_fields_of("Stephen King")[0] == "writer"  # he wrote many, directed one
    assert movies.single_name("Madonna") == "Madonna"
    assert movies.single_name("Common") is None and movies.single_name("Rain") is None  # ordinary words


def test_errors_say_what_was_expected(movies):
    with pytest.raises(ConfigError, match="no attribute 'colour'.*genre, decade"):
        movies.items_with("colour", "red")
    with pytest.raises(DataError, match="item 'nope' is not in catalogue"):
        movies.facts("nope")
    with pytest.raises(ConfigError, match="numeric"):
        movies.neighbours(NOTTING_HILL, via="year")
    with pytest.raises(DataError, match="empty"):
        DomainAdapter(Catalog([], name="nothing"))


def test_build_time_on_redial_and_one_adapter_per_catalogue(redial, movies):
    """Seconds of CPU (this process only: the machine is shared), the median of 3 builds; the parts built on
    first use are timed once each."""
    builds = []
    for _ in range(3):
        started = time.process_time()
        adapter = DomainAdapter(redial.catalog, redial.name)
        builds.append(time.process_time() - started)
    lazy = {}
    for part, build in (("people index", lambda: adapter.find_people("Hugh Grant")),
                        ("title linker", lambda: adapter.find_titles("Alien (1979)")),
                        ("plot keywords", lambda: adapter.values(NOTTING_HILL, "keyword")),
                        ("graph", lambda: adapter.graph),
                        ("one-word names", lambda: adapter.single_name("Madonna"))):
        started = time.process_time()
        build()
        lazy[part] = time.process_time() - started
    built = sorted(builds)[1]
    print(f"\nDomainAdapter on ReDial ({len(redial.catalog)} items): {built:.3f} s of CPU (median of 3: "
          f"{', '.join(f'{b:.3f}' for b in builds)}); on first use: "
          + ", ".join(f"{part} {seconds:.3f} s" for part, seconds in lazy.items()))
    assert built < 1.0
    assert DomainAdapter.of(redial.catalog, redial.name) is movies
