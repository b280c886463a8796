"""Every prompt of the re-rankers and of the reply writer, as data: templates here, nothing inline elsewhere.

Why one place: the prompt is part of the experiment (a changed word changes the scores and invalidates
the LLM response cache), so it must be easy to read, diff and vary. The metadata shown for a candidate is
what the catalogue has: title and year, genres, director (or author), a few cast names and a short plot. What
the items are called comes from the domain's vocabulary (:mod:`convrec.catalog.vocabulary`): a book
recommender's prompts speak of books.

Pointwise prompts are built so that everything shared by the candidates of one dialogue comes first
(system message, dialogue, question) and the candidate comes last: llama.cpp then reuses the cached
prefix and each further candidate costs only its own tokens.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from convrec.catalog.items import Item
from convrec.catalog.vocabulary import VOCABULARIES, Domain, Vocabulary
from convrec.data.model import ContextView
from convrec.llm.types import ChatMessage

POINTWISE_SYSTEM = (
    "You are {a_noun} recommender. You read a conversation and judge whether one {noun} fits what the "
    "Seeker is looking for."
)
POINTWISE_PREFIX = (
    "Conversation between a Seeker and a Recommender:\n{dialogue}\n\n"
    "Question: is the {noun} below a good next recommendation for the Seeker? Answer Yes or No.\n\n"
)
POINTWISE_CANDIDATE = "{Noun}: {description}\nAnswer (Yes or No):"

LISTWISE_SYSTEM = (
    "You are {a_noun} recommender. You rank candidate {nouns} for the Seeker of a conversation."
)
LISTWISE_USER = (
    "Conversation between a Seeker and a Recommender:\n{dialogue}\n\n"
    "Candidate {nouns}:\n{candidates}\n\n"
    "Rank the candidates from the best next recommendation for the Seeker to the worst. Answer in JSON, "
    "as {{\"ranking\": [\"exact title (year)\", ...]}}, best first, each title once, no other text."
)

REPLY_SYSTEM = "You are a friendly {noun} recommender in a conversation."
REPLY_USER = (
    "Conversation so far:\n{dialogue}\n\n"
    "Draft reply:\n{draft}\n\n"
    "Rewrite the draft reply so it sounds natural, in at most three sentences. Keep every title exactly "
    "as written, including the year in parentheses, and do not mention any other title. Reply with the "
    "rewritten text only."
)

EMPTY_DIALOGUE = "(the conversation has just started; nothing has been said yet)"


class PromptOptions(BaseModel):
    """How much of the dialogue and of each candidate's metadata goes into a prompt."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    domain: Domain = Field("movies", description="what the catalogue holds (movies, books, or items for any "
                           "other): the words of the prompts and replies, see convrec.catalog.vocabulary")
    context_chars: int = Field(1500, ge=50, description="most recent characters of the dialogue kept")
    plot_chars: int = Field(100, ge=0, description="characters of plot per candidate (0: no plot)")
    max_people: int = Field(3, ge=0, description="cast names (and directors/authors) shown per candidate")
    max_genres: int = Field(3, ge=0)

    @property
    def vocabulary(self) -> Vocabulary:
        return VOCABULARIES[self.domain]


def _names(value: object, limit: int) -> str:
    if not value or limit == 0:
        return ""
    values = [value] if isinstance(value, str) else [str(v) for v in value]  # type: ignore[union-attr]
    return ", ".join(v.strip() for v in values[:limit] if v and v.strip())


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:") + "..."


def describe_item(item: Item, options: PromptOptions) -> str:
    """``Title (Year). Genre: a, b. Director: X. Cast: A, B. Plot: ...`` from whatever the catalogue has."""
    metadata = item.metadata
    parts = [item.display_title]
    fields = (
        ("Genre", _names(metadata.get("genre"), options.max_genres)),
        ("Director", _names(metadata.get("director"), options.max_people)),
        ("Author", _names(metadata.get("author"), options.max_people)),
        ("Cast", _names(metadata.get("star"), options.max_people)),
    )
    parts.extend(f"{label}: {value}" for label, value in fields if value)
    plot = metadata.get("plot")
    if plot and options.plot_chars > 0:
        parts.append(f"Plot: {_shorten(str(plot), options.plot_chars)}")
    return ". ".join(parts)


def dialogue_text(sample: ContextView, options: PromptOptions) -> str:
    return sample.context_text(max_chars=options.context_chars) or EMPTY_DIALOGUE


def _words(options: PromptOptions) -> dict[str, str]:
    noun = options.vocabulary.noun
    return {"noun": noun, "Noun": noun.capitalize(), "nouns": options.vocabulary.plural,
            "a_noun": options.vocabulary.a_noun}


def pointwise_prefix(sample: ContextView, options: PromptOptions) -> str:
    """The part of the user message shared by every candidate of ``sample``: dialogue, then question."""
    return POINTWISE_PREFIX.format(dialogue=dialogue_text(sample, options), **_words(options))


def pointwise_messages(prefix: str, item: Item, options: PromptOptions) -> tuple[ChatMessage, ...]:
    """System message, then one user message: the shared ``prefix`` followed by this candidate."""
    candidate = POINTWISE_CANDIDATE.format(description=describe_item(item, options), **_words(options))
    return (
        ChatMessage(role="system", content=POINTWISE_SYSTEM.format(**_words(options))),
        ChatMessage(role="user", content=prefix + candidate),
    )


def listwise_messages(
    sample: ContextView, items: Sequence[Item], labels: Sequence[str], options: PromptOptions
) -> tuple[ChatMessage, ...]:
    """The dialogue, the numbered candidates (``labels[i]`` is how item i must be named), the instruction."""
    lines = []
    for number, (item, label) in enumerate(zip(items, labels, strict=True), start=1):
        description = describe_item(item, options)
        if label != item.display_title:  # two candidates share a display title: show the label used
            description = f"{label}. {description}"
        lines.append(f"{number}. {description}")
    user = LISTWISE_USER.format(
        dialogue=dialogue_text(sample, options), candidates="\n".join(lines), **_words(options)
    )
    return (
        ChatMessage(role="system", content=LISTWISE_SYSTEM.format(**_words(options))),
        ChatMessage(role="user", content=user),
    )


def reply_prompt_parts(options: PromptOptions) -> list[str]:
    """The fixed text of the polish prompt (system message, labels, instruction), without the dialogue and
    the draft: a polished reply that repeats any of it is the model echoing its prompt, not a reply."""
    user_parts = re.split(r"\{dialogue\}|\{draft\}", REPLY_USER)
    return [REPLY_SYSTEM.format(**_words(options)), *(part.strip() for part in user_parts if part.strip())]


def reply_messages(sample: ContextView, draft: str, options: PromptOptions) -> tuple[ChatMessage, ...]:
    user = REPLY_USER.format(dialogue=dialogue_text(sample, options), draft=draft)
    return (
        ChatMessage(role="system", content=REPLY_SYSTEM.format(**_words(options))),
        ChatMessage(role="user", content=user),
    )
