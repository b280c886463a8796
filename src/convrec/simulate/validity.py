"""Is the rule user like a real seeker? Measured on real dialogues, not assumed.

**The items judged.** Every item a real recommender suggested (first named in a recommender turn) that the
dataset labels: ReDial's questionnaire "liked" (did the seeker like, or want, the suggestion; about 7% are
"no" on test), INSPIRED's "accepted" (about 2 rejections in 190: an always-accept user scores ~99% accuracy
there, so its numbers are reported, not judged by).

**The user's goal.** In an episode the user's target is the suggested item itself, so it would accept it
trivially. Here the goal must come from elsewhere: the target is another item the seeker liked in the same
dialogue (leave one out; :func:`~convrec.simulate.goal.liked_items`: for INSPIRED, whose feedback labels only
acceptances, the items the seeker named count as liked), and the user accepts the suggestion when it is close enough to one of those, by the
rule of :class:`~convrec.simulate.user.UserOptions` (``close_min_shared`` categorical and people values in
common, :func:`~convrec.simulate.user.shared_values`). The threshold is chosen on the tuning split (balanced
accuracy), never on the split reported. Suggestions in dialogues where the seeker liked nothing else give the
user no goal and are counted, then left out.

**What is reported**, per threshold and for the chosen one:

- balanced accuracy (the mean of the recall of "liked" and of "not liked") of the user's accept decision,
  with a standard error from a bootstrap over dialogues; always-accept and exact-target-only both score 0.5;
- polarity agreement: the rule user's reply to the real recommender turn and the real seeker's next turn are
  both read by the agent's rule sentiment reader (:class:`~convrec.agent.sentiment.RuleSentiment`); the share
  of suggestions where they agree (liked / disliked), over those where the real seeker's turn has a polarity,
  overall and per real polarity (real seekers are mostly positive: their mean is the balanced agreement);
- self-consistency: how often that reader reads the rule user's reply as the decision the user made (what a
  system that reads the text, HARPO, receives).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from convrec.agent.domain import DomainAdapter
from convrec.agent.sentiment import RuleSentiment
from convrec.data.dataset import CRSDataset
from convrec.data.model import Dialogue, ItemFeedback, Turn
from convrec.errors import ConfigError, DataError
from convrec.simulate.goal import Goal, episode_seed, liked_items, preferences
from convrec.simulate.turns import SystemTurn
from convrec.simulate.user import RuleUser, UserOptions, shared_values

THRESHOLDS = (1, 2, 3, 4, 5)
BOOTSTRAP = 1000


@dataclass(frozen=True)
class Suggestion:
    """An item a real recommender suggested at ``turn_index``, the seeker's label, the other items the seeker
    liked in the dialogue, and the most values the item shares with one of them."""

    dialogue: Dialogue
    turn_index: int
    item: str
    liked: bool
    others: tuple[str, ...]
    max_shared: int


def _label(mark: ItemFeedback | None) -> bool | None:
    if mark is None:
        return None
    return mark.liked if mark.liked is not None else mark.accepted


def suggestions(dialogues: Sequence[Dialogue], adapter: DomainAdapter) -> tuple[list[Suggestion], int]:
    """The labelled suggestions with a goal (see the module docstring), and how many had none."""
    found, without_goal = [], 0
    for dialogue in dialogues:
        if not dialogue.has_roles or not dialogue.feedback:
            continue
        liked = liked_items(dialogue)
        named: set[str] = set()
        for index, turn in enumerate(dialogue.turns):
            for item in turn.items if turn.role == "recommender" else ():
                label = _label(dialogue.feedback.get(item))
                if item in named or label is None:
                    continue
                others = tuple(i for i in liked if i != item)
                if not others:
                    without_goal += 1
                    continue
                shared = max(shared_values(adapter, other, item) for other in others)
                found.append(Suggestion(dialogue, index, item, bool(label), others, shared))
            named.update(turn.items)
    return found, without_goal


def balanced_accuracy(groups: Sequence[str], truth: Sequence[bool], predicted: Sequence[bool],
                      seed: int = 0, bootstrap: int = BOOTSTRAP) -> dict[str, Any]:
    """Balanced accuracy, its standard error over ``bootstrap`` resamples of the groups (dialogues), and the
    confusion counts ("liked" is the positive class). Undefined (None) when one class is missing."""
    names = sorted(set(groups))
    index = {name: i for i, name in enumerate(names)}
    counts = np.zeros((len(names), 4))  # tp, fn, tn, fp per dialogue
    for group, yes, said_yes in zip(groups, truth, predicted, strict=True):
        counts[index[group], (0 if said_yes else 1) if yes else (3 if said_yes else 2)] += 1

    def score(table: np.ndarray) -> np.ndarray:
        tp, fn, tn, fp = (table[..., i] for i in range(4))
        with np.errstate(invalid="ignore", divide="ignore"):
            return (tp / (tp + fn) + tn / (tn + fp)) / 2

    total = counts.sum(axis=0)
    value = float(score(total))
    rng = np.random.default_rng(seed)
    weights = np.stack([np.bincount(row, minlength=len(names))
                        for row in rng.integers(0, len(names), size=(bootstrap, len(names)))])
    draws = score(weights @ counts)
    draws = draws[~np.isnan(draws)]
    tp, fn, tn, fp = (int(v) for v in total)
    return {"balanced_accuracy": None if np.isnan(value) else round(value, 4),
            "stderr": round(float(draws.std(ddof=1)), 4) if len(draws) > 1 else None,
            "n": len(truth), "positives": int(sum(truth)), "accuracy": round((tp + tn) / max(len(truth), 1), 4),
            "confusion": {"tp": tp, "fn": fn, "tn": tn, "fp": fp}}


def accept_scores(rows: Sequence[Suggestion], threshold: int, seed: int = 0) -> dict[str, Any]:
    return balanced_accuracy([r.dialogue.dialogue_id for r in rows], [r.liked for r in rows],
                             [r.max_shared >= threshold for r in rows], seed)


def choose_threshold(rows: Sequence[Suggestion], seed: int = 0) -> tuple[int, dict[int, Any]]:
    """The threshold with the best balanced accuracy on ``rows`` (ties: the smaller), and every threshold's."""
    scores = {k: accept_scores(rows, k, seed) for k in THRESHOLDS}
    defined = {k: s["balanced_accuracy"] for k, s in scores.items() if s["balanced_accuracy"] is not None}
    if not defined:
        raise ConfigError("the tuning split's labels hold one class only: the threshold cannot be chosen there",
                          hint="choose it on a dataset with both labels (ReDial) and pass --close-min-shared")
    return max(defined, key=lambda k: (defined[k], -k)), scores


