"""``convrec chat`` end to end on a tiny movie world imported here, with the real SmolLM2 where an LLM is
needed (``--model smollm2-135m``, or the session fixture ``smollm2``), and once on the real ReDial data.

Model-free tests use ``--no-llm``: the retriever alone exercises titles, /reset, /why and EOF.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from convrec.cli.chat_cmd import chat_threads
from convrec.cli.main import main
from convrec.data.load import load_dataset
from convrec.data.model import render_turns
from convrec.llm import LLMClient
from convrec.serve.build import ChatConfig, build_engine
from convrec.serve.engine import _window_start
from convrec.serve.state import SessionOptions


def movie(item_id, title, year, genres, director, stars):
    return {"item_id": item_id, "title": title, "year": year,
            "metadata": {"genre": genres, "director": [director], "star": stars}}


MOVIES = [
    movie("conjuring", "The Conjuring", 2013, ["horror", "mystery"], "James Wan", ["Vera Farmiga", "Patrick Wilson"]),
    movie("insidious", "Insidious", 2010, ["horror", "thriller"], "James Wan", ["Patrick Wilson", "Rose Byrne"]),
    movie("halloween", "Halloween", 1978, ["horror", "thriller"], "John Carpenter", ["Jamie Lee Curtis"]),
    movie("alien", "Alien", 1979, ["horror", "sci-fi"], "Ridley Scott", ["Sigourney Weaver", "Tom Skerritt"]),
    movie("aliens", "Aliens", 1986, ["action", "sci-fi"], "James Cameron", ["Sigourney Weaver", "Michael Biehn"]),
    movie("toystory", "Toy Story", 1995, ["animation", "comedy"], "John Lasseter", ["Tom Hanks", "Tim Allen"]),
    movie("nemo", "Finding Nemo", 2003, ["animation", "adventure"], "Andrew Stanton", ["Albert Brooks"]),
    movie("up", "Up", 2009, ["animation", "adventure"], "Pete Docter", ["Ed Asner"]),
    movie("notebook", "The Notebook", 2004, ["drama", "romance"], "Nick Cassavetes", ["Ryan Gosling"]),
    movie("getout", "Get Out", 2017, ["horror", "mystery"], "Jordan Peele", ["Daniel Kaluuya"]),
]
PAIRS = [("conjuring", "insidious"), ("conjuring", "halloween"), ("insidious", "conjuring"), ("getout", "conjuring"),
         ("alien", "aliens"), ("aliens", "alien"), ("toystory", "nemo"), ("toystory", "up"), ("nemo", "toystory"),
         ("notebook", "up")]


def dialogue(dialogue_id, split, first, second):
    return {"dialogue_id": dialogue_id, "split": split, "turns": [
        {"role": "seeker", "text": "I liked it", "items": [first]},
        {"role": "recommender", "text": "Then try this one", "items": [second]}]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir holding the imported dataset ``tiny``: 10 movies, 10 train and 2 test dialogues."""
    root = tmp_path_factory.mktemp("chat")
    catalog, dialogues = root / "catalog.jsonl", root / "dialogues.jsonl"
    catalog.write_text("".join(json.dumps(m) + "\n" for m in MOVIES))
    rows = [dialogue(f"t{n}", "train", a, b) for n, (a, b) in enumerate(PAIRS)]
    rows += [dialogue("test1", "test", "conjuring", "insidious"), dialogue("test2", "test", "up", "nemo")]
    dialogues.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data_dir = root / "data"
    assert main(["data", "import", "--name", "tiny", "--catalog", str(catalog), "--dialogues", str(dialogues),
                 "--data-dir", str(data_dir)]) == 0
    return data_dir


def chat(data_dir: Path, *args: str) -> int:
    return main(["chat", "--dataset", "tiny", "--data-dir", str(data_dir), *args])


def messages(*texts: str) -> list[str]:
    return [arg for text in texts for arg in ("-m", text)]


