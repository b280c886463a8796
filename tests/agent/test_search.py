"""STAR: the moves of a turn, the agent's belief, the value features, and the search over them (value network and
roll-outs with simulated users whose goals come from the belief, never the episode's target)."""

from __future__ import annotations

import numpy as np
import pytest

from convrec.agent.harpo import HarpoRecommender
from convrec.agent.search.dialogue import AgentDialogue, belief
from convrec.agent.search.options import SearchOptions
from convrec.agent.search.star import SearchTrace, StarSearch
from convrec.agent.search.value import FEATURES, ValueNetwork, fit_value_network, move_features
from convrec.data.model import Turn
from convrec.errors import ConfigError
from convrec.retrieval.base import build_recommender
from convrec.simulate.rollout import rollout_users
from worlds import world


@pytest.fixture(scope="module")
def shared():
    w = world()
    harpo = build_recommender("harpo", w.catalog, {"retriever": "itemknn"})
    assert isinstance(harpo, HarpoRecommender)
    harpo.fit(w.train, w.valid)
    return w, harpo.agent_


def start(agent, sample) -> AgentDialogue:
    return AgentDialogue.start(agent, sample.dialogue_id, sample.context, (), 5)


def test_a_turn_offers_the_agents_slate_a_varied_slate_and_questions(shared):
    w, agent = shared
    dialogue = start(agent, w.test.samples[0])
    options = dialogue.options(spread=True, asks=2)
    labels = [m.label for m in options.moves]
    assert labels[0] == "recommend" and options.greedy.label == "recommend"  # a liked movie is known: recommend
    assert "recommend-spread" in labels and labels[-1] == "ask genre"  # the only askable attribute here
    own, varied = options.moves[0], next(m for m in options.moves if m.label == "recommend-spread")
    assert len(own.slate) == len(varied.slate) == 5 and set(own.slate) != set(varied.slate)
    adapter = agent.ctx.adapter

    def distinct_values(slate):
        return len({(f.attribute, f.value) for i in slate for f in adapter.facts(i) if f.kind == "categorical"})
    assert distinct_values(varied.slate) > distinct_values(own.slate)
    greedy = dialogue.options(spread=False, asks=0)
    assert [m.label for m in greedy.moves] == ["recommend"] and greedy.moves[0].slate == own.slate


def test_an_empty_dialogue_asks_first_and_a_copy_plays_ahead_without_touching_it(shared):
    _, agent = shared
    dialogue = AgentDialogue.start(agent, "empty", [Turn("seeker", "Hi!")], (), 5)
    options = dialogue.options(spread=True, asks=2)
    assert options.greedy.kind == "ask" and any(m.kind == "recommend" for m in options.moves)
    ahead = dialogue.copy()
    reply = ahead.play(options.greedy, options)
    assert reply.action == "ask" and ahead.asked == (options.greedy.attribute,) and ahead.played == 1
    assert dialogue.asked == () and dialogue.played == 0 and len(dialogue.turns) == 1
    recommend = next(m for m in options.moves if m.kind == "recommend")
    reply = ahead.play(recommend, options)
    assert reply.slate == recommend.slate and set(recommend.slate) <= ahead.proposed and not dialogue.proposed
    ranked = np.argsort(-reply.scores, kind="stable")[: len(recommend.slate)]
    assert [agent.ctx.adapter.catalog.items[i].item_id for i in ranked] == list(recommend.slate)  # its list on top


def test_the_belief_leaves_out_what_may_not_be_recommended_and_sums_to_one(shared):
    w, agent = shared
    sample = w.test.samples[0]
    dialogue = start(agent, sample)
    options = dialogue.options()
    ids, p = belief(dialogue, options, 20)
    assert len(ids) == 20 and p.sum() == pytest.approx(1.0) and np.all(np.diff(p) <= 1e-12)
    assert not set(ids) & set(options.state.named)  # the liked movie the seeker named is not believed wanted
    assert set(options.moves[0].slate) <= set(ids)  # the agent's own slate is
    row = move_features(dialogue, options, options.moves[0], ids, p, 5)
    assert row.shape == (len(FEATURES),)
    named = dict(zip(FEATURES, row, strict=True))
    assert named["slate_mass"] == pytest.approx(sum(p[ids.index(i)] for i in options.moves[0].slate if i in ids))
    ask = next(m for m in options.moves if m.label == "ask genre")
    asked = dict(zip(FEATURES, move_features(dialogue, options, ask, ids, p, 5), strict=True))
    assert asked["ask"] == 1 and asked["ask_value_entropy"] > 0 and asked["slate_mass"] == 0


