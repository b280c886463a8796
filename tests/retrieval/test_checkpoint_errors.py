"""Every way a path can fail to be a loadable checkpoint is a CheckpointError that names the path and says what
is wrong, through each command that loads one: ``eval --checkpoint``, rar's ``checkpoint`` option and
``align --checkpoint``; and ``convrec train`` refuses a damaged training state or impossible options before it
trains. The damaged checkpoints are made from a real (tiny, one-epoch) lrurec run on INSPIRED.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from convrec.catalog.items import Catalog, Item
from convrec.data.dataset import Conversion, CRSDataset, save_processed
from convrec.data.model import Dialogue, Turn
from convrec.errors import CheckpointError
from convrec.retrieval import build_recommender
from convrec.retrieval.lrurec.recommender import run_options
from convrec.retrieval.lrurec.training import read_run_config

# Small and quick (seconds on INSPIRED), items only: no text encoder to load.
NETWORK = {"hidden": 16, "n_blocks": 1, "dropout": 0.0, "text_init": False}
FAST = {**NETWORK, "train": {"epochs": 1, "batch_size": 64, "lr": 0.01, "patience": 1, "threads": 1}}


@pytest.fixture(autouse=True)
def keep_torch_threads():
    previous = torch.get_num_threads()
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def run_dir(inspired: CRSDataset, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished `convrec train`-style lrurec run on INSPIRED (one epoch)."""
    previous = torch.get_num_threads()
    run = tmp_path_factory.mktemp("checkpoints") / "lrurec-inspired"
    build_recommender("lrurec", inspired.catalog, {**FAST, "run_dir": str(run)}).fit(
        inspired.split("train"), inspired.split("valid"))
    torch.set_num_threads(previous)
    return run


@pytest.fixture
def damaged(run_dir: Path, tmp_path: Path):
    """``damaged(edit)``: a copy of the good run, changed by ``edit(copy)``."""

    def make(edit) -> Path:
        copy = tmp_path / "run"
        shutil.copytree(run_dir, copy)
        edit(copy)
        return copy

    return make


def edit_config(**changes):
    def edit(run: Path) -> None:
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, **changes}))

    return edit


def set_options(options: dict, prefix: str = "") -> list[str]:
    """``--set`` arguments for a flat dict of options."""
    return [arg for key, value in options.items() for arg in ("--set", f"{prefix}{key}={json.dumps(value)}")]


@pytest.fixture
def eval_checkpoint(run_cli, data_dir: Path, mirror: Path):
    """``eval_checkpoint(path, recommender="lrurec", *extra)``: convrec eval of that checkpoint on INSPIRED."""

    def run(checkpoint, recommender: str = "lrurec", *extra: str, dataset: str = "inspired",
            data: Path | None = None):
        return run_cli("eval", "--dataset", dataset, "--recommender", recommender, "--checkpoint", checkpoint,
                       "--limit", "20", "--quiet", "--data-dir", data or data_dir, "--mirror", mirror,
                       *set_options(NETWORK), *extra)

    return run


def test_the_good_checkpoint_loads(eval_checkpoint, run_dir):
    result = eval_checkpoint(run_dir)
    assert result.rc == 0, result.err


def test_missing_path(eval_checkpoint, tmp_path):
    assert eval_checkpoint(tmp_path / "nope").failed_with(f"{tmp_path / 'nope'}: no such folder",
                                                          "--out folder of `convrec train`")


def test_empty_folder(eval_checkpoint, tmp_path):
    (tmp_path / "empty").mkdir()
    assert eval_checkpoint(tmp_path / "empty").failed_with(f"{tmp_path / 'empty'}: is an empty folder")


def test_a_dataset_folder(eval_checkpoint, inspired, data_dir):
    folder = data_dir / "processed" / "inspired"
    assert eval_checkpoint(folder).failed_with(f"{folder}: is a processed dataset folder, not a checkpoint")