def test_messages_link_titles_and_reset_clears(tiny, tmp_path, capsys):
    out = tmp_path / "turns.json"
    code = chat(tiny, "--no-llm", "--k", "5", "--top", "3", "--json", str(out),
                *messages("I loved The Conjuring and Alien (1979)", "/why 1", "/reset", "something for kids?"))
    assert code == 0
    report = json.loads(out.read_text())
    assert report["retriever"] == "itemknn" and report["llm"] is None
    first, second = report["turns"]
    assert [m["item_id"] for m in first["recognised"]] == ["conjuring", "alien"]
    assert first["context_items"] == ["conjuring", "alien"]
    recommended = [r["item_id"] for r in first["recommendations"]]
    assert len(recommended) == 3 and set(recommended) <= {m["item_id"] for m in MOVIES}
    assert not set(recommended) & {"conjuring", "alien"}  # what the user named is not recommended back
    assert {"insidious", "aliens"} <= set(recommended)  # the co-occurring ones are
    assert all(r["llm_score"] is None for r in first["recommendations"])
    assert first["reply_items"] == recommended and all(r["title"] in first["reply"] for r in first["recommendations"])
    # /reset: a new conversation with nothing from the first one
    assert (first["conversation"], second["conversation"], second["turn"]) == (1, 2, 1)
    assert second["recognised"] == [] and second["context_items"] == []
    shown = capsys.readouterr().out
    assert "recognised: The Conjuring (2013)" in shown and "Alien (1979)" in shown
    assert "director" in shown and "new conversation" in shown  # /why 1 and /reset
    assert "no title named yet" in shown  # the hint after /reset, when itemknn has only popularity


def test_feedback_commands_mark_a_recommendation(tiny, tmp_path, capsys):
    """/seen N and /dislike N keep an item out of later turns; /like N makes it context; the 4th and 5th
    recommendations are not named in the reply, so only the marks keep them out."""
    out = tmp_path / "turns.json"
    assert chat(tiny, "--no-llm", "--k", "5", "--top", "5", "--json", str(out),
                *messages("/like 1", "I loved The Conjuring and Alien (1979)", "/seen 4", "/dislike 5", "/like 9",
                          "/like 1", "anything else?")) == 0
    first, second = json.loads(out.read_text())["turns"]
    seen, disliked = (r["item_id"] for r in first["recommendations"][3:5])
    liked = first["recommendations"][0]["item_id"]
    assert not {seen, disliked} & {r["item_id"] for r in second["recommendations"]}
    assert second["context_items"] == ["conjuring", "alien", liked]  # liked after the reply: latest context
    assert len(second["recommendations"]) == 3  # 10 movies less 2 named, 3 in the reply, 2 marked
    shown = capsys.readouterr().out
    assert "no recommendations yet" in shown  # /like 1 before any turn
    assert "marked seen" in shown and "marked disliked" in shown and "marked liked" in shown
    assert "usage: /like N, with N from 1 to 5" in shown  # /like 9


def test_interactive_eof_exits_cleanly(tiny, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("I loved Toy Story\n/help\n/why 7\n/frobnicate\n"))
    assert chat(tiny, "--no-llm", "--k", "3") == 0
    shown = capsys.readouterr().out
    assert "recognised: Toy Story (1995)" in shown and "/reset" in shown and "/dislike N" in shown
    assert "usage: /why N" in shown and "unknown command /frobnicate" in shown


def test_quit_ends_the_chat(tiny, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("/quit\nI loved Toy Story\n"))
    assert chat(tiny, "--no-llm") == 0
    assert "recognised" not in capsys.readouterr().out  # nothing after /quit ran


def test_missing_model_is_a_clear_error(tiny, tmp_path, capsys):
    missing = tmp_path / "no-such-model.gguf"
    assert chat(tiny, "--model", str(missing), *messages("hello")) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "bash scripts/install_qwen.sh" in err and "--model smollm2-135m" in err
    assert "Traceback" not in err


