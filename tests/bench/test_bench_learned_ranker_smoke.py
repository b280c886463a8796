"""Smoke test of bench/bench_learned_ranker.py on the 40-item test world (imported in the generic format): the
training worker and the per-turn worker run, and the report holds every stage."""

from __future__ import annotations

import json

import pytest
from test_bench_lrurec_smoke import load_script, positive

from convrec.cli.main import main as convrec_main
from convrec.data.dataset import write_dialogues_jsonl
from worlds import world

pytest.importorskip("lightgbm")


def test_bench_learned_ranker_reports_training_and_stages(tmp_path):
    w = world()
    catalog, dialogues, data_dir, run = (tmp_path / "catalog.jsonl", tmp_path / "dialogues.jsonl",
                                         tmp_path / "data", tmp_path / "run")
    w.catalog.write_jsonl(catalog)
    write_dialogues_jsonl(dialogues, [*w.train.dialogues, *w.valid.dialogues, *w.test.dialogues])
    assert convrec_main(["data", "import", "--name", "world", "--catalog", str(catalog), "--dialogues",
                         str(dialogues), "--data-dir", str(data_dir)]) == 0
    assert convrec_main(["train", "--dataset", "world", "--recommender", "learned-ranker", "--out", str(run), "-q",
                         "--set", 'retrievers={"popularity": {}, "itemknn": {}}', "--set", "per_retriever=10",
                         "--set", "min_leaf=5", "--set", "folds=3", "--data-dir", str(data_dir)]) == 0
    out = tmp_path / "bench.json"
    bench = load_script("bench_learned_ranker")
    assert bench.main(["--run", str(run), "--data-dir", str(data_dir), "--turns", "5", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert positive(report["train"]["train_seconds"]) and positive(report["train"]["train_peak_rss_mib"])
    assert report["train"]["validation_turns"] == 33
    assert len(report["turns"]["turns"]) == 5
    stages = report["per_stage_ms"]
    assert {"retrieval:popularity", "retrieval:itemknn", "features", "model", "second_stage", "total"} <= set(stages)
    assert stages["second_stage"]["median"] >= stages["model"]["median"]
    assert report["candidates"]["median"] >= 10
    assert "bench_learned_ranker.py" in report["command"]["command_line"]
