"""Grounded replies: the template over catalogue metadata, and the checks an LLM polish must pass."""

from __future__ import annotations

import re

import pytest

from convrec.catalog.items import Catalog, Item
from convrec.catalog.vocabulary import BOOKS, GENERIC, MOVIES
from convrec.data.model import Dialogue, RecSample, Turn
from convrec.llm import LLMClient
from convrec.rerank.prompts import PromptOptions
from convrec.rerank.reply import ReplyOptions, ReplyWriter, choose_reason

TOP = ("insidious", "conjuring", "alien")


def said(text: str) -> str:
    return f"Seeker: {text}"


def test_reason_prefers_what_the_dialogue_mentions(catalog):
    alien = catalog.get("alien")
    assert choose_reason(alien, said("Anything with Sigourney Weaver?"), MOVIES).kind == "cast"
    assert choose_reason(alien, said("I like Ridley Scott films"), MOVIES).kind == "director"
    assert choose_reason(alien, said("I want some sci-fi tonight"), MOVIES).text.startswith("It is a sci-fi movie")
    assert choose_reason(alien, said("a movie about a deadly spacecraft crew"), MOVIES).kind == "plot"
    fallback = choose_reason(alien, said("hello"), MOVIES)
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


# Books, in the book vocabulary: the words a movie recommender would use must not appear.
BOOK_ITEMS = Catalog([
    Item("dome", "Under the Dome", 2009, {"author": ["Stephen King"]}),
    Item("emma", "Emma", 1815, {"author": ["Jane Austen"], "genre": ["romance novel", "fiction"]}),
    Item("ender", "Ender's Game", 1985, {"author": ["Orson Scott Card"], "genre": ["science fiction", "fiction"]}),
    Item("bare", "Untitled Notes"),
], name="books")
MOVIE_WORDS = re.compile(r"\b(movies?|films?|directed|watch|stars)\b", re.IGNORECASE)


@pytest.mark.parametrize(
    ("item_id", "seeker", "kind", "reason"),
    [
        ("dome", "I enjoyed The Shining by Stephen King", "author", "It was written by Stephen King, whom you "
         "mentioned."),
        ("dome", "hello", "author", "It was written by Stephen King."),
        ("emma", "I like a good romance novel", "genre", "It is listed under romance novel, like you asked about."),
        ("ender", "some science fiction please", "genre", "It is listed under science fiction, like you asked "
         "about."),  # a genre of two words is matched as a phrase
        ("ender", "hello", "genre", "It is listed under science fiction and fiction."),
        ("bare", "hello", "none", ""),
    ],
)
def test_book_reasons_speak_of_books(item_id, seeker, kind, reason):
    chosen = choose_reason(BOOK_ITEMS.get(item_id), said(seeker), BOOKS)
    assert (chosen.kind, chosen.text) == (kind, reason)
    assert not MOVIE_WORDS.search(chosen.text)


def test_a_books_author_is_never_said_to_direct():
    """The movie words for the same book: what the book vocabulary exists to prevent (and the generic words,
    which name who made an item by the field the catalogue fills)."""
    dome = BOOK_ITEMS.get("dome")
    assert choose_reason(dome, said("hello"), GENERIC).text == "It was written by Stephen King."
    ender = BOOK_ITEMS.get("ender")
    assert choose_reason(ender, said("hello"), MOVIES).text == "It is a science fiction and fiction movie."


def test_book_reply_and_polish_prompt_use_the_book_words():
    options = ReplyOptions(prompt=PromptOptions(domain="books"))
    sample = RecSample(Dialogue("d", "test", [Turn("seeker", "Anything by Stephen King?")]), 1, "")
    writer = ReplyWriter(BOOK_ITEMS, options=options)
    reply = writer.write(sample, ["dome", "emma"])
    assert reply.text == ("How about Under the Dome (2009)? It was written by Stephen King, whom you mentioned. "
                          "You might also like Emma (1815).")
    # The polish prompt's own words are recognised as an echo in the book wording, not the movie one.
    assert writer.prompt_echo("You are a friendly book recommender") is not None
    assert writer.prompt_echo("You are a friendly movie recommender") is None