def test_a_file(eval_checkpoint, run_dir):
    file = run_dir / "model.safetensors"
    assert eval_checkpoint(file).failed_with(f"{file}: is a file, not a run folder")


def test_some_other_folder(eval_checkpoint, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert eval_checkpoint(tmp_path).failed_with(f"{tmp_path}: no config.json")


def test_config_json_not_json(eval_checkpoint, damaged):
    run = damaged(lambda run: (run / "config.json").write_text('{"recommender": "lrurec", '))
    assert eval_checkpoint(run).failed_with(f"{run / 'config.json'}: not valid JSON", "line 1")


@pytest.mark.parametrize(("content", "fragment"), [
    ("{}", "missing or of the wrong type: 'recommender' (str), 'options' (dict), 'catalog' (str)"),
    ('{"recommender": "lrurec", "options": [], "catalog": "x", "catalog_hash": "y"}', "'options' (dict)"),
    ("[1, 2]", "expected a JSON object, got list"),
])
def test_config_json_without_the_expected_keys(content, fragment, eval_checkpoint, damaged):
    run = damaged(lambda run: (run / "config.json").write_text(content))
    assert eval_checkpoint(run).failed_with(f"{run / 'config.json'}: ", fragment)


def test_config_json_of_an_unknown_recommender(eval_checkpoint, damaged):
    run = damaged(edit_config(recommender="ease"))
    assert eval_checkpoint(run).failed_with("recommender 'ease' is not one convrec trains")


def test_missing_weights(eval_checkpoint, damaged):
    run = damaged(lambda run: (run / "model.safetensors").unlink())
    assert eval_checkpoint(run).failed_with(f"{run}: no model.safetensors")


@pytest.mark.parametrize("keep", [0, 7, 100, -100])
def test_truncated_weights(keep, eval_checkpoint, damaged):
    def truncate(run: Path) -> None:
        weights = run / "model.safetensors"
        data = weights.read_bytes()
        weights.write_bytes(data[:keep] if keep >= 0 else data[:keep])

    run = damaged(truncate)
    assert eval_checkpoint(run).failed_with(f"{run / 'model.safetensors'}: not a complete safetensors file")


def test_a_checkpoint_of_another_catalogue(eval_checkpoint, run_dir, tmp_path):
    """A real case: the INSPIRED run evaluated on another dataset."""
    items = [Item(f"b{n}", f"Book {n}") for n in range(4)]
    dialogues = [Dialogue(f"d{n}", split, [Turn("seeker", "hi", ("b0",)), Turn("recommender", "try", ("b1",))])
                 for n, split in enumerate(["train", "valid", "test"])]
    data = tmp_path / "data"
    save_processed(data / "processed" / "books", Conversion(Catalog(items, name="books"), dialogues),
                   {"name": "books", "fingerprint": "books"})
    result = eval_checkpoint(run_dir, dataset="books", data=data)
    assert result.failed_with(f"{run_dir} was trained on another catalogue (inspired/catalog.jsonl, 1788 items",
                              "not on books/catalog.jsonl (4 items", "load a run trained on this dataset")


def test_lrurec_loaded_as_lrurec_text(eval_checkpoint, run_dir):
    assert eval_checkpoint(run_dir, "lrurec-text").failed_with(
        f"{run_dir} was trained as 'lrurec' (its config.json)", "not as 'lrurec-text'",
        "convrec eval --recommender lrurec")


def test_lrurec_text_loaded_as_lrurec(eval_checkpoint, damaged):
    run = damaged(edit_config(recommender="lrurec-text"))
    assert eval_checkpoint(run).failed_with(f"{run} was trained as 'lrurec-text'", "not as 'lrurec'")


def test_weights_that_do_not_fit_the_options(eval_checkpoint, run_dir):
    """Other network options than the run's: say which parameters and which options differ."""
    result = eval_checkpoint(run_dir, "lrurec", "--set", "hidden=32")
    assert result.failed_with(f"{run_dir}: its weights do not fit the lrurec network", "of another shape",
                              "hidden=16 in its config.json, 32 here")
    result = eval_checkpoint(run_dir, "lrurec", "--set", "copy_bonus=true")
    assert result.failed_with("1 missing from the checkpoint (copy_scale)", "copy_bonus=False in its config.json, True here")


def test_rar_checkpoint_option(run_cli, damaged, data_dir, mirror):
    """rar loads its retriever's checkpoint before it builds any LLM: a damaged one fails first, clearly."""
    run = damaged(lambda run: (run / "model.safetensors").write_bytes(b"\0" * 16))
    rar = ["eval", "--dataset", "inspired", "--recommender", "rar", "--set", "llm.model=smollm2-135m", "--limit",
           "5", "--quiet", "--data-dir", data_dir, "--mirror", mirror]
    result = run_cli(*rar, "--set", "retriever=lrurec", "--set", f"checkpoint={run}",
                     *set_options(NETWORK, "retriever_options."))
    assert result.failed_with(f"{run / 'model.safetensors'}: not a complete safetensors file")
    result = run_cli(*rar, "--set", "retriever=lrurec-text", "--checkpoint", run.parent / "nope")
    assert result.failed_with(f"{run.parent / 'nope'}: no such folder")


def test_align_checkpoint(run_cli, run_dir, damaged, data_dir, mirror, tmp_path):
    base = ["align", "--dataset", "inspired", "--method", "nll", "--out", tmp_path / "aligned", "--quiet",
            "--data-dir", data_dir, "--mirror", mirror]
    assert run_cli(*base, "--checkpoint", tmp_path / "nope").failed_with(f"{tmp_path / 'nope'}: no such folder")
    run = damaged(lambda run: (run / "config.json").write_text("not json"))
    assert run_cli(*base, "--checkpoint", run).failed_with(f"{run / 'config.json'}: not valid JSON")
    assert run_cli(*base, "--checkpoint", run_dir, "--retriever", "lrurec-text").failed_with(
        f"{run_dir} was trained as 'lrurec'", "not as 'lrurec-text'")
    assert not (tmp_path / "aligned").exists()


def test_run_options_and_read_run_config_raise_checkpoint_errors(run_dir, tmp_path):
    """The functions every loader goes through (align, rar, chat, eval): one place, one error type."""
    assert run_options(run_dir)[0] == "lrurec"
    assert read_run_config(run_dir)["recommender"] == "lrurec"
    for path in (tmp_path / "nope", tmp_path, run_dir / "config.json"):
        with pytest.raises(CheckpointError, match=str(path)):
            run_options(path)


def test_a_damaged_training_state_is_not_resumed(run_cli, damaged, data_dir, mirror):
    """`convrec train` resumes from state.pt: a damaged one says so, and how to start over."""
    run = damaged(lambda run: (run / "state.pt").write_bytes((run / "state.pt").read_bytes()[:1000]))
    result = run_cli("train", "--dataset", "inspired", "--recommender", "lrurec", "--out", run, "--quiet",
                     *set_options(FAST), "--data-dir", data_dir, "--mirror", mirror)
    assert result.failed_with(f"{run / 'state.pt'}: the saved training state cannot be read",
                              f"delete {run / 'state.pt'}")


def test_text_match_without_text_init_is_an_option_error(run_cli, data_dir, mirror, tmp_path):
    """lrurec-text turns text_match on by default; without text_init it cannot work: say so before training."""
    result = run_cli("train", "--dataset", "inspired", "--recommender", "lrurec-text", "--out", tmp_path / "run",
                     "--set", "text_init=false", "--quiet", "--data-dir", data_dir, "--mirror", mirror)
    assert result.failed_with("recommender 'lrurec-text', option 'text_match'", "text_init=true")
    assert not (tmp_path / "run").exists()
