"""A short reply that names the recommended items and gives one reason, grounded in the catalogue.

The reply is built from a template over catalogue metadata, so every title in it is an exact catalogue
title and every reason is a fact the catalogue states (a genre, the director or author, a cast name, the
plot), in the words of the domain's vocabulary (:mod:`convrec.catalog.vocabulary`: a book is "written by"
its author). The reason prefers a fact the seeker mentioned ("the horror you mentioned"; the recommender's
own earlier replies do not count), else the first genre.

An LLM may polish the wording. Its text is kept only if it is a reply and nothing else: not empty, not
cut off at its token limit, not much longer than the draft, repeating none of its prompt's own text (a
label such as "Draft reply:" or "Seeker:", or five words in a row of the system message or instruction:
small models echo their prompt: SmolLM2-135M did in 8 of 14 one-message chats on INSPIRED), naming every
recommended title exactly and no other title: no "(year)" other than theirs, and no other catalogue title,
whether quoted, emphasised or plain (found with the title linker and a scan of multi-word catalogue
titles). Otherwise, or if the call fails, the template reply stands, and the refusal is recorded.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from convrec.catalog.items import Catalog, Item
from convrec.catalog.titles import TitleLinker, normalize_title
from convrec.catalog.vocabulary import Vocabulary, article
from convrec.data.model import ContextView, Role, render_turns
from convrec.llm.errors import LLMError, LLMUnavailableError
from convrec.llm.stream import text_for_the_person
from convrec.llm.types import LLM, ChatRequest, ChatResponse
from convrec.rerank.prompts import PromptOptions, reply_messages, reply_prompt_parts

_WORD = re.compile(r"[a-z][a-z'-]+")
_YEAR_PAREN = re.compile(r"\((\d{4})\)")
_QUOTED = re.compile(r"[\"“]([^\"”]{2,80})[\"”]|\*{1,2}([^*]{2,80})\*{1,2}|_([^_]{2,80})_")
# Plot words too common to count as a shared topic (only words of 5+ letters are compared).
_COMMON_WORDS = (
    "about after again against among another around because before being between could doing during every "
    "having itself other should their there these those through under until where which while would youre "
    "movie movies story young woman women years world finds becomes family people great really think "
    "something watch watched seen"
)
_STOPWORDS = frozenset(_COMMON_WORDS.split())
_TOKEN = re.compile(r"[a-z0-9]+")
PROMPT_NGRAM = 5  # words in a row shared with the polish prompt's own text that make a reply an echo of it
# A polish may be longer than its draft, but not by more than this: 2 x the draft + LENGTH_SLACK characters.
LENGTH_SLACK = 80


def _ngrams(text: str, n: int) -> list[tuple[str, ...]]:
    words = _TOKEN.findall(text.lower())
    return [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]


class ReplyOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    n_items: int = Field(3, ge=1, description="how many of the top items the reply names")
    polish: bool = Field(False, description="let the LLM rewrite the template reply (checked, see module)")
    max_tokens: int = Field(120, ge=16)
    prompt: PromptOptions = PromptOptions()


@dataclass(frozen=True)
class Reason:
    kind: Literal["genre", "director", "author", "cast", "plot", "none"]  # "director", "author": a creator's field
    text: str  # a sentence about the first item, e.g. "It is a horror movie, like you asked about."


NO_REASON = Reason("none", "")


@dataclass(frozen=True)
class Reply:
    """``text`` names ``item_ids`` by their exact display titles; ``source`` says who wrote the final text.

    ``rejected`` is the LLM's polish when it was refused, ``rejection`` why (None when not asked or kept).
    ``response`` is the polish call's own answer (None when none came back), so a caller counts the usage of
    its own request rather than reading a client's counters, which concurrent callers share.
    """

    text: str
    item_ids: tuple[str, ...]
    reason: Reason
    source: Literal["template", "llm"] = "template"
    rejected: str | None = None
    rejection: str | None = None
    response: ChatResponse | None = field(default=None, compare=False, repr=False)


def _as_list(value: object) -> list[str]:
    if not value:
        return []
    return [value] if isinstance(value, str) else [str(v) for v in value]  # type: ignore[union-attr]


def _mentions(name: str, text: str) -> bool:
    """Is the person ``name`` (or their surname, if distinctive) mentioned in the lower-cased ``text``?"""
    name = name.lower().strip()
    if not name:
        return False
    surname = name.split()[-1]
    return name in text or (len(surname) >= 5 and _whole_word(surname).search(text) is not None)


@functools.lru_cache(maxsize=16384)
def _whole_word(phrase: str) -> re.Pattern[str]:
    """``phrase`` as a whole word or words, compiled once: Python's own cache holds 512 patterns and a
    catalogue has thousands of names and genres, so it recompiled them every turn."""
    return re.compile(rf"\b{re.escape(phrase)}\b")


def seeker_text(sample: ContextView) -> str:
    """What the seeker said so far (every turn, when the dialogue has no speaker roles)."""
    said = [turn for turn in sample.context if turn.role == "seeker"]
    return render_turns(said) if said else sample.context_text()


def _names_genre(genre: str, text: str, words: set[str]) -> bool:
    """Does the lower-cased ``text`` (its ``words``) name ``genre``? A genre of several words ("science
    fiction") is looked for as a phrase."""
    if " " in genre:
        return _whole_word(genre).search(text) is not None
    return genre in words or genre.replace("-", "") in words


def choose_reason(item: Item, dialogue: str, vocabulary: Vocabulary) -> Reason:
    """One reason to recommend ``item``, from its metadata; a fact the dialogue mentions comes first."""
    text = dialogue.lower()
    words = set(_WORD.findall(text))
    genres = [g.strip().lower() for g in _as_list(item.metadata.get("genre")) if g.strip()]
    # Who made it: the first of the domain's creator fields that the item fills ("director" for a movie).
    creator = next((c for c in vocabulary.creators if _as_list(item.metadata.get(c.field))), None)
    makers = _as_list(item.metadata.get(creator.field)) if creator is not None else []
    cast = _as_list(item.metadata.get(vocabulary.cast_field)) if vocabulary.cast_field else []
    noun = vocabulary.noun
    for genre in genres:
        if _names_genre(genre, text, words):
            return Reason("genre", vocabulary.asked_genre.format(a=article(genre), genre=genre, noun=noun))
    for person in makers:
        if creator is not None and _mentions(person, text):
            return Reason(creator.field, f"It was {creator.made_by} {person}, whom you mentioned.")
    for person in cast:
        if _mentions(person, text):
            return Reason("cast", f"It stars {person}, whom you mentioned.")
    plot = str(item.metadata.get("plot") or "")
    shared = [w for w in dict.fromkeys(_WORD.findall(plot.lower())) if w in words and len(w) >= 5
              and w not in _STOPWORDS]
    if shared:
        return Reason("plot", f"Its story is about {' and '.join(shared[:2])}, which you brought up.")
    if genres:
        return Reason("genre", vocabulary.genres.format(a=article(genres[0]), genres=" and ".join(genres[:2]),
                                                        noun=noun))
    if creator is not None and makers:
        return Reason(creator.field, f"It was {creator.made_by} {makers[0]}.")
    if cast:
        return Reason("cast", f"It stars {cast[0]}.")
    return Reason("none", "")


def template_reply(items: Sequence[Item], reason: Reason) -> str:
    """"How about A (1999)? <reason> You might also like B (2001) or C (2010)."."""
    if not items:
        return "I could not find anything to recommend yet. Could you tell me more about what you like?"
    titles = [item.display_title for item in items]
    text = f"How about {titles[0]}?"
    if reason.text:
        text += f" {reason.text}"
    if len(titles) == 2:
        text += f" You might also like {titles[1]}."
    elif len(titles) > 2:
        text += f" You might also like {', '.join(titles[1:-1])} or {titles[-1]}."
    return text


class ReplyWriter:
    """Writes grounded replies for one catalogue; ``llm`` (optional) polishes them when ``options.polish``."""

    def __init__(
        self,
        catalog: Catalog,
        llm: LLM | None = None,
        options: ReplyOptions | None = None,
        linker: TitleLinker | None = None,
    ):
        self.catalog = catalog
        self.llm = llm
        self.options = options or ReplyOptions()
        self.linker = linker or TitleLinker(catalog)
        # Multi-word titles only: one-word titles ("Up", "Her", "Heat") are ordinary words in a sentence.
        self._scan_keys = [
            (f" {key} ", item.item_id)
            for item in catalog
            if len(key := normalize_title(item.title)) >= 8 and " " in key
        ]
        prompt_parts = reply_prompt_parts(self.options.prompt)
        labels = [part[:-1] for part in prompt_parts if part.endswith(":")]
        labels += [role.capitalize() for role in get_args(Role)]  # how the dialogue's turns are labelled
        self._prompt_label = re.compile(rf"\b(?:{'|'.join(map(re.escape, labels))})\s*:", re.IGNORECASE)
        self._prompt_ngrams = {gram for part in prompt_parts for gram in _ngrams(part, PROMPT_NGRAM)}

    def write(self, sample: ContextView, ranked_ids: Sequence[str]) -> Reply:
        item_ids = tuple(ranked_ids[: self.options.n_items])
        items = [self.catalog.get(item_id) for item_id in item_ids]
        vocabulary = self.options.prompt.vocabulary
        reason = choose_reason(items[0], seeker_text(sample), vocabulary) if items else Reason("none", "")
        draft = template_reply(items, reason)
        if not (self.options.polish and self.llm is not None and items):
            return Reply(draft, item_ids, reason)
        return self.polish(sample, draft, item_ids, reason)

    def polish(self, sample: ContextView, draft: str, item_ids: Sequence[str],
               reason: Reason = NO_REASON) -> Reply:
        """The LLM's rewrite of ``draft``, a grounded reply that names ``item_ids`` (this writer's template, or
        another component's: the HARPO Explainer's), kept only if :meth:`check` accepts it and it was not cut
        off; otherwise ``draft`` stands and the refusal is recorded. Without an LLM, ``draft``. An endpoint that
        cannot serve at all raises :class:`LLMUnavailableError` (the caller decides whether to stop)."""
        item_ids = tuple(item_ids)
        if self.llm is None:
            return Reply(draft, item_ids, reason)
        request = ChatRequest(
            messages=reply_messages(sample, draft, self.options.prompt),
            max_tokens=self.options.max_tokens,
            temperature=0.0,
        )
        try:
            with text_for_the_person():  # streamed to a consumer that asked (the API's streamed endpoint)
                response = self.llm.complete(request)
        except LLMUnavailableError:
            raise  # the endpoint cannot serve at all: the caller stops, as the re-rankers do
        except LLMError as exc:  # the template reply is always available
            return Reply(draft, item_ids, reason, rejection=f"LLM call failed ({type(exc).__name__}: {exc})"[:300])
        polished = response.text.strip()
        problem = self.check(polished, item_ids, draft)
        if problem is None and response.finish_reason == "length":
            problem = f"cut off at max_tokens={self.options.max_tokens}"
        if problem is not None:
            return Reply(draft, item_ids, reason, rejected=polished, rejection=problem, response=response)
        return Reply(polished, item_ids, reason, source="llm", response=response)

    def prompt_echo(self, text: str) -> str | None:
        """What of the polish prompt's own text ``text`` repeats (a label, or five words in a row), or None."""
        label = self._prompt_label.search(text)
        if label is not None:
            return f"the label {label.group(0)!r}"
        for gram in _ngrams(text, PROMPT_NGRAM):
            if gram in self._prompt_ngrams:
                return f"the words {' '.join(gram)!r}"
        return None

    def check(self, text: str, item_ids: Sequence[str], draft: str | None = None) -> str | None:
        """Why ``text`` may not be shown for these recommended items, or None if it is a grounded reply.

        ``draft`` (the template reply it rewrites) bounds its length; without one the length is not judged.
        """
        if not text:
            return "empty text"
        echo = self.prompt_echo(text)
        if echo is not None:
            return f"repeats its prompt: {echo}"
        if draft is not None and len(text) > 2 * len(draft) + LENGTH_SLACK:
            return f"too long: {len(text)} characters for a draft of {len(draft)}"
        allowed = [self.catalog.get(item_id) for item_id in item_ids]
        missing = [item.display_title for item in allowed if item.display_title not in text]
        if missing:
            return f"does not name {missing} exactly"
        rest = text
        for item in allowed:  # what is left must name no title at all
            rest = rest.replace(item.display_title, " ")
        years = _YEAR_PAREN.findall(rest)
        if years:
            return f"names another title (a year in parentheses: {years[0]})"
        allowed_ids = set(item_ids)
        for match in _QUOTED.finditer(rest):
            span = next(group for group in match.groups() if group)
            link = self.linker.link(span)
            if link is not None and link.item_id not in allowed_ids:
                return f"names another title: {span!r} is {self.catalog.get(link.item_id).display_title}"
        plain = f" {normalize_title(rest)} "
        for key, item_id in self._scan_keys:
            if item_id not in allowed_ids and key in plain:
                return f"names another title: {self.catalog.get(item_id).display_title}"
        return None
