"""Grounded replies: the template over catalogue metadata, and the checks an LLM polish must pass."""

from __future__ import annotations

import pytest

from convrec.data.model import Dialogue, RecSample, Turn
from convrec.llm import LLMClient
from convrec.rerank.reply import ReplyOptions, ReplyWriter, choose_reason

TOP = ("insidious", "conjuring", "alien")


def said(text: str) -> str:
    return f"Seeker: {text}"


def test_reason_prefers_what_the_dialogue_mentions(catalog):
    alien = catalog.get("alien")
    assert choose_reason(alien, said("Anything with Sigourney Weaver?")).kind == "cast"
    assert choose_reason(alien, said("I like Ridley Scott films")).kind == "director"
    assert choose_reason(alien, said("I want some sci-fi tonight")).text.startswith("It is a sci-fi movie")
    assert choose_reason(alien, said("a movie about a deadly spacecraft crew")).kind == "plot"
    fallback = choose_reason(alien, said("hello"))
    assert fallback.kind == "genre" and "horror and sci-fi" in fallback.text


def test_template_reply_names_exact_catalogue_titles(catalog, horror_sample):
    reply = ReplyWriter(catalog).write(horror_sample, TOP)
    assert reply.source == "template" and reply.item_ids == TOP
    assert reply.text.startswith("How about Insidious (2010)?")
    assert "The Conjuring (2013)" in reply.text and "Alien (1979)" in reply.text
    assert reply.reason.kind == "genre" and "horror" in reply.reason.text  # the seeker asked for horror
    assert ReplyWriter(catalog).check(reply.text, TOP) is None


@pytest.mark.parametrize(
    ("polish", "problem"),
    [
        ("Try Insidious (2010), The Conjuring (2013) or Alien (1979): all scary.", None),
        ("Try Insidious, The Conjuring (2013) or Alien (1979).", "does not name"),
        ("Try Insidious (2010), The Conjuring (2013), Alien (1979) or Halloween (1978).", "year in parentheses"),
        ("Try Insidious (2010), The Conjuring (2013), Alien (1979) and \"Aliens\".", "Aliens (1986)"),
        ("Insidious (2010), The Conjuring (2013), Alien (1979), or maybe Finding Nemo.", "Finding Nemo (2003)"),
        ("", "empty"),
    ],
)
def test_polish_check_refuses_any_other_title(catalog, polish, problem):
    verdict = ReplyWriter(catalog).check(polish, TOP)
    assert verdict is None if problem is None else problem in verdict


def test_a_failing_polish_keeps_the_template(catalog, horror_sample, failing_llm):
    writer = ReplyWriter(catalog, failing_llm, ReplyOptions(polish=True))
    reply = writer.write(horror_sample, TOP)
    assert reply.source == "template" and reply.rejection.startswith("LLM call failed")
    assert reply.text == ReplyWriter(catalog).write(horror_sample, TOP).text


def test_no_items_asks_for_more(catalog):
    empty = RecSample(Dialogue("d", "test", [Turn("seeker", "hi")]), 1, "up")
    reply = ReplyWriter(catalog).write(empty, [])
    assert reply.item_ids == () and "tell me more" in reply.text


@pytest.mark.slow
def test_smollm2_polish_is_kept_only_when_grounded(catalog, horror_sample, smollm2):
    writer = ReplyWriter(catalog, LLMClient(smollm2), ReplyOptions(polish=True, max_tokens=60))
    reply = writer.write(horror_sample, TOP)
    assert writer.check(reply.text, TOP) is None  # whoever wrote it, the shown text is grounded
    assert (reply.source == "llm") == (reply.rejection is None)
