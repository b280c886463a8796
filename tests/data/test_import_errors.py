"""`convrec data import` with bad names and bad files (issue 13): one clear line naming the file, line or
field and what was expected, exit code 2, and never a byte changed outside ``DATA_DIR/processed/NAME``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convrec.data.load import import_dataset, imported_dataset_dir, load_dataset
from convrec.errors import ConfigError

BOOKS = [
    {"item_id": "b1", "title": "The Hobbit", "year": 1937, "metadata": {"genre": ["fantasy"], "author": "Tolkien"}},
    {"item_id": "b2", "title": "Dune", "year": 1965, "metadata": {"genre": "science fiction, classic"}},
    {"item_id": "b3", "title": "Emma", "year": 1815},
]


def dialogue(dialogue_id: str, split: str = "test", target: str = "b2") -> dict:
    return {"dialogue_id": dialogue_id, "split": split, "turns": [
        {"role": "seeker", "text": "I loved The Hobbit", "items": ["b1"]},
        {"role": "recommender", "text": "Try this", "items": [target]}]}


def write_lines(path: Path, records: list) -> Path:
    """Records as JSON lines; a ``str`` record is written as it is (a broken line), ``bytes`` as raw bytes."""
    path.write_bytes(b"".join(
        r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode() + b"\n"
        for r in records))
    return path


@pytest.fixture
def books(tmp_path: Path) -> tuple[Path, Path]:
    return (write_lines(tmp_path / "catalog.jsonl", BOOKS),
            write_lines(tmp_path / "dialogues.jsonl", [dialogue("d1", "train"), dialogue("d2")]))


@pytest.fixture
def user_data(tmp_path: Path) -> Path:
    """A data dir holding an imported dataset 'mine' that every failed import must leave as it is."""
    data = tmp_path / "data"
    catalog = write_lines(tmp_path / "mine-catalog.jsonl", BOOKS)
    dialogues = write_lines(tmp_path / "mine-dialogues.jsonl", [dialogue("m1")])
    import_dataset("mine", catalog, dialogues, data)
    return data


def import_args(data_dir: Path, catalog: Path, dialogues: Path, name: str = "mybooks") -> list:
    return ["data", "import", "--name", name, "--catalog", catalog, "--dialogues", dialogues, "--data-dir", data_dir]


def files_under(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- case 1: the dataset name (data loss and path traversal) -----------------------------------------------


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "../../outside", "a/b", "/ABSOLUTE", "x/../mine",
                                  ".hidden", "MyBooks", "my books", "x" * 65, "mine\n"])
def test_an_unsafe_name_is_refused_and_nothing_changes(run_cli, tmp_path, books, user_data, name):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("keep me")
    if name == "/ABSOLUTE":
        name = str(outside)  # the issue's `--name "$OTHER"`: keep.txt used to be gone
    before = files_under(tmp_path)
    run = run_cli(*import_args(user_data, *books, name=name))
    assert run.failed_with(f"dataset name {name!r} is not allowed", "1 to 64 characters among a-z, 0-9")
    assert files_under(tmp_path) == before  # 'mine' and keep.txt intact, nothing new anywhere


def test_a_bundled_name_is_refused_even_with_force(run_cli, books, user_data):
    run = run_cli(*import_args(user_data, *books, name="inspired"), "--force")
    assert run.failed_with("'inspired' is a bundled dataset name", "bundled datasets: inspired")
    assert not (user_data / "processed" / "inspired").exists()


def test_an_existing_dataset_is_replaced_only_with_force(run_cli, tmp_path, books, user_data):
    before = files_under(user_data)
    run = run_cli(*import_args(user_data, *books, name="mine"))
    assert run.failed_with(f"a dataset named 'mine' already exists in {user_data.resolve() / 'processed'}",
                           "add --force to replace it")
    assert files_under(user_data) == before
    assert run_cli(*import_args(user_data, *books, name="mine"), "--force").rc == 0
    assert [d.dialogue_id for d in load_dataset("mine", user_data).dialogues] == ["d1", "d2"]


def test_force_never_replaces_a_folder_convrec_did_not_write(run_cli, books, user_data):
    stranger = user_data / "processed" / "notes"
    stranger.mkdir()
    (stranger / "todo.txt").write_text("mine, not convrec's")
    run = run_cli(*import_args(user_data, *books, name="notes"), "--force")
    assert run.failed_with("notes exists but is not a dataset convrec wrote (it has no build.json)")
    assert (stranger / "todo.txt").read_text() == "mine, not convrec's"


def test_a_symbolic_link_out_of_the_data_dir_is_never_followed(run_cli, tmp_path, books, user_data):
    """Defence in depth: a valid name whose folder is a link to elsewhere is refused, even with --force."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    write_lines(outside / "build.json", [{"name": "linked"}])
    (user_data / "processed" / "linked").symlink_to(outside, target_is_directory=True)
    before = files_under(outside)
    run = run_cli(*import_args(user_data, *books, name="linked"), "--force")
    assert run.failed_with(f"dataset 'linked' would be written to {outside.resolve()}, which is not a folder of")
    assert files_under(outside) == before


