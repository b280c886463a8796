"""The side-by-side plot of alignment runs reads real history files and says which file is wrong."""

from __future__ import annotations

import json

import pytest

from convrec.align.report import cost_markdown, load_history, plot_runs
from convrec.io import DataError


def history(offset: float, llm: bool) -> list[dict]:
    rounds = [{"round": 0, "valid_ndcg_at_10": 0.13, "valid_recall_at_10": 0.23, "valid_recall_at_50": 0.49}]
    for n in (1, 2):
        rounds.append({"round": n, "valid_ndcg_at_10": 0.13 + offset * n, "valid_recall_at_10": 0.23,
                       "valid_recall_at_50": 0.49, "hit_set_reward": 0.5 if llm else 0.0,
                       "hit_set_retriever_reward": 0.7 if llm else 0.0})
    return rounds


def test_runs_are_plotted_side_by_side(tmp_path):
    for name, offset, llm in (("run-dpo", 0.01, True), ("run-nll", 0.0, False)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "history.json").write_text(json.dumps(history(offset, llm)))
    histories = {name: load_history(tmp_path / name) for name in ("run-dpo", "run-nll")}
    assert [r["round"] for r in histories["run-dpo"]] == [0, 1, 2]
    out = tmp_path / "curves.png"
    plot_runs(histories, out, "test")
    assert out.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(ValueError, match="no runs"):
        plot_runs({}, out)


def test_a_dir_without_history_or_with_a_bad_one_is_named(tmp_path):
    with pytest.raises(DataError, match="not an alignment run dir"):
        load_history(tmp_path)
    (tmp_path / "history.json").write_text('{"round": 1}')
    with pytest.raises(DataError, match="history.json.*list of rounds"):
        load_history(tmp_path)


def test_cost_table_has_a_row_per_trained_round_with_seconds_per_model_call():
    cold = {"round": 1, "contexts": 32, "seconds": 150.0, "phase_seconds": {"llm_feedback": 148.0},
            "llm": {"sets": 128, "sets_with_target": 23, "item_scores": 188, "llm_requests": 188,
                    "cache_hits": 117, "llm_calls": 71}}
    cached = {"round": 2, "contexts": 32, "seconds": 1.5, "phase_seconds": {"llm_feedback": 0.5},
              "llm": {"sets": 128, "sets_with_target": 24, "item_scores": 202, "llm_requests": 202,
                      "cache_hits": 202, "llm_calls": 0}}
    table = cost_markdown({"dpo": [{"round": 0}, cold, cached]}).splitlines()
    assert len(table) == 4  # header, rule, rounds 1 and 2 (round 0 costs nothing)
    assert table[0].split(" | ")[-1] == "s / model call |"
    assert table[2] == "| dpo | 1 | 32 | 128 | 23 | 188 | 188 | 117 | 71 | 150 | 148 | 2.0 | 2.08 |"
    assert table[3].endswith("| 202 | 0 | 2 | 0 | 1.0 | - |")