def polarity(rows: Sequence[Suggestion], adapter: DomainAdapter, threshold: int, seed: int = 0) -> dict[str, Any]:
    """Polarity agreement and self-consistency of the rule user's replies (see the module docstring). Real
    seekers are mostly positive, so the agreement is also given per real polarity, and their mean."""
    reader = RuleSentiment(adapter.catalog, adapter.vocabulary)
    options = UserOptions(close_min_shared=threshold)
    agree = {"liked": 0, "disliked": 0}
    judged = {"liked": 0, "disliked": 0}
    consistent = sim_neutral = 0
    for row in rows:
        turns = row.dialogue.turns
        after = row.turn_index + 1
        reply = _rule_reply(row, adapter, options, seed)
        simulated = reader.analyze([*turns[:after], Turn("seeker", reply.text)]).get(row.item)
        sim_label = simulated.label if simulated is not None else "neutral"
        consistent += sim_label == ("liked" if reply.act == "accept" else "disliked")
        sim_neutral += sim_label == "neutral"
        if after < len(turns) and turns[after].role == "seeker":
            real = reader.analyze(turns[: after + 1]).get(row.item)
            if real is not None and real.label != "neutral":
                judged[real.label] += 1
                agree[real.label] += real.label == sim_label
    n = sum(judged.values())
    per_class = {label: round(agree[label] / judged[label], 4) if judged[label] else None for label in judged}
    defined = [v for v in per_class.values() if v is not None]
    return {"agreement": round(sum(agree.values()) / n, 4) if n else None, "n": n, "of": len(rows),
            "per_real_polarity": per_class, "n_per_real_polarity": judged,
            "balanced_agreement": round(sum(defined) / len(defined), 4) if len(defined) == 2 else None,
            "self_consistency": round(consistent / len(rows), 4) if rows else None,
            "rule_reply_read_neutral": sim_neutral}


