"""The measurement of ``analyze_sentiment`` against ReDial's questionnaires (``convrec.agent.sentiment_eval``):
the scores, the tuning protocol, and a real run on the whole test split."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from convrec.agent.sentiment import ItemSentiment, RuleOptions, RuleSentiment
from convrec.agent.sentiment_eval import (
    BinaryRule,
    binary_scores,
    labelled_items,
    main,
    rule_analyze,
    sample_items,
)
from convrec.catalog.vocabulary import MOVIES
from convrec.data.dataset import CRSDataset
from convrec.data.model import ItemFeedback


def test_binary_scores_by_hand():
    # 6 yes, 4 no; said yes to 5 of the yes and 2 of the no: tp 5, fn 1, fp 2, tn 2
    truth = [True] * 6 + [False] * 4
    said = [True] * 5 + [False] + [True] * 2 + [False] * 2
    groups = [f"d{i}" for i in range(10)]
    scores = binary_scores(groups, truth, said, bootstrap=200)
    assert scores.confusion == {"tp": 5, "fp": 2, "fn": 1, "tn": 2}
    assert scores.accuracy == pytest.approx(0.7)
    f1_yes, f1_no = 10 / 13, 4 / 7
    assert scores.f1_yes == pytest.approx(f1_yes, abs=1e-4) and scores.f1_no == pytest.approx(f1_no, abs=1e-4)
    assert scores.macro_f1 == pytest.approx((f1_yes + f1_no) / 2, abs=1e-4)
    assert 0.05 < scores.accuracy_se < 0.3 and scores.macro_f1_se > 0
    # the majority class scores 0 F1 on the other class: macro-F1 at most one half
    majority = binary_scores(groups, truth, [True] * 10, bootstrap=50)
    assert majority.f1_no == 0.0 and majority.macro_f1 == pytest.approx(0.75 / 2, abs=1e-4)


def test_the_bootstrap_resamples_dialogues_not_items():
    # two dialogues, each all right or all wrong: resampling dialogues gives a much larger error than the items would
    truth = [True] * 20
    said = [True] * 10 + [False] * 10
    by_dialogue = binary_scores(["a"] * 10 + ["b"] * 10, truth, said, bootstrap=500)
    by_item = binary_scores([str(i) for i in range(20)], truth, said, bootstrap=500)
    assert by_dialogue.accuracy_se > 2 * by_item.accuracy_se


def test_neutral_and_unknown_become_answers_as_the_tuned_rule_says():
    item = ItemSentiment(item_id="x", label="neutral", seen="unknown", score=0.0, confidence=0.0,
                         first_mentioned_by="recommender")
    assert BinaryRule(neutral_is_liked=True).liked(item) and not BinaryRule(neutral_is_liked=False).liked(item)
    rule = BinaryRule(unknown_seen={"seeker": True, "recommender": False, "unknown": True})
    assert not rule.seen(item)
    assert rule.seen(item.model_copy(update={"first_mentioned_by": "seeker"}))
    assert rule.seen(item.model_copy(update={"seen": "yes"}))


def test_the_questionnaire_is_a_label_never_a_feature(redial: CRSDataset):
    """The same dialogues with every answer flipped get the same predictions: only the labels change."""
    dialogues = [d for d in redial.split("valid").dialogues if d.has_roles and d.feedback][:60]
    flipped = [replace(d, feedback={k: ItemFeedback(liked=None if v.liked is None else not v.liked,
                                                    seen=None if v.seen is None else not v.seen)
                                    for k, v in d.feedback.items()}) for d in dialogues]
    analyze = rule_analyze(RuleSentiment(redial.catalog, MOVIES))
    original, changed = labelled_items(dialogues, analyze), labelled_items(flipped, analyze)
    assert len(original) == len(changed) > 100
    assert [r.predicted for r in original] == [r.predicted for r in changed]
    assert any(a.truth != b.truth for a, b in zip(original, changed, strict=True))


def test_the_llm_subset_is_seeded_and_can_be_stratified(redial: CRSDataset):
    rows = labelled_items(redial.split("valid").dialogues, rule_analyze(RuleSentiment(redial.catalog, MOVIES)))
    first, again = sample_items(rows, 40, seed=3, stratify=False), sample_items(rows, 40, seed=3, stratify=False)
    assert first == again and len(first) == 40
    assert sample_items(rows, 40, seed=4, stratify=False) != first
    balanced = sample_items(rows, 40, seed=3, stratify=True)
    assert sum(not r.truth.liked for r in balanced) == 20


def test_a_run_on_the_whole_redial_test_split(redial: CRSDataset, data_dir: Path, mirror: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]):
    out = tmp_path / "sentiment"
    assert main(["--dataset", "redial", "--split", "test", "--out", str(out), "--data-dir", str(data_dir),
                 "--mirror", str(mirror)]) == 0
    report = json.loads(out.with_name("sentiment.json").read_text())
    body = report["split_report"]
    # every questionnaire answer of the test split is scored (the counts the issue states)
    assert body["labels"]["liked"] == 5723 and body["labels"]["not_liked"] == 324
    assert body["labels"]["seen"] == 4479 and body["labels"]["not_seen"] == 2097
    assert body["rule"]["liked"]["n"] == 6047 and body["rule"]["seen"]["n"] == 6576
    # tuned on valid only, and the rule path is far above the majority class on both tasks
    assert report["tuning"]["split"] == "valid"
    for task in ("liked", "seen"):
        assert body["rule"][task]["macro_f1"] > body["majority"][task]["macro_f1"] + 0.15
    assert body["majority"]["liked"]["macro_f1"] < 0.5
    table = out.with_name("sentiment.md").read_text()
    assert "| rule path |" in table and "majority class" in table
    assert "| rule path |" in capsys.readouterr().out


def test_inspired_reports_acceptance(inspired: CRSDataset, data_dir: Path, mirror: Path, tmp_path: Path):
    out = tmp_path / "inspired"
    assert main(["--dataset", "inspired", "--split", "test", "--out", str(out), "--data-dir", str(data_dir),
                 "--mirror", str(mirror)]) == 0
    report = json.loads(out.with_name("inspired.json").read_text())
    acceptance = report["split_report"]["acceptance"]
    assert acceptance["items"] == 92 and len(acceptance["rejections"]) == 1
    assert report["tuning"]["note"]  # INSPIRED's valid split has no liked / seen labels: defaults, said so


@pytest.mark.parametrize("argv", [
    ["--split", "valid", "--tune-split", "valid"],
    ["--limit", "0"],
])
def test_bad_options_get_one_clear_line(argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    assert main([*argv, "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sentiment_eval: error:") and "Traceback" not in err


def test_rule_options_reject_nonsense():
    with pytest.raises(ValueError):
        RuleOptions(dislike_threshold=0)
