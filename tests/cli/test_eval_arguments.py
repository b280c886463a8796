"""``convrec eval`` and ``convrec results``: every bad argument or experiment file is one clear line and exit 2,
found before any work (no dataset loaded, nothing written), and a metric that is undefined is written as
JSON ``null``, never as a bare ``NaN`` that is not JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convrec.catalog.items import Catalog, Item
from convrec.cli import eval_cmd
from convrec.data.dataset import Conversion, save_processed
from convrec.data.model import Dialogue, Turn
from convrec.evaluate.harness import without_nan


@pytest.fixture
def inspired_args(inspired, data_dir: Path, mirror: Path) -> list[str]:
    """The data options that find the session's INSPIRED (built once per session by the fixture)."""
    return ["--data-dir", str(data_dir), "--mirror", str(mirror), "--quiet"]


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading a dataset fails the test: the command had to refuse before doing any work."""

    def load_dataset(*args, **kwargs):
        raise AssertionError("the command loaded a dataset before checking its arguments")

    monkeypatch.setattr(eval_cmd, "load_dataset", load_dataset)


def strict_json(text: str):
    """json.loads that refuses NaN and Infinity, as JSON itself (and every strict parser) does."""

    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_unknown_recommender_is_a_clear_error(run_cli, inspired_args, no_work):
    result = run_cli("eval", "--dataset", "inspired", "--recommender", "nosuch", *inspired_args)
    assert result.failed_with("unknown recommender 'nosuch'", "choose one of", "popularity")


def test_rar_with_a_checkpoint_needs_a_retriever_that_loads_one(run_cli, inspired_args, tmp_path):
    result = run_cli("eval", "--dataset", "inspired", "--recommender", "rar", "--checkpoint", tmp_path,
                     "--set", "retriever=ease", *inspired_args)
    assert result.failed_with("rar: checkpoint", "--set retriever=lrurec-text", "not 'ease'")


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_limit_must_be_positive(limit, run_cli, inspired_args, no_work, tmp_path):
    out = tmp_path / "out.json"
    result = run_cli("eval", "--dataset", "inspired", "--recommender", "popularity", "--limit", limit,
                     "--json", out, *inspired_args)
    assert result.failed_with(f"--limit must be a positive integer, got {limit}")
    assert not out.exists()


def test_seed_must_not_be_negative(run_cli, inspired_args, no_work):
    result = run_cli("eval", "--dataset", "inspired", "--recommender", "popularity", "--seed", "-1", *inspired_args)
    assert result.failed_with("--seed must be a non-negative integer, got -1")


def test_checkpoint_for_a_recommender_that_loads_none(run_cli, inspired_args, no_work, tmp_path):
    result = run_cli("eval", "--dataset", "inspired", "--recommender", "popularity", "--checkpoint", tmp_path,
                     *inspired_args)
    assert result.failed_with("--checkpoint: recommender 'popularity' does not load checkpoints", "lrurec")


def test_bad_set_option_is_a_clear_error(run_cli, inspired_args):
    assert run_cli("eval", "--dataset", "inspired", "--recommender", "ease", "--set", "l2",
                   *inspired_args).failed_with("--set expects KEY=VALUE, got 'l2'")
    assert run_cli("eval", "--dataset", "inspired", "--recommender", "ease", "--set", "l2=-5",
                   *inspired_args).failed_with("recommender 'ease', option 'l2'")


def test_a_split_without_samples_is_refused(run_cli, tmp_path):
    """An imported dataset may have no validation dialogues: a table of n=0 and nan is no evaluation."""
    items = [Item(f"b{n}", f"Book {n}") for n in range(3)]
    dialogues = [Dialogue(f"d{n}", "train" if n else "test", [Turn("seeker", "hi", ("b0",)),
                                                              Turn("recommender", "try", ("b1",))])
                 for n in range(3)]
    data_dir = tmp_path / "data"
    save_processed(data_dir / "processed" / "books", Conversion(Catalog(items, name="books"), dialogues),
                   {"name": "books", "fingerprint": "books"})
    result = run_cli("eval", "--dataset", "books", "--recommender", "popularity", "--split", "valid",
                     "--data-dir", data_dir, "--quiet")
    assert result.failed_with("dataset 'books' has no valid samples to evaluate")


def test_undefined_metrics_are_written_as_null(run_cli, inspired_args, tmp_path):
    """One sample is either a head or a tail target, so the other group's metrics are undefined, and INSPIRED has
    no questionnaire, so disliked_in@10 is too: the JSON must say null (it used to write a bare NaN, which no
    strict JSON parser reads)."""
    out = tmp_path / "out.json"
    result = run_cli("eval", "--dataset", "inspired", "--recommender", "popularity", "--limit", "1",
                     "--json", out, *inspired_args)
    assert result.rc == 0, result.err
    written = strict_json(out.read_text())
    assert written["n_samples"] == 1
    undefined = [name for name, value in written["metrics"].items() if value is None]
    assert "disliked_in@10" in undefined
    assert all(name.startswith(("head:", "tail:")) for name in undefined if name != "disliked_in@10")


def test_without_nan_replaces_every_non_finite_float():
    value = {"a": float("nan"), "b": [1.5, float("inf"), {"c": -float("inf")}], "d": "nan", "e": 2}
    assert without_nan(value) == {"a": None, "b": [1.5, None, {"c": None}], "d": "nan", "e": 2}


# -- convrec results: the experiment file and its arguments --------------------------------------------------

def results(run_cli, config: Path | None, out: Path, *extra: str, data_dir: Path | None = None):
    argv = ["results", "--out", out, "--quiet", "--data-dir", data_dir or out.parent / "data", *extra]
    return run_cli(*argv, *(["--config", config] if config else []))


@pytest.mark.parametrize(("text", "fragments"), [
    ('name = "mini"\ndatasets = ["inspired"\n', ["not valid TOML"]),
    ('seed = -1\n', ["field 'seed'", "greater than or equal to 0"]),
    ('limit = 0\n', ["field 'limit'"]),
    ('split = "tset"\n', ["field 'split'", "'valid' or 'test'"]),
    ('name = "../../elsewhere"\n', ["field 'name'"]),
    ('datasets = []\n', ["field 'datasets'"]),
    ('colums = ["recall@10"]\n', ["field 'colums'", "Extra inputs are not permitted"]),
    ('[[recommenders]]\nname = "popularity"\noptions = 3\n', ["field 'recommenders.0.options'"]),
])
def test_bad_experiment_file_names_file_and_field(text, fragments, run_cli, tmp_path, no_work):
    config = tmp_path / "exp.toml"
    config.write_text(text, encoding="utf-8")
    result = results(run_cli, config, tmp_path / "res")
    assert result.failed_with(str(config), *fragments)
    assert not (tmp_path / "res").exists()


def test_missing_or_unreadable_experiment_file(run_cli, tmp_path, no_work):
    missing = tmp_path / "nope.toml"
    assert results(run_cli, missing, tmp_path / "res").failed_with(f"{missing}: no such file")
    assert results(run_cli, tmp_path, tmp_path / "res").failed_with(f"{tmp_path}: is a directory, expected an experiment TOML file")
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'name = "caf\xe9"\n')
    assert results(run_cli, latin1, tmp_path / "res").failed_with(f"{latin1}: byte 0xe9", "not UTF-8")


def test_unknown_dataset_or_recommender_in_the_experiment_is_refused_before_any_run(run_cli, tmp_path, no_work):
    config = tmp_path / "exp.toml"
    config.write_text('name = "mini"\ndatasets = ["inspired", "nosuch"]\n[[recommenders]]\nname = "popularity"\n')
    assert results(run_cli, config, tmp_path / "res").failed_with(str(config), "dataset 'nosuch' is neither "
                                                                  "bundled nor imported")
    config.write_text('name = "mini"\ndatasets = ["inspired"]\n[[recommenders]]\nname = "popularity"\n'
                      '[[recommenders]]\nname = "popularty"\nlabel = "typo"\n')
    assert results(run_cli, config, tmp_path / "res").failed_with(
        str(config), "recommenders entry 2 (typo): unknown recommender 'popularty'")
    assert not (tmp_path / "res").exists()


def test_results_writes_valid_json_with_null_for_undefined_metrics(run_cli, inspired, data_dir, mirror, tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text('name = "mini"\ndatasets = ["inspired"]\nlimit = 1\nprotocols = ["standard"]\n'
                      '[[recommenders]]\nname = "popularity"\n')
    result = results(run_cli, config, tmp_path / "res", "--mirror", str(mirror), data_dir=data_dir)
    assert result.rc == 0, result.err
    [row] = strict_json((tmp_path / "res" / "mini.json").read_text())["results"]
    assert row["n_samples"] == 1 and None in row["metrics"].values()


def test_ray_options_need_a_recommender_that_asks_an_llm(run_cli, inspired_args, no_work):
    result = run_cli("eval", "--dataset", "inspired", "--recommender", "popularity", "--ray-address", "auto",
                     *inspired_args)
    assert result.failed_with("--ray-address: recommender 'popularity' asks no LLM (rar does)")
    result = run_cli("eval", "--dataset", "inspired", "--recommender", "rar", "--ray-address", "auto",
                     "--ray-workers", "0", *inspired_args)
    assert result.failed_with("--ray-workers must be at least 1, got 0")
