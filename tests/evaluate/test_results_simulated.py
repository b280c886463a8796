"""``convrec results`` on a simulated (interactive) experiment, through the real CLI on ReDial: the JSON and the
tables hold the interactive metrics, the paired differences are the per-episode differences recomputed from the
two rows' transcripts (on the episodes both played), and a killed run resumes every row where it stopped."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from convrec.cli.main import main
from convrec.evaluate.harness import without_nan

TURNS = 3
EXPERIMENT = f"""
name = "sim"
datasets = ["redial"]
protocols = ["standard"]
baseline = "itemknn"

[simulation]
turns = {TURNS}
episodes = 20

[[recommenders]]
name = "popularity"

[[recommenders]]
name = "itemknn"

[[recommenders]]
name = "popularity"
label = "popularity on 10"
episodes = 10
"""


def run_results(config: Path, out: Path, data_dir: Path, mirror: Path) -> dict:
    code = main(["results", "--config", str(config), "--out", str(out), "--quiet", "--data-dir", str(data_dir),
                 "--mirror", str(mirror)])
    assert code == 0
    return json.loads((out / "sim.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ran(tmp_path_factory, data_dir, mirror) -> tuple[Path, dict]:
    """The experiment run once: its output folder and JSON."""
    folder = tmp_path_factory.mktemp("simulated")
    config = folder / "sim.toml"
    config.write_text(EXPERIMENT, encoding="utf-8")
    return folder, run_results(config, folder / "out", data_dir, mirror)


def rows(payload: dict) -> dict[str, dict]:
    return {r["recommender"]: r for r in payload["results"]}


def episodes(path: Path) -> dict[str, dict]:
    """The episode records of a transcripts file by episode id (line 1 is its header)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {record["episode_id"]: record for record in map(json.loads, lines[1:])}


def per_episode(record: dict) -> dict[str, float]:
    """A few interactive metrics of one episode, straight from its record (not through convrec's metrics)."""
    system = [t for t in record["turns"] if t["role"] == "system"]
    turn = record["success_turn"]
    return {"success": float(turn is not None and turn <= TURNS), "success@1": float(turn == 1),
            "recall@10": max((t["recall"]["recall@10"] for t in system if t["recall"]), default=0.0)}


def transcripts(folder: Path, label: str) -> Path:
    return folder / "out" / "sim" / "transcripts" / f"redial-{label}-standard.jsonl"


def test_the_json_and_tables_hold_the_interactive_metrics(ran):
    folder, payload = ran
    assert payload["experiment"]["simulation"]["turns"] == TURNS and payload["experiment"]["limit"] is None
    by_label = rows(payload)
    assert set(by_label) == {"popularity", "itemknn", "popularity on 10"}
    assert [by_label[label]["n_episodes"] for label in ("popularity", "itemknn", "popularity on 10")] == [20, 20, 10]
    columns = ["success@1", "success", "recall@10", "turn_recall@10", "rejection_rate"]  # the default columns
    assert payload["experiment"]["columns"] == columns
    for result in payload["results"]:
        assert {*columns, "success@3", "ask_share"} <= set(result["metrics"]) <= set(result["stderr"])
        assert result["user"] == "rule" and result["turns"] == TURNS and result["system"] == "ranking"
    markdown = (folder / "out" / "sim.md").read_text(encoding="utf-8")
    assert "| dataset | protocol | recommender | n | " + " | ".join(columns) + " |" in markdown
    assert "| redial | standard | `popularity on 10` | 10 | " in markdown
    assert "Paired differences from `itemknn` on the episodes both rows played" in markdown
    assert (folder / "out" / "sim.png").read_bytes()[:4] == b"\x89PNG"


