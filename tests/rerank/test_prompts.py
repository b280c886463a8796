"""The prompts speak of the catalogue's domain: books for a book catalogue, movies (word for word as before the
vocabulary existed: the LLM response cache of earlier runs stays valid) for a movie one."""

from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from convrec.catalog.items import Item
from convrec.data.model import Dialogue, RecSample, Turn
from convrec.rerank.prompts import (
    PromptOptions,
    listwise_messages,
    pointwise_messages,
    pointwise_prefix,
    reply_messages,
)

SAMPLE = RecSample(Dialogue("d", "test", [Turn("seeker", "Something like Emma, please")]), 1, "")
DUNE = Item("dune", "Dune", 1965, {"author": ["Frank Herbert"], "genre": ["science fiction"]})
MOVIE_WORDS = re.compile(r"\b(movies?|films?|director|directed|cast)\b", re.IGNORECASE)


def every_prompt(options: PromptOptions) -> str:
    messages = [*pointwise_messages(pointwise_prefix(SAMPLE, options), DUNE, options),
                *listwise_messages(SAMPLE, [DUNE], ["Dune (1965)"], options),
                *reply_messages(SAMPLE, "How about Dune (1965)?", options)]
    return "\n".join(message.content for message in messages)


def test_book_prompts_speak_of_books():
    text = every_prompt(PromptOptions(domain="books"))
    assert not MOVIE_WORDS.search(text)
    assert "You are a book recommender." in text and "Candidate books:" in text and "Book: Dune (1965)" in text
    assert "Author: Frank Herbert" in text


def test_movie_prompts_are_unchanged():
    options = PromptOptions()
    system, user = pointwise_messages(pointwise_prefix(SAMPLE, options), DUNE, options)
    assert system.content == ("You are a movie recommender. You read a conversation and judge whether one movie "
                              "fits what the Seeker is looking for.")
    assert user.content.endswith("Question: is the movie below a good next recommendation for the Seeker? Answer "
                                 "Yes or No.\n\nMovie: Dune (1965). Genre: science fiction. Author: Frank "
                                 "Herbert\nAnswer (Yes or No):")
    system, user = listwise_messages(SAMPLE, [DUNE], ["Dune (1965)"], options)
    assert system.content == "You are a movie recommender. You rank candidate movies for the Seeker of a conversation."
    assert "\n\nCandidate movies:\n1. Dune (1965)" in user.content


def test_the_generic_words_read_as_english():
    text = every_prompt(PromptOptions(domain="items"))
    assert "You are an item recommender." in text and "Candidate items:" in text
    assert not MOVIE_WORDS.search(text)


def test_an_unknown_domain_is_refused():
    with pytest.raises(ValidationError, match="domain"):
        PromptOptions(domain="games")
