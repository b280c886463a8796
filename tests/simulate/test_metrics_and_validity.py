"""The interactive metrics on hand-made episodes with known answers, and the validity measures: balanced
accuracy on known confusions, the labelled suggestions of a dialogue, and the rule user's replies read back by
the sentiment reader on real ReDial dialogues."""

from __future__ import annotations

import math

import numpy as np
import pytest

import worlds
from convrec.agent.domain import DomainAdapter
from convrec.agent.sentiment import RuleSentiment
from convrec.data.model import Dialogue, ItemFeedback, Turn
from convrec.errors import ConfigError
from convrec.simulate.episode import EpisodeRecord, SystemTurnRecord, UserTurnRecord
from convrec.simulate.goal import Goal
from convrec.simulate.metrics import interactive_metrics, ratio
from convrec.simulate.user import UserOptions
from convrec.simulate.validity import (
    _rule_reply,
    accept_scores,
    balanced_accuracy,
    choose_threshold,
    polarity,
    suggestions,
)


def system(action: str = "recommend", r1: float = 0.0, r10: float = 0.0) -> SystemTurnRecord:
    recall = {"recall@1": r1, "recall@10": r10} if action == "recommend" else {}
    return SystemTurnRecord(action=action, text="...", slate=("x",) if action == "recommend" else (), recall=recall)


def user(act: str) -> UserTurnRecord:
    return UserTurnRecord(text="...", act=act)


def episode(order: int, turns: list, **outcome) -> EpisodeRecord:
    goal = Goal(episode_id=f"e{order}", dialogue_id="d", turn_index=1, target="x", history=(), preferences=())
    return EpisodeRecord(episode_id=f"e{order}", order=order, goal=goal, context_turns=1, turns=tuple(turns),
                         **outcome)


@pytest.fixture
def three_episodes() -> list[EpisodeRecord]:
    return [
        episode(0, [system(r10=1), user("reject"), system(r1=1, r10=1), user("accept")], success_turn=2),
        episode(1, [system("ask"), user("answer"), system(), user("reject"), system(r10=1), user("reject")]),
        episode(2, [system(), user("accept")], close_turn=1),
    ]


def test_interactive_metrics_on_known_episodes(three_episodes):
    means, errors, values = interactive_metrics(three_episodes, turns=3)
    expected = {"success@1": 0.0, "success@2": 1 / 3, "success@3": 1 / 3, "success": 1 / 3, "close_success": 1 / 3, "wrong_accept": 0.0,
                "turns_to_success": 2.0, "recall@1": 1 / 3, "recall@10": 2 / 3, "first_turn_recall@10": 0.5,
                "turn_recall@1": 1 / 5, "turn_recall@10": 3 / 5, "rejection_rate": 3 / 5, "ask_share": 1 / 6,
                "recommend_share": 5 / 6, "guarded_share": 0.0,
                "search_override_share": float("nan")}  # no turn searched
    assert means == pytest.approx(expected, nan_ok=True)
    assert set(errors) == set(means)
    assert errors["success"] == pytest.approx(np.std([1, 0, 0], ddof=1) / math.sqrt(3))
    assert math.isnan(values["first_turn_recall@10"][1])  # the first turn asked


def test_the_ratio_standard_error_treats_episodes_as_units():
    assert ratio(np.array([1.0, 1.0]), np.array([1.0, 1.0])) == (1.0, 0.0)
    mean, se = ratio(np.array([2.0, 0.0]), np.array([2.0, 2.0]))
    # residuals 2 - 0.5*2 = 1 and 0 - 1 = -1: sqrt(2 * 2 / 1) / 4
    assert (mean, se) == (0.5, pytest.approx(math.sqrt(4) / 4))
    assert all(math.isnan(v) for v in ratio(np.zeros(2), np.zeros(2)))


def test_balanced_accuracy_on_known_confusions():
    truth = [True] * 8 + [False] * 2
    always = balanced_accuracy(["a", "b"] * 5, truth, [True] * 10)
    assert always["balanced_accuracy"] == 0.5 and always["accuracy"] == 0.8
    mixed = balanced_accuracy(["a", "b"] * 5, truth, [True] * 6 + [False] * 2 + [False, True])
    assert mixed["balanced_accuracy"] == pytest.approx((6 / 8 + 1 / 2) / 2)
    assert mixed["confusion"] == {"tp": 6, "fn": 2, "tn": 1, "fp": 1}
    assert balanced_accuracy(["a"] * 3, [True] * 3, [True] * 3)["balanced_accuracy"] is None