def test_paired_differences_are_per_episode_differences_from_the_two_transcripts(ran):
    folder, payload = ran
    base = episodes(transcripts(folder, "itemknn"))
    other = episodes(transcripts(folder, "popularity"))
    paired = rows(payload)["popularity"]["paired"]
    assert paired["baseline"] == "itemknn" and paired["n"] == 20 == len(base) == len(other)
    assert "paired" not in rows(payload)["itemknn"]
    differences = {name: np.array([per_episode(other[e])[name] - per_episode(base[e])[name] for e in base])
                   for name in ("success", "success@1", "recall@10")}
    assert any(d.any() for d in differences.values())  # the two rows differ somewhere: something to check
    for name, diff in differences.items():
        got = paired["metrics"][name]
        assert got["diff"] == pytest.approx(diff.mean(), abs=1e-12) and got["n"] == 20
        assert got["stderr"] == pytest.approx(diff.std(ddof=1) / np.sqrt(20), abs=1e-12)

    def rejection_rate(records: list[dict]) -> float:  # pooled: rejections over recommending turns
        rejected = sum(t.get("act") == "reject" for r in records for t in r["turns"])
        return rejected / sum(t.get("action") == "recommend" for r in records for t in r["turns"])

    assert paired["metrics"]["rejection_rate"]["diff"] == pytest.approx(
        rejection_rate(list(other.values())) - rejection_rate(list(base.values())))


def test_a_row_on_fewer_episodes_is_paired_on_the_ones_it_shares(ran):
    folder, payload = ran
    base = episodes(transcripts(folder, "itemknn"))
    short = episodes(transcripts(folder, "popularity-on-10"))
    full = episodes(transcripts(folder, "popularity"))
    assert len(short) == 10 and set(short) < set(base)  # the first 10 of the same seeded order
    paired = rows(payload)["popularity on 10"]["paired"]
    assert paired["n"] == 10 and paired["metrics"]["success"]["n"] == 10
    diff = np.array([per_episode(short[e])["success"] - per_episode(base[e])["success"] for e in short])
    assert paired["metrics"]["success"]["diff"] == pytest.approx(diff.mean(), abs=1e-12)
    # the same episodes play the same whichever row plays them: the 10 are the full popularity row's 10
    assert all(short[e]["success_turn"] == full[e]["success_turn"] for e in short)


def test_a_killed_run_resumes_every_row_where_it_stopped(ran, tmp_path, data_dir, mirror):
    folder, first = ran
    shutil.copytree(folder / "out", tmp_path / "out")
    cut = tmp_path / "out" / "sim" / "transcripts" / "redial-itemknn-standard.jsonl"
    lines = cut.read_bytes().splitlines(keepends=True)
    cut.write_bytes(b"".join(lines[:8]) + lines[8][: len(lines[8]) // 2])  # header, 7 episodes, half of one
    config = tmp_path / "sim.toml"
    config.write_text(EXPERIMENT, encoding="utf-8")
    again = run_results(config, tmp_path / "out", data_dir, mirror)
    runs = {label: (r["run"]["episodes_resumed"], r["run"]["episodes_played"]) for label, r in rows(again).items()}
    assert runs == {"itemknn": (7, 13), "popularity": (20, 0), "popularity on 10": (10, 0)}
    for label, result in rows(again).items():
        before = rows(first)[label]
        assert without_nan(result["metrics"]) == without_nan(before["metrics"])
        assert without_nan(result.get("paired")) == without_nan(before.get("paired"))


@pytest.mark.parametrize(("toml", "fragments"), [
    ('limit = 50\n[simulation]\nturns = 3\n', ["limit is not used by a simulated experiment"]),
    ('[[recommenders]]\nname = "popularity"\nepisodes = 10\n',
     ["recommenders entry 1 (popularity): episodes is for simulated experiments only"]),
    ('columns = ["success@4"]\n[simulation]\nturns = 3\n', ["unknown interactive metric(s) ['success@4']"]),
    ('[simulation]\nuser = "nobody"\n', ["unknown user simulator 'nobody'"]),
])
def test_settings_that_do_not_fit_a_simulated_experiment_are_one_clear_line(toml, fragments, run_cli, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text(toml, encoding="utf-8")
    run = run_cli("results", "--config", config, "--out", tmp_path / "out", "--quiet", "--data-dir",
                  tmp_path / "data", "--mirror", tmp_path / "no-mirror")
    assert run.failed_with("bad.toml", *fragments), run.err
    assert not (tmp_path / "out").exists()  # refused before any work
