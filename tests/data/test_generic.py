"""The generic dialogue format: round trips, located validation errors, and the documented example."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from convrec.catalog.items import Catalog, Item
from convrec.data.generic import dialogue_to_json, read_dialogues_jsonl, write_dialogues_jsonl
from convrec.data.model import Dialogue, ItemFeedback, Turn, samples_from_dialogue
from convrec.io import DataError

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-format.md"

CATALOG = Catalog(
    [Item("b1", "The Hobbit", 1937), Item("b2", "Dune", 1965), Item("b3", "Emma", 1815)], name="books"
)


def write_lines(path: Path, records: list) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def good(dialogue_id: str = "d1", **changes) -> dict:
    record = {
        "dialogue_id": dialogue_id,
        "split": "test",
        "turns": [
            {"role": "seeker", "text": "I liked The Hobbit.", "items": ["b1"]},
            {"role": "recommender", "text": "Dune?", "items": ["b2"]},
        ],
    }
    record.update(changes)
    return record


def test_round_trip(tmp_path):
    dialogues = [
        Dialogue(
            "d1",
            "train",
            [
                Turn("seeker", "Fantasy, please. I read The Hobbit.", ("b1",)),
                Turn("recommender", "Dune or Emma", ("b2", "b3")),
            ],
            {"b2": ItemFeedback(liked=True, seen=False), "b3": ItemFeedback(accepted=False)},
            {"source": "hand", "rating": 4},
        ),
        Dialogue("d2", "test", [Turn("unknown", "", ("b3",)), Turn("unknown", "", ("b1",))]),
        Dialogue("d3", "valid", [Turn("seeker", "é ü ✓"), Turn("recommender", "", ("b2",))]),
    ]
    path = tmp_path / "dialogues.jsonl"
    write_dialogues_jsonl(path, dialogues)
    assert read_dialogues_jsonl(path, CATALOG) == dialogues
    # The file is the documented shape: items omitted when empty, feedback without unknown values.
    first = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert first["feedback"] == {"b2": {"liked": True, "seen": False}, "b3": {"accepted": False}}
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[2])["turns"][0] == {
        "role": "seeker",
        "text": "é ü ✓",
    }


def test_feedback_with_nothing_known_is_not_written():
    dialogue = Dialogue("d", "test", [Turn("recommender", "", ("b1",))], {"b1": ItemFeedback()})
    assert "feedback" not in dialogue_to_json(dialogue)


def test_reading_defaults_and_normalisation(tmp_path):
    record = {
        "dialogue_id": 17,  # read as a string
        "turns": [{"role": "recommender", "items": ["b1", "b2", "b1"]}],  # no text; a repeat within the turn
    }
    path = write_lines(tmp_path / "d.jsonl", [record])
    [dialogue] = read_dialogues_jsonl(path, CATALOG, default_split="train")
    assert dialogue == Dialogue("17", "train", [Turn("recommender", "", ("b1", "b2"))])


def expect_error(tmp_path: Path, records: list, pattern: str, line: int) -> DataError:
    path = write_lines(tmp_path / "dialogues.jsonl", records)
    with pytest.raises(DataError) as caught:
        read_dialogues_jsonl(path, CATALOG)
    assert caught.value.path == str(path)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{path} line {line}: ")
    assert re.search(pattern, str(caught.value)), str(caught.value)
    return caught.value


def test_unknown_item_id(tmp_path):
    bad = good("d2")
    bad["turns"][1]["items"] = ["b2", "nope"]
    expect_error(tmp_path, [good(), bad], r"turn 2: item id 'nope' is not in the catalogue 'books'", 2)


def test_unknown_feedback_item(tmp_path):
    expect_error(
        tmp_path,
        [good(feedback={"zz": {"liked": True}})],
        r"feedback: item id 'zz' is not in the catalogue",
        1,
    )


def test_bad_role(tmp_path):
    bad = good()
    bad["turns"][0]["role"] = "user"
    expect_error(
        tmp_path, [bad], r"turn 1: 'role' must be one of seeker, recommender, unknown, got 'user'", 1
    )


def test_missing_split(tmp_path):
    bad = good("d3")
    del bad["split"]
    expect_error(
        tmp_path,
        [good("d1"), good("d2"), bad],
        r"field 'split' must be one of train, valid, test, got None",
        3,
    )


def test_unknown_split(tmp_path):
    expect_error(tmp_path, [good(split="dev")], r"got 'dev'", 1)


def test_truncated_line(tmp_path):
    truncated = json.dumps(good("d2"))[:40]
    expect_error(tmp_path, [good("d1"), truncated, good("d3")], r"not valid JSON", 2)


def test_duplicate_dialogue_id(tmp_path):
    expect_error(
        tmp_path, [good("a"), good("b"), "", good("a")], r"duplicate dialogue_id 'a' \(first on line 1\)", 4
    )


@pytest.mark.parametrize(
    ("change", "pattern"),
    [
        ({"turns": []}, r"field 'turns' must be a non-empty list"),
        ({"turns": ["hello"]}, r"turn 1: expected an object"),
        ({"turns": [{"role": "seeker", "text": 3}]}, r"turn 1: 'text' must be a string"),
        ({"turns": [{"role": "seeker", "items": "b1"}]}, r"turn 1: 'items' must be a list"),
        ({"metadata": "x"}, r"field 'metadata' must be an object"),
        ({"feedback": ["b1"]}, r"field 'feedback' must be an object"),
        ({"feedback": {"b1": {"loved": True}}}, r"feedback for 'b1': expected an object with keys"),
        # A string is not a boolean: "no" must not silently become True.
        (
            {"feedback": {"b1": {"liked": "no"}}},
            r"feedback for 'b1': 'liked' must be true, false or null, got 'no'",
        ),
        ({"feedback": {"b1": {"seen": 1}}}, r"'seen' must be true, false or null, got 1"),
    ],
)
def test_other_field_errors(tmp_path, change, pattern):
    expect_error(tmp_path, [good(**change)], pattern, 1)


def test_missing_dialogue_id_and_non_object(tmp_path):
    record = good()
    del record["dialogue_id"]
    expect_error(tmp_path, [record], r"missing field 'dialogue_id'", 1)
    expect_error(tmp_path, [good(), "[1, 2]"], r"expected a JSON object, got list", 2)


def test_empty_file(tmp_path):
    path = write_lines(tmp_path / "d.jsonl", [""])
    with pytest.raises(DataError, match="no dialogues in file"):
        read_dialogues_jsonl(path, CATALOG)


def doc_examples() -> dict[str, str]:
    """The JSONL blocks of docs/data-format.md, by the file name in the comment before each."""
    text = DOC.read_text(encoding="utf-8")
    found = re.findall(r"<!-- example: (\S+) -->\s*```json\n(.*?)```", text, flags=re.S)
    return dict(found)


def test_documented_books_example_is_valid_and_gives_the_documented_samples(tmp_path):
    examples = doc_examples()
    assert set(examples) == {"catalog.jsonl", "dialogues.jsonl"}
    (tmp_path / "catalog.jsonl").write_text(examples["catalog.jsonl"], encoding="utf-8")
    (tmp_path / "dialogues.jsonl").write_text(examples["dialogues.jsonl"], encoding="utf-8")
    catalog = Catalog.read_jsonl(tmp_path / "catalog.jsonl", name="mybooks")
    dialogues = read_dialogues_jsonl(tmp_path / "dialogues.jsonl", catalog)
    samples = [s for d in dialogues for s in samples_from_dialogue(d)]
    # As the document says: six samples, three of them in test.
    assert [(s.dialogue_id, s.target, list(s.context_items)) for s in samples] == [
        ("d1", "b3", ["b1"]),
        ("d2", "b1", []),
        ("d2", "b2", []),
        ("d2", "b4", ["b1", "b2", "b1"]),
        ("u7", "b1", ["b4"]),
        ("u7", "b2", ["b4", "b1"]),
    ]
    assert sum(s.dialogue.split == "test" for s in samples) == 3
    assert dialogues[0].feedback == {"b3": ItemFeedback(liked=True, seen=False)}