def test_suggestions_are_first_proposals_with_a_label_and_another_liked_item():
    world = worlds.world(classics=True)
    adapter = DomainAdapter.of(world.catalog, "test-world")
    dialogue = Dialogue("d", "test", [
        Turn("seeker", "I loved The Conjuring", ("conjuring",)),
        Turn("recommender", "Try Insidious or Up", ("insidious", "up")),
        Turn("seeker", "Insidious sounds good. And Alien?", ("insidious", "alien")),
        Turn("recommender", "Alien is great", ("alien",)),  # named by the seeker first: not a suggestion
    ], feedback={"conjuring": ItemFeedback(liked=True), "insidious": ItemFeedback(liked=True),
                 "up": ItemFeedback(liked=False), "alien": ItemFeedback(liked=True)})
    rows, without_goal = suggestions([dialogue], adapter)
    assert [(r.item, r.liked) for r in rows] == [("insidious", True), ("up", False)]
    assert rows[0].others == ("conjuring", "alien") and without_goal == 0
    assert rows[0].max_shared >= 3 and rows[1].max_shared <= 1  # Insidious is The Conjuring's kin; Up is not
    assert accept_scores(rows, 3)["balanced_accuracy"] == 1.0


def test_the_rule_users_replies_read_back_as_it_decided_on_real_dialogues(redial):
    adapter = DomainAdapter.of(redial.catalog, "redial")
    rows, _ = suggestions(redial.split("valid").dialogues[:150], adapter)
    assert len(rows) > 100
    # the references: accepting everything, or only the exact target (never the suggestion), score 0.5
    assert accept_scores(rows, 0)["balanced_accuracy"] == 0.5
    assert accept_scores(rows, 10**6)["balanced_accuracy"] == 0.5
    threshold, scores = choose_threshold(rows)
    assert scores[threshold]["balanced_accuracy"] == max(s["balanced_accuracy"] for s in scores.values())
    agreement = polarity(rows, adapter, threshold)
    assert agreement["self_consistency"] >= 0.9  # accepts read as liked, rejections as disliked
    reader = RuleSentiment(redial.catalog, adapter.vocabulary)
    read_as_decided = 0
    for row in rows:  # the same measure, worked out here
        reply = _rule_reply(row, adapter, UserOptions(close_min_shared=threshold), 0)
        turns = [*row.dialogue.turns[: row.turn_index + 1], Turn("seeker", reply.text)]
        label = reader.analyze(turns).get(row.item).label
        read_as_decided += label == ("liked" if reply.act == "accept" else "disliked")
    assert read_as_decided < len(rows)  # the reader does not read every reply right: the measure can tell
    assert agreement["self_consistency"] == round(read_as_decided / len(rows), 4)
    assert agreement["n"] == sum(agreement["n_per_real_polarity"].values()) > 30
    only_liked = [r for r in rows if r.liked]
    with pytest.raises(ConfigError, match="one class only"):
        choose_threshold(only_liked)


def test_rank_agreement_orders_rows_per_dataset_and_leaves_out_small_groups():
    from convrec.simulate.metrics import rank_agreement

    def row(dataset, offline, success):
        return {"dataset": dataset, "protocol": "standard",
                "metrics": {"first_turn_recall@10": offline, "success": success}}

    rows = [row("redial", 0.1, 0.2), row("redial", 0.2, 0.5), row("redial", 0.3, 0.4),
            row("redial", float("nan"), 0.9), row("inspired", 0.1, 0.3), row("inspired", 0.2, 0.1)]
    agreement = rank_agreement(rows)
    assert set(agreement) == {"redial/standard"}  # inspired has 2 rows; the NaN row is skipped
    assert agreement["redial/standard"]["rows"] == 3
    assert agreement["redial/standard"]["kendall_tau"] == pytest.approx(1 / 3)  # 2 concordant pairs, 1 discordant
    assert agreement["redial/standard"]["spearman_rho"] == pytest.approx(0.5)
