"""The convrec command end to end, on the real INSPIRED files from the mirror."""

import json
import os
from pathlib import Path

import pytest

from convrec.cli.main import main
from convrec.evaluate.experiment import ResultsExperiment, load_experiment

ROOT = Path(__file__).resolve().parents[2]


def find_mirror() -> Path | None:
    candidate = ROOT.parent / "shared" / "data"
    if (candidate / "MANIFEST.tsv").exists():
        return candidate
    env = os.environ.get("CONVREC_DATA_MIRROR")
    return Path(env) if env else None


MIRROR = find_mirror()
needs_mirror = pytest.mark.skipif(MIRROR is None, reason="no data mirror (set CONVREC_DATA_MIRROR)")


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("data", "eval", "results", "recommenders"):
        assert command in out


def test_recommenders_lists_options(capsys):
    assert main(["recommenders"]) == 0
    out = capsys.readouterr().out
    assert "ease" in out and "l2" in out and "dense-text" in out


@needs_mirror
def test_eval_writes_json_with_protocol_and_metrics(tmp_path, capsys):
    out = tmp_path / "out.json"
    code = main(["eval", "--dataset", "inspired", "--recommender", "popularity", "--split", "test",
                 "--protocol", "standard", "--json", str(out), "--quiet",
                 "--data-dir", str(tmp_path / "data"), "--mirror", str(MIRROR)])
    assert code == 0
    record = json.loads(out.read_text())
    assert record["dataset"] == "inspired" and record["protocol"] == "standard" and record["split"] == "test"
    assert record["recommender"] == "popularity" and record["n_samples"] == 292
    for key in ("recall@10", "ndcg@10", "mrr", "recall@50"):
        assert 0.0 <= record["metrics"][key] <= 1.0 and key in record["stderr"]
    assert record["data_hash"] and record["config"]["name"] == "popularity"
    assert "recall@10" in capsys.readouterr().out


@needs_mirror
def test_eval_subset_is_labelled(tmp_path):
    out = tmp_path / "out.json"
    assert main(["eval", "--dataset", "inspired", "--recommender", "repeat", "--protocol", "both", "--limit", "50",
                 "--json", str(out), "--quiet", "--data-dir", str(tmp_path / "data"), "--mirror", str(MIRROR)]) == 0
    results = json.loads(out.read_text())["results"]
    assert [r["protocol"] for r in results] == ["standard", "dedup"]
    assert results[0]["n_samples"] == 50 and results[0]["subset"]["of"] == 292
    assert results[1]["n_samples"] <= 50


@needs_mirror
def test_results_reproduces_a_table_and_updates_readme(tmp_path):
    config = tmp_path / "exp.toml"
    config.write_text('name = "mini"\ndatasets = ["redial", "inspired"]\nbaseline = "popularity"\n'
                      'columns = ["recall@10", "ndcg@10", "coverage@10"]\n'
                      '[[recommenders]]\nname = "popularity"\n[[recommenders]]\nname = "repeat"\n')
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- results:mini:start -->\nold\n<!-- results:mini:end -->\nafter\n")
    code = main(["results", "--config", str(config), "--datasets", "inspired", "--out", str(tmp_path / "res"),
                 "--update-readme", str(readme), "--quiet", "--data-dir", str(tmp_path / "data"), "--mirror", str(MIRROR)])
    assert code == 0
    payload = json.loads((tmp_path / "res" / "mini.json").read_text())
    assert len(payload["results"]) == 4  # 2 recommenders x 2 protocols, on inspired only
    assert {r["dataset"] for r in payload["results"]} == {"inspired"}
    assert payload["experiment"]["datasets"] == ["inspired"]
    rows = {(r["recommender"], r["protocol"]): r for r in payload["results"]}
    assert "paired" not in rows[("popularity", "standard")]  # the baseline itself
    for protocol in ("standard", "dedup"):
        paired = rows[("repeat", protocol)]["paired"]
        assert paired["baseline"] == "popularity" and set(paired["metrics"]) == {"recall@10", "ndcg@10"}
        for metric in ("recall@10", "ndcg@10"):  # same samples: the mean difference is the difference of means
            means = [rows[(name, protocol)]["metrics"][metric] for name in ("repeat", "popularity")]
            assert paired["metrics"][metric]["diff"] == pytest.approx(means[0] - means[1], abs=1e-9)
            assert paired["metrics"][metric]["n"] == rows[("repeat", protocol)]["n_samples"]
    assert (tmp_path / "res" / "mini.png").read_bytes()[:4] == b"\x89PNG"
    text = readme.read_text()
    assert "old" not in text and "`repeat`" in text and text.endswith("after\n")
    assert "Paired differences from `popularity`" in text


def test_results_datasets_must_be_the_experiments(tmp_path, capsys):
    config = tmp_path / "exp.toml"
    config.write_text('name = "mini"\ndatasets = ["inspired"]\n[[recommenders]]\nname = "popularity"\n')
    code = main(["results", "--config", str(config), "--datasets", "redial", "--out", str(tmp_path / "res"),
                 "--quiet", "--data-dir", str(tmp_path / "data"), "--mirror", str(tmp_path / "no-mirror")])
    assert code == 2
    err = capsys.readouterr().err
    assert "exp.toml" in err and "--datasets redial" in err and "(inspired)" in err
    assert not (tmp_path / "res").exists()  # refused before any work


def test_bad_mirror_is_a_one_line_error(tmp_path, capsys):
    code = main(["data", "fetch", "opendialkg-books", "--mirror", str(tmp_path / "nowhere"),
                 "--data-dir", str(tmp_path / "data"), "--quiet"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("convrec: error:") and "dialogs.jsonl" in err and "\n" not in err


def test_import_then_eval_own_domain(tmp_path):
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("\n".join(json.dumps({"item_id": f"b{i}", "title": f"Book {i}"}) for i in range(5)) + "\n")
    dialogues = tmp_path / "dialogues.jsonl"
    rows = []
    for n in range(6):
        split = "test" if n >= 4 else "train"
        rows.append({"dialogue_id": f"d{n}", "split": split, "turns": [
            {"role": "seeker", "text": "a mystery please", "items": ["b0"]},
            {"role": "recommender", "text": "Book 1", "items": ["b1"]}]})
    dialogues.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    data_dir = tmp_path / "data"
    assert main(["data", "import", "--name", "mybooks", "--catalog", str(catalog), "--dialogues", str(dialogues),
                 "--data-dir", str(data_dir)]) == 0
    out = tmp_path / "out.json"
    assert main(["eval", "--dataset", "mybooks", "--recommender", "itemknn", "--json", str(out), "--quiet",
                 "--data-dir", str(data_dir)]) == 0
    assert json.loads(out.read_text())["metrics"]["recall@1"] == pytest.approx(1.0)


def test_import_reports_bad_line(tmp_path, capsys):
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text('{"item_id": "b0", "title": "Book 0"}\n')
    dialogues = tmp_path / "dialogues.jsonl"
    dialogues.write_text('{"dialogue_id": "d0", "split": "test", "turns": [{"role": "seeker", "text": "hi", '
                         '"items": ["zzz"]}]}\n')
    code = main(["data", "import", "--name", "x", "--catalog", str(catalog), "--dialogues", str(dialogues),
                 "--data-dir", str(tmp_path / "data")])
    assert code == 2
    err = capsys.readouterr().err
    assert "dialogues.jsonl line 1" in err and "'zzz' is not in the catalogue" in err


def test_shipped_config_matches_embedded_defaults():
    assert load_experiment(ROOT / "configs" / "baselines.toml") == ResultsExperiment()
