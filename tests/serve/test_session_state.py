"""A conversation's state apart from the engine (issue 14, item 1), on the real INSPIRED data (1,788 movies)
with the quick embedded defaults (itemknn, no LLM): a state saved mid-conversation and loaded in a new
process continues it with the same replies; feedback changes what is recommended next; operations never
change the state they are given; the history is bounded; a file that cannot be continued is a DataError
naming it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from convrec.data.dataset import CRSDataset
from convrec.errors import DataError
from convrec.serve.build import ChatConfig, build_engine
from convrec.serve.engine import Engine, NoSuchRecommendation
from convrec.serve.state import SCHEMA_VERSION, SessionState

FIRST = ("I loved The Conjuring and Toy Story", "Something like Avengers: Endgame?")
LATER = ("more scary ones please", "anything funny?")


@pytest.fixture(scope="module")
def engine(inspired: CRSDataset) -> Engine:
    return build_engine(inspired, ChatConfig(llm=None))


def chat_args(data_dir: Path, mirror: Path, out: Path, *messages: str) -> list[str]:
    return ["chat", "--dataset", "inspired", "--data-dir", str(data_dir), "--mirror", str(mirror), "--no-llm",
            "--json", str(out), *(arg for message in messages for arg in ("-m", message))]


def answers(report: dict) -> list[tuple]:
    """What a turn said and recommended, without its timing."""
    return [(t["user"], t["context_items"], t["recommendations"], t["reply"], t["reply_items"])
            for t in report["turns"]]


def test_a_state_saved_mid_conversation_continues_in_a_new_process(run_cli, inspired, data_dir, mirror,
                                                                   tmp_path):
    whole = tmp_path / "whole.json"
    assert run_cli(*chat_args(data_dir, mirror, whole, *FIRST, "/dislike 4", *LATER)).rc == 0
    state = tmp_path / "state.json"
    assert run_cli(*chat_args(data_dir, mirror, tmp_path / "first.json", *FIRST, "/dislike 4"),
                   "--state", state).rc == 0
    assert json.loads(state.read_text())["schema_version"] == SCHEMA_VERSION
    later = tmp_path / "later.json"
    code = "import sys; from convrec.cli.main import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", code, *chat_args(data_dir, mirror, later, *LATER),
                           "--state", str(state)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "continuing a conversation of 2 turns" in " ".join(done.stdout.replace("│", " ").split())
    uninterrupted, continued = answers(json.loads(whole.read_text())), answers(json.loads(later.read_text()))
    assert len(uninterrupted) == 4 and continued == uninterrupted  # the saved turns, then the same two
    # The later turns depend on the saved ones: the first message's titles are still the retriever's context.
    assert {"conjuring-2013", "toy-story-1995"} <= set(continued[3][1])
    assert SessionState.load(state, inspired.catalog).turns_in_conversation == 4  # saved after each turn


def test_feedback_excludes_disliked_and_seen_items_and_counts_liked_ones(engine):
    state = engine.new_state()
    for message in FIRST:
        state, turn = engine.turn(state, message)
    fourth, fifth = (r.item_id for r in turn.recommendations[3:5])  # not named in the reply: not in the dialogue
    _, plain = engine.turn(state, LATER[0])
    plain_ids = [r.item_id for r in plain.recommendations]
    assert fourth in plain_ids and fifth not in plain.context_items  # recommended again without feedback
    for kind in ("dislike", "seen"):
        marked, item = engine.feedback(state, 4, kind)
        assert item.item_id == fourth
        _, after = engine.turn(marked, LATER[0])
        assert fourth not in [r.item_id for r in after.recommendations]
    liked, _ = engine.feedback(state, 5, "like")
    _, after = engine.turn(liked, LATER[0])
    assert fifth in after.context_items and after.context_items[-1] == fifth  # counted as named, most recent
    assert [r.item_id for r in after.recommendations] != plain_ids
    assert engine.reset(liked).feedback == {}  # a new conversation forgets the marks too


def test_operations_never_change_the_state_they_are_given(engine):
    state, _ = engine.turn(engine.new_state(), FIRST[0])
    before = state.to_json()
    engine.turn(state, FIRST[1])
    engine.feedback(state, 1, "dislike")
    engine.reset(state)
    engine.why(state, 1)
    assert state.to_json() == before
    _, turn = engine.turn(state, FIRST[1])  # and the same state answers the same way twice
    assert engine.turn(state, FIRST[1])[1].recommendations == turn.recommendations


def test_why_and_feedback_name_a_recommendation_of_the_latest_turn(engine):
    with pytest.raises(NoSuchRecommendation) as error:
        engine.why(engine.new_state(), 1)
    assert error.value.count == 0
    state, turn = engine.turn(engine.new_state(), FIRST[0])
    why = engine.why(state, 2)
    assert why.recommendation == turn.recommendations[1] and why.item.item_id == turn.recommendations[1].item_id
    assert why.n_candidates == turn.n_candidates
    for bad in (0, 6):
        with pytest.raises(NoSuchRecommendation, match="choose 1 to 5"):
            engine.feedback(state, bad, "like")


def test_the_history_is_bounded_and_the_dialogue_is_not(engine):
    state = engine.new_state(engine.options.model_copy(update={"max_history": 3}))
    for message in (*FIRST, *LATER, "a thriller?"):
        state, _ = engine.turn(state, message)
    assert [record.number for record in state.history] == [3, 4, 5]
    assert len(state.turns) == 10 and state.last is state.history[-1]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda text: text[: len(text) // 2], "invalid JSON at column"),
        (lambda text: "[1, 2]", "expected a JSON object with a schema_version"),
        (lambda text: text.replace(f'"schema_version":{SCHEMA_VERSION}', '"schema_version":0'),
         "saved by an older convrec (session schema_version 0)"),
        (lambda text: text.replace(f'"schema_version":{SCHEMA_VERSION}', f'"schema_version":{SCHEMA_VERSION + 1}'),
         f"saved by another convrec (session schema_version {SCHEMA_VERSION + 1})"),
        (lambda text: text.replace('"conjuring-2013"', '"no-such-movie"'),
         "names 1 item(s) that this catalogue (1,788 items) does not hold, e.g. ['no-such-movie']"),
        (lambda text: text.replace('"conversation":1', '"conversation":"first"'), "field conversation:"),
    ],
)
def test_a_state_that_cannot_be_continued_is_a_data_error_naming_the_file(engine, tmp_path, edit, expected):
    state, _ = engine.turn(engine.new_state(), FIRST[0])
    path = tmp_path / "state.json"
    state.save(path)
    assert SessionState.load(path, engine.catalog) == state  # the file as saved loads
    path.write_text(edit(path.read_text()))
    with pytest.raises(DataError) as error:
        SessionState.load(path, engine.catalog)
    assert str(error.value).startswith(f"{path}") and expected in str(error.value)


def test_chat_refuses_a_state_file_it_cannot_continue(run_cli, data_dir, mirror, tmp_path):
    state = tmp_path / "state.json"
    state.write_text('{"schema_version": 0, "turns": []}')
    run = run_cli(*chat_args(data_dir, mirror, tmp_path / "out.json", "hello"), "--state", state)
    assert run.failed_with(str(state), "schema_version 0", "remove the file")
    assert state.read_text() == '{"schema_version": 0, "turns": []}'  # left as it was


def test_each_turn_carries_its_trace_and_keeps_it_through_json(engine):
    state, turn = engine.turn(engine.new_state(), FIRST[0])
    assert [record.stage for record in turn.trace] == ["link", "retrieve", "rerank", "reply"]
    link, retrieve, rerank, reply = turn.trace
    recognised = [engine.catalog.get(m.item_id).display_title for m in turn.mentions]
    assert recognised and all(title in link.output for title in recognised)
    first = engine.catalog.get(turn.recommendations[0].item_id).display_title
    assert retrieve.output.startswith(first) and retrieve.input == f"{len(turn.context_items)} context items"
    assert rerank.output == "no re-ranker: the retriever's order"
    assert reply.output.startswith("template: ") and turn.reply.text[:40] in reply.output
    assert all(record.seconds >= 0 for record in turn.trace)
    assert SessionState.from_json(state.to_json(), engine.catalog).history[-1].trace == turn.trace
    assert [r["stage"] for r in turn.to_json(engine.catalog)["trace"]] == ["link", "retrieve", "rerank", "reply"]
