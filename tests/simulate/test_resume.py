"""Resuming: a run cut short (a line cut mid-write, a process killed mid-run) continues where it stopped,
nothing played twice or lost, and reports what an uninterrupted run reports; a transcripts file of other
settings, or one another run is writing, is refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from convrec.errors import ConfigError, OutputPathError
from convrec.evaluate.harness import without_nan
from convrec.retrieval.base import build_recommender
from convrec.simulate.runner import SimulationConfig, Transcripts, simulate, simulation_header
from convrec.simulate.system import RankingSystem


@pytest.fixture(scope="module")
def system(redial):
    recommender = build_recommender("itemknn", redial.catalog)
    recommender.fit(redial.split("train"), None)
    return RankingSystem(recommender, 5, "redial")


def records(path: Path) -> list[dict]:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(lines[0])["format"] == "convrec-simulate/1"
    return [json.loads(line) for line in lines[1:]]


def without_timing(record: dict) -> dict:
    drop = ("seconds", "system_seconds", "user_seconds")
    return {**{k: v for k, v in record.items() if k not in drop},
            "turns": [{k: v for k, v in t.items() if k != "seconds"} for t in record["turns"]]}


def test_a_line_cut_mid_write_is_played_again_and_nothing_else(redial, system, tmp_path):
    config = SimulationConfig(dataset="redial", recommender="itemknn", episodes=30, turns=5)
    fresh = simulate(config, redial, system, transcripts=tmp_path / "fresh.jsonl", progress=False)
    path = tmp_path / "cut.jsonl"
    simulate(config, redial, system, transcripts=path, progress=False)
    data = path.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: last_start + (len(data) - last_start) // 2])  # half of the last episode's line
    resumed = simulate(config, redial, system, transcripts=path, progress=False)
    assert (resumed["run"]["episodes_resumed"], resumed["run"]["episodes_played"]) == (29, 1)
    got = records(path)
    assert len(got) == 30 == len({r["episode_id"] for r in got})
    expected = {r["episode_id"]: without_timing(r) for r in records(tmp_path / "fresh.jsonl")}
    assert {r["episode_id"]: without_timing(r) for r in got} == expected
    assert fresh["metrics"]["success"] > 0  # something to lose
    assert without_nan(resumed["metrics"]) == without_nan(fresh["metrics"])
    assert without_nan(resumed["stderr"]) == without_nan(fresh["stderr"])
    # run once more: everything is there, nothing is played
    again = simulate(config, redial, system, transcripts=path, progress=False)
    assert again["run"]["episodes_played"] == 0 and len(records(path)) == 30


def test_a_killed_run_continues_where_it_stopped(redial, mirror, data_dir, tmp_path, run_cli):
    path = tmp_path / "killed.jsonl"
    argv = ["simulate", "--dataset", "redial", "--recommender", "popularity", "--episodes", "150", "--turns", "5",
            "--transcripts", str(path), "--data-dir", str(data_dir), "--mirror", str(mirror), "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "convrec", *argv], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if path.exists() and path.read_bytes().count(b"\n") >= 4:  # the header and 3 episodes at least
                break
            time.sleep(0.01)
        assert process.poll() is None, "the run ended before it could be killed"
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(30)
    played_before = len(records(path)) if path.read_bytes().endswith(b"\n") else None
    assert played_before is None or 3 <= played_before < 150
    assert run_cli(*argv).rc == 0
    got = records(path)
    assert len(got) == 150 == len({r["episode_id"] for r in got})
    fresh_path = tmp_path / "fresh.jsonl"
    assert run_cli(*argv[:argv.index("--transcripts") + 1], str(fresh_path), *argv[argv.index("--data-dir"):],
                   "--json", str(tmp_path / "fresh.json")).rc == 0
    expected = {r["episode_id"]: without_timing(r) for r in records(fresh_path)}
    assert {r["episode_id"]: without_timing(r) for r in got} == expected


def test_other_settings_are_refused_unless_restarted(redial, system, tmp_path):
    path = tmp_path / "t.jsonl"
    config = SimulationConfig(dataset="redial", recommender="itemknn", episodes=3, turns=2)
    simulate(config, redial, system, transcripts=path, progress=False)
    other = config.model_copy(update={"turns": 3})
    with pytest.raises(ConfigError, match="other settings \\(config differ\\)"):
        simulate(other, redial, system, transcripts=path, progress=False)
    restarted = simulate(other, redial, system, transcripts=path, restart=True, progress=False)
    assert restarted["run"]["episodes_played"] == 3 and len(records(path)) == 3
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["config"]["turns"] == 3
    # a header alone (a run that failed before its first episode) blocks nothing: there is nothing to lose
    path.write_text(path.read_text(encoding="utf-8").splitlines()[0] + "\n", encoding="utf-8")
    assert simulate(config, redial, system, transcripts=path, progress=False)["run"]["episodes_played"] == 3
    assert json.loads(path.read_text(encoding="utf-8").splitlines()[0])["config"]["turns"] == 2


def test_a_file_being_written_by_another_run_is_refused(redial, tmp_path):
    config = SimulationConfig(dataset="redial", recommender="popularity", episodes=3)
    header = simulation_header(config, redial, redial.split("test").samples[:3])
    first = Transcripts(tmp_path / "t.jsonl", header)
    first.open()
    try:
        with pytest.raises(OutputPathError, match="another convrec simulate is writing it"):
            Transcripts(tmp_path / "t.jsonl", header).open()
    finally:
        first.close()
    second = Transcripts(tmp_path / "t.jsonl", header)
    second.open()  # released with the first
    second.close()
