"""The learned second stage (CHARM's relevance): candidate features, LambdaMART trained on validation, runs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from convrec.agent.quality.features import FEATURE_GROUPS, NOT_MENTIONED, CandidateFeaturizer
from convrec.agent.quality.relevance import LearnedRanker, _expected, ranking_metrics, turn_groups
from convrec.agent.quality.select import group_of
from convrec.data.model import ContextView, Turn
from convrec.errors import ConfigError
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.runner import evaluate_scores
from convrec.retrieval.base import build_recommender, item_counts
from worlds import cluster_ids, world

pytest.importorskip("lightgbm")

FAST = {"trees": 60, "leaves": 7, "min_leaf": 5, "per_retriever": 10, "folds": 3}


@pytest.fixture(scope="module")
def shared_world():
    return world()


def fitted_retrievers(w, names=("popularity", "itemknn")):
    out = {}
    for name in names:
        retriever = build_recommender(name, w.catalog)
        retriever.fit(w.train, w.valid)
        out[name] = retriever
    return out


def recall_at_10(recommender, w, split="test") -> float:
    samples = getattr(w, split).samples
    values, _ = evaluate_scores(recommender.score, samples, w.catalog, Protocol.STANDARD, item_counts(w.train),
                                progress=False)
    return float(values["recall@10"].mean())


# ---- features ----------------------------------------------------------------------------------------------

def test_candidates_are_the_union_of_each_retrievers_top_list(shared_world):
    w = shared_world
    retrievers = fitted_retrievers(w)
    featurizer = CandidateFeaturizer(w.catalog, retrievers, item_counts(w.train), per_retriever=5)
    view = w.test.samples[0].view()
    scores = featurizer.scores([view])
    rows = featurizer.rows_of(view, {n: s[0] for n, s in scores.items()})
    expected = set()
    for name in retrievers:
        expected |= set(np.argsort(-scores[name][0], kind="stable")[:5].tolist())
    assert set(rows.positions.tolist()) == expected
    assert rows.features.shape == (len(rows.positions), len(featurizer.names))
    assert featurizer.group_of == group_of(featurizer.names)  # the names say their group, as select reads them
    votes = rows.features[:, featurizer.names.index("retrievers:votes")]
    in_both = [p for p in rows.positions if all(p in np.argsort(-scores[n][0], kind="stable")[:5] for n in scores)]
    assert (votes == 2).sum() == len(in_both)


def test_mention_state_and_attribute_features_read_the_dialogue(shared_world):
    w = shared_world
    horror = cluster_ids("horror")
    romance = cluster_ids("romance")
    liked, disliked, other = w.item(horror[0]), w.item(romance[0]), w.item(horror[1])
    view = ContextView("d", (
        Turn("seeker", f"I loved {liked.title}, but I hated {disliked.title}.", (liked.item_id, disliked.item_id)),
        Turn("recommender", f"Have you seen {other.title}?", (other.item_id,)),
        Turn("seeker", "No, not yet."),
    ))
    featurizer = CandidateFeaturizer(w.catalog, fitted_retrievers(w), item_counts(w.train), per_retriever=40)
    scores = featurizer.scores([view])
    rows = featurizer.rows_of(view, {n: s[0] for n, s in scores.items()})
    table = {w.catalog.id_at(int(p)): dict(zip(featurizer.names, f, strict=True))
             for p, f in zip(rows.positions, rows.features, strict=True)}
    assert table[liked.item_id]["named_by_seeker"] == 1 and table[liked.item_id]["turns_since_mention"] == 3
    assert table[other.item_id]["named_by_recommender"] == 1 and table[other.item_id]["named_by_seeker"] == 0
    assert table[other.item_id]["turns_since_mention"] == 2
    assert table[horror[2]]["mentioned"] == 0 and table[horror[2]]["turns_since_mention"] == NOT_MENTIONED
    assert table[liked.item_id]["liked"] == 1 and table[disliked.item_id]["disliked"] == 1
    # a horror movie shares the liked movie's genre; a romance one, the disliked movie's, does not count
    assert table[horror[2]]["shared_categorical"] >= 1
    assert table[romance[2]]["shared_categorical"] == 0
    assert table[horror[2]]["context_items"] == 3


def test_unknown_feature_group_is_a_config_error(shared_world):
    with pytest.raises(ConfigError, match="unknown feature group"):
        build_recommender("learned-ranker", shared_world.catalog, {"groups": ["retrievers", "vibes"]})
    with pytest.raises(ConfigError, match="first-stage"):
        build_recommender("learned-ranker", shared_world.catalog, {"retrievers": {"harpo": {}}})


# ---- learning ------------------------------------------------------------------------------------------------

def test_learns_which_retriever_to_trust(shared_world, tmp_path):
    """Popularity first (it orders the rest), item-kNN second: popularity alone gets the blockbuster and chance
    (Recall@10 ~1/4), item-kNN knows the clusters (~10/11). A ranker that learned anything from validation
    follows item-kNN; with labels or features scrambled it could not."""
    w = shared_world
    popularity = build_recommender("popularity", w.catalog)
    popularity.fit(w.train, w.valid)
    itemknn = build_recommender("itemknn", w.catalog)
    itemknn.fit(w.train, w.valid)
    ranker = build_recommender("learned-ranker", w.catalog, {
        **FAST, "retrievers": {"popularity": {}, "itemknn": {}}, "run_dir": str(tmp_path / "run")})
    ranker.fit(w.train, w.valid)
    ours, first, knn = recall_at_10(ranker, w), recall_at_10(popularity, w), recall_at_10(itemknn, w)
    assert first < 0.4 and knn > 0.8
    assert ours > knn - 0.05
    cv = ranker.summary["cross_validation"]["recall@10"]
    assert cv["ranker"] > cv["first_retriever"] + 0.3
    assert ranker.summary["turns_with_target_in_candidates"] > 0.85  # item-kNN's top 10 holds 10 of 11


def test_checkpoint_round_trip_and_feature_cache(shared_world, tmp_path, monkeypatch):
    w = shared_world
    options = {**FAST, "retrievers": {"popularity": {}, "itemknn": {}}, "run_dir": str(tmp_path / "run")}
    trained = build_recommender("learned-ranker", w.catalog, options)
    trained.fit(w.train, w.valid)
    for name in ("ranker.txt", "config.json", "cv.json", "features.npz", "features.json"):
        assert (tmp_path / "run" / name).is_file()
    views = [s.view() for s in w.test.samples[:12]]
    # loading takes the run's first stage and features, whatever the options say
    loaded = build_recommender("learned-ranker", w.catalog, {"checkpoint": str(tmp_path / "run")})
    assert list(loaded.config.retrievers) == ["popularity", "itemknn"]
    loaded.fit(w.train, w.valid)
    np.testing.assert_allclose(loaded.score(views), trained.score(views), rtol=1e-6)
    # the same options again: the finished run is loaded, not trained (no cross-validation)
    import convrec.agent.quality.relevance as relevance

    monkeypatch.setattr(relevance, "cross_validate", lambda *a, **k: pytest.fail("trained again"))
    again = build_recommender("learned-ranker", w.catalog, options)
    again.fit(w.train, w.valid)
    np.testing.assert_allclose(again.score(views), trained.score(views), rtol=1e-6)
    monkeypatch.undo()
    # other learner options in another run dir, sharing the features: no retriever scores validation again
    calls = []
    original = CandidateFeaturizer.scores
    monkeypatch.setattr(CandidateFeaturizer, "scores", lambda self, v: calls.append(len(v)) or original(self, v))
    other = build_recommender("learned-ranker", w.catalog, {**options, "trees": 20, "run_dir": str(tmp_path / "b"),
                                                            "features_dir": str(tmp_path / "run")})
    other.fit(w.train, w.valid)
    assert calls == [] and (tmp_path / "b" / "ranker.txt").is_file() and not (tmp_path / "b" / "features.npz").exists()
    assert other.model.booster_.num_trees() == 20


def test_feature_groups_select_columns(shared_world, tmp_path):
    w = shared_world
    ranker = build_recommender("learned-ranker", w.catalog, {
        **FAST, "retrievers": {"popularity": {}, "itemknn": {}}, "groups": ["retrievers", "mentions"],
        "run_dir": str(tmp_path / "run")})
    ranker.fit(w.train, w.valid)
    saved = json.loads((tmp_path / "run" / "config.json").read_text())
    assert saved["features"] == [n for n in ranker.featurizer.names if ":" in n] + [
        "mentioned", "mention_count", "turns_since_mention", "named_by_seeker", "named_by_recommender"]
    assert ranker.model.booster_.num_feature() == len(saved["features"])


def test_bad_checkpoints_are_clear_errors(shared_world, tmp_path):
    w = shared_world
    with pytest.raises(ConfigError, match="not a finished learned-ranker run"):
        build_recommender("learned-ranker", w.catalog, {"checkpoint": str(tmp_path / "nothing")})
    run = tmp_path / "run"
    run.mkdir()
    (run / "ranker.txt").write_text("tree")
    (run / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        build_recommender("learned-ranker", w.catalog, {"checkpoint": str(run)})
    (run / "config.json").write_text(json.dumps({"recommender": "lrurec-text"}))
    with pytest.raises(ConfigError, match="not a learned-ranker run"):
        build_recommender("learned-ranker", w.catalog, {"checkpoint": str(run)})
    (run / "config.json").write_text(json.dumps({"recommender": "learned-ranker", "catalog": "books", "n_items": 3}))
    with pytest.raises(ConfigError, match="trained on catalogue 'books'"):
        build_recommender("learned-ranker", w.catalog, {"checkpoint": str(run)})


def test_no_validation_split_is_a_config_error(shared_world):
    w = shared_world
    ranker = build_recommender("learned-ranker", w.catalog, {**FAST, "retrievers": {"popularity": {}}})
    with pytest.raises(ConfigError, match="validation split"):
        ranker.fit(w.train, None)


# ---- scores and metrics -------------------------------------------------------------------------------------

def test_final_scores_put_candidates_in_model_order_above_the_rest():
    first = np.asarray([5.0, 4.0, 3.0, 2.0, 1.0, -np.inf])
    final = LearnedRanker.final_scores(first, np.asarray([4, 2]), np.asarray([0.7, -1.2]))
    assert list(np.argsort(-final, kind="stable")) == [4, 2, 0, 1, 3, 5]


def test_turn_groups_gather_the_targets_of_one_turn(shared_world):
    samples = shared_world.valid.samples[:3]
    groups = turn_groups([samples[0], samples[0], samples[1]])
    assert [len(g[1]) for g in groups] == [2, 1] and groups[0][2] == [0, 1]


def test_metrics_count_ties_in_expectation():
    assert _expected(0, 0) == (1.0, 1.0, 1.0)
    recall1, recall10, _ = _expected(9, 1)  # 10th or 11th
    assert recall1 == 0.0 and recall10 == 0.5
    values = ranking_metrics(np.asarray([0.1, 0.9, 0.5]), np.asarray([0.0, 0.0, 1.0]), n_targets=2)
    assert values["recall@1"].tolist() == [0.0, 0.0]  # second; the other target is not a candidate
    assert values["ndcg@10"][0] == pytest.approx(1 / np.log2(3))


def test_every_feature_group_is_known():
    assert set(group_of(["a:score", "log_count", "liked", "year_gap", "constraints", "mentioned"])) == set(
        FEATURE_GROUPS)


def test_recent_counts_read_the_latest_dialogues_by_numeric_id(shared_world):
    from convrec.agent.quality.features import recent_item_counts
    from convrec.data.dataset import Split
    from convrec.data.model import Dialogue

    w = shared_world
    a, b = cluster_ids("horror")[:2]
    dialogues = [Dialogue(str(n), "train", [Turn("seeker", "x", (a if n >= 8 else b,))]) for n in (10, 9, 8, 1, 2, 3,
                                                                                             4, 5, 6, 7)]
    counts = recent_item_counts(Split("train", w.catalog, dialogues), share=0.3)  # ids 8, 9, 10
    assert counts[w.catalog.index_of[a]] == 3 and counts[w.catalog.index_of[b]] == 0


def test_a_retriever_used_twice_under_labels(shared_world, tmp_path):
    w = shared_world
    ranker = build_recommender("learned-ranker", w.catalog, {
        **FAST, "retrievers": {"popularity": {}, "itemknn": {}, "itemknn@slow": {"recency_decay": 0.5}},
        "run_dir": str(tmp_path / "run")})
    ranker.fit(w.train, w.valid)
    assert "itemknn@slow:score" in ranker.featurizer.names
    assert ranker.featurizer.retrievers["itemknn@slow"].config.recency_decay == 0.5
    with pytest.raises(ConfigError, match="first-stage"):
        build_recommender("learned-ranker", w.catalog, {"retrievers": {"rar@x": {}}})


def test_also_train_on_another_runs_features(shared_world, tmp_path):
    """A small dataset's ranker also learns from a larger one's validation turns (same retrievers and features);
    a run with other features is refused by name."""
    w = shared_world
    base = {**FAST, "retrievers": {"popularity": {}, "itemknn": {}}}
    donor = build_recommender("learned-ranker", w.catalog, {**base, "run_dir": str(tmp_path / "donor")})
    donor.fit(w.train, w.valid)
    ranker = build_recommender("learned-ranker", w.catalog, {**base, "run_dir": str(tmp_path / "run"),
                                                              "also_train_on": [str(tmp_path / "donor")]})
    ranker.fit(w.train, w.valid)
    # the donor's turns join every training matrix: its groups come after the run's own
    from convrec.agent.quality.relevance import TrainingSet

    own, donor_set = TrainingSet.load(tmp_path / "run" / "features.npz"), TrainingSet.load(
        tmp_path / "donor" / "features.npz")
    alone = len(own.matrix(range(len(own.rows)))[2])
    own.extra = [donor_set]
    assert len(own.matrix(range(len(own.rows)))[2]) == alone + sum(lab.any() for lab in donor_set.labels)
    assert ranker.model.booster_.num_trees() > 0
    with pytest.raises(ConfigError, match="other features"):
        build_recommender("learned-ranker", w.catalog, {**base, "retrievers": {"popularity": {}},
                                                        "run_dir": str(tmp_path / "c"),
                                                        "also_train_on": [str(tmp_path / "donor")]}
                          ).fit(w.train, w.valid)
    with pytest.raises(ConfigError, match="holds no cached"):
        build_recommender("learned-ranker", w.catalog, {**base, "run_dir": str(tmp_path / "d"),
                                                        "also_train_on": [str(tmp_path / "nowhere")]}
                          ).fit(w.train, w.valid)

