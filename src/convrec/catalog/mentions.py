"""Finding catalogue titles in a message a person typed: "I loved the dark knight and Alien (1979)".

:class:`~convrec.catalog.titles.TitleLinker` links a string that *is* a title; a chat message is prose with
titles somewhere in it. :func:`find_titles` proposes spans and the linker decides what they are:

1. quoted or emphasised spans (``"Up"``, ``'Up'``, ``“Up”``, ``*Up*``) are titles the writer marked: linked
   as the linker links any title, fuzzy matches included;
2. elsewhere, word spans (longest first, left to right) whose normalised text is exactly a catalogue title.
   Many titles are ordinary words ("Up", "Her", "Get Out", "Scary Movie", "Friday"), so an unmarked span
   counts only with evidence that it is meant as a title: a year right after it ("Halloween 1978",
   "It (2017)"); three or more words ("the dark knight"); or capitals: a two-word title written with
   capitals ("Get Out"), a one-word title capitalised mid-sentence that is not part of a longer capitalised
   name ("Ray" in "Ray Liotta") and not one of the words that are not titles (``not_titles``: a month, weekday
   or holiday by default; a domain adds its own, see :mod:`convrec.catalog.vocabulary`). A message that is
   nothing but a title always counts.

Several items can share a title ("Halloween" 1978 and 2007): a year decides; without one, the most popular
of them (``popularity``, e.g. mentions in training dialogues) is taken, else the linker's choice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from convrec.catalog.titles import TitleLinker, split_year

_QUOTED = re.compile(
    r"\"([^\"\n]{1,120})\"|“([^”\n]{1,120})”|(?<!\w)'([^'\n]{1,120})'(?!\w)|\*{1,2}([^*\n]{1,120})\*{1,2}"
)
_MASK = "\x00"
_TOKEN = re.compile(r"[^\s\x00]+")
_YEAR = re.compile(r"^[(\[]?((?:18|19|20)\d{2})[)\]]?[.,;:!?]*$")
_EDGE = "\"'“”‘’*()[]{}.,;:!?-–—"
_MINOR = frozenset(("a", "an", "the", "of", "and", "in", "on", "to", "for", "with", "at", "from", "by", "or"))
# Capitalised words that are rarely meant as an item of the same name when they stand alone, in any domain.
NOT_TITLES_ALONE = frozenset((
    "i", "january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
    "november", "december", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "christmas", "halloween", "easter", "thanksgiving", "valentine", "english", "american", "british", "french",
))


@dataclass(frozen=True)
class TitleMention:
    """A title found in a message: ``text`` as written, at ``message[start:end]``, linked to ``item_id``.

    ``evidence`` says why the span was taken for a title: "quoted", "year", "words" (three or more),
    "capitals" or "whole message".
    """

    text: str
    start: int
    end: int
    item_id: str
    evidence: str


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    word: str  # stripped of surrounding quotes, brackets and punctuation
    run: int  # tokens of one run are not separated by a quoted span


def _tokens(masked: str) -> list[_Token]:
    tokens: list[_Token] = []
    run, previous_end = 0, 0
    for match in _TOKEN.finditer(masked):
        if _MASK in masked[previous_end : match.start()]:
            run += 1
        tokens.append(_Token(match.start(), match.end(), match.group().strip(_EDGE), run))
        previous_end = match.end()
    return tokens


def _capitalised(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return bool(letters) and letters[0].isupper()


def _evidence(words: list[str], year: int | None, sentence_start: bool, before: str | None,
              after: str | None, not_titles: frozenset[str]) -> str | None:
    """Why ``words`` (an exact catalogue title) is meant as a title here, or None (see the module docstring).

    Words are counted as typed, but not a leading "a"/"an": "a scary movie" is prose, "the dark knight" a title.
    """
    if year is not None:
        return "year"
    typed = [w for w in words if any(c.isalpha() or c.isdigit() for c in w)]
    if typed and typed[0].lower() in ("a", "an"):
        typed = typed[1:]
    if len(typed) >= 3:
        return "words"
    significant = [w for w in words if any(c.isalpha() for c in w) and w.lower() not in _MINOR]
    if not significant or not all(_capitalised(w) for w in significant):
        return None
    if len(significant) >= 2:
        return "capitals"
    if sentence_start or significant[0].lower() in not_titles:
        return None
    if before is not None and _capitalised(before) and before.split("'")[0] != "I":
        return None  # part of a capitalised name ("Ray" in "Ray Liotta")
    if after is not None and _capitalised(after):
        return None
    return "capitals"


def _trimmed(message: str, start: int, end: int) -> tuple[int, int]:
    text = message[start:end]
    left = len(text) - len(text.lstrip(_EDGE))
    right = len(text) - len(text.rstrip(_EDGE))
    return start + left, max(start + left, end - right)


def find_titles(message: str, linker: TitleLinker, popularity: Mapping[str, float] | None = None,
                max_words: int = 12, not_titles: frozenset[str] = NOT_TITLES_ALONE) -> list[TitleMention]:
    """The catalogue titles in ``message``, in order of appearance, each item once (see the module docstring)."""
    found: list[TitleMention] = []
    masked = message
    for match in _QUOTED.finditer(message):
        group = next(g for g in range(1, 5) if match.group(g) is not None)
        start, end = _trimmed(message, match.start(group), match.end(group))
        item_id = _link(linker, message[start:end], None, popularity) if end > start else None
        if item_id is not None:
            found.append(TitleMention(message[start:end], start, end, item_id, "quoted"))
        masked = masked[: match.start()] + _MASK * (match.end() - match.start()) + masked[match.end() :]
    tokens = _tokens(masked)
    marked = len(found) > 0 or _MASK in masked
    i = 0
    while i < len(tokens):
        hit = _longest_title_at(message, tokens, i, linker, popularity, max_words, marked, not_titles)
        if hit is None:
            i += 1
            continue
        mention, used = hit
        found.append(mention)
        i += used
    unique: dict[str, TitleMention] = {}
    for mention in sorted(found, key=lambda m: m.start):
        unique.setdefault(mention.item_id, mention)
    return list(unique.values())


def _longest_title_at(message: str, tokens: list[_Token], i: int, linker: TitleLinker,
                      popularity: Mapping[str, float] | None, max_words: int, marked: bool,
                      not_titles: frozenset[str]) -> tuple[TitleMention, int] | None:
    """The longest title starting at token ``i`` that counts, and how many tokens it used (its year too)."""
    run = tokens[i].run
    last = i
    while last + 1 < len(tokens) and tokens[last + 1].run == run and last + 1 - i < max_words:
        last += 1
    previous = tokens[i - 1] if i > 0 and tokens[i - 1].run == run else None
    sentence_start = i == 0 or message[: tokens[i].start].rstrip().rstrip("\"')]”’").endswith((".", "!", "?"))
    for j in range(last, i - 1, -1):
        start, end = _trimmed(message, tokens[i].start, tokens[j].end)
        text = message[start:end]
        if j > i and split_year(text)[1] is not None:
            continue  # "Alien (1979)": the year is read as the year of "Alien" (below), not as part of it
        if not text or not linker.knows(text):
            continue
        following = tokens[j + 1] if j + 1 < len(tokens) and tokens[j + 1].run == run else None
        year_match = _YEAR.match(message[following.start : following.end]) if following is not None else None
        year = int(year_match.group(1)) if year_match else None
        words = [token.word for token in tokens[i : j + 1]]
        whole = not marked and i == 0 and (j == len(tokens) - 1 or (year is not None and j == len(tokens) - 2))
        evidence = "whole message" if whole else _evidence(
            words, year, sentence_start, previous.word if previous else None,
            following.word if following is not None and year is None else None, not_titles)
        if evidence is None:
            continue
        item_id = _link(linker, text, year, popularity)
        if item_id is None:
            continue
        used = j + 1 - i + (1 if year is not None else 0)
        return TitleMention(text, start, end, item_id, evidence), used
    return None


def _link(linker: TitleLinker, text: str, year: int | None, popularity: Mapping[str, float] | None) -> str | None:
    """The item ``text`` names: with a year (its own or the one after it) the linker's match for that year;
    without one (or when the year matches none) the most popular item of exactly that title."""
    if year is not None or split_year(text)[1] is not None:
        link = linker.link(text, year)
        if link is not None:
            return link.item_id
    same_title = linker.items_titled(text)
    if same_title and popularity is not None:
        return max(same_title, key=lambda item_id: popularity.get(item_id, 0.0))  # ties: catalogue order
    link = linker.link(split_year(text)[0])
    return link.item_id if link is not None else None