def test_help_explains_the_default_k(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["chat", "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "default 4" in text and "10 s target" in text and "/why N" in text
    assert f"(default {chat_threads()}: every core" in text  # a chat uses the whole machine by default


def test_a_chat_uses_every_core_unless_told(monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    assert chat_threads() == 2
    monkeypatch.setattr("os.cpu_count", lambda: 64)
    assert chat_threads() == 8


@pytest.mark.slow
def test_smollm2_pointwise_turns_and_cache(tiny, tmp_path):
    """The real local backend through the CLI: every recommendation is a catalogue item with an LLM score;
    the same conversation again is answered from the LLM cache."""
    args = ["--model", "smollm2-135m", "--threads", "1", "--k", "4", "--top", "3",
            "--llm-cache", str(tmp_path / "llm.sqlite"),
            *messages("Hi! I loved The Conjuring, something scary?", "Anything with Sigourney Weaver?")]
    runs = []
    for name in ("cold.json", "cached.json"):
        assert chat(tiny, *args, "--json", str(tmp_path / name)) == 0
        runs.append(json.loads((tmp_path / name).read_text()))
    cold, cached = runs
    assert cold["llm"]["backend"] == "local" and "smollm2-135m" in cold["llm"]["model"]
    ids = {m["item_id"] for m in MOVIES}
    for turn in cold["turns"]:
        assert turn["candidates"] == 4 and len(turn["recommendations"]) == 3
        assert {r["item_id"] for r in turn["recommendations"]} <= ids
        assert all(0.0 <= r["llm_score"] <= 1.0 for r in turn["recommendations"])
        scores = [r["score"] for r in turn["recommendations"]]
        assert scores == sorted(scores, reverse=True) and turn["fallback"] is None
        assert turn["timing"]["llm_calls"] == 4 and turn["timing"]["cache_hits"] == 0
        assert turn["timing"]["prompt_tokens"] > 0 and turn["timing"]["rerank_s"] > 0
    first, second = cold["turns"]
    assert [m["item_id"] for m in first["recognised"]] == ["conjuring"]
    assert not {r["item_id"] for r in second["recommendations"]} & {"conjuring", *first["reply_items"]}
    for cold_turn, cached_turn in zip(cold["turns"], cached["turns"], strict=True):
        assert cached_turn["timing"]["cache_hits"] == cached_turn["timing"]["llm_calls"] == 4
        assert cached_turn["recommendations"] == cold_turn["recommendations"]


def test_session_window_moves_in_jumps(tiny):
    """The LLM's view of a long dialogue drops old turns in jumps, so its prompt prefix stays the same in
    between; the retriever still sees every item."""
    dataset = load_dataset("tiny", tiny)
    engine = build_engine(dataset, ChatConfig(llm=None, session=SessionOptions(k=3, top=2)))
    state = engine.new_state(engine.options.model_copy(update={"window_chars": 400}))
    state, _ = engine.turn(state, "I loved Alien (1979). More like it?")
    starts = []
    for _ in range(6):
        state, turn = engine.turn(state, "Tell me more please, I want something with a lot of suspense in it.")
        starts.append(state.window_start)
        # what the LLM saw this turn (the dialogue before the reply), from the window's start
        assert len(render_turns(state.turns[state.window_start : -1])) <= 400
    assert starts == sorted(starts) and starts[-1] > 0  # the window moved forward...
    assert len(set(starts)) < len(starts)  # ...in jumps, not at every turn
    assert turn.context_items == ("alien",)  # the first message's title, long out of the window
    assert _window_start(state.turns, 0, 10_000) == 0  # a dialogue that fits is seen whole


@pytest.mark.slow
def test_session_listwise_with_smollm2(tiny, smollm2):
    dataset = load_dataset("tiny", tiny)
    engine = build_engine(dataset, ChatConfig(strategy="listwise", session=SessionOptions(k=3, top=3)),
                          llm=LLMClient(smollm2))
    _, turn = engine.turn(engine.new_state(), "I loved Alien (1979). More like it?")
    assert turn.timing.llm_calls == 1 and len(turn.recommendations) == 3
    assert {r.item_id for r in turn.recommendations} <= {m["item_id"] for m in MOVIES} - {"alien"}
    assert set(turn.reply.item_ids) == {r.item_id for r in turn.recommendations}


@pytest.mark.slow
def test_default_dataset_recognises_redial_titles(redial, data_dir, tmp_path):
    """ReDial (the default dataset) and the default retriever, no LLM."""
    out = tmp_path / "turns.json"
    assert main(["chat", "--data-dir", str(data_dir), "--no-llm", "--json", str(out),
                 *messages("Hi! I loved The Dark Knight and Get Out")]) == 0
    (turn,) = json.loads(out.read_text())["turns"]
    titles = [m["title"] for m in turn["recognised"]]
    assert titles == ["The Dark Knight (2008)", "Get Out (2017)"]
    assert len(turn["recommendations"]) == 5
    assert all(redial.catalog.get(r["item_id"]).display_title == r["title"] for r in turn["recommendations"])
