"""``convrec chat --agent harpo`` on the real ReDial and OpenDialKG-books data: the agent asks while it knows
nothing, holds a stated era and a disliked or seen item in every later slate, gives reasons tied to what the
user said, shows its VTO calls on /trace, and continues a saved session (the agent state is derived from the
dialogue, so nothing new is saved)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from convrec.serve.agent_engine import MAX_MESSAGE_CHARS, AgentEngine
from convrec.serve.build import NO_CHAT_LLM, ChatConfig, build_engine
from convrec.serve.state import SessionOptions, SessionState


@pytest.fixture(scope="module")
def engine(redial) -> AgentEngine:
    built = build_engine(redial, ChatConfig(llm=None, agent="harpo", session=SessionOptions(k=10, top=5)))
    assert isinstance(built, AgentEngine)
    return built


def years(engine: AgentEngine, item_ids) -> list[int | None]:
    return [engine.catalog.get(i).year for i in item_ids]


def test_the_agent_asks_first_when_nothing_is_known_and_only_once(engine):
    state, first = engine.turn(engine.new_state(), "hi there")
    assert first.action == "ask" and not first.recommendations and "?" in first.reply.text
    state, second = engine.turn(state, "hmm, not sure")
    assert second.action != "ask" and second.recommendations  # asked once: it recommends what it can


def test_a_stated_era_holds_in_every_later_slate_and_reasons_tie_to_the_user(engine):
    state, first = engine.turn(engine.new_state(), "I loved Notting Hill (1999)")
    assert first.recommendations and "Notting Hill" in first.reasons[0]
    # the two-stage chat ignored this follow-up (3 of 4 items older); the agent must not
    state, later = engine.turn(state, "something from after 2010 please")
    assert later.recommendations and all(y is not None and y >= 2010 for y in years(engine, later.reply.item_ids))
    state, last = engine.turn(state, "a comedy maybe")
    assert all(y is not None and y >= 2010 for y in years(engine, last.reply.item_ids))
    assert any("2011" in c or "2010" in c for c in last.constraints)


def test_seen_and_disliked_items_are_never_recommended_again(engine):
    state, first = engine.turn(engine.new_state(), "I loved Alien (1979), anything similar?")
    top = first.recommendations[0].item_id
    state, _ = engine.feedback(state, 1, "seen")
    second_id = first.recommendations[1].item_id
    title = engine.catalog.get(second_id).display_title
    state, second = engine.turn(state, f"I didn't like {title} at all")
    for record in (second, engine.turn(state, "more like that please")[1]):
        assert top not in record.reply.item_ids and second_id not in record.reply.item_ids


def test_asked_why_the_agent_explains_its_slate_and_keeps_it(engine):
    state, first = engine.turn(engine.new_state(), "I loved Notting Hill (1999), something with Hugh Grant")
    slate = [r.item_id for r in first.recommendations]
    assert first.action == "recommend" and len(slate) == 5
    state, why = engine.turn(state, "why the second one?")
    second = engine.catalog.get(slate[1]).display_title
    assert why.action == "explain" and [r.item_id for r in why.recommendations] == slate  # the slate stays
    assert why.reply.text.startswith(f"{second}: ") and "Hugh Grant" in why.reply.text
    assert why.reasons[1] in why.reply.text and not any(c.operation == "search_candidates" for c in why.vto_calls)
    assert engine.why(state, 2).recommendation.item_id == slate[1]  # /why still numbers that slate
    state, later = engine.turn(state, "ok, something else please")
    assert later.action == "recommend" and not set(r.item_id for r in later.recommendations) & set(slate)


def test_the_trace_holds_the_vto_calls_of_each_agent(engine):
    _, record = engine.turn(engine.new_state(), "I loved Toy Story (1995), no horror please")
    agents = {call.agent for call in record.vto_calls}
    operations = {call.operation for call in record.vto_calls}
    assert {"recommender", "critic", "explainer"} <= agents
    assert {"analyze_sentiment", "identify_constraints", "search_candidates", "filter_results",
            "explain_choice"} <= operations
    assert any("genre != horror" in c for c in record.constraints)
    assert all(not set(engine.catalog.get(i).genres()) & {"horror"} for i in record.reply.item_ids)


def test_a_saved_session_continues_with_the_same_replies(engine, tmp_path: Path):
    state, _ = engine.turn(engine.new_state(), "I loved Notting Hill (1999)")
    state, _ = engine.turn(state, "from after 2010 please")
    path = tmp_path / "state.json"
    state.save(path)
    loaded = SessionState.load(path, engine.catalog)
    assert engine.turn(loaded, "with Hugh Grant?")[1].reply == engine.turn(state, "with Hugh Grant?")[1].reply


def test_the_agent_chat_refuses_a_corrupt_saved_session_in_one_line(run_cli, mirror, data_dir, tmp_path):
    state = tmp_path / "state.json"
    state.write_text('{"schema_version": 1, "turns": [')  # cut off mid-write by some other program
    run = run_cli("chat", "--agent", "harpo", "--data-dir", data_dir, "--mirror", mirror, "-m", "hi",
                  "--state", state)
    assert run.failed_with(str(state), "not a saved chat session", "invalid JSON")
    assert state.read_text() == '{"schema_version": 1, "turns": ['  # left as it was: nothing overwritten


def test_a_huge_message_is_cut_with_a_note_not_an_error(engine):
    _, record = engine.turn(engine.new_state(), "I loved Alien (1979). " + "x" * 100_000)
    assert record.fallback and f"{MAX_MESSAGE_CHARS:,}" in record.fallback


def test_the_books_agent_speaks_of_books(mirror, data_dir):
    from convrec.data.load import load_dataset

    books = load_dataset("opendialkg-books", data_dir, mirror)
    engine = build_engine(books, ChatConfig(llm=None, agent="harpo"))
    _, record = engine.turn(engine.new_state(), "I enjoyed Pride and Prejudice, something by Jane Austen?")
    assert record.recommendations
    assert all("Jane Austen" in engine.catalog.get(i).metadata.get("author", []) for i in record.reply.item_ids)
    assert "movie" not in record.reply.text.lower() and "written by Jane Austen" in " ".join(record.reasons)


def test_the_command_shows_the_agent_and_its_trace(run_cli, mirror, data_dir, tmp_path):
    out = tmp_path / "turns.json"
    run = run_cli("chat", "--agent", "harpo", "--data-dir", data_dir, "--mirror", mirror, "-m",
                  "I loved Alien (1979), nothing before 2000", "-m", "/trace", "-m", "/why 1", "--json", out)
    assert run.rc == 0, run.err
    assert "harpo: tracked state, 21 VTOs" in run.out and "VTO calls" in run.out and "search_candidates" in run.out
    turn = json.loads(out.read_text())["turns"][0]
    assert turn["agent"]["action"] == "recommend" and turn["agent"]["vto_calls"]
    assert all(r["title"][-5:-1] >= "2000" for r in turn["recommendations"])


# ------------------------------------------------------------------------------ the Explainer's LLM (explainer=llm)

LLM_EXPLAINER = {"explainer": "llm"}


def test_with_explainer_llm_the_chat_gives_the_agent_its_llm(redial, smollm2):
    # the engine used to build the agent without the chat's client: every turn said "no LLM client was given"
    engine = build_engine(redial, ChatConfig(llm=None, agent="harpo", agent_options=LLM_EXPLAINER,
                                             session=SessionOptions(k=10, top=5)), llm=smollm2)
    _, record = engine.turn(engine.new_state(), "I loved Alien (1979), anything similar?")
    assert record.action == "recommend" and record.recommendations
    reply = record.reply
    assert reply.source in ("template", "llm") and record.reply_rejection == reply.rejection
    if reply.source == "llm":  # kept: it passed both checks, and nothing was refused
        assert reply.rejection is None and all(engine.catalog.get(i).display_title in reply.text
                                               for i in reply.item_ids[:3])
    else:  # asked, and refused with the checks' reason (never "no LLM", never a dead model)
        assert reply.rejection and not reply.rejection.startswith(("no LLM", "LLM unavailable"))
        assert reply.text.startswith("How about ")
    assert record.trace[-1].output.startswith(f"{reply.source}")


def test_with_explainer_llm_and_no_llm_each_turn_says_why_it_is_a_template(redial, engine):
    without = build_engine(redial, ChatConfig(llm=None, agent="harpo", agent_options=LLM_EXPLAINER,
                                              session=SessionOptions(k=10, top=5)), retriever=engine.retriever)
    _, record = without.turn(without.new_state(), "I loved Alien (1979), anything similar?")
    assert record.reply.source == "template" and record.reply_rejection == f"no LLM: {NO_CHAT_LLM}"
    assert record.trace[-1].output.startswith(f"template (no LLM: {NO_CHAT_LLM}): How about ")
    # the default template Explainer asks no LLM, and has nothing to explain
    _, plain = engine.turn(engine.new_state(), "I loved Alien (1979), anything similar?")
    assert plain.reply.source == "template" and plain.reply_rejection is None


def test_the_command_gives_the_agent_the_llm_with_explainer_llm(run_cli, mirror, data_dir, tmp_path):
    assert run_cli("chat", "--explainer", "llm", "--data-dir", data_dir, "--mirror", mirror, "-m", "hi").failed_with(
        "--explainer llm", "--agent harpo")
    out = tmp_path / "turns.json"
    run = run_cli("chat", "--agent", "harpo", "--explainer", "llm", "--model", "smollm2-135m", "--threads", "1",
                  "--no-llm-cache", "--data-dir", data_dir, "--mirror", mirror, "-m", "I loved Alien (1979)",
                  "--json", out)
    assert run.rc == 0, run.err
    report = json.loads(out.read_text())
    assert report["settings"]["agent_options"] == LLM_EXPLAINER and report["llm"] is not None
    turn = report["turns"][0]
    assert turn["agent"]["action"] == "recommend"
    rejection = turn["reply_rejection"]
    assert (turn["reply_source"] == "llm" and rejection is None) or (
        turn["reply_source"] == "template" and rejection and not rejection.startswith(("no LLM", "LLM unavailable")))


def test_with_quality_weights_why_shows_each_dimension_and_a_saved_session_keeps_it(redial, tmp_path: Path):
    from rich.console import Console

    from convrec.cli.chat_view import show_why

    options = {"quality": {"weights": {"relevance": 1.0, "diversity": 1.0}}}
    weighted = build_engine(redial, ChatConfig(llm=None, agent="harpo", agent_options=options,
                                               session=SessionOptions(k=10, top=5)))
    state, record = weighted.turn(weighted.new_state(), "I loved Alien (1979), anything similar?")
    assert record.recommendations and all(set(r.quality) == {"relevance", "diversity"}
                                          for r in record.recommendations)
    # the greedy order: the second item is scored by its distance to the first
    first, second = record.recommendations[0].quality, record.recommendations[1].quality
    assert first["diversity"] == 0.0 and second["diversity"] > 0
    console = Console(record=True, width=120)
    show_why(console, weighted.why(state, 2))
    shown = console.export_text()
    assert "quality" in shown and "relevance" in shown and "diversity" in shown
    path = tmp_path / "state.json"
    state.save(path)
    assert SessionState.load(path, weighted.catalog).last.recommendations[1].quality == record.recommendations[1].quality