@pytest.mark.parametrize("name", ["", ".", "..", "../x", "a/b", "/tmp/x", "a/../../b"])
def test_the_target_folder_is_checked_whatever_name_reaches_it(tmp_path, name):
    """The second line of defence, without the name check in front of it."""
    with pytest.raises(ConfigError, match="which is not a folder of"):
        imported_dataset_dir(tmp_path / "data", name)
    assert imported_dataset_dir(tmp_path / "data", "ok.name_1-2") == (tmp_path / "data/processed/ok.name_1-2").resolve()


# -- case 2: files that cannot be read, or are not UTF-8 ---------------------------------------------------


def test_a_missing_file_is_named(run_cli, tmp_path, books, user_data):
    missing = tmp_path / "nope.jsonl"
    assert run_cli(*import_args(user_data, missing, books[1])).failed_with(f"{missing}: no such file")
    assert run_cli(*import_args(user_data, books[0], missing)).failed_with(f"{missing}: no such file")


def test_a_directory_given_as_the_file_is_named(run_cli, tmp_path, books, user_data):
    assert run_cli(*import_args(user_data, tmp_path, books[1])).failed_with(
        f"{tmp_path}: is a directory, expected a JSON Lines file")


def test_a_latin1_byte_is_located_by_line_and_offset(run_cli, tmp_path, books, user_data):
    first = json.dumps(BOOKS[0]).encode() + b"\n"
    catalog = write_lines(tmp_path / "l1.jsonl", [first, b'{"item_id":"x","title":"Caf\xe9"}\n'])
    run = run_cli(*import_args(user_data, catalog, books[1]))
    assert run.failed_with(f"{catalog} line 2: byte 0xe9 at byte 27 of the line (byte {len(first) + 27} of the "
                           "file) is not UTF-8; convrec reads UTF-8 text only", "iconv -f LATIN1 -t UTF-8")


def test_a_utf16_file_is_recognised(run_cli, tmp_path, books, user_data):
    text = "".join(json.dumps(r) + "\n" for r in BOOKS)
    with_bom = tmp_path / "utf16.jsonl"
    with_bom.write_bytes(text.encode("utf-16"))
    assert run_cli(*import_args(user_data, with_bom, books[1])).failed_with(
        f"{with_bom} line 1: starts with a UTF-16 byte order mark", "convrec reads UTF-8 only", "iconv -f UTF-16")
    without_bom = tmp_path / "utf16le.jsonl"
    without_bom.write_bytes(text.encode("utf-16-le"))
    assert run_cli(*import_args(user_data, without_bom, books[1])).failed_with(
        f"{without_bom} line 1: NUL byte at byte 1 of the line", "looks like UTF-16")


def test_a_utf8_byte_order_mark_is_accepted(run_cli, tmp_path, books, user_data):
    catalog = tmp_path / "bom.jsonl"
    catalog.write_bytes(b"\xef\xbb\xbf" + books[0].read_bytes())
    assert run_cli(*import_args(user_data, catalog, books[1])).rc == 0
    assert load_dataset("mybooks", user_data).catalog.ids == ["b1", "b2", "b3"]


def test_a_lone_surrogate_escape_is_refused_before_it_breaks_the_write(run_cli, tmp_path, books, user_data):
    catalog = write_lines(tmp_path / "catalog.jsonl", [*BOOKS, '{"item_id": "b4", "title": "Half \\ud800"}'])
    assert run_cli(*import_args(user_data, catalog, books[1])).failed_with(
        f"{catalog} line 4: the escape \\ud800 is half of a UTF-16 surrogate pair")
    paired = write_lines(tmp_path / "paired.jsonl", [*BOOKS, '{"item_id": "b4", "title": "Smile \\ud83d\\ude00"}'])
    assert run_cli(*import_args(user_data, paired, books[1])).rc == 0
    assert load_dataset("mybooks", user_data).catalog.get("b4").title == "Smile \U0001f600"


# -- case 2: metadata types ------------------------------------------------------------------------------