def _rule_reply(row: Suggestion, adapter: DomainAdapter, options: UserOptions, seed: int):
    """The rule user's reply to the real recommender turn, its target the liked item closest to the suggestion."""
    target = max(row.others, key=lambda other: shared_values(adapter, other, row.item))
    episode = f"{row.dialogue.dialogue_id}:{row.turn_index}:{row.item}"
    goal = Goal(episode_id=episode, dialogue_id=row.dialogue.dialogue_id, turn_index=row.turn_index, target=target,
                history=tuple(i for i in row.others if i != target),
                preferences=preferences(adapter, target, random.Random(episode_seed(seed, episode))))
    said = row.dialogue.turns[row.turn_index]
    user = RuleUser(goal, adapter, options, seed)
    return user.respond(row.dialogue.turns[: row.turn_index + 1], SystemTurn("recommend", said.text, (row.item,)))


def validity_report(dataset: CRSDataset, split: str = "test", tune_split: str = "valid",
                    close_min_shared: int | None = None, seed: int = 0) -> dict[str, Any]:
    """The whole report (see the module docstring); ``close_min_shared`` fixes the threshold instead of tuning."""
    adapter = DomainAdapter.of(dataset.catalog, dataset.name)
    rows, without_goal = suggestions(dataset.split(split).dialogues, adapter)
    if not rows:
        raise DataError(f"dataset {dataset.name!r} has no labelled suggestions in its {split} split (the rule user's "
                        "validity needs seeker feedback: ReDial's 'liked', INSPIRED's 'accepted')")
    tuning = None
    if close_min_shared is None:
        tune_rows, _ = suggestions(dataset.split(tune_split).dialogues, adapter)
        close_min_shared, tune_scores = choose_threshold(tune_rows, seed)
        tuning = {"split": tune_split, "n": len(tune_rows), "scores": tune_scores}
    per_threshold = {k: accept_scores(rows, k, seed) for k in THRESHOLDS}
    chosen = per_threshold.get(close_min_shared) or accept_scores(rows, close_min_shared, seed)
    agreement = polarity(rows, adapter, close_min_shared, seed)
    summary = {
        "dataset": dataset.name, "split": split, "labels": "liked" if _label_kind(rows) == "liked" else "accepted",
        "suggestions": len(rows), "liked": sum(r.liked for r in rows), "without_goal": without_goal,
        "close_min_shared": close_min_shared, "chosen_on": tune_split if tuning else "given",
        "balanced_accuracy": chosen["balanced_accuracy"], "stderr": chosen["stderr"],
        "accuracy": chosen["accuracy"], "always_accept_accuracy": round(sum(r.liked for r in rows) / len(rows), 4),
        "polarity_agreement": agreement["agreement"], "polarity_balanced_agreement": agreement["balanced_agreement"],
        "polarity_n": agreement["n"],
        "self_consistency": agreement["self_consistency"],
    }
    return {"summary": summary, "per_threshold": per_threshold, "tuning": tuning, "polarity": agreement,
            "reference": "always-accept and exact-target-only users both have balanced accuracy 0.5"}


def _label_kind(rows: Sequence[Suggestion]) -> str:
    mark = rows[0].dialogue.feedback[rows[0].item]
    return "liked" if mark.liked is not None else "accepted"
