"""The processed-dataset cache: built once, rebuilt when an input changes, never left half-written.

A toy converter reads one JSON input file; counting its calls shows when the cache is used.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from convrec.catalog.items import Catalog, Item
from convrec.data import dataset as dataset_module
from convrec.data.dataset import Conversion, Converter, build_dataset, load_processed
from convrec.data.load import available_datasets, import_dataset, load_dataset
from convrec.data.model import Dialogue, Turn, samples_from_dialogue
from convrec.errors import ConfigError
from convrec.io import DataError

INPUT_KEY = "toy/input.json"


def toy_input(path: Path, titles: list[str], n_test: int = 1) -> Path:
    """Items i0.. with these titles; dialogue k: a seeker mentions i0, the recommender answers i(k+1 mod n)."""
    path.write_text(json.dumps({"titles": titles, "n_test": n_test}), encoding="utf-8")
    return path


def toy_convert(files: dict[str, Path]) -> Conversion:
    raw = json.loads(files[INPUT_KEY].read_text(encoding="utf-8"))
    items = [Item(f"i{n}", title) for n, title in enumerate(raw["titles"])]
    dialogues = []
    for k in range(len(items)):
        split = "test" if k < raw["n_test"] else "train"
        turns = [
            Turn("seeker", "I like i0", ("i0",)),
            Turn("recommender", "try", (f"i{(k + 1) % len(items)}",)),
        ]
        dialogues.append(Dialogue(f"d{k}", split, turns))
    return Conversion(Catalog(items, name="toy"), dialogues, {"items": len(items)})


class Counting:
    """A convert function that counts its calls and can fail part-way, after reading its input."""

    def __init__(self, fail: bool = False):
        self.calls = 0
        self.fail = fail

    def __call__(self, files: dict[str, Path]) -> Conversion:
        self.calls += 1
        conversion = toy_convert(files)
        if self.fail:
            raise RuntimeError("converter crashed mid-way")
        return conversion


def converter(convert, version: str = "1") -> Converter:
    return Converter(name="toy", sources=("toy",), version=version, convert=convert)


@pytest.fixture
def setup(tmp_path):
    files = {INPUT_KEY: toy_input(tmp_path / "input.json", ["Alpha", "Beta", "Gamma"])}
    return files, tmp_path / "processed"


def titles(dataset) -> list[str]:
    return [item.title for item in dataset.catalog]


def test_second_build_uses_the_cache(setup):
    files, root = setup
    convert = Counting()
    first = build_dataset(converter(convert), files, root)
    assert convert.calls == 1
    second = build_dataset(converter(convert), files, root)
    assert convert.calls == 1
    assert titles(second) == titles(first) == ["Alpha", "Beta", "Gamma"]
    assert second.dialogues == first.dialogues
    assert second.fingerprint == first.fingerprint != ""
    assert second.info["n_dialogues"] == {"train": 2, "valid": 0, "test": 1}
    assert second.info["report"] == {"items": 3}


def test_rewriting_identical_bytes_does_not_rebuild(setup):
    files, root = setup
    convert = Counting()
    build_dataset(converter(convert), files, root)
    toy_input(files[INPUT_KEY], ["Alpha", "Beta", "Gamma"])  # same content, new mtime
    build_dataset(converter(convert), files, root)
    assert convert.calls == 1


def test_changed_input_rebuilds(setup):
    files, root = setup
    convert = Counting()
    old = build_dataset(converter(convert), files, root)
    toy_input(files[INPUT_KEY], ["Alpha", "Beta", "Gamma", "Delta"])
    new = build_dataset(converter(convert), files, root)
    assert convert.calls == 2
    assert titles(new) == ["Alpha", "Beta", "Gamma", "Delta"]
    assert new.fingerprint != old.fingerprint
    # And the rebuilt cache is what a later call reads.
    assert titles(build_dataset(converter(convert), files, root)) == titles(new)
    assert convert.calls == 2


def test_new_converter_version_or_force_rebuilds(setup):
    files, root = setup
    convert = Counting()
    build_dataset(converter(convert), files, root)
    build_dataset(converter(convert, version="2"), files, root)
    assert convert.calls == 2
    build_dataset(converter(convert, version="2"), files, root, force=True)
    assert convert.calls == 3


def test_unreadable_build_json_rebuilds(setup):
    files, root = setup
    convert = Counting()
    build_dataset(converter(convert), files, root)
    (root / "toy" / "build.json").write_text("{truncated", encoding="utf-8")
    assert titles(build_dataset(converter(convert), files, root)) == ["Alpha", "Beta", "Gamma"]
    assert convert.calls == 2


def assert_only_old_cache(root: Path, expected_titles: list[str]) -> None:
    """The processed folder still holds the previous build, and nothing half-written sits where it is read."""
    old = load_processed(root / "toy", "toy")
    assert titles(old) == expected_titles
    assert sorted(p.name for p in root.iterdir()) == ["toy"]  # no staging or old folders left behind


def test_converter_failure_keeps_the_previous_cache(setup):
    files, root = setup
    build_dataset(converter(Counting()), files, root)
    toy_input(files[INPUT_KEY], ["Alpha", "Beta", "Gamma", "Delta"])
    with pytest.raises(RuntimeError, match="crashed mid-way"):
        build_dataset(converter(Counting(fail=True)), files, root)
    assert_only_old_cache(root, ["Alpha", "Beta", "Gamma"])
    # A working converter then builds the new input normally.
    assert titles(build_dataset(converter(Counting()), files, root)) == ["Alpha", "Beta", "Gamma", "Delta"]


def test_failure_while_writing_keeps_the_previous_cache(setup, monkeypatch):
    files, root = setup
    build_dataset(converter(Counting()), files, root)
    toy_input(files[INPUT_KEY], ["Alpha", "Beta", "Gamma", "Delta"])

    def disk_full(path, dialogues):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(dataset_module, "write_samples_parquet", disk_full)
    with pytest.raises(OSError, match="No space left"):
        build_dataset(converter(Counting()), files, root)
    assert_only_old_cache(root, ["Alpha", "Beta", "Gamma"])
    monkeypatch.undo()
    # The next build clears the staging folder and leaves no debris.
    assert titles(build_dataset(converter(Counting()), files, root)) == ["Alpha", "Beta", "Gamma", "Delta"]
    assert sorted(p.name for p in root.iterdir()) == ["toy"]


def test_invalid_conversion_is_refused_before_replacing_the_cache(setup):
    """A converter bug (an item missing from its own catalogue) must not install a cache that cannot load."""
    files, root = setup
    build_dataset(converter(Counting()), files, root)

    def broken(files: dict[str, Path]) -> Conversion:
        conversion = toy_convert(files)
        conversion.dialogues[0].turns.append(Turn("recommender", "", ("ghost",)))
        return conversion

    toy_input(files[INPUT_KEY], ["Alpha", "Beta", "Gamma", "Delta"])
    with pytest.raises(
        DataError, match=r"converter 'toy', dialogue 'd0': item id 'ghost' is not in the catalogue"
    ):
        build_dataset(converter(broken), files, root)
    assert_only_old_cache(root, ["Alpha", "Beta", "Gamma"])

    def duplicated(files: dict[str, Path]) -> Conversion:
        conversion = toy_convert(files)
        conversion.dialogues.append(conversion.dialogues[0])
        return conversion

    with pytest.raises(DataError, match=r"dialogue 'd0': duplicate dialogue_id"):
        build_dataset(converter(duplicated), files, root)
    assert_only_old_cache(root, ["Alpha", "Beta", "Gamma"])


def test_converter_with_no_dialogues_is_an_error(setup):
    files, root = setup
    with pytest.raises(DataError, match="produced no dialogues"):
        build_dataset(converter(lambda files: Conversion(Catalog([Item("a", "A")]), [])), files, root)
    assert not (root / "toy").exists()


def test_samples_parquet_rows(setup):
    files, root = setup
    toy_input(files[INPUT_KEY], ["Alpha", "Beta", "Gamma", "Delta"], n_test=2)
    dataset = build_dataset(converter(Counting()), files, root)
    table = pq.read_table(root / "toy" / "samples.parquet")
    # Four dialogues, one recommendation each.
    assert table.num_rows == 4 == dataset.info["n_samples_total"]
    assert table.column_names == ["split", "dialogue_id", "turn_index", "target", "context_items", "n_context_items"]
    rows = table.to_pylist()
    assert rows[0] == {
        "split": "test",
        "dialogue_id": "d0",
        "turn_index": 1,
        "target": "i1",
        "context_items": ["i0"],
        "n_context_items": 1,
    }
    assert [r["target"] for r in rows] == ["i1", "i2", "i3", "i0"]
    assert [r["split"] for r in rows] == ["test", "test", "train", "train"]
    expected = sum(len(samples_from_dialogue(d)) for d in dataset.dialogues)
    assert table.num_rows == expected
    assert len(dataset.split("test").samples) == 2


def test_samples_parquet_keeps_recent_context_of_long_sequences(tmp_path):
    from convrec.data.dataset import PARQUET_CONTEXT_ITEMS, write_samples_parquet
    from convrec.data.model import Dialogue, Turn

    n = PARQUET_CONTEXT_ITEMS + 30
    dialogue = Dialogue("u1", "train", [Turn("unknown", "", (f"i{k}",)) for k in range(n)])
    assert write_samples_parquet(tmp_path / "s.parquet", [dialogue]) == n - 1
    last = pq.read_table(tmp_path / "s.parquet").to_pylist()[-1]
    assert last["n_context_items"] == n - 1
    assert last["context_items"] == [f"i{k}" for k in range(n - 1 - PARQUET_CONTEXT_ITEMS, n - 1)]


def test_split_rejects_unknown_name(setup):
    files, root = setup
    dataset = build_dataset(converter(Counting()), files, root)
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        dataset.split("dev")


# -- import_dataset: the user's own data ---------------------------------------------------------------

BOOKS = [
    {"item_id": "b1", "title": "The Hobbit", "year": 1937, "metadata": {"genre": ["fantasy"]}},
    {"item_id": "b2", "title": "Dune", "year": 1965},
    {"item_id": "b3", "title": "Emma", "year": 1815},
]


def book_dialogue(dialogue_id: str, split: str, target: str) -> dict:
    return {
        "dialogue_id": dialogue_id,
        "split": split,
        "turns": [
            {"role": "seeker", "text": "I loved The Hobbit", "items": ["b1"]},
            {"role": "recommender", "text": "Try this", "items": [target]},
        ],
        "feedback": {target: {"accepted": True}},
    }


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_import_then_load_by_name(tmp_path):
    catalog = write_jsonl(tmp_path / "catalog.jsonl", BOOKS)
    dialogues = write_jsonl(
        tmp_path / "dialogues.jsonl",
        [
            book_dialogue("t1", "train", "b2"),
            book_dialogue("v1", "valid", "b3"),
            book_dialogue("x1", "test", "b3"),
        ],
    )
    data_dir = tmp_path / "data"
    imported = import_dataset("mybooks", catalog, dialogues, data_dir)
    loaded = load_dataset("mybooks", data_dir)
    assert loaded.name == "mybooks"
    assert loaded.catalog.ids == ["b1", "b2", "b3"]
    assert loaded.catalog.get("b1").metadata == {"genre": ["fantasy"]}
    assert loaded.dialogues == imported.dialogues
    assert loaded.info["n_dialogues"] == {"train": 1, "valid": 1, "test": 1}
    [sample] = loaded.split("test").samples
    assert (sample.dialogue_id, sample.target, sample.context_items) == ("x1", "b3", ("b1",))
    assert sample.target_feedback.accepted is True
    assert "mybooks" in available_datasets(data_dir)
    assert pq.read_table(data_dir / "processed" / "mybooks" / "samples.parquet").num_rows == 3


def test_import_without_test_split(tmp_path):
    catalog = write_jsonl(tmp_path / "catalog.jsonl", BOOKS)
    dialogues = write_jsonl(tmp_path / "dialogues.jsonl", [book_dialogue("t1", "train", "b2")])
    with pytest.raises(DataError, match=r"dialogues.jsonl: no dialogue has split 'test'"):
        import_dataset("mybooks", catalog, dialogues, tmp_path / "data")
    assert not (tmp_path / "data" / "processed" / "mybooks").exists()


def test_import_invalid_dialogue_is_located(tmp_path):
    catalog = write_jsonl(tmp_path / "catalog.jsonl", BOOKS)
    dialogues = write_jsonl(
        tmp_path / "dialogues.jsonl", [book_dialogue("x1", "test", "b2"), book_dialogue("x2", "test", "b9")]
    )
    with pytest.raises(
        DataError, match=r"dialogues.jsonl line 2: turn 2: item id 'b9' is not in the catalogue 'mybooks'"
    ):
        import_dataset("mybooks", catalog, dialogues, tmp_path / "data")


def test_import_refuses_bundled_names_and_unknown_names_fail_clearly(tmp_path):
    catalog = write_jsonl(tmp_path / "catalog.jsonl", BOOKS)
    dialogues = write_jsonl(tmp_path / "dialogues.jsonl", [book_dialogue("x1", "test", "b2")])
    with pytest.raises(ConfigError, match="'redial' is a bundled dataset name"):
        import_dataset("redial", catalog, dialogues, tmp_path / "data")
    with pytest.raises(DataError, match=r"unknown dataset 'nobooks'.*convrec data import"):
        load_dataset("nobooks", tmp_path / "data")


def test_reimport_replaces_the_dataset(tmp_path):
    catalog = write_jsonl(tmp_path / "catalog.jsonl", BOOKS)
    data_dir = tmp_path / "data"
    first = write_jsonl(tmp_path / "first.jsonl", [book_dialogue("x1", "test", "b2")])
    import_dataset("mybooks", catalog, first, data_dir)
    second = write_jsonl(
        tmp_path / "second.jsonl", [book_dialogue("y1", "test", "b3"), book_dialogue("y2", "test", "b2")]
    )
    import_dataset("mybooks", catalog, second, data_dir, force=True)
    assert [d.dialogue_id for d in load_dataset("mybooks", data_dir).dialogues] == ["y1", "y2"]
    assert sorted(p.name for p in (data_dir / "processed").iterdir()) == ["mybooks"]
