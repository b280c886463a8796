"""``convrec simulate`` and ``convrec simulate-validity`` from the command line: a real run writes its result
and transcripts, and bad input is one clear line (exit 2), never a traceback."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def data(mirror, data_dir) -> list[str]:
    return ["--data-dir", str(data_dir), "--mirror", str(mirror)]


def test_a_run_writes_its_result_and_transcripts_beside_it(run_cli, redial, data, tmp_path):
    out = tmp_path / "sim.json"
    run = run_cli("simulate", "--dataset", "redial", "--recommender", "itemknn", "--episodes", "6", "--turns", "2",
                  "--json", out, "--quiet", *data)
    assert run.rc == 0, run.err
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["n_episodes"] == 6 and result["turns"] == 2 and result["system"] == "ranking"
    assert set(result["metrics"]) == set(result["stderr"])
    assert {"success", "success@1", "success@2", "recall@10", "turn_recall@10", "rejection_rate",
            "ask_share"} <= set(result["metrics"])
    assert result["transcripts"] == str(tmp_path / "sim.jsonl")
    assert len((tmp_path / "sim.jsonl").read_text(encoding="utf-8").splitlines()) == 7  # header + 6
    assert "success@2" in run.out


@pytest.mark.parametrize(("arguments", "fragments"), [
    (["--recommender", "nope"], ["unknown recommender 'nope'"]),
    (["--recommender", "itemknn", "--turns", "0"], ["--turns must be a positive integer"]),
    (["--recommender", "itemknn", "--episodes", "-3"], ["--episodes must be a positive integer"]),
    (["--recommender", "itemknn", "--system", "agent"], ["not an agent"]),
    (["--recommender", "rar", "--system", "chat"], ["no first-stage retriever"]),
    (["--recommender", "itemknn", "--user-set", "close_min_shared=0"], ["--user-set close_min_shared"]),
    (["--recommender", "itemknn", "--user-set", "mood=grumpy"], ["--user-set mood"]),
    (["--recommender", "itemknn", "--seed", "-1"], ["--seed must be a non-negative integer"]),
    (["--recommender", "itemknn", "--json", "/proc/no/such.json"], ["--json /proc/no/such.json"]),
])
def test_bad_arguments_fail_before_any_work(run_cli, arguments, fragments):
    run = run_cli("simulate", "--dataset", "redial", *arguments)
    assert run.failed_with(*fragments), run.err


def test_bad_input_found_later_is_one_clear_line(run_cli, redial, data, tmp_path):
    not_ours = tmp_path / "notes.jsonl"
    not_ours.write_text('{"note": "mine"}\n{"note": "no newline yet"}', encoding="utf-8")
    run = run_cli("simulate", "--dataset", "redial", "--recommender", "itemknn", "--episodes", "2",
                  "--transcripts", not_ours, "--quiet", *data)
    assert run.failed_with("not a convrec simulate transcripts file"), run.err
    # left as it was: its last line, with no newline, is not cut as a line a kill left half-written
    assert not_ours.read_text(encoding="utf-8") == '{"note": "mine"}\n{"note": "no newline yet"}'
    run = run_cli("simulate", "--dataset", "redial", "--recommender", "itemknn", "--set", "neighbours=3",
                  "--episodes", "2", "--quiet", *data)
    assert run.failed_with("recommender 'itemknn', option 'neighbours'"), run.err


def test_validity_needs_seeker_feedback(run_cli, mirror, data_dir):
    run = run_cli("simulate-validity", "--dataset", "opendialkg-books", "--data-dir", data_dir, "--mirror", mirror)
    assert run.failed_with("no labelled suggestions"), run.err
