"""`convrec train --recommender learned-ranker`, `convrec eval --checkpoint` and the selection module, end to end
on an imported dataset (the 40-item test world written in the generic format)."""

from __future__ import annotations

import json

import pytest
from test_satisfaction import genre_world  # a world with questionnaire answers

from convrec.agent.quality import select
from convrec.cli.main import main
from convrec.data.dataset import write_dialogues_jsonl
from worlds import world

pytest.importorskip("lightgbm")


def test_train_eval_and_select_from_the_command_line(tmp_path, capsys):
    w = world()
    catalog, dialogues = tmp_path / "catalog.jsonl", tmp_path / "dialogues.jsonl"
    w.catalog.write_jsonl(catalog)
    write_dialogues_jsonl(dialogues, [*w.train.dialogues, *w.valid.dialogues, *w.test.dialogues])
    data_dir, run = tmp_path / "data", tmp_path / "run"
    assert main(["data", "import", "--name", "world", "--catalog", str(catalog), "--dialogues", str(dialogues),
                 "--data-dir", str(data_dir)]) == 0
    options = ["--set", 'retrievers={"popularity": {}, "itemknn": {}}', "--set", "trees=60", "--set", "leaves=7",
               "--set", "min_leaf=5", "--set", "per_retriever=10", "--set", "folds=3"]
    assert main(["train", "--dataset", "world", "--recommender", "learned-ranker", "--out", str(run), "-q",
                 *options, "--data-dir", str(data_dir)]) == 0
    assert (run / "ranker.txt").is_file() and json.loads((run / "summary.json").read_text())["dataset"] == "world"
    out = tmp_path / "eval.json"
    assert main(["eval", "--dataset", "world", "--recommender", "learned-ranker", "--checkpoint", str(run),
                 "--json", str(out), "--quiet", "--data-dir", str(data_dir)]) == 0
    assert json.loads(out.read_text())["metrics"]["recall@10"] > 0.8  # item-kNN's level; popularity is ~1/4
    capsys.readouterr()
    assert select.main([str(run)]) == 0
    report = json.loads((run / "selection.json").read_text())
    rows = {r["row"]: r for r in report["rows"]}
    assert {"every group", "without retrievers", "without itemknn's features", "retrievers only"} <= set(rows)
    # paired against popularity alone (~1/4 on this world): every learned row knows the clusters
    assert rows["every group"]["report"]["recall@10"]["difference"] > 0.5
    assert report["chosen"] in rows and report["first_retriever"] == "popularity"
    assert "Chosen" in (run / "selection.md").read_text()


def test_select_refuses_a_folder_that_is_not_a_run(tmp_path, capsys):
    with pytest.raises(SystemExit):
        select.main([str(tmp_path)])
    assert "is not a learned-ranker run (no config.json)" in capsys.readouterr().err


def test_charm_config_rows_are_valid_options_for_every_dataset():
    """configs/charm.toml names runs per dataset, also inside lists (also_train_on): every row's options, with
    {dataset} filled in everywhere, are valid for its recommender, and the paths say the dataset."""
    from pathlib import Path

    from convrec.cli.eval_cmd import with_dataset
    from convrec.evaluate.experiment import load_experiment
    from convrec.retrieval.base import recommender_class

    experiment = load_experiment(Path(__file__).resolve().parents[2] / "configs" / "charm.toml")
    for dataset in experiment.datasets:
        for entry in experiment.recommenders:
            options = with_dataset(entry.options, dataset)
            recommender_class(entry.name).config_class(**options)
            assert "{dataset}" not in json.dumps(options)
    assert with_dataset({"a": ["x-{dataset}", 3], "b": {"c": "{dataset}"}}, "books") == {
        "a": ["x-books", 3], "b": {"c": "books"}}


def test_train_harpo_from_the_command_line_then_eval_with_its_run(tmp_path, capsys):
    """A world with liked answers but no seen ones (imported through the generic format): the satisfaction model
    trains, the engagement step says why it is skipped, the weight network trains, and `convrec eval` uses the
    run; a second run keeps what is finished."""
    w = genre_world()
    catalog, dialogues = tmp_path / "catalog.jsonl", tmp_path / "dialogues.jsonl"
    w.catalog.write_jsonl(catalog)
    write_dialogues_jsonl(dialogues, w.dialogues)
    data_dir, run = tmp_path / "data", tmp_path / "harpo"
    assert main(["data", "import", "--name", "liked", "--catalog", str(catalog), "--dialogues", str(dialogues),
                 "--data-dir", str(data_dir)]) == 0
    train = ["train", "--dataset", "liked", "--recommender", "harpo", "--out", str(run), "-q",
             "--set", "retriever=popularity", "--data-dir", str(data_dir)]
    assert main(train) == 0
    steps = json.loads((run / "summary.json").read_text())["steps"]
    assert steps["satisfaction"].startswith("trained") and steps["engagement"].startswith("skipped")
    assert steps["weights"].startswith("trained") and (run / "weights" / "weights.pt").is_file()
    assert main(train) == 0  # again: the finished models are kept
    steps = json.loads((run / "summary.json").read_text())["steps"]
    assert steps["satisfaction"] == steps["weights"] == "finished before: kept"
    out = tmp_path / "eval.json"
    assert main(["eval", "--dataset", "liked", "--recommender", "harpo", "--set", "retriever=popularity",
                 "--set", f"quality.run={run}", "--json", str(out), "--quiet", "--data-dir", str(data_dir)]) == 0
    assert 0.0 <= json.loads(out.read_text())["metrics"]["recall@10"] <= 1.0
    capsys.readouterr()
    assert main([*train[:-4], "--set", "retreiver=popularity", "--data-dir", str(data_dir)]) != 0
    assert "unknown option(s) retreiver" in capsys.readouterr().err
