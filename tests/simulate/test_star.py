"""STAR's value network trained from simulated validation conversations (resumable), and the searching agent in
`convrec simulate`: its transcripts carry the searched tree; a rollout user never wants the episode's target
unless the belief drew it."""

from __future__ import annotations

import json

import pytest

import convrec.simulate.star as star
from convrec.agent.search.value import ValueNetwork
from convrec.errors import OutputPathError
from convrec.simulate.runner import SimulationConfig, build_system, simulate
from convrec.simulate.star import StarTrainingOptions, collect, train
from convrec.simulate.user import RuleUser
from worlds import world

OPTIONS = {"harpo": {"retriever": "itemknn"}, "episodes": 12, "horizon": 3, "epochs": 50}


@pytest.fixture(scope="module")
def dataset():
    return world(classics=True).dataset()


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("star")
    return out, train(dataset, out, StarTrainingOptions(**OPTIONS))


def test_every_move_of_every_turn_is_played_out_and_the_network_is_judged_on_held_out_episodes(trained):
    out, report = trained
    assert report["episodes"] == 12 and report["held_out"]["episodes"] == 2
    lines = (out / star.EXAMPLES_FILE).read_text(encoding="utf-8").splitlines()
    assert len(lines) == 13  # the header and one line per episode
    for line in lines[1:]:
        rows = json.loads(line)["rows"]
        turns = {r["turn"] for r in rows}
        for turn in turns:  # each turn: one greedy move among several, each labelled
            moves = [r for r in rows if r["turn"] == turn]
            assert sum(r["greedy"] for r in moves) == 1 and len(moves) >= 2
            assert all(r["success"] or not r["accept_now"] for r in moves)  # accepted at once is a success
    assert set(report["moves"]) >= {"recommend", "ask"}
    errors = report["held_out"]["errors"]["success"]
    assert 0 <= errors["brier"] <= 1 and errors["log_loss"] > 0
    assert ValueNetwork.load(out).predict([[0.0] * len(star.FEATURES)]).shape == (1, 3)
    assert "held-out states" in (out / "report.md").read_text(encoding="utf-8")


def test_a_killed_collection_resumes_with_the_same_examples(dataset, trained, tmp_path, monkeypatch):
    whole, _ = trained
    options = StarTrainingOptions(**OPTIONS)
    played = {"n": 0}
    original = star.episode_examples

    def killed_at_the_fifth_episode(*args, **kwargs):  # a fake failure: the process dies mid-run
        played["n"] += 1
        if played["n"] == 5:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(star, "episode_examples", killed_at_the_fifth_episode)
    with pytest.raises(KeyboardInterrupt):
        collect(dataset, tmp_path, options)
    with (tmp_path / star.EXAMPLES_FILE).open("ab") as handle:
        handle.write(b'{"episode": "cut')  # and its last line was cut
    monkeypatch.setattr(star, "episode_examples", original)
    resumed = collect(dataset, tmp_path, options)
    assert resumed == collect(dataset, whole, options)
    assert (tmp_path / star.EXAMPLES_FILE).read_bytes() == (whole / star.EXAMPLES_FILE).read_bytes()
    with pytest.raises(Exception, match="other options"):
        collect(dataset, tmp_path, options.model_copy(update={"horizon": 4}))


def test_a_searching_agent_plays_episodes_and_its_turns_carry_the_tree(dataset, trained, tmp_path, monkeypatch):
    out, _ = trained
    goals: list[str] = []
    original = RuleUser.__init__

    def watched(self, goal, *args, **kwargs):
        goals.append(goal.target)
        original(self, goal, *args, **kwargs)

    monkeypatch.setattr(RuleUser, "__init__", watched)
    results = {}
    for kind in ("greedy", "value", "rollout"):
        search = {"kind": kind, "value_network": str(out), "rollouts": 3, "depth": 2}
        config = SimulationConfig(dataset=dataset.name, recommender="harpo", episodes=6, turns=3,
                                  options={"retriever": "itemknn", "search": search})
        system = build_system(config, dataset)
        path = tmp_path / f"{kind}.jsonl"
        results[kind] = simulate(config, dataset, system, transcripts=path, progress=False)
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:]]
        traces = [t.get("search") for r in records for t in r["turns"] if t["role"] == "system"]
        if kind == "greedy":
            assert traces and all(t is None for t in traces)
        else:
            assert all(t is not None and t["kind"] == kind for t in traces)
            assert "search_override_share" in results[kind]["metrics"]
    # the episodes' own users were made once per episode; every other rule user is a roll-out's
    assert len(goals) > 18


def test_value_search_without_a_network_is_a_clear_error(dataset):
    config = SimulationConfig(dataset=dataset.name, recommender="harpo", episodes=2, turns=2,
                              options={"retriever": "itemknn", "search": {"kind": "value",
                                                                          "value_network": "/nonexistent"}})
    with pytest.raises(Exception, match="no trained value network"):
        build_system(config, dataset)


def test_bad_options_and_an_unwritable_out_are_one_line_errors(dataset, tmp_path, capsys):
    assert star.main(["--out", str(tmp_path / "run"), "--set", "episodes=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["python -m convrec.simulate.star: error: --set episodes: Input should be greater than or equal "
                   "to 10"]
    assert not (tmp_path / "run").exists()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutputPathError, match="--out .*cannot be created"):
        collect(dataset, blocker / "run", StarTrainingOptions(**OPTIONS))
