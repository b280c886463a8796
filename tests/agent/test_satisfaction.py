"""CHARM's satisfaction model: rows from recommender proposals with questionnaire answers, out-of-fold like
rates, and a model that must learn a signal the features carry (judged on held-out answers)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convrec.agent.quality import satisfaction as sat
from convrec.data.dataset import CRSDataset
from convrec.data.model import ContextView, Dialogue, ItemFeedback, Turn
from convrec.errors import ConfigError
from worlds import GENRES, catalog, cluster_ids

pytest.importorskip("lightgbm")


def proposal_dialogue(dialogue_id: str, split: str, liked: str, proposed: str, answer: bool,
                      seen: bool | None = None) -> Dialogue:
    return Dialogue(dialogue_id, split, [
        Turn("seeker", f"I liked {liked}. What else?", (liked,)),
        Turn("recommender", f"Try {proposed}.", (proposed,)),
        Turn("seeker", "Thanks!"),
    ], {proposed: ItemFeedback(liked=answer, seen=seen), liked: ItemFeedback(liked=True)})


def genre_world() -> CRSDataset:
    """The seeker likes a movie of one genre; a proposal of the same genre is liked, of another genre is not."""
    items = catalog()
    genres = list(GENRES)
    dialogues = []
    n = 0
    for split, repeats in (("train", 4), ("valid", 1), ("test", 1)):
        for _ in range(repeats):
            for g, genre in enumerate(genres):
                ids = cluster_ids(genre)
                other = cluster_ids(genres[(g + 1) % len(genres)])
                for k in range(1, 12):
                    dialogues.append(proposal_dialogue(f"{split}{n}", split, ids[0], ids[k], True))
                    dialogues.append(proposal_dialogue(f"{split}{n}b", split, ids[0], other[k], False))
                    n += 1
    return CRSDataset("genre-world", items, dialogues, {"fingerprint": "genre-world"})


def test_proposals_are_the_recommenders_items_with_an_answer():
    dialogue = proposal_dialogue("d", "test", "horror0", "horror1", False)
    dialogue.turns.append(Turn("recommender", "Or Horror Zero again", ("horror0",)))  # the seeker's, not new
    assert sat.proposals(dialogue) == [(1, "horror1", False)]


def test_training_like_rates_leave_out_the_rows_own_fold():
    dataset = genre_world()
    features = sat.SatisfactionFeatures.of(dataset)
    train = dataset.split("train")
    dialogue = next(d for d in train.dialogues if d.feedback.get(cluster_ids("horror")[1]) is not None)
    view = ContextView(dialogue.dialogue_id, tuple(dialogue.turns[:1]))
    fold = sat.fold_of(dialogue.dialogue_id)
    own = features.rows_of(view, [cluster_ids("horror")[1]], fold)[0, sat.NAMES.index("label_rate")]
    everyone = features.rows_of(view, [cluster_ids("horror")[1]])[0, sat.NAMES.index("label_rate")]
    liked, total = features.fold_counts[fold]
    position = dataset.catalog.index_of[cluster_ids("horror")[1]]
    assert total[position] < features.total[position]  # the fold's own answers are not counted
    assert own == pytest.approx(features.rate(liked, total)[position]) and everyone != own


def test_learns_that_a_shared_genre_pleases_and_says_so_on_test(tmp_path):
    report = sat.train_and_judge(genre_world(), tmp_path / "run")
    assert report["test_auc"] > 0.9  # the shared genre decides every answer; chance is 0.5
    assert report["test_references_auc"]["shared_categorical"][0] > 0.9
    assert report["rows"]["test"] == [33, 33]
    assert (tmp_path / "run" / "satisfaction.txt").is_file()
    assert json.loads((tmp_path / "run" / "report.json").read_text())["chosen"] in [g for g in sat.GRID]
    assert "ROC AUC" in (tmp_path / "run" / "report.md").read_text()


def test_auc_standard_error_resamples_dialogues():
    labels = np.asarray([1.0, 0.0] * 20)
    scores = np.asarray([0.9, 0.1] * 20)
    assert sat.auc_with_se(labels, scores, [f"d{i // 2}" for i in range(40)]) == (1.0, 0.0)
    auc, se = sat.auc_with_se(labels, np.random.default_rng(0).random(40), [f"d{i}" for i in range(40)])
    assert 0.2 < auc < 0.8 and se > 0.03


def test_a_split_without_answers_is_a_config_error():
    dataset = genre_world()
    dataset.dialogues = [d for d in dataset.dialogues if d.split != "valid"]
    with pytest.raises(ConfigError, match="no recommender proposals"):
        sat.SatisfactionFeatures.of(dataset).rows(dataset.split("valid"), training=False)


def novelty_world() -> CRSDataset:
    """Every proposal is liked; the seeker has seen the even-numbered movies of every genre, not the odd ones,
    and says nothing of seen for every third proposal (those rows carry no engagement label). A disliked
    proposal, new or not, is never an engagement row."""
    items = catalog()
    dialogues = []
    n = 0
    for split, repeats in (("train", 12), ("valid", 1), ("test", 1)):  # enough rows for 50-row leaves
        for _ in range(repeats):
            for genre in GENRES:
                ids = cluster_ids(genre)
                for k in range(1, 12):
                    seen = None if n % 3 == 0 else k % 2 == 0
                    dialogues.append(proposal_dialogue(f"{split}{n}", split, ids[0], ids[k], True, seen))
                    dialogues.append(proposal_dialogue(f"{split}{n}x", split, ids[0], ids[k], False, False))
                    n += 1
    return CRSDataset("novelty-world", items, dialogues, {"fingerprint": "novelty-world"})


def test_engagement_rows_are_liked_proposals_with_a_seen_answer():
    engagement = sat.DIMENSIONS["engagement"]
    new = proposal_dialogue("a", "test", "horror0", "horror1", True, seen=False)
    old = proposal_dialogue("b", "test", "horror0", "horror2", True, seen=True)
    silent = proposal_dialogue("c", "test", "horror0", "horror3", True, seen=None)
    disliked = proposal_dialogue("d", "test", "horror0", "horror4", False, seen=False)
    assert sat.proposals(new, engagement) == [(1, "horror1", True)]
    assert sat.proposals(old, engagement) == [(1, "horror2", False)]
    assert sat.proposals(silent, engagement) == [] and sat.proposals(disliked, engagement) == []
    assert sat.proposals(disliked) == [(1, "horror4", False)]  # satisfaction still reads it


def test_engagement_learns_which_movies_seekers_have_not_seen(tmp_path):
    report = sat.train_and_judge(novelty_world(), tmp_path / "run", "engagement")
    assert report["dimension"] == "engagement" and report["test_auc"] > 0.9
    assert report["test_references_auc"]["label_rate"][0] > 0.9  # the item's own new-to-seekers rate
    assert 0 < sum(report["rows"]["test"]) < len(GENRES) * 11  # silent and disliked answers are left out
    assert (tmp_path / "run" / "engagement.txt").is_file() and not (tmp_path / "run" / "satisfaction.txt").exists()
    assert "Engagement" in (tmp_path / "run" / "report.md").read_text()


def test_an_unknown_dimension_and_an_unwritable_run_dir_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown quality dimension 'novelty'"):
        sat.train_and_judge(genre_world(), tmp_path / "run", "novelty")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="cannot create the run directory"):
        sat.train_and_judge(genre_world(), blocker / "run")
