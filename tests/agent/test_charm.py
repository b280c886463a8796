"""CHARM in the agent: quality options, the diversity distance, the greedy weighted order, the satisfaction model
loaded into harpo, and what the weights change in its slate and ranking."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from convrec.agent.config import HarpoOptions
from convrec.agent.domain import DomainAdapter
from convrec.agent.harpo import HarpoRecommender
from convrec.agent.quality import satisfaction as sat
from convrec.agent.quality.charm import AnswerModel, ItemDistances, QualityScorer, percentiles
from convrec.agent.quality.dimensions import QualityOptions
from convrec.data.model import ContextView, Turn
from convrec.errors import ConfigError
from worlds import catalog, cluster_ids

pytest.importorskip("lightgbm")

from test_satisfaction import genre_world  # noqa: E402 (the world the satisfaction model learns)


@pytest.fixture(scope="module")
def liked_world():
    return genre_world()


@pytest.fixture(scope="module")
def satisfaction_run(liked_world, tmp_path_factory):
    run = tmp_path_factory.mktemp("satisfaction")
    report = sat.train_and_judge(liked_world, run)
    assert report["test_auc"] > 0.9  # the model this module's tests lean on has learned the world
    return run


def test_percentiles_rank_and_share_ties():
    assert percentiles(np.asarray([3.0, 1.0, 2.0])).tolist() == [1.0, 0.0, 0.5]
    assert percentiles(np.asarray([5.0, 5.0, 1.0, 9.0])).tolist() == pytest.approx([0.5, 0.5, 0.0, 1.0])
    assert percentiles(np.asarray([7.0])).tolist() == [1.0]


def test_quality_options_name_known_dimensions_and_a_positive_weight():
    assert QualityOptions().relevance_only
    assert not QualityOptions(weights={"relevance": 1, "diversity": 0.5}).relevance_only
    with pytest.raises(ValidationError, match="unknown quality dimension"):
        QualityOptions(weights={"novelty": 1.0})
    with pytest.raises(ValidationError, match="0 or more"):
        QualityOptions(weights={"relevance": 1.0, "diversity": -0.1})
    with pytest.raises(ValidationError, match="above 0"):
        QualityOptions(weights={"relevance": 0.0})
    # through the agent's TOML-settable config, as `--set quality.weights.diversity=0.3` writes it
    options = HarpoOptions.model_validate({"quality": {"weights": {"relevance": 1, "diversity": 0.3}}})
    assert options.quality.weight("diversity") == 0.3 and options.quality.weight("engagement") == 0.0


def test_item_distance_is_one_minus_the_jaccard_of_main_values():
    adapter = DomainAdapter.of(catalog(), "test-world")
    distances = ItemDistances(adapter)
    horror, romance = cluster_ids("horror"), cluster_ids("romance")
    d = distances.matrix([horror[0], horror[1], romance[0], "heist"])
    assert d[0, 1] == 0.0 and d[0, 2] == 1.0 and d[0, 3] == 1.0  # one genre shared of one; none
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0.0)
    assert distances.intra_list([horror[0], horror[1], romance[0]]) == pytest.approx(2 / 3)
    assert distances.intra_list([horror[0]]) is None


def test_diversity_weight_interleaves_genres_and_relevance_alone_keeps_the_order():
    adapter = DomainAdapter.of(catalog(), "test-world")
    ids = [*cluster_ids("horror")[:4], *cluster_ids("romance")[:4]]
    relevance = np.arange(len(ids), 0, -1, dtype=float)  # horror first
    view = ContextView("d", ())
    plain = QualityScorer(QualityOptions(weights={"relevance": 1.0}), None, {}).order(view, None, ids, relevance)
    assert plain.order == list(range(len(ids))) and all(q.diversity is None for q in plain.quality)
    mixed = QualityScorer(QualityOptions(weights={"relevance": 1.0, "diversity": 1.0}), ItemDistances(adapter),
                          {}).order(view, None, ids, relevance)
    genres = ["horror" if ids[k].startswith("horror") else "romance" for k in mixed.order]
    # second place: the best romance (distance 1 to the horror film above it) beats the next horror film (0)
    assert genres[:3] == ["horror", "romance", "horror"] and genres.count("romance") == 4
    assert mixed.quality[1].diversity == 1.0 and mixed.quality[0].diversity == 0.0
    assert [q.item_id for q in mixed.quality] == [ids[k] for k in mixed.order]
    assert sorted(mixed.order) == list(range(len(ids)))  # a re-ordering: nothing lost, nothing repeated


def test_a_weighted_model_without_its_run_says_how_to_train_it(liked_world, satisfaction_run, tmp_path):
    adapter = DomainAdapter.of(liked_world.catalog, liked_world.name)
    train = liked_world.split("train")
    assert QualityScorer.build(QualityOptions(), adapter, train, liked_world.name) is None
    with pytest.raises(ConfigError, match="satisfaction_run is not set.*--dimension satisfaction"):
        QualityScorer.build(QualityOptions(weights={"relevance": 1, "satisfaction": 1}), adapter, train, "w")
    with pytest.raises(ConfigError, match="no engagement model in"):
        QualityScorer.build(QualityOptions(weights={"relevance": 1, "engagement": 1}, engagement_run=str(tmp_path)),
                            adapter, train, "w")
    report = json.loads((satisfaction_run / "report.json").read_text())
    other = tmp_path / "other"
    other.mkdir()
    (other / "satisfaction.txt").write_text((satisfaction_run / "satisfaction.txt").read_text())
    (other / "report.json").write_text(json.dumps({**report, "n_items": 7}))
    with pytest.raises(ConfigError, match="catalogue of 7 items"):
        AnswerModel.load(other, "satisfaction", liked_world.catalog, train, "w")


def harpo(liked_world, weights, satisfaction_run=None):
    options = {"retriever": "popularity", "quality": {"weights": weights}}
    if satisfaction_run is not None:
        options["quality"]["satisfaction_run"] = str(satisfaction_run)
    recommender = HarpoRecommender(liked_world.catalog, HarpoOptions.model_validate(options))
    recommender.fit(liked_world.split("train"))
    return recommender


def test_the_satisfaction_weight_moves_the_slate_to_what_the_seeker_will_like(liked_world, satisfaction_run):
    """Popularity ties every movie but the liked ones, so relevance alone lists them in catalogue order (horror
    first); a seeker who liked a romance likes romances in this world, and the satisfaction model knows it."""
    romance = cluster_ids("romance")
    view = ContextView("chat", (Turn("seeker", "I liked Love Letters. What else?", (romance[0],)),))
    plain = harpo(liked_world, {"relevance": 1.0})
    plain_scores = plain.score([view])[0]
    assert plain.agent_.ctx.quality is None and plain.turns_[0].quality == () and plain.turns_[0].ranked == ()
    assert not all(i.startswith("romance") for i in plain.turns_[0].slate)

    weighted = harpo(liked_world, {"relevance": 0.2, "satisfaction": 1.0}, satisfaction_run)
    scores = weighted.score([view])[0]
    turn = weighted.turns_[0]
    assert turn.slate and all(i.startswith("romance") for i in turn.slate)
    assert [q.item_id for q in turn.quality] == list(turn.slate)
    assert all(q.satisfaction is not None and q.satisfaction > 0.5 for q in turn.quality)
    # below the slate the catalogue follows the candidates' weighted order: every romance before any other genre
    order = [weighted.catalog.ids[k] for k in np.argsort(-scores, kind="stable")]
    top = [i for i in order[:11] if i != romance[0]]
    assert all(i.startswith("romance") for i in top), top
    assert not np.allclose(scores, plain_scores)


def test_the_critic_replaces_items_too_close_or_unlikely_to_please(liked_world, satisfaction_run):
    romance = cluster_ids("romance")
    view = ContextView("chat", (Turn("seeker", "I liked Love Letters. What else?", (romance[0],)),))
    options = {"retriever": "popularity", "critique_rounds": 1,
               "quality": {"weights": {"relevance": 1.0}, "satisfaction_run": str(satisfaction_run),
                           "critic_min_satisfaction": 0.5}}
    pleasing = HarpoRecommender(liked_world.catalog, HarpoOptions.model_validate(options))
    pleasing.fit(liked_world.split("train"))
    pleasing.score([view])
    turn = pleasing.turns_[0]
    unlikely = [n for n in turn.critique if n.problem.startswith("unlikely to please")]
    # relevance alone proposes the tied horror films first: every one is below the candidates' median P(liked)
    assert unlikely and all(n.item_id.startswith("horror") for n in unlikely)
    assert all(n.replacement is not None and n.item_id not in turn.slate for n in unlikely)

    options["quality"] = {"weights": {"relevance": 1.0}, "critic_min_distance": 0.5}
    apart = HarpoRecommender(liked_world.catalog, HarpoOptions.model_validate(options))
    apart.fit(liked_world.split("train"))
    apart.score([view])
    close = [n for n in apart.turns_[0].critique if n.problem.startswith("too close to")]
    # the horror films after the first one share its genre and no person: distance 0
    assert len(close) >= 3 and all(n.item_id.startswith("horror") and "distance 0.00" in n.problem for n in close)
    # off by default: the part-1 Critic alone
    plain = harpo(liked_world, {"relevance": 1.0})
    plain.score([view])
    assert not any(n.problem.startswith(("too close", "unlikely")) for n in plain.turns_[0].critique)


def test_below_slate_agent_orders_the_candidates_by_the_agents_relevance_without_weights(liked_world):
    """The control for the weights: relevance alone, but below the slate the agent's own order of its candidates
    (on the places they hold in the retriever's order), as any quality weight gives it."""
    romance = cluster_ids("romance")
    view = ContextView("chat", (Turn("seeker", "I liked Love Letters. What else?", (romance[0],)),))
    control = HarpoRecommender(liked_world.catalog, HarpoOptions.model_validate(
        {"retriever": "popularity", "quality": {"below_slate": "agent"}}))
    control.fit(liked_world.split("train"))
    scores = control.score([view])[0]
    turn = control.turns_[0]
    assert control.agent_.ctx.quality is not None and turn.ranked
    assert all(q.satisfaction is None and q.diversity is None for q in turn.quality)
    plain = harpo(liked_world, {"relevance": 1.0})
    plain_scores = plain.score([view])[0]
    assert plain.turns_[0].slate == turn.slate  # the same slate: relevance decides it either way
    # the candidates keep the retriever's places: the same set of scores, maybe in another order
    assert np.allclose(np.sort(scores), np.sort(plain_scores), atol=1e-3)
