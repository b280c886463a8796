"""The processed cache's integrity record: build.json holds each processed file's size and sha256, written last
at build and checked at every load. A cache that lost lines, was cut mid-line or changed is refused with a
hint that rebuilds it (``convrec data build NAME --rebuild``, or the import again for an imported dataset),
instead of being evaluated as a smaller dataset with exit code 0."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from convrec.catalog.items import Catalog, Item
from convrec.data import dataset as dataset_module
from convrec.data.dataset import (
    PROCESSED_FILES,
    Conversion,
    Converter,
    build_dataset,
    load_processed,
    save_processed,
)
from convrec.data.model import Dialogue, Turn
from convrec.errors import DataError


def conversion(n: int = 6) -> Conversion:
    items = [Item(f"i{k}", f"Title {k}") for k in range(n)]
    dialogues = [Dialogue(f"d{k}", "test" if k % 3 == 0 else "train",
                          [Turn("seeker", "I like i0", ("i0",)), Turn("recommender", "try", (f"i{(k + 1) % n}",))])
                 for k in range(n)]
    return Conversion(Catalog(items, name="toy"), dialogues, {})


def drop_lines(path: Path, count: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-count]))


def cut_mid_line(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-15])


def same_size_change(path: Path) -> None:
    data = path.read_bytes()
    at = data.index(b"Title 1")
    path.write_bytes(data[:at] + b"Tytle 1" + data[at + 7:])


@pytest.fixture
def built(tmp_path: Path) -> Path:
    out_dir = tmp_path / "processed" / "toy"
    save_processed(out_dir, conversion(), {"name": "toy", "fingerprint": "f"})
    return out_dir


def test_build_json_records_every_file(built):
    info = json.loads((built / "build.json").read_text())
    assert set(info["files"]) == set(PROCESSED_FILES)
    for name, record in info["files"].items():
        assert record["bytes"] == (built / name).stat().st_size and len(record["sha256"]) == 64
    assert len(load_processed(built, "toy").dialogues) == 6


@pytest.mark.parametrize(("damage", "file_name", "fragment"), [
    (lambda p: drop_lines(p, 2), "dialogues.jsonl", "were written when the dataset was built"),
    (cut_mid_line, "dialogues.jsonl", r"cut short or changed since \(lines lost or truncated\)"),
    (cut_mid_line, "catalog.jsonl", "cut short"),
    (same_size_change, "catalog.jsonl", "sha256 differs from build.json"),
    (lambda p: p.unlink(), "samples.parquet", "missing from the processed dataset"),
])
def test_damage_is_refused_with_the_rebuild_hint(damage, file_name, fragment, built):
    damage(built / file_name)
    with pytest.raises(DataError, match=fragment) as caught:
        load_processed(built, "toy")
    assert caught.value.path == str(built / file_name)
    assert caught.value.hint == "rebuild it: convrec data build toy --rebuild"


def test_an_imported_dataset_is_imported_again(tmp_path):
    out_dir = tmp_path / "processed" / "mybooks"
    save_processed(out_dir, conversion(), {"name": "mybooks", "fingerprint": "f",
                                           "imported_from": ["books.jsonl", "talks.jsonl"]})
    drop_lines(out_dir / "dialogues.jsonl", 1)
    with pytest.raises(DataError) as caught:
        load_processed(out_dir, "mybooks")
    assert caught.value.hint == ("import it again: convrec data import --name mybooks --catalog books.jsonl "
                                 "--dialogues talks.jsonl --force")


def test_a_damaged_build_json_is_a_located_error(built):
    (built / "build.json").write_text('{"name": "to', encoding="utf-8")
    with pytest.raises(DataError, match=r"build.json: damaged, not valid JSON") as caught:
        load_processed(built, "toy")
    assert "--rebuild" in caught.value.hint
    (built / "build.json").write_text('{"files": {"catalog.jsonl": 3}}', encoding="utf-8")
    with pytest.raises(DataError, match="build.json: damaged: no size and sha256 recorded for catalog.jsonl"):
        load_processed(built, "toy")


def test_a_cache_without_sizes_still_has_its_counts_checked(built):
    """Caches written before the integrity record (imports keep theirs): the item and dialogue counts of
    build.json still catch lost lines, and a line cut mid-way still gets the rebuild hint."""
    info = json.loads((built / "build.json").read_text())
    del info["files"]
    (built / "build.json").write_text(json.dumps(info), encoding="utf-8")
    drop_lines(built / "dialogues.jsonl", 2)
    with pytest.raises(DataError, match="4 dialogues, but 6 were written when the dataset was built") as caught:
        load_processed(built, "toy")
    assert "--rebuild" in caught.value.hint
    cut_mid_line(built / "dialogues.jsonl")
    with pytest.raises(DataError, match="dialogues.jsonl line 4: not valid JSON") as caught:
        load_processed(built, "toy")
    assert "--rebuild" in caught.value.hint


def test_an_older_cache_format_is_rebuilt(tmp_path, monkeypatch):
    calls = []

    def convert(files):
        calls.append(1)
        return conversion()

    toy = Converter(name="toy", sources=("toy",), version="1", convert=convert)
    source = tmp_path / "input.txt"
    source.write_text("x")
    monkeypatch.setattr(dataset_module, "CACHE_FORMAT", "2")
    build_dataset(toy, {"toy/input.txt": source}, tmp_path / "processed")
    monkeypatch.undo()
    build_dataset(toy, {"toy/input.txt": source}, tmp_path / "processed")
    assert len(calls) == 2
    assert "files" in json.loads((tmp_path / "processed" / "toy" / "build.json").read_text())


# -- end to end, on INSPIRED: the case ----------------------------------------------------------------

@pytest.fixture
def own_inspired(inspired, data_dir: Path, tmp_path: Path) -> Path:
    """A data dir of this test's own, holding the session's fetched and processed INSPIRED."""
    own = tmp_path / "data"
    for part in ("catalog", "inspired", "processed/inspired"):
        shutil.copytree(data_dir / part, own / part)
    return own


def test_a_cache_that_lost_lines_fails_the_eval_until_rebuilt(run_cli, own_inspired, mirror):
    evaluate = ("eval", "--dataset", "inspired", "--recommender", "popularity", "--quiet", "--data-dir",
                own_inspired, "--mirror", mirror)
    dialogues = own_inspired / "processed" / "inspired" / "dialogues.jsonl"
    drop_lines(dialogues, 40)
    assert run_cli(*evaluate).failed_with(f"{dialogues}: ", "lines lost or truncated",
                                          "convrec data build inspired --rebuild")
    cut_mid_line(own_inspired / "processed" / "inspired" / "catalog.jsonl")
    assert run_cli(*evaluate).failed_with("catalog.jsonl", "--rebuild")
    rebuilt = run_cli("data", "build", "inspired", "--rebuild", "--data-dir", own_inspired, "--mirror", mirror)
    assert rebuilt.rc == 0, rebuilt.err
    result = run_cli(*evaluate)
    assert result.rc == 0 and "│ 292 │" in result.out  # every test sample again