@pytest.mark.parametrize(("metadata", "message"), [
    ({"genre": 5}, "field 'metadata.genre' must be a string, a list of strings or null, got 5"),
    ({"genre": [1, 2]}, "field 'metadata.genre' must be a string, a list of strings or null, got [1, 2]"),
    ({"star": {"lead": "X"}}, "field 'metadata.star' must be a string, a list of strings or null"),
    ({"plot": ["a", "b"]}, "field 'metadata.plot' must be a string or null, got ['a', 'b']"),
    ({"imdb_id": 133093}, "field 'metadata.imdb_id' must be a string or null, got 133093"),
])
def test_metadata_that_convrec_reads_must_have_its_type(run_cli, tmp_path, books, user_data, metadata, message):
    catalog = write_lines(tmp_path / "catalog.jsonl", [*BOOKS, {"item_id": "b4", "title": "T", "metadata": metadata}])
    assert run_cli(*import_args(user_data, catalog, books[1])).failed_with(f"{catalog} line 4: {message}")


def test_other_metadata_is_free_and_known_fields_may_be_null(run_cli, tmp_path, books, user_data):
    metadata = {"genre": None, "plot": "A plot.", "mentions": 12, "rating": 4.5, "adult": False,
                "tags": [1, "x", {"deep": [None]}]}
    catalog = write_lines(tmp_path / "catalog.jsonl", [*BOOKS, {"item_id": "b4", "title": "T", "metadata": metadata}])
    assert run_cli(*import_args(user_data, catalog, books[1])).rc == 0
    item = load_dataset("mybooks", user_data).catalog.get("b4")
    assert item.metadata == metadata and item.genres() == frozenset()


def test_the_bundled_catalogues_pass_the_metadata_checks(inspired, data_dir, tmp_path):
    """What the converters write (lists of strings, IMDb ids) is valid import input, and loads as before."""
    processed = data_dir / "processed" / "inspired"
    dataset = import_dataset("inspired-copy", processed / "catalog.jsonl", processed / "dialogues.jsonl",
                             tmp_path / "data")
    assert dataset.catalog.ids == inspired.catalog.ids and len(dataset.dialogues) == len(inspired.dialogues)
    assert any(item.genres() for item in dataset.catalog)


# -- case 4: the minor JSON items ---------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "message"), [
    ('{"item_id": "b4", "title": "Unterminated}', "not valid JSON (Unterminated string starting at column 28)"),
    ('{"item_id": "b4", "title": "T"', "not valid JSON (Expecting ',' delimiter at the end of the line)"),
    ('{"item_id": "b4", "title": "T",   ', "not valid JSON (Expecting property name enclosed in double quotes "
                                           "at the end of the line)"),
    ('{"item_id": "b4" "title": "T"}', "not valid JSON (Expecting ',' delimiter at column 18)"),
    ('{"item_id": true, "title": "T"}', "field 'item_id' must be a non-empty string (or an integer), got True"),
    ('{"item_id": 4.0, "title": "T"}', "field 'item_id' must be a non-empty string (or an integer), got 4.0"),
    ('{"item_id": "b4", "title": "T", "metadata": []}', "field 'metadata' must be an object"),
    ('{"item_id": "b4", "title": "T", "aliases": false}', "field 'aliases' must be a list of strings"),
])
def test_catalogue_line_errors(run_cli, tmp_path, books, user_data, line, message):
    catalog = write_lines(tmp_path / "catalog.jsonl", [*BOOKS, line])
    run = run_cli(*import_args(user_data, catalog, books[1]))
    assert run.failed_with(f"{catalog} line 4: {message}")
    assert "at at" not in run.err


@pytest.mark.parametrize(("change", "message"), [
    ({"dialogue_id": None}, "field 'dialogue_id' must be a non-empty string or an integer, got None"),
    ({"dialogue_id": ""}, "field 'dialogue_id' must be a non-empty string or an integer, got ''"),
    ({"dialogue_id": False}, "field 'dialogue_id' must be a non-empty string or an integer, got False"),
    ({"feedback": []}, "field 'feedback' must be an object"),
    ({"turns": [{"role": "seeker", "items": [True]}]},
     "turn 1: 'items' must be a list of item ids (strings or integers), got True in it"),
])
def test_dialogue_line_errors(run_cli, tmp_path, books, user_data, change, message):
    dialogues = write_lines(tmp_path / "dialogues.jsonl", [dialogue("d1"), {**dialogue("d2"), **change}])
    assert run_cli(*import_args(user_data, books[0], dialogues)).failed_with(f"{dialogues} line 2: {message}")


def test_integer_ids_are_still_read_as_strings(run_cli, tmp_path, user_data):
    catalog = write_lines(tmp_path / "catalog.jsonl", [{"item_id": 1, "title": "One"}, {"item_id": 2, "title": "Two"}])
    dialogues = write_lines(tmp_path / "dialogues.jsonl", [{"dialogue_id": 7, "split": "test", "turns": [
        {"role": "seeker", "items": [1]}, {"role": "recommender", "items": [2]}]}])
    assert run_cli(*import_args(user_data, catalog, dialogues)).rc == 0
    [loaded] = load_dataset("mybooks", user_data).dialogues
    assert (loaded.dialogue_id, loaded.turns[1].items) == ("7", ("2",))
