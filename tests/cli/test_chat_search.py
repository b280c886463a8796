"""STAR in the chat: ``--agent-set search.kind=value`` makes the agent choose each move by its value network;
the turn keeps the searched tree, ``/trace`` renders it with titles, and the API's JSON and a saved session hold
it. The value networks here are fitted to a known rule (prefer questions, or prefer recommending), so which move
wins is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from convrec.agent.search.value import FEATURES, fit_value_network
from convrec.cli import chat_view
from convrec.errors import ConfigError
from convrec.serve.agent_engine import AgentEngine
from convrec.serve.build import ChatConfig, build_engine
from convrec.serve.http.present import Presenter
from convrec.serve.state import SessionOptions, SessionState


def network_dir(tmp_path_factory, prefers_asking: bool) -> Path:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, len(FEATURES))).astype(np.float32)
    asks = x[:, FEATURES.index("ask")] > 0
    x[:, FEATURES.index("ask")] = asks
    good = asks if prefers_asking else ~asks
    y = np.stack([np.zeros(200), good, good], axis=1).astype(np.float32)
    out = tmp_path_factory.mktemp("asks" if prefers_asking else "recommends")
    fit_value_network(x, y, epochs=300).save(out, {"rule": "asks" if prefers_asking else "recommends"})
    return out


def engine_with(redial, network: Path, **search) -> AgentEngine:
    config = ChatConfig(llm=None, agent="harpo", session=SessionOptions(k=10, top=5),
                        agent_options={"search": {"kind": "value", "value_network": str(network), **search}})
    built = build_engine(redial, config)
    assert isinstance(built, AgentEngine) and built.search is not None
    return built


@pytest.fixture(scope="module")
def asking(redial, tmp_path_factory) -> AgentEngine:
    return engine_with(redial, network_dir(tmp_path_factory, prefers_asking=True))


@pytest.fixture(scope="module")
def recommending(redial, tmp_path_factory) -> AgentEngine:
    return engine_with(redial, network_dir(tmp_path_factory, prefers_asking=False))


def test_a_network_that_prefers_questions_asks_about_each_attribute_once(asking):
    state, first = asking.turn(asking.new_state(), "I loved Alien (1979), something similar?")
    assert first.action == "ask" and first.asked and not first.recommendations
    assert first.search.chosen == f"ask {first.asked}" and first.search.greedy == "recommend"
    assert "beats the greedy" in first.search.reason and first.trace[1].stage == "search"
    state, second = asking.turn(state, "no idea, really")
    assert second.action == "ask" and second.asked != first.asked
    assert f"ask {first.asked}" not in [node.move for node in second.search.nodes]  # remembered as asked


def test_a_network_that_prefers_slates_recommends_and_the_trace_shows_the_tree(recommending):
    state, first = recommending.turn(recommending.new_state(), "I loved Alien (1979), something similar?")
    assert first.action == "recommend" and first.search.chosen.startswith("recommend")
    chosen = next(node for node in first.search.nodes if node.chosen)
    assert tuple(r.item_id for r in first.recommendations) == chosen.slate
    assert len(first.reasons) == len(first.recommendations) and first.reply.item_ids == chosen.slate
    console = Console(record=True, width=200)
    title = recommending.catalog.get(first.recommendations[0].item_id).display_title
    chat_view.show_trace(console, first, lambda i: recommending.catalog.get(i).display_title)
    shown = console.export_text()
    assert "STAR" in shown and f"* {chosen.move}" in shown and title in shown
    # the chat's JSON, the HTTP API's answer and a saved session keep the tree
    assert first.to_json(recommending.catalog)["agent"]["search"]["chosen"] == chosen.move
    for version in Presenter(recommending).answer(state, first).values():
        assert version["search"]["chosen"] == chosen.move and title in version["search"]["text"]
    again = SessionState.model_validate_json(state.model_dump_json())
    assert again.last.search == first.search
    # what was recommended is not recommended again in the conversation
    _, second = recommending.turn(state, "seen them all, something else")
    assert not {r.item_id for r in second.recommendations} & set(chosen.slate)


def test_search_options_that_cannot_run_are_one_line_errors(redial, tmp_path):
    with pytest.raises(ConfigError, match="agent option 'search': .*needs search.value_network"):
        build_engine(redial, ChatConfig(llm=None, agent="harpo", agent_options={"search": {"kind": "value"}}))
    with pytest.raises(ConfigError, match="no trained value network"):
        engine_with(redial, tmp_path)
    with pytest.raises(ConfigError, match="needs simulated users"):  # roll-outs outside `convrec chat`
        build_engine(redial, ChatConfig(llm=None, agent="harpo", agent_options={"search": {
            "kind": "rollout", "value_network": None}}))


def test_the_command_takes_agent_options_and_shows_the_search(run_cli, mirror, data_dir, tmp_path,
                                                               tmp_path_factory):
    network = network_dir(tmp_path_factory, prefers_asking=False)
    out = tmp_path / "turns.json"
    run = run_cli("chat", "--agent", "harpo", "--data-dir", data_dir, "--mirror", mirror,
                  "--agent-set", "search.kind=value", "--agent-set", f"search.value_network={network}",
                  "-m", "I loved Alien (1979)", "-m", "/trace", "--json", out)
    assert run.rc == 0, run.err
    assert "STAR" in run.out and "search (value)" in run.out
    turn = json.loads(out.read_text())["turns"][0]
    assert turn["agent"]["search"]["kind"] == "value" and turn["agent"]["action"] == "recommend"


def test_a_why_question_is_answered_not_searched(recommending):
    state, first = recommending.turn(recommending.new_state(), "I loved Alien (1979), something similar?")
    slate = tuple(r.item_id for r in first.recommendations)
    state, why = recommending.turn(state, "why the first one?")
    assert why.action == "explain" and why.search is None
    assert tuple(r.item_id for r in why.recommendations) == slate
    assert why.reply.text.startswith(recommending.catalog.get(slate[0]).display_title + ": ")
