"""A polished chat reply is shown only when it is a reply: issue 13, case 3 (``--polish`` showed the user the
rewrite instruction itself).

The checker is tested on crafted replies over a small catalogue built here, then the whole path with the
real SmolLM2 through ``convrec chat --polish`` on INSPIRED, in the turn where the old check let the
model's echo of its prompt through. ``EchoLLM`` and ``CutOffLLM`` are FAKES that answer one fixed text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from convrec.catalog.items import Catalog, Item
from convrec.data.model import Dialogue, RecSample, Turn
from convrec.llm import ChatRequest, ChatResponse
from convrec.rerank.reply import ReplyOptions, ReplyWriter

CATALOG = Catalog([
    Item("insidious", "Insidious", 2010, {"genre": ["horror"]}),
    Item("conjuring", "The Conjuring", 2013, {"genre": ["horror"]}),
    Item("alien", "Alien", 1979, {"genre": ["horror", "sci-fi"]}),
    Item("nemo", "Finding Nemo", 2003, {"genre": ["animation"]}),
], name="replies")
TOP = ("insidious", "conjuring", "alien")
SAMPLE = RecSample(Dialogue("d", "test", [Turn("seeker", "I want something scary")]), 1, "")
DRAFT = "How about Insidious (2010)? It is a horror movie, like you asked about. You might also like The " \
        "Conjuring (2013) or Alien (1979)."
# What SmolLM2 answered in the chat: the draft, then the instruction, reworded a little.
ECHO = (DRAFT + "\n\nRewrite the response so it sounds natural, in at most three sentences. Keep every title "
        "exactly as written, including the year in parentheses. Reply with the rewritten text only.")


@pytest.fixture(scope="module")
def writer() -> ReplyWriter:
    return ReplyWriter(CATALOG)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("Scared? Insidious (2010) is the one, and The Conjuring (2013) or Alien (1979) will keep every light on.",
         None),
        (DRAFT, None),  # the draft itself is a reply
        (ECHO, "repeats its prompt: the words 'so it sounds natural in'"),
        ("Draft reply:\n" + DRAFT, "repeats its prompt: the label 'Draft reply:'"),
        ("Seeker: I want something scary\n" + DRAFT, "repeats its prompt: the label 'Seeker:'"),
        ("conversation so far : " + DRAFT, "repeats its prompt: the label 'conversation so far :'"),
        ("You are a friendly movie recommender! " + DRAFT, "the words 'you are a friendly movie'"),
        (DRAFT + " Do not mention any other title.", "the words 'do not mention any other'"),
        (DRAFT + " " + "Truly, it is a great one to watch tonight. " * 8, "too long: "),
        ("", "empty text"),
        ("Try Insidious (2010) or Alien (1979).", "does not name ['The Conjuring (2013)'] exactly"),
        (DRAFT + " Or Finding Nemo, if you change your mind.", "names another title: Finding Nemo (2003)"),
    ],
)
def test_the_check_refuses_prompt_text_length_and_other_titles(writer, text, problem):
    verdict = writer.check(text, TOP, DRAFT)
    assert verdict is None if problem is None else problem in verdict


@dataclass
class EchoLLM:
    """A FAKE: answers every request with ``text`` (``finish_reason`` as given)."""

    text: str
    finish_reason: str = "stop"

    def complete(self, request: ChatRequest) -> ChatResponse:
        return ChatResponse(text=self.text, finish_reason=self.finish_reason, model="echo", backend="fake")


def test_an_echo_of_the_prompt_falls_back_to_the_template_and_says_why():
    template = ReplyWriter(CATALOG).write(SAMPLE, TOP)
    reply = ReplyWriter(CATALOG, EchoLLM(ECHO), ReplyOptions(polish=True)).write(SAMPLE, TOP)
    assert reply.text == template.text and reply.source == "template"
    assert reply.rejected == ECHO and reply.rejection.startswith("repeats its prompt")
    assert all(CATALOG.get(item_id).display_title in ECHO for item_id in TOP)  # titles alone let it through


def test_a_reply_cut_off_at_its_token_limit_falls_back():
    fine_but_cut = "Scared? Insidious (2010) is the one, and The Conjuring (2013) or Alien (1979) will keep"
    cut = EchoLLM(fine_but_cut, finish_reason="length")
    reply = ReplyWriter(CATALOG, cut, ReplyOptions(polish=True, max_tokens=30)).write(SAMPLE, TOP)
    assert reply.source == "template" and reply.rejection == "cut off at max_tokens=30"
    kept = ReplyWriter(CATALOG, EchoLLM(fine_but_cut + " you up."), ReplyOptions(polish=True)).write(SAMPLE, TOP)
    assert kept.source == "llm" and kept.rejection is None


@pytest.mark.slow
def test_smollm2_echoing_its_prompt_is_not_shown(run_cli, inspired, data_dir, mirror, tmp_path):
    """The real model, in a turn where it answers "Draft reply:", the draft and the instruction (names every
    recommended title and no other, so the titles-only check of old showed it)."""
    out = tmp_path / "turns.json"
    run = run_cli("chat", "--dataset", "inspired", "--data-dir", data_dir, "--mirror", mirror,
                  "--model", "smollm2-135m", "--threads", "1", "--k", "2", "--top", "2", "--polish",
                  "--no-llm-cache", "-m", "hi", "--json", out)
    assert run.rc == 0
    (turn,) = json.loads(out.read_text())["turns"]
    titles = [r["title"] for r in turn["recommendations"]]
    assert turn["reply_source"] == "template" and turn["reply_rejection"].startswith("repeats its prompt")
    assert "Rewrite the" in turn["reply_rejected"] and all(title in turn["reply_rejected"] for title in titles)
    assert turn["reply"].startswith(f"How about {titles[0]}?") and "Rewrite" not in turn["reply"]
    shown = " ".join(run.out.split())
    reply_line = shown.split("recommender: ", 1)[1].split(" note: ", 1)[0]
    assert reply_line == turn["reply"]
    assert "the LLM's rewrite of the reply was not used (repeats its prompt" in shown


def test_an_unwritable_json_path_fails_before_the_chat(run_cli, tmp_path, monkeypatch):
    """The turns, with each reply's diagnostics, are written at the end: the path is checked first."""

    def load_dataset(*args, **kwargs):
        raise AssertionError("the dataset was loaded before the --json path was checked")

    monkeypatch.setattr("convrec.cli.chat_cmd.load_dataset", load_dataset)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    run = run_cli("chat", "--no-llm", "-m", "hi", "--json", blocker / "turns.json")
    assert run.failed_with("--json", str(blocker / "turns.json"), "is a file, not a folder")
