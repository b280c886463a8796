"""Property-based tests of the generic importer (issue 13): whatever records and whatever name it is given,
``import_dataset`` either imports or raises a ``ConvrecError``, never another exception, and never changes
anything but ``DATA_DIR/processed/NAME``: not the files beside and above the data dir, not the other datasets.

Files are drawn as a valid dataset with random values (any text, any JSON in the free metadata), then a few
random changes: any JSON value in any field, a record that is any JSON value, a repeated record, a line that
is not JSON or not UTF-8. About half the examples get through to writing the dataset. Names are drawn from the
dangerous ones (``""``, ``.``, ``..``, ``../x``, absolute paths to the watched files, bundled names, the name
of an existing dataset), valid slugs and any text.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from convrec.data.converters import CONVERTERS
from convrec.data.load import DATASET_NAME, import_dataset
from convrec.data.model import ROLES, SPLITS
from convrec.errors import ConvrecError

# No deadline: an example that writes a dataset (parquet included) takes tens of ms, more on a busy machine.
EXAMPLES = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=6,
)

ITEM_IDS = ["b1", "b2", "b3", "b4"]
TEXT = st.text(max_size=12)
KNOWN_METADATA = {"genre": TEXT | st.lists(TEXT, max_size=3), "director": st.lists(TEXT, max_size=2),
                  "plot": TEXT, "imdb_id": TEXT, "author": TEXT}


def item(item_id: str) -> st.SearchStrategy[dict]:
    """A valid catalogue record: known metadata fields of their type, other fields any JSON value."""
    metadata = st.fixed_dictionaries({}, optional=KNOWN_METADATA).flatmap(
        lambda known: st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=2).map(lambda free: {**free, **known}))
    return st.fixed_dictionaries(
        {"item_id": st.just(item_id), "title": st.text(min_size=1, max_size=12).filter(str.strip)},
        optional={"year": st.none() | st.integers(1800, 2030), "metadata": metadata,
                  "aliases": st.lists(TEXT, max_size=2)})


TURN = st.fixed_dictionaries({"role": st.sampled_from(ROLES)}, optional={
    "text": st.text(max_size=20), "items": st.lists(st.sampled_from(ITEM_IDS), max_size=3)})
FEEDBACK = st.fixed_dictionaries({}, optional={key: st.none() | st.booleans() for key in ("liked", "seen", "accepted")})
DIALOGUE = st.fixed_dictionaries(
    {"dialogue_id": st.text(min_size=1, max_size=6) | st.integers(), "split": st.sampled_from(SPLITS),
     "turns": st.lists(TURN, min_size=1, max_size=4)},
    optional={"feedback": st.dictionaries(st.sampled_from(ITEM_IDS), FEEDBACK, max_size=2),
              "metadata": st.dictionaries(st.text(max_size=6), JSON_VALUES, max_size=2)})
BROKEN_LINES = st.sampled_from([
    b'{"item_id": "b1", "title": "Caf\xe9"}',  # Latin-1
    '{"item_id": "b1", "title": "x"}'.encode("utf-16"),
    b'{"item_id": "b1", "title": "\\ud800"}',  # a lone surrogate escape
    b'{"item_id": "b1", "title": "x"',  # truncated
    b"\xef\xbb\xbf" + b'{"item_id": "b9", "title": "x"}',  # a UTF-8 byte order mark (valid on line 1 only)
    b"[" * 5000,  # deeper than json can read
    b"7" * 5000,  # more digits than Python converts
    b"",
]) | st.binary(max_size=12)


@st.composite
def dataset_files(draw: st.DrawFn) -> tuple[bytes, bytes]:
    """A valid catalogue and dialogues, then none to three random changes: a field set to any JSON value or
    removed (in a record or in one of its turns), a record replaced by any JSON value or repeated, a broken
    line inserted. About half the examples stay valid and go all the way to writing the dataset."""
    files: dict[str, list] = {
        "catalog": [draw(item(i)) for i in draw(st.permutations(ITEM_IDS))],
        "dialogues": draw(st.lists(DIALOGUE, min_size=1, max_size=4, unique_by=lambda d: str(d["dialogue_id"]))),
    }
    files["dialogues"][0]["split"] = "test"
    for _ in range(draw(st.integers(0, 3))):
        records = files[draw(st.sampled_from(sorted(files)))]
        position = draw(st.integers(0, len(records) - 1))
        change = draw(st.sampled_from(["set", "remove", "replace", "repeat", "insert"]))
        target = records[position]
        if change in ("set", "remove") and isinstance(target, dict):
            for inner in ("turns", "metadata"):  # maybe one level down: a turn, or the item's metadata
                if isinstance(target, dict) and isinstance(target.get(inner), list | dict) and target[inner] \
                        and draw(st.booleans()):
                    inner_value = target[inner]
                    target = inner_value if isinstance(inner_value, dict) else draw(st.sampled_from(inner_value))
            if not isinstance(target, dict):
                continue
            key = draw(st.sampled_from(sorted({*target, *KNOWN_METADATA, "metadata", "items", "feedback"})))
            if change == "set":
                target[key] = draw(JSON_VALUES)
            else:
                target.pop(key, None)
        elif change == "replace":
            records[position] = draw(JSON_VALUES)
        elif change == "repeat":
            records.insert(position, records[position])
        elif change == "insert":
            records.insert(position, draw(BROKEN_LINES))

    def jsonl(records: list) -> bytes:
        return b"".join((r if isinstance(r, bytes) else json.dumps(r, ensure_ascii=draw(st.booleans())).encode())
                        + b"\n" for r in records)

    return jsonl(files["catalog"]), jsonl(files["dialogues"])


# A small valid dataset, for the name properties: the import goes through to the write whenever the name is good.
GOOD_CATALOG = b"".join(json.dumps({"item_id": i, "title": f"Book {i}"}).encode() + b"\n" for i in ITEM_IDS)
GOOD_DIALOGUES = json.dumps({"dialogue_id": "d1", "split": "test", "turns": [
    {"role": "seeker", "items": ["b1"]}, {"role": "recommender", "items": ["b2"]}]}).encode() + b"\n"


def names(world: Path, data_dir: Path) -> st.SearchStrategy[str]:
    watched = [world, world / "beside", world / "beside" / "keep.txt", data_dir, data_dir / "processed",
               data_dir / "processed" / "mine", Path("/")]
    return st.one_of(
        st.sampled_from(["", ".", "..", "../x", "../../beside", "../../../..", "a/b", "mine/../..", ".hidden",
                         ".mine.building-x", "MyBooks", "my books", "x" * 65, "ok\n", "nul\0", "é", "mine", "mybooks",
                         *CONVERTERS]),
        st.sampled_from([str(p) for p in watched]),
        st.from_regex(r"[a-z0-9][a-z0-9._-]{0,8}", fullmatch=True),
        st.text(max_size=12),
    )


class World:
    """A tmp folder with a data dir (holding an imported dataset 'mine') among files that must never change."""

    def __init__(self, root: Path):
        self.root = root
        self.data_dir = root / "home" / "data"
        self.inputs = root / "home" / "inputs"
        beside = root / "beside"
        beside.mkdir(parents=True)
        (beside / "keep.txt").write_text("keep me")
        (root / "above.txt").write_text("above the data dir")
        (self.data_dir / "raw").mkdir(parents=True)
        (self.data_dir / "raw" / "fetched.txt").write_text("a fetched file")
        self.inputs.mkdir()
        self.catalog, self.dialogues = self.inputs / "catalog.jsonl", self.inputs / "dialogues.jsonl"
        self.write_inputs(GOOD_CATALOG, GOOD_DIALOGUES)
        import_dataset("mine", self.catalog, self.dialogues, self.data_dir)

    def write_inputs(self, catalog: bytes, dialogues: bytes) -> None:
        self.catalog.write_bytes(catalog)
        self.dialogues.write_bytes(dialogues)

    def snapshot(self, name: str) -> dict[str, tuple]:
        """Every entry under the root (type, mode, content or link target), except the folder an import of
        ``name`` may replace: ``processed/NAME`` when the name is one plain path component, else none."""
        plain = name not in ("", ".", "..") and "/" not in name and "\0" not in name
        replaceable = self.data_dir / "processed" / name if plain else None
        entries: dict[str, tuple] = {}
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if Path(folder, d) != replaceable]
            for entry in dirs + files:
                path = Path(folder, entry)
                if path.is_symlink():
                    entries[str(path)] = ("link", os.readlink(path))
                elif path.is_file():
                    entries[str(path)] = ("file", path.stat().st_mode, path.read_bytes())
                else:
                    entries[str(path)] = ("dir", path.stat().st_mode)
        return entries

    def check_outcome(self, name: str, imported: bool) -> None:
        if imported:
            assert DATASET_NAME.fullmatch(name) and ".." not in name and name not in CONVERTERS, name
            assert (self.data_dir / "processed" / name / "build.json").is_file()

    def try_import(self, name: str, force: bool) -> bool:
        """Import; a ConvrecError is an accepted outcome, any other exception fails the test."""
        before = self.snapshot(name)
        try:
            import_dataset(name, self.catalog, self.dialogues, self.data_dir, force=force)
            imported = True
        except ConvrecError:
            imported = False
        self.check_outcome(name, imported)
        assert self.snapshot(name) == before
        return imported


def test_random_records_import_or_fail_clearly(tmp_path):
    world = World(tmp_path)
    outcomes = []

    @settings(EXAMPLES, max_examples=450)
    # With --force: the files are what varies here (refusing an existing name is the next test's business).
    @given(files=dataset_files(), name=st.sampled_from(["mybooks", "mine"]))
    def check(files, name):
        world.write_inputs(*files)
        outcomes.append(world.try_import(name, force=True))

    check()
    # The strategies are worth their time only if a fair share of examples gets through to writing a dataset.
    assert sum(outcomes) >= 20, f"only {sum(outcomes)} of {len(outcomes)} imports succeeded"


def test_random_names_never_touch_anything_outside_the_dataset_folder(tmp_path):
    world = World(tmp_path)

    @settings(EXAMPLES, max_examples=300)
    @given(data=st.data(), force=st.booleans(), valid_files=st.booleans())
    def check(data, force, valid_files):
        name = data.draw(names(world.root, world.data_dir), label="name")
        if valid_files:
            world.write_inputs(GOOD_CATALOG, GOOD_DIALOGUES)
        else:
            world.write_inputs(*data.draw(dataset_files(), label="files"))
        world.try_import(name, force)

    check()


def test_random_names_through_the_cli(tmp_path, run_cli):
    """A handful through the CLI: exit code 0, or 2 with one `convrec: error:` line and no stack."""
    world = World(tmp_path)

    @settings(EXAMPLES, max_examples=30,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(name=names(world.root, world.data_dir), force=st.booleans())
    def check(name, force):
        before = world.snapshot(name)
        run = run_cli("data", "import", "--name", name, "--catalog", world.catalog, "--dialogues", world.dialogues,
                      "--data-dir", world.data_dir, *(["--force"] if force else []))
        assert run.rc == 0 or run.failed_with("convrec: error: "), run.err
        world.check_outcome(name, run.rc == 0)
        assert world.snapshot(name) == before

    check()
