"""Converters: on the real data mirror (numbers checked against the raw files by hand), and on tiny files
written here, where every expected value can be read off the input.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from convrec.data.converters import inspired as inspired_converter
from convrec.data.converters import movielens as movielens_converter
from convrec.data.converters import opendialkg as opendialkg_converter
from convrec.data.converters import redial as redial_converter
from convrec.data.fetch import dataset_files, fetch_dataset
from convrec.data.load import load_dataset
from convrec.data.model import ItemFeedback, Turn
from convrec.io import DataError

# ---------------------------------------------------------------------------------------------------------
# Real data (the session fixtures in conftest.py convert each dataset once)
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_redial_catalogue(redial):
    assert len(redial.catalog) == 6924
    troopers = redial.catalog.get("111776")
    assert (troopers.title, troopers.year) == ("Super Troopers", 2001)
    # "Police Academy  (1984)" in the raw file: the double space is gone, the year parsed.
    police = redial.catalog.get("151656")
    assert (police.title, police.year) == ("Police Academy", 1984)
    # "American Pie " has no year.
    assert (redial.catalog.get("192131").title, redial.catalog.get("192131").year) == ("American Pie", None)
    report = redial.info["report"]["catalog"]
    assert report["from_movie_metadata"] == 6583  # the README: metadata for 6,583 of the 6,924
    with_plot = sum(bool(item.metadata.get("plot")) for item in redial.catalog)
    assert with_plot >= 6000


@pytest.mark.slow
def test_redial_test_split(redial):
    test = redial.split("test")
    assert len(test.dialogues) == 1342
    # Counted from the raw test_data.jsonl with consecutive same-speaker messages merged: every @id in a
    # recommender turn is a sample.
    assert len(test.samples) == 4969
    assert sum(s.target_in_context for s in test.samples) == 471
    assert redial.info["n_dialogues"]["test"] == 1342
    assert all(d.has_roles for d in test.dialogues)
    # Merged: no two consecutive turns of one speaker.
    for dialogue in test.dialogues:
        roles = [t.role for t in dialogue.turns]
        assert all(a != b for a, b in zip(roles, roles[1:], strict=False)), dialogue.dialogue_id


@pytest.mark.slow
def test_redial_known_dialogue(redial):
    [dialogue] = [d for d in redial.dialogues if d.dialogue_id == "20001"]
    assert dialogue.split == "test"
    # Raw: "Hi I am looking for a movie like @111776", sent by the initiator (the seeker).
    assert dialogue.turns[0] == Turn(
        "seeker", "Hi I am looking for a movie like Super Troopers (2001)", ("111776",)
    )
    assert "@" not in dialogue.turns[0].text
    assert dialogue.turns[1] == Turn("recommender", "You should watch Police Academy (1984)", ("151656",))
    # Two seeker messages in a row ("... I have seen @192131" + "I mean @134643") are one turn.
    assert dialogue.turns[2].role == "seeker"
    assert dialogue.turns[2].items == ("192131", "134643")
    assert dialogue.turns[2].text.endswith("I have seen American Pie I mean American Pie (1999)")
    # The seeker's form: 111776 seen=1 liked=1; 151656 seen=0 liked=1; 91481 "did not say" twice: no entry.
    assert dialogue.feedback["111776"] == ItemFeedback(liked=True, seen=True)
    assert dialogue.feedback["151656"] == ItemFeedback(liked=True, seen=False)
    assert "91481" not in dialogue.feedback


@pytest.mark.slow
def test_redial_feedback_and_splits(redial):
    feedback = [fb for d in redial.dialogues for fb in d.feedback.values()]
    assert any(fb.liked is True for fb in feedback)
    assert any(fb.liked is False for fb in feedback)
    assert any(fb.seen is True for fb in feedback)
    assert any(fb.seen is False for fb in feedback)
    ids = {
        split: {d.dialogue_id for d in redial.dialogues if d.split == split}
        for split in ("train", "valid", "test")
    }
    assert not ids["train"] & ids["test"]
    assert not ids["valid"] & ids["test"]
    assert not ids["train"] & ids["valid"]
    # About 10% of the train conversations are held out for validation.
    share = len(ids["valid"]) / (len(ids["train"]) + len(ids["valid"]))
    assert 0.08 < share < 0.12
    # Sequence-only records (T4) are there, with no roles.
    assert any(not d.has_roles for d in redial.dialogues if d.split == "train")
    assert all(s.target in redial.catalog for s in redial.split("valid").samples)


@pytest.mark.slow
def test_redial_title_linking_report(redial):
    linking = redial.info["report"]["title_linking"]
    assert linking["attempted"] > 1000
    assert linking["failure_rate"] < 0.01
    records = redial.info["report"]["train_records"]
    assert records["skipped_no_conversation_id"] == 142  # T2_full_text_no_id: cannot be checked against test


@pytest.mark.slow
def test_redial_inline_titles_do_not_match_pronouns(redial):
    [dialogue] = [d for d in redial.dialogues if d.dialogue_id == "950"]
    it_2017 = "187028"
    pronoun_turns = [t for t in dialogue.turns if "loved it" in t.text and "It (2017)" not in t.text]
    assert pronoun_turns
    assert all(it_2017 not in t.items for t in pronoun_turns)


@pytest.mark.slow
def test_inspired_splits_and_catalogue(inspired):
    assert inspired.info["n_dialogues"] == {"train": 801, "valid": 99, "test": 99}
    for split in ("train", "valid", "test"):
        samples = inspired.split(split).samples
        assert samples
        assert all(s.target in inspired.catalog for s in samples)
    hustlers = inspired.catalog.get("hustlers-2019")
    assert (hustlers.title, hustlers.year) == ("Hustlers", 2019)
    # Enriched from the mirror's metadata by (title, year).
    assert "drama" in hustlers.genres()


@pytest.mark.slow
def test_inspired_known_dialogue(inspired):
    [dialogue] = [d for d in inspired.dialogues if d.dialogue_id == "test-0000"]
    assert dialogue.turns[0] == Turn("recommender", "Hi! I'm here to help you chose a movie!", ())
    assert dialogue.turns[3].role == "seeker"
    assert dialogue.turns[3].items == ("hustlers-2019",)
    # The official test.tsv twin is accept_rating_good and ends with the recommender naming
    # "A Beautiful Day in the Neighborhood (2019)".
    assert dialogue.feedback == {"beautiful-day-in-the-neighborhood-2019": ItemFeedback(accepted=True)}


@pytest.mark.slow
def test_inspired_accept_labels(inspired):
    def labelled(split: str) -> list:
        return [
            d
            for d in inspired.dialogues
            if d.split == split and any(f.accepted is not None for f in d.feedback.values())
        ]

    # The official release labels 99 dev and 99 test dialogues; most are matched to their dbpedia twin.
    assert len(labelled("valid")) >= 85
    assert len(labelled("test")) >= 85
    assert labelled("train") == []
    # test.tsv has exactly one "reject": it arrives as accepted=False.
    rejected = [d.dialogue_id for d in inspired.dialogues for f in d.feedback.values() if f.accepted is False]
    assert rejected == ["test-0095"]


@pytest.mark.slow
def test_opendialkg_books(mirror, data_dir):
    books = load_dataset("opendialkg-books", data_dir, mirror)
    assert sum(books.info["n_dialogues"].values()) == 1901
    assert all(n > 100 for n in books.info["n_dialogues"].values())
    first = books.dialogues[0]
    assert first.turns[0].role == "seeker"
    assert first.turns[0].items == ("dead-to-the-world",)
    dead = books.catalog.get("dead-to-the-world")
    assert (dead.title, dead.year, dead.metadata["author"]) == ("Dead to the World", 2004, ["Charlaine Harris"])
    # 1,142 titles in the release's items, less the two genre entities it tags as items (in 75 turns).
    assert len(books.catalog) == 1140 and "drama" not in books.catalog and "mystery" not in books.catalog
    report = books.info["report"]
    assert report["genre_items_dropped"] == {"drama": 36, "mystery": 39}
    # The mirror's README: 1,135 of the 1,142 titles match goodbooks-10k; Drama and Mystery were two of them.
    assert report["goodbooks"]["matched"] == 1133 and len(report["goodbooks"]["unmatched"]) == 7
    assert sum(bool(item.metadata.get("author")) for item in books.catalog) == 1133
    # Several goodbooks books are titled Zodiac: the train dialogues name Neal Stephenson beside it.
    assert books.catalog.get("zodiac").metadata["author"] == ["Neal Stephenson"]
    assert report["books_with_genres"] == 219
    assert books.catalog.get("xenocide").genres() >= {"fantasy", "speculative fiction"}
    test = books.split("test").samples
    assert len(test) == 297  # 301 before the genre entities stopped being targets
    assert all(s.target in books.catalog for s in test)


@pytest.mark.slow
def test_movielens(mirror, data_dir):
    # Converted directly: the full load (with its samples.parquet) is much slower for 100k ratings.
    fetch_dataset("movielens", data_dir, mirror=mirror, progress=False)
    conversion = movielens_converter.convert(dataset_files("movielens", data_dir))
    assert len(conversion.catalog) == 9742
    assert len(conversion.dialogues) == 610
    assert sum(len(d.turns) for d in conversion.dialogues) == 100836
    assert {d.split for d in conversion.dialogues} == {"train"}
    toy_story = conversion.catalog.get("1")
    assert (toy_story.title, toy_story.year) == ("Toy Story", 1995)
    assert toy_story.metadata["imdb_id"] == "tt0114709"
    assert "animation" in toy_story.genres()
    user1 = conversion.dialogues[0]
    assert user1.dialogue_id == "user-1"
    assert not user1.has_roles


# ---------------------------------------------------------------------------------------------------------
# Tiny ReDial files
# ---------------------------------------------------------------------------------------------------------

MOVIES = [
    ("111776", "Super Troopers (2001)", "124"),
    ("151656", "Police Academy  (1984)", "50"),
    ("192131", "American Pie ", "3"),
    ("134643", "American Pie  (1999)", "40"),
    ("187028", "It (2017)", "100"),
    ("182022", " (2007)", "1"),
    ("143198", "Goodfellas (1990)", "30"),
    ("197111", "Signs  (2002)", "20"),
]

TEST_DIALOGUE = {
    "conversationId": "20001",
    "initiatorWorkerId": 956,
    "respondentWorkerId": 957,
    "messages": [
        {"text": "Hi I am looking for a movie like @111776", "senderWorkerId": 956},
        {"text": "You should watch @151656", "senderWorkerId": 957},
        {"text": "I have seen @192131", "senderWorkerId": 956},
        {"text": "I mean @134643", "senderWorkerId": 956},
        {"text": "Then @151656 again, or @187028", "senderWorkerId": 957},
    ],
    "movieMentions": {},
    "initiatorQuestions": {
        "111776": {"suggested": 0, "seen": 1, "liked": 1},
        "151656": {"suggested": 1, "seen": 0, "liked": 2},
        "187028": {"suggested": 1, "seen": 2, "liked": 2},
        "5": {"suggested": 1, "seen": 1, "liked": 1},  # not in the catalogue: dropped
    },
    "respondentQuestions": {},
}


def e19(*movies: tuple[str, str, int]) -> list[dict]:
    return [{"movieId": m, "title": t, "liked": liked} for m, t, liked in movies]


TRAIN_RECORDS = [
    {  # @movieId text, with the forms
        "conversationId": "391",
        "tier": "T1_raw_redial",
        "mentions_as": "@movieId",
        "messages": [
            {"role": "seeker", "text": "I like @143198"},
            {"role": "seeker", "text": "and @111776"},
            {"role": "recommender", "text": "Try @197111"},
        ],
        "raw_fields": {"initiatorQuestions": {"197111": {"suggested": 1, "seen": 0, "liked": 1}}},
        "e19_movies": e19(("143198", "Goodfellas (1990)", 1), ("111776", "Super Troopers (2001)", 1)),
    },
    {  # quoted titles: one from the dialogue's own list, one only in the catalogue
        "conversationId": "474",
        "tier": "T2_full_text",
        "mentions_as": '"Title (Year)" quoted',
        "messages": [
            {"role": "seeker", "text": "Any horror?"},
            {"role": "recommender", "text": 'How about "It  (2017)" ?'},
            {"role": "seeker", "text": 'I loved "Signs (2002)"'},
        ],
        "e19_movies": e19(("187028", "It  (2017)", 0)),
    },
    {  # bracketed titles
        "conversationId": "573",
        "tier": "T2b_full_text_some_recommender_turns_rewritten",
        "mentions_as": "[Title (Year)]",
        "messages": [
            {"role": "seeker", "text": "Comedy?"},
            {"role": "recommender", "text": "[Police Academy (1984)]!"},
        ],
        "e19_movies": [],
    },
    {  # inline titles; one listed movie has no title at all (" (2007)")
        "conversationId": "7189",
        "tier": "T3_partial_text",
        "mentions_as": "titles_inline",
        "messages": [
            {"role": "seeker", "text": "I really liked Goodfellas."},
            {"role": "recommender", "text": "Have you seen it? Super Troopers is fun."},
        ],
        "e19_movies": e19(
            ("182022", " (2007)", 1),
            ("143198", "Goodfellas (1990)", 1),
            ("111776", "Super Troopers (2001)", 0),
        ),
    },
    {  # only the movie list
        "conversationId": "468",
        "tier": "T4_rec_only",
        "messages": [],
        "e19_movies": e19(
            ("111776", "Super Troopers (2001)", 1),
            ("151656", "Police Academy  (1984)", 1),
            ("134643", "American Pie (1999)", 0),
        ),
    },
    {
        "conversationId": None,
        "tier": "T2_full_text_no_id",
        "mentions_as": '"Title (Year)" quoted',
        "messages": [{"role": "seeker", "text": '"Signs (2002)"'}],
    },
    {"conversationId": "999", "tier": "T3_partial_text", "messages": [], "e19_movies": []},
]


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records), encoding="utf-8"
    )
    return path


def write_csv(path: Path, header: list[str], rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def redial_files(tmp_path) -> dict[str, Path]:
    root = tmp_path / "mirror"
    metadata = {
        "111776": {
            "name": "Super Troopers (2001)",
            "genre": ["comedy"],
            "plot": "Five Vermont state troopers.",
            "director": ["Jay Chandrasekhar"],
            "writer": [],
            "star": ["Kevin Heffernan"],
            "imdb_id": "tt0247745",
        },
    }
    (root / "redial").mkdir(parents=True)
    (root / "redial" / "movie_metadata.json").write_text(json.dumps(metadata), encoding="utf-8")
    return {
        "redial/movies_with_mentions.csv": write_csv(
            root / "redial/movies_with_mentions.csv", ["movieId", "movieName", "nbMentions"], MOVIES
        ),
        "redial/movie_metadata.json": root / "redial" / "movie_metadata.json",
        "redial/test_data.jsonl": write_jsonl(root / "redial/test_data.jsonl", [TEST_DIALOGUE]),
        "redial/train_assembled.jsonl": write_jsonl(root / "redial/train_assembled.jsonl", TRAIN_RECORDS),
    }


def test_tiny_redial_catalogue(redial_files):
    conversion = redial_converter.convert(redial_files)
    catalog = conversion.catalog
    assert catalog.ids == [m for m, _, _ in MOVIES]
    assert [(i.title, i.year) for i in catalog][:4] == [
        ("Super Troopers", 2001),
        ("Police Academy", 1984),
        ("American Pie", None),
        ("American Pie", 1999),
    ]
    assert catalog.get("111776").metadata == {
        "mentions": 124,
        "genre": ["comedy"],
        "plot": "Five Vermont state troopers.",
        "director": ["Jay Chandrasekhar"],
        "star": ["Kevin Heffernan"],
        "imdb_id": "tt0247745",
    }
    # A row that is only "(2007)", with no IMDb id to recover the title from.
    assert (catalog.get("182022").title, catalog.get("182022").year) == ("untitled movie 182022", 2007)
    assert conversion.report["catalog"]["untitled"] == 1


def test_tiny_redial_test_dialogue(redial_files):
    conversion = redial_converter.convert(redial_files)
    [dialogue] = [d for d in conversion.dialogues if d.split == "test"]
    assert dialogue.turns == [
        Turn("seeker", "Hi I am looking for a movie like Super Troopers (2001)", ("111776",)),
        Turn("recommender", "You should watch Police Academy (1984)", ("151656",)),
        Turn("seeker", "I have seen American Pie I mean American Pie (1999)", ("192131", "134643")),
        Turn("recommender", "Then Police Academy (1984) again, or It (2017)", ("151656", "187028")),
    ]
    assert dialogue.feedback["111776"] == ItemFeedback(liked=True, seen=True)
    assert dialogue.feedback["151656"] == ItemFeedback(liked=None, seen=False)  # liked 2: "did not say"
    assert "5" not in dialogue.feedback  # answered, but not a catalogue movie


def test_tiny_redial_train_records(redial_files):
    conversion = redial_converter.convert(redial_files)
    train = {d.dialogue_id: d for d in conversion.dialogues if d.split != "test"}
    # The record without a conversation id and the empty one are left out.
    assert sorted(train) == ["391", "468", "474", "573", "7189"]
    # The latest tenth of conversations by id validates (of 5 ids, the last): the test split was collected
    # after all of them, so validation is the part of train closest to it in time.
    assert {dialogue_id: d.split for dialogue_id, d in train.items()} == {
        "391": "train", "468": "train", "474": "train", "573": "train", "7189": "valid"}
    assert conversion.report["validation"]["first_conversation_id"] == 7189
    assert train["391"].turns == [
        Turn("seeker", "I like Goodfellas (1990) and Super Troopers (2001)", ("143198", "111776")),
        Turn("recommender", "Try Signs (2002)", ("197111",)),
    ]
    assert train["391"].feedback == {"197111": ItemFeedback(liked=True, seen=False)}  # from the T1 forms
    assert train["474"].turns[1] == Turn("recommender", "How about It (2017) ?", ("187028",))
    assert train["474"].turns[2] == Turn("seeker", "I loved Signs (2002)", ("197111",))
    assert train["474"].feedback == {"187028": ItemFeedback(liked=False)}  # from e19's liked
    assert train["573"].turns[1] == Turn("recommender", "Police Academy (1984)!", ("151656",))
    assert [t.items for t in train["7189"].turns] == [("143198",), ("111776",)]  # never the untitled movie
    assert [t.role for t in train["468"].turns] == ["unknown"] * 3
    assert [t.items for t in train["468"].turns] == [("111776",), ("151656",), ("134643",)]
    report = conversion.report
    assert report["train_records"] == {
        "T1_raw_redial/text": 1,
        "T2_full_text/text": 1,
        "T2b_full_text_some_recommender_turns_rewritten/text": 1,
        "T3_partial_text/text": 1,
        "T4_rec_only/sequence": 1,
        "skipped_no_conversation_id": 1,
        "skipped_empty": 1,
    }
    assert report["title_linking"]["attempted"] == 3
    assert report["title_linking"]["by_method"] == {"dialogue-list": 1, "exact": 2}


def test_redial_train_id_also_in_test_is_refused(redial_files):
    record = dict(TRAIN_RECORDS[0], conversationId="20001")
    write_jsonl(redial_files["redial/train_assembled.jsonl"], [record])
    with pytest.raises(DataError, match=r"train conversation ids also in test: \['20001'\]"):
        redial_converter.convert(redial_files)


def test_redial_unknown_movie_id_is_located(redial_files):
    second = dict(
        TEST_DIALOGUE, conversationId="20002", messages=[{"text": "Seen @424242 ?", "senderWorkerId": 957}]
    )
    path = write_jsonl(redial_files["redial/test_data.jsonl"], [TEST_DIALOGUE, second])
    with pytest.raises(DataError) as caught:
        redial_converter.convert(redial_files)
    assert (
        str(caught.value)
        == f"{path} line 2: movie id 424242 is not in the catalogue (movies_with_mentions.csv)"
    )


def test_redial_missing_csv_column(redial_files):
    path = write_csv(
        redial_files["redial/movies_with_mentions.csv"], ["movieId", "title", "nbMentions"], MOVIES
    )
    with pytest.raises(DataError) as caught:
        redial_converter.convert(redial_files)
    assert caught.value.path == str(path)
    assert "missing column(s) movieName" in str(caught.value)


def test_redial_truncated_jsonl_line(redial_files):
    path = redial_files["redial/test_data.jsonl"]
    write_jsonl(path, [TEST_DIALOGUE, json.dumps(TEST_DIALOGUE)[:100]])
    with pytest.raises(DataError, match=rf"^{path} line 2: not valid JSON"):
        redial_converter.convert(redial_files)
    train = redial_files["redial/train_assembled.jsonl"]
    write_jsonl(path, [TEST_DIALOGUE])
    write_jsonl(train, [*TRAIN_RECORDS[:2], json.dumps(TRAIN_RECORDS[2])[:-5]])
    with pytest.raises(DataError, match=rf"^{train} line 3: not valid JSON"):
        redial_converter.convert(redial_files)


def test_redial_train_movie_list_with_unknown_id(redial_files):
    record = dict(
        TRAIN_RECORDS[4], e19_movies=e19(("111776", "Super Troopers (2001)", 1), ("31337", "Nope (2000)", 1))
    )
    train = write_jsonl(redial_files["redial/train_assembled.jsonl"], [TRAIN_RECORDS[0], record])
    with pytest.raises(
        DataError, match=rf"^{train} line 2: e19_movies: movie id 31337 is not in the catalogue"
    ):
        redial_converter.convert(redial_files)


def test_redial_bad_movie_id_in_csv(redial_files):
    path = write_csv(
        redial_files["redial/movies_with_mentions.csv"],
        ["movieId", "movieName", "nbMentions"],
        [*MOVIES[:2], ("x12", "Broken (2000)", "1")],
    )
    with pytest.raises(DataError, match=rf"^{path} line 4: movieId must be an integer, got 'x12'"):
        redial_converter.convert(redial_files)


# ---------------------------------------------------------------------------------------------------------
# Tiny INSPIRED, OpenDialKG and MovieLens files
# ---------------------------------------------------------------------------------------------------------


def utterance(role: str, text: str, *movies: str) -> dict:
    return {"text": text, "role": role, "movie": list(movies), "movie_link": [], "movie_name": []}


def test_tiny_inspired(tmp_path):
    valid_dialogue = [
        utterance("RECOMMENDER", "Hi! What do you like?"),
        utterance("SEEKER", "I saw Hustlers.", "Hustlers (2019)"),
        utterance("SEEKER", "Fun."),
        utterance("RECOMMENDER", "Try Deadpool", "Deadpool (2016)"),
        utterance("RECOMMENDER", "or The Squid and the Whale", "The Squid and the Whale (2005)", ""),
        utterance("SEEKER", "No thanks."),
    ]
    root = tmp_path / "inspired"
    files = {
        "inspired/train_data_dbpedia.jsonl": write_jsonl(
            root / "train.jsonl", [[utterance("SEEKER", "hi", "Hustlers (2019)")]]
        ),
        "inspired/valid_data_dbpedia.jsonl": write_jsonl(root / "valid.jsonl", [valid_dialogue]),
        "inspired/test_data_dbpedia.jsonl": write_jsonl(
            root / "test.jsonl", [[utterance("RECOMMENDER", "Deadpool?", "Deadpool (2016)")]]
        ),
        "inspired/official/dev.tsv": root / "dev.tsv",
    }
    with open(root / "dev.tsv", "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerow(["dialog_id", "speaker", "text", "fine_label"])
        for u in valid_dialogue:
            writer.writerow(["x.pkl", u["role"], u["text"], "reject"])
    conversion = inspired_converter.convert(files)
    assert conversion.catalog.ids == ["deadpool-2016", "hustlers-2019", "squid-and-the-whale-2005"]
    assert [d.dialogue_id for d in conversion.dialogues] == ["train-0000", "valid-0000", "test-0000"]
    valid = conversion.dialogues[1]
    assert valid.turns == [
        Turn("recommender", "Hi! What do you like?", ()),
        Turn("seeker", "I saw Hustlers. Fun.", ("hustlers-2019",)),
        Turn(
            "recommender",
            "Try Deadpool or The Squid and the Whale",
            ("deadpool-2016", "squid-and-the-whale-2005"),
        ),
        Turn("seeker", "No thanks.", ()),
    ]
    # The official label goes to the last movie the recommender named.
    assert valid.feedback == {"squid-and-the-whale-2005": ItemFeedback(accepted=False)}
    assert conversion.dialogues[0].feedback == {}


def test_inspired_bad_role_is_located(tmp_path):
    files = {
        f"inspired/{name}": write_jsonl(
            tmp_path / name, [[utterance("SEEKER", "hi")], [utterance("BOT", "hi")]]
        )
        for name in inspired_converter.SPLIT_FILES.values()
    }
    with pytest.raises(
        DataError, match=r"train_data_dbpedia.jsonl line 2: utterance 1: role must be SEEKER or RECOMMENDER"
    ):
        inspired_converter.convert(files)


GOODBOOKS_HEADER = ["authors", "original_publication_year", "original_title", "title", "ratings_count"]
GOODBOOKS_ROWS = [
    ("Frank Herbert", "1965.0", "Dune", "Dune (Dune Chronicles, #1)", "100"),
    ("Ursula K. Le Guin, Anonymous Translator", "1974.0", "The Dispossessed: An Ambiguous Utopia",
     "The Dispossessed", "50"),
    ("Robert Graysmith", "1986.0", "Zodiac", "Zodiac", "900"),
    ("Neal Stephenson", "1988.0", "Zodiac", "Zodiac", "10"),
    ("Homer", "-720.0", "Ὀδύσσεια", "The Odyssey", "5"),
]


def odkg_turn(role: str, text: str, items: list[str], entities: list[str]) -> dict:
    return {"role": role, "text": text, "item": items, "entity": entities}


def opendialkg_files(tmp_path: Path, dialogues: list, rows: list = GOODBOOKS_ROWS) -> dict[str, Path]:
    return {"opendialkg_books/dialogs.jsonl": write_jsonl(tmp_path / "dialogs.jsonl", dialogues),
            "catalog/goodbooks10k_books.csv": write_csv(tmp_path / "books.csv", GOODBOOKS_HEADER, rows)}


# Line 1 lands in test, line 2 in train (the split is a hash of the line number).
HELD_OUT = [
    odkg_turn("user", "Any horror like Dune?", ["Dune"], ["Dune", "Horror"]),
    odkg_turn("assistant", "Try The Dispossessed, a fantasy", ["The Dispossessed"], ["The Dispossessed", "Fantasy"]),
]
TRAIN = [
    odkg_turn("user", "Books like Dune? I love science fiction", ["Dune"], ["Dune", "Science Fiction"]),
    odkg_turn("assistant", "The Dispossessed, or Dune again", ["The Dispossessed", "Dune", "Dune"],
              ["The Dispossessed", "Dune", "Ursula K. Le Guin"]),
    odkg_turn("user", "Dune is fiction and science fiction; what did Neal Stephenson write?", [],
              ["Dune", "Fiction", "Science Fiction", "Neal Stephenson"]),
    # The release's quirk: a genre entity tagged as an item.
    odkg_turn("assistant", "Zodiac, a drama, and The Odyssey", ["Drama", "Zodiac", "The Odyssey"],
              ["Drama", "Zodiac", "The Odyssey"]),
]


def test_tiny_opendialkg(tmp_path):
    files = opendialkg_files(tmp_path, [HELD_OUT, [{"role": "robot", "text": "?"}]])
    with pytest.raises(
        DataError, match=rf"^{files['opendialkg_books/dialogs.jsonl']} line 2: turn 1: role must be user or "
        "assistant, got 'robot'"
    ):
        opendialkg_converter.convert(files)
    conversion = opendialkg_converter.convert(opendialkg_files(tmp_path, [HELD_OUT, TRAIN]))
    assert [d.split for d in conversion.dialogues] == ["test", "train"]
    catalog = conversion.catalog
    assert catalog.ids == ["dispossessed", "dune", "odyssey", "zodiac"]  # "Drama" is a genre, not a book
    train = conversion.dialogues[1]
    assert train.turns[1] == Turn("recommender", "The Dispossessed, or Dune again", ("dispossessed", "dune"))
    assert train.turns[3].items == ("zodiac", "odyssey")
    dune = catalog.get("dune")
    # Genres named beside Dune in train turns, most named first; the held-out dialogue's "Horror" is not one.
    assert (dune.year, dune.metadata) == (1965, {"author": ["Frank Herbert"], "genre": ["science fiction", "fiction"]})
    # The first listed author only; "Fantasy" was named beside it in the held-out dialogue only.
    assert catalog.get("dispossessed").metadata == {"author": ["Ursula K. Le Guin"]}
    # Two goodbooks rows are titled Zodiac: the one whose author the train dialogue names wins over the most rated.
    zodiac = catalog.get("zodiac")
    assert (zodiac.year, zodiac.metadata) == (1988, {"author": ["Neal Stephenson"], "genre": ["drama"]})
    odyssey = catalog.get("odyssey")
    assert (odyssey.year, odyssey.metadata) == (None, {"author": ["Homer"], "genre": ["drama"]})  # -720: no year
    assert conversion.report["genre_items_dropped"] == {"drama": 1}
    assert conversion.report["goodbooks"] == {"matched": 4, "several_rows": 1, "unmatched": []}
    assert conversion.report["books_with_genres"] == 3


def test_opendialkg_metadata_without_dialogue_evidence(tmp_path):
    """Without an author named, the most rated row of a title wins; a title goodbooks lacks gets no metadata."""
    dialogue = [odkg_turn("user", "Zodiac? Or The Unwritten?", ["Zodiac", "The Unwritten"], [])]
    conversion = opendialkg_converter.convert(opendialkg_files(tmp_path, [HELD_OUT, dialogue]))
    assert conversion.catalog.get("zodiac").metadata == {"author": ["Robert Graysmith"]}
    unwritten = conversion.catalog.get("unwritten")
    assert (unwritten.year, unwritten.metadata) == (None, {})
    assert conversion.report["goodbooks"]["unmatched"] == ["The Unwritten"]


@pytest.mark.parametrize(
    ("dialogue", "rows", "problem"),
    [
        ([[odkg_turn("user", "hi", [], "Dune")]], GOODBOOKS_ROWS, r"dialogs.jsonl line 1: turn 1: 'entity' must be "
         "a list of names"),
        ([[odkg_turn("user", "hi", [7], [])]], GOODBOOKS_ROWS, r"dialogs.jsonl line 1: turn 1: 'item' must be a "
         "list of names"),
        ([TRAIN], [*GOODBOOKS_ROWS[:2], ("X", "soon", "X", "X", "1")], r"books.csv line 4: "
         "original_publication_year must be a number, got 'soon'"),
        ([TRAIN], [("X", "2001", "X", "X", "many")], r"books.csv line 2: ratings_count must be an integer"),
    ],
)
def test_opendialkg_bad_input_is_located(tmp_path, dialogue, rows, problem):
    with pytest.raises(DataError, match=problem):
        opendialkg_converter.convert(opendialkg_files(tmp_path, dialogue, rows))


def test_tiny_movielens(tmp_path):
    root = "movielens/ml-latest-small"
    files = {
        f"{root}/movies.csv": write_csv(
            tmp_path / "movies.csv",
            ["movieId", "title", "genres"],
            [("1", "Toy Story (1995)", "Adventure|Animation"), ("2", "Heat (1995)", "(no genres listed)")],
        ),
        f"{root}/links.csv": write_csv(
            tmp_path / "links.csv", ["movieId", "imdbId", "tmdbId"], [("1", "114709", "862")]
        ),
        f"{root}/ratings.csv": write_csv(
            tmp_path / "ratings.csv",
            ["userId", "movieId", "rating", "timestamp"],
            [("7", "2", "3.0", "200"), ("7", "1", "4.5", "100")],
        ),
    }
    conversion = movielens_converter.convert(files)
    assert conversion.catalog.get("1").metadata == {
        "genre": ["adventure", "animation"],
        "imdb_id": "tt0114709",
    }
    assert conversion.catalog.get("2").metadata == {"genre": []}
    [user] = conversion.dialogues
    assert [t.items for t in user.turns] == [("1",), ("2",)]  # ordered by timestamp
    assert user.feedback == {"1": ItemFeedback(liked=True), "2": ItemFeedback(liked=False)}
    write_csv(
        files[f"{root}/ratings.csv"],
        ["userId", "movieId", "rating", "timestamp"],
        [("7", "1", "4", "1"), ("7", "99", "4", "2")],
    )
    with pytest.raises(DataError, match=r"ratings.csv line 3: movieId 99 is not in movies.csv"):
        movielens_converter.convert(files)