def test_the_value_network_learns_a_rule_and_reloads(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, len(FEATURES))).astype(np.float32)
    success = x[:, 8] + x[:, 4] > 0  # slate mass, top-1
    y = np.stack([(x[:, 8] > 0.5), success, success * 0.8], axis=1).astype(np.float32)
    model = fit_value_network(x, y, epochs=300, seed=0)
    p = model.predict(x)
    assert ((p[:, 1] > 0.5) == (y[:, 1] == 1)).mean() > 0.9
    model.save(tmp_path, {"note": "test"})
    again = ValueNetwork.load(tmp_path)
    np.testing.assert_allclose(again.predict(x[:5]), p[:5], rtol=1e-5, atol=1e-6)
    with pytest.raises(ConfigError, match="no trained value network"):
        ValueNetwork.load(tmp_path / "none")


def test_value_search_needs_a_network_named_in_its_options():
    with pytest.raises(ValueError, match="value_network"):
        SearchOptions(kind="value")


def test_rollouts_draw_goals_from_the_belief_and_value_a_move_by_its_simulated_users(shared):
    w, agent = shared
    sample = w.test.samples[3]
    dialogue = start(agent, sample)
    drawn: list[str] = []
    make = rollout_users(agent.ctx.adapter)

    def users(goal, copy):
        drawn.append(goal)
        return make(goal, copy)

    options = SearchOptions(kind="rollout", depth=1, rollouts=12, width=3, belief_top=30)
    search = StarSearch(options, None, users)
    turn, chosen, trace = search.choose(dialogue)
    ids, _ = belief(dialogue, turn, 30)
    assert drawn and set(drawn) <= set(ids)
    assert sample.target not in drawn or sample.target in ids  # only the belief: the target only if it is there
    nodes = {n.move: n for n in trace.nodes}
    for node in trace.nodes:
        if node.rollout_value is None:
            continue
        assert len(node.leaves) == 12
        if node.kind == "recommend":  # depth 1: worth the share of drawn goals the slate holds
            expected = np.mean([leaf.goal in node.slate for leaf in node.leaves])
            assert node.rollout_value == pytest.approx(expected)
        else:
            assert node.rollout_value == 0.0  # a question is never accepted at once
    assert [n.goal for n in nodes["recommend"].leaves] == [n.goal for n in nodes["ask genre"].leaves]  # paired
    best = max(n.rollout_value for n in trace.nodes if n.rollout_value is not None)
    assert nodes[chosen.label].rollout_value == best and trace.chosen == chosen.label
    assert dialogue.played == 0 and len(dialogue.turns) == len(sample.context)  # the search played in copies
    text = trace.render(lambda i: agent.ctx.adapter.catalog.get(i).title)
    assert "roll-outs" in text and "wants " in text and "*" in text
    assert SearchTrace.model_validate(trace.model_dump(mode="json")) == trace


def test_value_search_follows_the_network(shared, tmp_path):
    w, agent = shared
    dialogue = start(agent, w.test.samples[0])
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, len(FEATURES))).astype(np.float32)
    asks = x[:, FEATURES.index("ask")] > 0
    y = np.stack([np.zeros(200), asks, asks], axis=1).astype(np.float32)  # a network that prefers questions
    x[:, FEATURES.index("ask")] = asks
    network = fit_value_network(x, y, epochs=300)
    _, chosen, trace = StarSearch(SearchOptions(kind="value", value_network="unused"), network).choose(dialogue)
    assert chosen.kind == "ask" and trace.greedy == "recommend" and "beats the greedy" in trace.reason
    assert all(n.value is not None and n.rollout_value is None for n in trace.nodes)
