"""Output paths are checked before any work starts: an unwritable ``--json`` / ``--out`` / ``--update-readme``
is one clear line and exit 2 at once, not a lost result after a whole evaluation (or training) ran. The check
itself leaves nothing behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convrec.cli import align_cmd, eval_cmd, train_cmd
from convrec.cli.common import check_output_dir, check_output_file
from convrec.errors import OutputPathError

UNWRITABLE = Path("/proc/convrec-test/out.json")  # /proc takes no new files, not even from root


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a dataset fails the test: the command had to refuse before doing any work."""

    def load_dataset(*args, **kwargs):
        raise AssertionError("the command loaded a dataset before checking its output path")

    for module in (eval_cmd, train_cmd, align_cmd):
        monkeypatch.setattr(module, "load_dataset", load_dataset)


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    path = tmp_path / "a-file.txt"
    path.write_text("not a folder\n")
    return path


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# -- the helpers ----------------------------------------------------------------------------------------------

def test_a_writable_path_passes_and_nothing_is_created(tmp_path):
    before = listing(tmp_path)
    check_output_file(tmp_path / "new" / "deeper" / "out.json", "--json")
    check_output_dir(tmp_path / "new" / "run", "--out")
    check_output_file(tmp_path / "out.json", "--json")
    check_output_dir(tmp_path, "--out")
    assert listing(tmp_path) == before


@pytest.mark.parametrize(("make_path", "fragment"), [
    (lambda tmp, file: file / "out.json", "a-file.txt is a file, not a folder"),
    (lambda tmp, file: file / "deeper" / "out.json", "a-file.txt is a file, not a folder"),
    (lambda tmp, file: tmp, "is a folder; give the name of a file to write"),
    (lambda tmp, file: UNWRITABLE, "cannot write in /proc"),
])
def test_check_output_file_refuses(make_path, fragment, tmp_path, a_file):
    path = make_path(tmp_path, a_file)
    with pytest.raises(OutputPathError, match=f"^--json {path}: .*{fragment}"):
        check_output_file(path, "--json")


def test_check_output_dir_refuses(tmp_path, a_file):
    with pytest.raises(OutputPathError, match=f"^--out {a_file}: is a file, expected a folder"):
        check_output_dir(a_file, "--out")
    with pytest.raises(OutputPathError, match="is a file, not a folder"):
        check_output_dir(a_file / "run", "--out")
    with pytest.raises(OutputPathError, match="cannot write in /proc"):
        check_output_dir(UNWRITABLE.parent / "run", "--out")


# -- the commands ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["parent is a file", "proc", "a folder"])
def test_eval_json_is_checked_before_the_evaluation(where, run_cli, no_work, tmp_path, a_file):
    path = {"parent is a file": a_file / "out.json", "proc": UNWRITABLE, "a folder": tmp_path}[where]
    result = run_cli("eval", "--dataset", "inspired", "--recommender", "popularity", "--json", path,
                     "--data-dir", tmp_path / "data", "--quiet")
    assert result.failed_with(f"--json {path}: ")


def test_eval_json_into_a_new_folder_works(run_cli, inspired, data_dir, mirror, tmp_path):
    out = tmp_path / "new" / "out.json"
    result = run_cli("eval", "--dataset", "inspired", "--recommender", "popularity", "--limit", "5", "--json", out,
                     "--data-dir", data_dir, "--mirror", mirror, "--quiet")
    assert result.rc == 0, result.err
    assert json.loads(out.read_text())["n_samples"] == 5
    assert listing(tmp_path) == ["new", "new/out.json"]


def results_config(tmp_path: Path) -> Path:
    config = tmp_path / "exp.toml"
    config.write_text('name = "mini"\ndatasets = ["inspired"]\n[[recommenders]]\nname = "popularity"\n')
    return config


def test_results_out_is_checked_before_the_runs(run_cli, no_work, tmp_path, a_file):
    for out, fragment in ((a_file, "is a file, expected a folder"), (UNWRITABLE.parent, "cannot write in /proc")):
        result = run_cli("results", "--config", results_config(tmp_path), "--out", out,
                         "--data-dir", tmp_path / "data", "--quiet")
        assert result.failed_with(f"--out {out}: {fragment}")


def test_results_update_readme_must_exist_be_writable_and_hold_the_markers(run_cli, no_work, tmp_path):
    config = results_config(tmp_path)

    def update(readme: Path):
        return run_cli("results", "--config", config, "--out", tmp_path / "res", "--update-readme", readme,
                       "--data-dir", tmp_path / "data", "--quiet")

    assert update(tmp_path / "README.md").failed_with(f"--update-readme {tmp_path / 'README.md'}: cannot be read",
                                                      "No such file")
    assert update(tmp_path).failed_with(f"--update-readme {tmp_path}: cannot be read")
    readme = tmp_path / "README.md"
    readme.write_text("# no markers here\n")
    assert update(readme).failed_with("no markers for the table 'mini'", "<!-- results:mini:start -->")
    assert not (tmp_path / "res").exists()


def test_train_out_is_checked_before_training(run_cli, no_work, tmp_path, a_file):
    result = run_cli("train", "--dataset", "inspired", "--recommender", "lrurec", "--out", a_file,
                     "--data-dir", tmp_path / "data", "--quiet")
    assert result.failed_with(f"--out {a_file}: is a file, expected a folder")


def test_align_out_is_checked_before_alignment(run_cli, no_work, tmp_path):
    """A checkpoint that passes the checks (its weights are not read before the dataset is loaded)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"recommender": "lrurec", "options": {}, "catalog": "c",
                                                 "catalog_hash": "h"}))
    (run / "model.safetensors").write_bytes(b"")
    result = run_cli("align", "--dataset", "inspired", "--checkpoint", run, "--method", "nll",
                     "--out", UNWRITABLE.parent / "aligned", "--data-dir", tmp_path / "data", "--quiet")
    assert result.failed_with(f"--out {UNWRITABLE.parent / 'aligned'}: cannot write in /proc")


def test_a_data_dir_that_cannot_be_written(run_cli, a_file, mirror):
    """The data dir is where fetched and processed data go: a file there is a clear error, not a stack."""
    result = run_cli("eval", "--dataset", "inspired", "--recommender", "popularity", "--data-dir", a_file,
                     "--mirror", mirror, "--quiet")
    assert result.failed_with(f"cannot write in {a_file / '.partial'} (Not a directory)", "--data-dir")
