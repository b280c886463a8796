"""Constraints a seeker states ("after 2010", "no horror", "something with Hugh Grant"), read by rules from a
message, and the constraint state of a conversation.

:func:`extract_constraints` reads one message against a :class:`~convrec.agent.domain.DomainAdapter`, so the
same rules serve movies, books and any imported catalogue; it never names a domain:

1. **Titles** the message names (``adapter.find_titles``, or the ones the caller found) are no constraint:
   "Scary Movie" is a title, not a wish for horror.
2. **Eras** (the ``year`` attribute; :data:`ERA_PATTERNS`): "after 2010" (2011-), "since 2010" (2010-),
   "before 2000" / "older than 1980" (-1999 / -1979), "between 1990 and 2000", "1990-2000", "from 2015"
   (2015), "from the 90s" / "90s" / "nineties" / "late 80s", "a 2015 movie", "2010 or later", "the last 5
   years", "recent" / "newer" / "modern" (the catalogue's newest ``recent_years`` years), "classic" / "old"
   / "oldies" / "black and white" (``classic_age`` years before its newest item or older), centuries
   ("a nineteenth-century novel", "the 1800s", "this century"). "Recent" and "classic" are measured against
   the catalogue's newest item, not today's date: the catalogue is the clock its seekers had. Such a vague
   word gives way to an era the same message states with numbers ("classics, so before 1950" is -1949). A
   year alone ("I saw it in 2010"), an age ("in my 30s") and an era said of an item ("Ferdinand is from this
   century") are no era.
3. **People**: full names (two words or more) of the catalogue's people, anywhere in the message; a one-word
   name ("Madonna") only when a role word comes right before it ("with", "by", "starring"). The role word
   picks the attribute when the catalogue gives the person several ("with Clint Eastwood": star; "by
   Christopher Nolan": director); without one, a person with several roles is the virtual ``person``. A
   surname alone ("Spielberg") the same way as a one-word name, next to a role word before or after it
   ("what else Spielberg directed", "Nolan movies"), when it is no ordinary word and names one person
   clearly (:func:`surname`).
4. **Values** of categorical attributes (genre, a generic catalogue's "color"...): the gazetteer's words,
   whole words only ("war" is not in "award"), longest first; hints such as "scary" (horror) and ambiguous
   words such as "short" only in a request context ("a funny movie", "nothing too scary", "short films").
   "A movie about sharks" wants the plot keyword "shark" when the catalogue has plot keywords.
5. **Polarity**, per mention: "avoid" when a negation comes before it in its clause ("no horror", "I don't
   like horror", "anything but romance", "not Adam Sandler", "nothing before 2000"), when it continues a
   list that began negated ("no horror or romance"), when "too" qualifies it ("not too scary", "too old"),
   or when a negative remark follows it ("horror is not my thing", "romance? no thanks"); weariness and
   refusal negate too ("I've had enough war films", "I'm done with Cassandra Clare", "she refuses to watch
   anything before 2012"), and so does what the seeker has exhausted ("I've seen all the classics", "I've
   read everything by C.S. Lewis"). Clauses end at sentence punctuation, at "but" (not "anything but"), at a
   comma for negations, and where a new wish begins ("I want", "how about", "maybe"). Phrases that only
   look negative do not negate ("I don't mind horror", "not sure, maybe horror", "I've never seen a
   western"). "Avoid" an open era ("not before 2000") is stated as the era it leaves ("2000-").
6. **Lifted constraints**: "any genre is fine", "the year doesn't matter", "I don't care about the era"
   give polarity "any" on that attribute.

:class:`ConstraintState` keeps a conversation's constraints and documents how a new one replaces or merges with
the old ones (see :meth:`ConstraintState.update`).
"""

from __future__ import annotations

import bisect
import re
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from convrec.agent.normalise import Token, singular, tokenize, value_key
from convrec.agent.schema import KEYWORD, PERSON, YEAR

if TYPE_CHECKING:
    from convrec.agent.domain import DomainAdapter
    from convrec.catalog.mentions import TitleMention

Polarity = Literal["want", "avoid", "any"]


class Constraint(BaseModel):
    """What a seeker asked for or against: ``value`` of ``attribute`` (categorical, people, keyword), or a
    range ``low``..``high`` (inclusive; one side may be open) of a numeric one. ``polarity`` "any" lifts the
    attribute's constraints (no value, no range). ``text`` is what the seeker wrote, at
    ``message[start:end]`` of turn ``turn``."""

    model_config = ConfigDict(frozen=True)

    attribute: str
    value: str | None = None
    low: int | float | None = None
    high: int | float | None = None
    polarity: Polarity = "want"
    text: str = ""
    start: int = Field(0, ge=0)
    end: int = Field(0, ge=0)
    turn: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _value_or_range(self) -> Constraint:
        ranged = self.low is not None or self.high is not None
        if self.polarity == "any":
            if ranged:
                raise ValueError("a constraint that lifts an attribute ('any') has no range")
        elif self.value is None and not ranged:
            raise ValueError(f"a constraint on {self.attribute!r} needs a value or a range")
        if self.value is not None and ranged:
            raise ValueError(f"a constraint on {self.attribute!r} has a value or a range, not both")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"empty range {self.low}..{self.high} on {self.attribute!r}")
        return self

    @property
    def is_range(self) -> bool:
        return self.low is not None or self.high is not None

    def describe(self) -> str:
        """"genre = horror", "genre != horror", "year 2011..", "year not 1990..1999", "any genre"."""
        if self.polarity == "any":
            return f"any {self.attribute}" + (f" ({self.value})" if self.value else "")
        if self.is_range:
            span = f"{_number(self.low)}..{_number(self.high)}"
            return f"{self.attribute} {'not ' if self.polarity == 'avoid' else ''}{span}"
        return f"{self.attribute} {'=' if self.polarity == 'want' else '!='} {self.value}"

    def same_target(self, other: Constraint) -> bool:
        """Same attribute and same value (by key) or same range, whatever the polarity."""
        if self.attribute != other.attribute or self.is_range != other.is_range:
            return False
        if self.is_range:
            return (self.low, self.high) == (other.low, other.high)
        return value_key(self.value or "") == value_key(other.value or "")


def _number(value: int | float | None) -> str:
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else str(value)


class ExtractionConfig(BaseModel):
    """What the relative era words mean, measured from the catalogue's newest year."""

    model_config = ConfigDict(frozen=True)

    recent_years: int = Field(5, ge=1, description="'recent', 'newer', 'modern': the newest N years")
    classic_age: int = Field(30, ge=1, description="'classic', 'old': N years older than the newest item or more")
    few_years: int = Field(5, ge=1, description="'the last few years'")
    negation_window: int = Field(8, ge=1, description="how many words back a negation reaches in its clause")


# ---- words ------------------------------------------------------------------------------------------------

# Nouns that make an adjective or an ambiguous word a request ("funny movies", "short films", "scary ones").
CONTEXT_NOUNS = frozenset(singular(w) for w in (
    "movie", "film", "flick", "book", "novel", "story", "one", "stuff", "thing", "show", "genre", "type", "kind",
    "read", "title", "series", "item", "content", "option", "pick", "recommendation", "suggestion", "classic",
))
# Words before an adjective that make it a request ("something funny", "nothing too scary", "more romantic").
REQUEST_WORDS = frozenset(("something", "anything", "nothing", "some", "more", "less", "too", "very", "really",
                           "pretty", "kinda", "bit", "for", "super", "not", "real", "truly", "genuinely", "little"))
# Words a list of values may be joined by: a negation before the list reaches every value of it.
LIST_FILLERS = frozenset((",", "and", "or", "nor", "either", "any", "also", "etc", "&", "/", "plus", "too", "a",
                          "an", "the", "some")) | CONTEXT_NOUNS | {w + "s" for w in CONTEXT_NOUNS}
# Negations, phrases that only look negative, and where a new wish begins: folded words, matched by the word
# that ends them, longest first.
NEGATIONS = tuple(tuple(p.split()) for p in (
    "no", "not", "nothing", "none", "without", "except", "excluding", "minus", "avoid", "skip", "never", "neither",
    "dont", "do not", "doesnt", "does not", "didnt", "did not", "wont", "will not", "wouldnt", "would not",
    "isnt", "arent", "cant stand", "cannot stand", "can not stand", "hate", "hated", "hates", "dislike",
    "disliked", "dislikes", "detest", "loathe", "sick of", "tired of", "enough of", "rather not", "rather than",
    "instead of", "other than", "apart from", "aside from", "anything but", "everything but", "all but",
    "stay away from", "steer clear of", "less", "nah", "than", "against", "not a fan of", "no more",
    "not in the mood for", "not looking for", "not interested in", "not into",
    # weariness and refusal: "I've had enough war films", "I'm done with Cassandra Clare", "she refuses to watch"
    "had enough", "done with", "fed up with", "bored of", "bored with", "no longer", "refuse to", "refuses to",
    "refused to",
    # what the seeker has exhausted is no wish: "I've seen all the classics", "read everything by C.S. Lewis"
    *(f"{verb} {what}" for verb in ("seen", "saw", "watched", "read") for what in (
        "everything by", "everything from", "everything of", "all of", "all the", "all by", "every")),
))
NOT_NEGATIONS = tuple(tuple(p.split()) for p in (
    "dont mind", "do not mind", "wouldnt mind", "would not mind", "dont care", "doesnt matter", "not sure",
    "dont know", "do not know", "no problem", "nothing wrong", "not only", "not just", "dont hate",
    "dont dislike", "not opposed", "no matter", "nothing but", "never seen", "never watched", "never read",
    "never tried", "not bad", "dont have", "cant wait", "not against",
))
PIVOTS = tuple(tuple(p.split()) for p in (
    "but", "though", "although", "however", "whereas", "instead", "i want", "i like", "i love", "i prefer",
    "i enjoy", "id like", "id love", "id prefer", "i would like", "i would love", "give me", "how about",
    "what about", "maybe", "perhaps", "prefer", "preferably", "rather", "looking for", "in the mood for",
))
# Remarks after a mention that turn it down ("horror is not my thing", "romance? no thanks").
AFTER_NEGATIONS = tuple(tuple(p.split()) for p in (
    "is not", "isnt", "are not", "arent", "not my", "not for me", "no thanks", "no thank you", "nah", "bores me",
    "bore me", "is boring", "are boring", "is overrated", "are overrated", "gives me nightmares",
    "give me nightmares", "scares me", "scare me", "sucks", "suck", "not a fan", "not really my", "is too",
    "are too", "i hate", "i dislike", "i cant stand", "i dont like", "i do not like", "i dont want",
))
_CLAUSE_END = frozenset((".", "!", ";", "\n", "?", ":"))
# Role words before a name, and the fields they point to (the vocabulary's cast and creator fields resolve them).
_CAST_WORDS = frozenset(("with", "starring", "stars", "star", "featuring", "actor", "actress", "cast"))
_MAKER_WORDS = frozenset(("by", "from", "director", "directed", "author", "writer", "written", "wrote"))
# Verbs right after a name that say its role ("what else Spielberg directed"), and the fields they point to.
_ROLE_VERBS = {"directed": ("director",), "directs": ("director",), "wrote": ("author", "writer"),
               "writes": ("author", "writer"), "starred": ("star", "actor", "cast"), "stars": ("star", "actor", "cast")}
_ABOUT_SKIP = frozenset(("a", "an", "the", "some", "any"))
_COPULAS = frozenset(("is", "was", "are", "were", "its", "thats", "whats"))
_WISH_SUBJECTS = frozenset(("that", "which", "who", "genre", "favorite", "favourite", "want", "like", "mood",
                            "looking", "prefer", "need", "type", "kind", "preference", "thing", "style", "wish"))
# Titles the seeker marked as such. A title found by a year after it is not one: its year is no part of its
# span, and ``find_titles`` also takes "to" in "from 2010 to 2015" for the movie "To" (2015).
_MARKED_TITLES = frozenset(("quoted", "whole message"))

# ---- eras ---------------------------------------------------------------------------------------------------

_YEAR = r"(?:1[89]\d\d|20\d\d)"
_DECADE_WORDS = {"twenties": 1920, "thirties": 1930, "forties": 1940, "fifties": 1950, "sixties": 1960,
                 "seventies": 1970, "eighties": 1980, "nineties": 1990}
_DECADE = (r"(?:(?:early|mid|late)[\s-]*)?(?:'?(?:1[89]|20)?\d0['’]?s|"
           + "|".join(_DECADE_WORDS) + ")")
_POINT = rf"(?:the\s+)?(?:{_DECADE}|{_YEAR})(?![\w'’])"
_NOUNS = (r"(?:movies?|films?|flicks?|books?|novels?|stories|story|stuff|ones?|titles?|releases?|classics|"
          r"items?|shows?|reads?)")
# "the new one", "the old one" point at an item (a sequel, a remake), not at an era.
_ERA_NOUNS = r"(?:movies|films?|flicks?|books?|novels?|stories|stuff|titles?|releases?|classics|shows?|reads?)"
_AFTER_OPS = {"after": "after", "post": "after", "later than": "after", "newer than": "after",
              "more recent than": "after", "younger than": "after", "since": "since", "no earlier than": "since",
              "before": "before", "pre": "before", "prior to": "before", "older than": "before",
              "earlier than": "before", "until": "until", "up to": "until", "up until": "until",
              "no later than": "until"}
_OPS = "|".join(sorted((re.escape(op) for op in _AFTER_OPS), key=len, reverse=True))
# "released in 2010": the words that make a year the item's own
_IN = r"(?:made|released|published|written|filmed|came\s+out|produced)\s+in"
_ORDINALS = {"fifteenth": 15, "sixteenth": 16, "seventeenth": 17, "eighteenth": 18, "nineteenth": 19,
             "twentieth": 20, "twenty first": 21}
_CENTURY = r"(?:fifteenth|sixteenth|seventeenth|eighteenth|nineteenth|twentieth|twenty[\s-]first|1[5-9]th|20th|21st)"
_NUMBER_WORDS = {"couple": 2, "couple of": 2, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "fifteen": 15, "twenty": 20}
_I = re.IGNORECASE
ERA_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("between", re.compile(rf"\bbetween\s+(?P<a>{_POINT})\s+(?:and|&)\s+(?P<b>{_POINT})", _I)),
    ("span", re.compile(rf"\b(?:from\s+)?(?P<a>{_POINT})\s*(?:-|–|—|\bto\b|\btill\b|\buntil\b|\bthrough\b|\bthru\b)"
                        rf"\s*(?P<b>{_POINT}|now\b|today\b|the present\b|present\b)", _I)),
    ("op", re.compile(rf"\b(?P<op>{_OPS})\s*-?\s*(?P<a>{_POINT})", _I)),
    ("or later", re.compile(rf"\b(?:from\s+|since\s+|{_IN}\s+)?(?P<a>{_POINT})\s*"
                            rf"(?:\+|(?:or|and)\s+(?:later|newer|after|up|"
                            rf"beyond|more recent)\b|on(?:wards?)?\b(?=\s*(?:[.,!?;]|$|and\b|please\b)))", _I)),
    ("or earlier", re.compile(rf"\b(?:from\s+|{_IN}\s+)?(?P<a>{_POINT})\s*(?:or|and)\s+"
                              rf"(?:earlier|older|before)\b", _I)),
    ("exact", re.compile(rf"\b(?:from|{_IN}|during|of)\s+(?P<a>{_POINT})", _I)),
    ("century", re.compile(rf"\b(?:(?:the|this|a|an)\s+)?(?P<c>{_CENTURY})[\s-]+century\b"
                           r"|\b(?P<now>this|the current|our)\s+century\b|\b(?P<last>last|the previous)\s+century\b",
                           _I)),
    ("exact", re.compile(rf"\b(?P<a>{_POINT})\s+{_NOUNS}\b", _I)),
    ("decade", re.compile(rf"(?<![\w'’])(?P<a>(?:the\s+)?{_DECADE})(?![\w'’])", _I)),
    ("last years", re.compile(r"\b(?:the\s+)?(?:last|past)\s+(?P<n>few|couple(?: of)?|\d{1,2}|two|three|four|five|"
                              r"six|seven|eight|nine|ten|fifteen|twenty)\s+years\b", _I)),
    ("last decade", re.compile(r"\b(?:the\s+)?(?:last|past)\s+decade\b", _I)),
    ("recent", re.compile(r"\b(?:more\s+)?(?:recent|newer|newest|latest|modern|contemporary|brand[\s-]new|"
                          rf"new\s+releases?|recently\s+(?:released|made|published|came\s+out)|new\s+{_ERA_NOUNS})\b",
                          _I)),
    ("classic", re.compile(r"\b(?:classics|oldies|oldie|vintage|old[\s-]school|golden\s+age|black\s+and\s+white|"
                           r"retro)\b", _I)),
    ("old", re.compile(r"\b(?:classic|old|older)\b(?!\s*than)", _I)),
)
_AGE_BEFORE = re.compile(r"(?:\b(?:my|his|her|their|your|our|in\s+its)\s+(?:early\s+|mid\s+|late\s+)?$)", _I)


def _point(text: str, newest: int) -> tuple[int, int]:
    """A year or decade as written -> its first and last year ("late 80s" -> 1986..1989)."""
    text = text.lower().replace("the ", "").strip()
    part = None
    for name in ("early", "mid", "late"):
        if text.startswith(name):
            part, text = name, text[len(name):].strip(" -")
    digits = re.sub(r"[^\d]", "", text)
    if text in _DECADE_WORDS:
        first = _DECADE_WORDS[text]
    elif text.rstrip("'’").endswith("s") and digits:
        if len(digits) == 4:
            first = int(digits)
            if first % 100 == 0 and first < 2000:
                return first, first + 99  # "the 1800s", "the 1900s": a century
        else:  # "90s", "'10s": the latest such decade that has begun by the catalogue's newest year
            tens = int(digits)
            first = 2000 + tens if 2000 + tens <= newest else 1900 + tens
    else:
        year = int(digits)
        return year, year
    if part == "early":
        return first, first + 3
    if part == "mid":
        return first + 3, first + 6
    if part == "late":
        return first + 6, first + 9
    return first, first + 9


@dataclass
class _Era:
    start: int
    end: int
    low: int | None
    high: int | None
    adjective: bool = False  # "old", "recent": "too" before it turns it down
    relative: bool = False  # "recent", "classics", "old": a vague word, measured from the catalogue's newest year


def _eras(message: str, newest: int, config: ExtractionConfig, taken: Sequence[tuple[int, int]]) -> list[_Era]:
    found: list[_Era] = []
    for kind, pattern in ERA_PATTERNS:
        for match in pattern.finditer(message):
            era = _era(kind, match, message, newest, config)
            if era is not None:
                found.append(era)
    kept: list[_Era] = []
    blocked = _Spans(taken)
    for era in sorted(found, key=lambda e: (e.start, -(e.end - e.start))):
        # sorted by start: an era can only overlap the last one kept
        if (not kept or kept[-1].end <= era.start) and not blocked.overlaps(era.start, era.end):
            kept.append(era)
    return kept


class _Spans:
    """Non-overlapping character spans (titles), asked whether a span overlaps any of them."""

    def __init__(self, spans: Iterable[tuple[int, int]]):
        self._spans = sorted(spans)
        self._starts = [start for start, _ in self._spans]

    def overlaps(self, start: int, end: int) -> bool:
        i = bisect.bisect_left(self._starts, end)  # spans starting before ``end``; the last may reach ``start``
        return any(self._spans[j][1] > start for j in range(max(0, i - 2), i))


def _era(kind: str, match: re.Match[str], message: str, newest: int, config: ExtractionConfig) -> _Era | None:
    start, end = match.start(), match.end()
    if kind in ("between", "span"):
        low = _point(match.group("a"), newest)[0]
        b = match.group("b").lower()
        high = newest if b in ("now", "today", "the present", "present") else _point(b, newest)[1]
        return _Era(start, end, low, high) if low <= high else None
    if kind == "op":
        first, last = _point(match.group("a"), newest)
        op = _AFTER_OPS[" ".join(match.group("op").lower().split())]
        return {"after": _Era(start, end, last + 1, None), "since": _Era(start, end, first, None),
                "before": _Era(start, end, None, first - 1), "until": _Era(start, end, None, last)}[op]
    if kind == "or later":
        return _Era(start, end, _point(match.group("a"), newest)[0], None)
    if kind == "or earlier":
        return _Era(start, end, None, _point(match.group("a"), newest)[1])
    if kind in ("exact", "decade"):
        if kind == "decade" and _AGE_BEFORE.search(message[max(0, start - 20) : start]):
            return None  # "in my 30s" is an age
        low, high = _point(match.group("a"), newest)
        return _Era(start, end, low, high)
    if kind == "century":
        if match.group("now"):
            return _Era(start, end, 2000, None)
        if match.group("last"):
            return _Era(start, end, 1900, 1999)
        said = " ".join(match.group("c").lower().replace("-", " ").split())
        number = _ORDINALS.get(said) or int(re.sub(r"\D", "", said))
        return _Era(start, end, (number - 1) * 100, (number - 1) * 100 + 99)
    if kind in ("last years", "last decade"):
        if kind == "last decade":
            years = 10
        else:
            n = " ".join(match.group("n").lower().split())
            years = config.few_years if n == "few" else _NUMBER_WORDS.get(n) or int(n)
        return _Era(start, end, newest - years + 1, newest)
    if kind == "recent":
        return _Era(start, end, newest - config.recent_years + 1, None, adjective=True, relative=True)
    if kind == "classic":
        return _Era(start, end, None, newest - config.classic_age, relative=True)
    # "old", "older", "classic" alone: only in a request context ("old movies", "something older", "too old")
    before = message[:start].split()
    after = message[end:].split()
    previous = before[-1].lower().strip(".,!?;:'\"") if before else ""
    following = after[0].lower().strip(".,!?;:'\"") if after else ""
    if previous.endswith(("year", "years", "-")) or message[max(0, start - 1) : start] == "-" or previous == "how":
        return None  # "ten years old", "5-year-old", "how old"
    if (singular(following) in CONTEXT_NOUNS and following not in ("one", "ones")) or previous in REQUEST_WORDS:
        return _Era(start, end, None, newest - config.classic_age, adjective=True, relative=True)
    return None


# ---- mentions and their polarity ----------------------------------------------------------------------------


@dataclass
class _Mention:
    first: int  # token positions [first, last)
    last: int
    proposals: list[dict]  # Constraint fields without polarity, span or turn
    adjective: bool = False  # an adjective ("scary", "old"): "too" before it turns it down
    polarity: Polarity = "want"


def _ends_with(words: Sequence[str], end: int, phrase: tuple[str, ...]) -> bool:
    size = len(phrase)
    return end + 1 >= size and tuple(words[end + 1 - size : end + 1]) == phrase


def _phrase_ending(words: Sequence[str], end: int) -> tuple[str, int] | None:
    """Which kind of phrase ends at word ``end`` ("negation", "not negation", "pivot"), the longest first, and
    its length."""
    best: tuple[str, int] | None = None
    for kind, phrases in (("not negation", NOT_NEGATIONS), ("negation", NEGATIONS), ("pivot", PIVOTS)):
        for phrase in phrases:
            if _ends_with(words, end, phrase) and (best is None or len(phrase) > best[1]):
                best = (kind, len(phrase))
    return best


def _negated_before(words: Sequence[str], first: int, stop: int, window: int) -> bool:
    """Does a negation come before word ``first`` in its clause (not before ``stop``, the end of the previous
    mention: a negation before it is that mention's)?"""
    j, steps = first - 1, 0
    while j >= stop and steps < window:
        word = words[j]
        if word in _CLAUSE_END or word == ",":
            return False
        phrase = _phrase_ending(words, j)
        if phrase is not None:
            return phrase[0] == "negation"
        j -= 1
        steps += 1
    return False


def _negated_after(words: Sequence[str], last: int, stop: int) -> bool:
    """Does a remark that turns it down follow the mention in its clause, before the next mention (``stop``)?
    Right after a comma or question mark only ("romance? no thanks"; not "horror, it is not boring")."""

    def remark_at(j: int) -> bool:
        return any(tuple(words[j : j + len(phrase)]) == phrase for phrase in AFTER_NEGATIONS)

    if last < len(words) and words[last] in (",", "?", "!"):
        return last + 1 < stop and remark_at(last + 1)
    for j in range(last, min(stop, last + 6)):
        if not words[j][:1].isalnum() or words[j] in ("but", "though", "although", "however"):
            return False
        if remark_at(j):
            return True
    return False


def _set_polarity(mentions: list[_Mention], words: Sequence[str], config: ExtractionConfig) -> None:
    previous: _Mention | None = None
    for index, mention in enumerate(mentions):
        following = mentions[index + 1].first if index + 1 < len(mentions) else len(words)
        between = words[previous.last : mention.first] if previous is not None else None
        if mention.first > 0 and words[mention.first - 1] == "too" and mention.adjective:
            mention.polarity = "avoid"  # "too scary", "not too old"
        elif between is not None and all(w in LIST_FILLERS for w in between):
            mention.polarity = previous.polarity  # "no horror or romance"
        elif (_negated_before(words, mention.first, previous.last if previous is not None else 0,
                              config.negation_window)
              or _negated_after(words, mention.last, following)):
            mention.polarity = "avoid"
        previous = mention


# ---- extraction ----------------------------------------------------------------------------------------------


_ANY_ATTRIBUTE = re.compile(
    r"\b(?:any|whatever|whichever)\s+(?P<a>[a-z][a-z ]{1,20}?)\s+(?:is|are|works|will do)\b"
    r"|\b(?:any|every)\s+(?P<b>year|era|decade|genre|age)s?\b"
    r"|\b(?:don['’]?t|do not|doesn['’]?t|does not)\s+(?:care|mind|matter)\s+(?:about\s+|what\s+|which\s+|how\s+)?"
    r"(?:the\s+)?(?P<c>[a-z]+)"
    r"|\bthe\s+(?P<d>[a-z]+)\s+(?:doesn['’]?t|does not|don['’]?t) matter\b", _I)
_ERA_WORDS = frozenset(("year", "era", "decade", "age", "old", "when", "release", "date", "time"))


def _lifted(message: str, adapter: DomainAdapter, turn: int) -> list[Constraint]:
    """"any genre is fine", "the year doesn't matter", "I don't care about the era" -> polarity "any"."""
    lifted: list[Constraint] = []
    names = {value_key(name): name for name in adapter.schema.names() if name != KEYWORD}
    for match in _ANY_ATTRIBUTE.finditer(message):
        said = next(g for g in match.groups() if g is not None).lower().strip()
        key = value_key(said)
        attribute = YEAR if key in _ERA_WORDS and YEAR in names.values() else names.get(key)
        if attribute is not None:
            lifted.append(Constraint(attribute=attribute, polarity="any", text=match.group(), start=match.start(),
                                     end=match.end(), turn=turn))
    return lifted


def _role_attribute(words: Sequence[str], first: int, fields: tuple[str, ...], adapter: DomainAdapter,
                    last: int | None = None) -> str:
    """The people attribute a named person stands for here (see the module docstring); ``last``: the end of
    the name, where a role verb may follow it."""
    cues = set(words[max(0, first - 2) : first])
    vocabulary = adapter.vocabulary
    verb = words[last] if last is not None and last < len(words) else ""
    if verb in _ROLE_VERBS:
        preferred_after = next((f for f in fields if f in _ROLE_VERBS[verb]), None)
        if preferred_after is not None:
            return preferred_after
    if cues & {"director", "directed"}:
        preferred: tuple[str, ...] = ("director",)
    elif cues & {"author", "writer", "written", "wrote"}:
        preferred = ("author", "writer")
    elif cues & _CAST_WORDS:
        preferred = (vocabulary.cast_field or "star", "star", "actor", "cast")
    elif cues & _MAKER_WORDS:
        preferred = (*vocabulary.creator_fields, "author", "writer", "director")
    else:
        preferred = ()
    chosen = next((f for f in fields if f in preferred), None)  # ``fields``: the person's main role first
    if chosen is not None:
        return chosen
    if len(fields) == 1:
        return fields[0]
    return PERSON


def _in_request_context(tokens: Sequence[Token], first: int, last: int, nouns: frozenset[str]) -> bool:
    following = tokens[last].word if last < len(tokens) else ""
    previous = tokens[first - 1].word if first > 0 else ""
    return singular(following) in nouns or previous in REQUEST_WORDS


def extract_constraints(message: str, adapter: DomainAdapter, turn: int = 0,
                        titles: Sequence[TitleMention] | None = None,
                        config: ExtractionConfig | None = None) -> list[Constraint]:
    """The constraints ``message`` states, in order of appearance, each once (see the module docstring).
    ``titles``: the titles the caller found in it (found here when None); ``turn``: the message's turn
    index, kept on each constraint."""
    config = config or ExtractionConfig()
    if not message or not message.strip():
        return []
    titles = adapter.find_titles(message) if titles is None else titles
    # A title the seeker marked (quoted, or the whole message) stands; one found otherwise gives way to an era
    # it overlaps: "movies from the last five years" asks for an era, not for "The Last Five Years".
    marked = [(m.start, m.end) for m in titles if m.evidence in _MARKED_TITLES]
    eras = _eras(message, adapter.year_range[1], config, marked) if adapter.year_range is not None else []
    era_spans = _Spans((era.start, era.end) for era in eras)
    title_spans = [(m.start, m.end) for m in titles
                   if m.evidence in _MARKED_TITLES or not era_spans.overlaps(m.start, m.end)]
    eras = [era for era in eras if not _Spans(title_spans).overlaps(era.start, era.end)]
    in_title = _Spans(title_spans)
    tokens = [t for t in tokenize(message) if not in_title.overlaps(t.start, t.end)]
    # A title stays in the token stream as a word of its own, so that it ends lists and separates mentions.
    for start, end in title_spans:
        tokens.append(Token(start, end, "<title>"))
    tokens.sort(key=lambda t: t.start)
    words = [t.word for t in tokens]
    nouns = CONTEXT_NOUNS | {singular(adapter.vocabulary.noun), singular(adapter.vocabulary.plural)}
    mentions: list[_Mention] = []
    taken: list[tuple[int, int]] = list(title_spans)

    token_starts = [t.start for t in tokens]
    token_ends = [t.end for t in tokens]

    def token_range(start: int, end: int) -> tuple[int, int]:
        """The tokens a character span covers: [first, last)."""
        return bisect.bisect_right(token_ends, start), bisect.bisect_left(token_starts, end)

    for era in eras:
        first, last = token_range(era.start, era.end)
        if last > first and not _describes_an_item(tokens, first):  # "Ferdinand is from this century"
            mentions.append(_Mention(first, last, [{"attribute": YEAR, "low": era.low, "high": era.high}],
                                     adjective=era.adjective))
            taken.append((era.start, era.end))
    # Titles and eras are blanked out rather than passed as spans to skip: a long message holds many of them
    # and ``find_people`` compares every candidate name with every span.
    for person in adapter.find_people(_blanked(message, taken)):
        first, last = token_range(person.start, person.end)
        if not person.fields or last <= first:
            continue
        attribute = _role_attribute(words, first, person.fields, adapter)
        mentions.append(_Mention(first, last, [{"attribute": attribute, "value": person.name}]))
        taken.append((person.start, person.end))
    used = {i for m in mentions for i in range(m.first, m.last)}
    for i, token in enumerate(tokens):
        if i in used or not token.word[:1].isalpha() or not message[token.start].isupper():
            continue
        name = adapter.single_name(token.word) or surname(adapter, token.word)
        cue = (i > 0 and words[i - 1] in _CAST_WORDS | _MAKER_WORDS) or (i + 1 < len(words)
                                                                         and words[i + 1] in _ROLE_VERBS)
        if name is not None and (cue or (i + 1 < len(words) and singular(words[i + 1]) in nouns)):
            fields = adapter.people_fields_of(name)
            mentions.append(_Mention(i, i + 1, [{"attribute": _role_attribute(words, i, fields, adapter, i + 1),
                                                 "value": name}]))
            used.add(i)
    mentions += _value_mentions(tokens, used, adapter, nouns)
    mentions.sort(key=lambda m: m.first)
    _set_polarity(mentions, words, config)
    found = _explicit_eras_win(_constraints(mentions, tokens, message, turn),
                               {(era.start, era.end) for era in eras if era.relative})
    found += _lifted(message, adapter, turn)
    unique: dict[tuple, Constraint] = {}
    for constraint in sorted(found, key=lambda c: c.start):
        key = (constraint.attribute, value_key(constraint.value or ""), constraint.low, constraint.high,
               constraint.polarity)
        unique.setdefault(key, constraint)
    return list(unique.values())


def _explicit_eras_win(found: list[Constraint], relative: set[tuple[int, int]]) -> list[Constraint]:
    """A vague era word next to a number says the same thing less precisely: "classics, so before 1950",
    "older stuff, published before 1980", "only recent stuff, 2010 or later". A wanted era of a word
    ("recent", "classic", "old") that overlaps a wanted era the message states with numbers is dropped, so the
    numbers hold rather than the union of the two."""
    explicit = [c for c in found if c.attribute == YEAR and c.polarity == "want" and c.is_range
                and (c.start, c.end) not in relative]
    return [c for c in found if not (c.attribute == YEAR and c.polarity == "want" and (c.start, c.end) in relative
                                     and any(_overlaps(c, other) for other in explicit))]


_SURNAMES: weakref.WeakKeyDictionary[DomainAdapter, dict[str, str]] = weakref.WeakKeyDictionary()
_SURNAMES_LOCK = threading.Lock()
SURNAME_MIN_ITEMS = 3  # a surname alone names someone only when their work is known well enough to be asked for


def surname(adapter: DomainAdapter, word: str) -> str | None:
    """The catalogue person a surname alone names ("Spielberg", "Tarantino"), or None: the surname of a person
    with at least :data:`SURNAME_MIN_ITEMS` items and twice as many as anyone else of that surname, that is no
    ordinary word (never written in lower case in the catalogue's long texts, no value a message may name).
    Like a one-word name, it counts only next to a role word ("by Nolan", "Spielberg directed", "Tarantino
    movies"): "King" and "Lee" are ordinary words or too many people."""
    with _SURNAMES_LOCK:
        surnames = _SURNAMES.get(adapter)
        if surnames is None:
            surnames = _SURNAMES[adapter] = _surnames(adapter)
    return surnames.get(value_key(word))


def _surnames(adapter: DomainAdapter) -> dict[str, str]:
    gazetteer = adapter.gazetteer
    counts: dict[str, int] = {}
    for field in adapter.schema.people_fields:
        for key, positions in gazetteer.value_keys(field).items():
            name = gazetteer.spelling(field, key)
            counts[name] = counts.get(name, 0) + len(positions)
    by_surname: dict[str, list[tuple[int, str]]] = {}
    for name, count in counts.items():
        words = name.replace(".", " ").split()
        if len(words) >= 2 and words[-1].isalpha() and len(words[-1]) >= 3:
            by_surname.setdefault(value_key(words[-1]), []).append((count, name))
    ordinary: set[str] = set()
    for item in adapter.catalog:
        for field in adapter.schema.text_fields:
            text = item.metadata.get(field)
            if isinstance(text, str):
                ordinary.update(re.findall(r"\b[a-z]+\b", text))
    found: dict[str, str] = {}
    for key, people in by_surname.items():
        people.sort(reverse=True)
        best, name = people[0]
        runner_up = people[1][0] if len(people) > 1 else 0
        if best >= SURNAME_MIN_ITEMS and best >= 2 * runner_up and key not in ordinary \
                and key not in gazetteer.surface:
            found[key] = name
    return found


def _blanked(message: str, spans: Iterable[tuple[int, int]]) -> str:
    """``message`` with ``spans`` replaced by spaces: every other character keeps its offset."""
    chars = list(message)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _value_mentions(tokens: Sequence[Token], used: set[int], adapter: DomainAdapter,
                    nouns: frozenset[str]) -> list[_Mention]:
    gazetteer = adapter.gazetteer
    mentions: list[_Mention] = []
    i = 0
    while i < len(tokens):
        if i in used or not tokens[i].word[:1].isalnum() or tokens[i].word == "<title>":
            i += 1
            continue
        hit_size = 0
        for size in range(min(gazetteer.max_words, len(tokens) - i), 0, -1):
            span = range(i, i + size)
            if any(j in used or not tokens[j].word[:1].isalnum() or tokens[j].word == "<title>" for j in span):
                continue
            hits = gazetteer.lookup(value_key(" ".join(tokens[j].word for j in span)))
            if not hits:
                continue
            context = _in_request_context(tokens, i, i + size, nouns)
            hits = [h for h in hits if not h.needs_context or context]
            if hits and _describes_an_item(tokens, i):
                break  # "The Ring is really scary", "that was a crime against humanity": no request
            if hits:
                mentions.append(_Mention(i, i + size, [{"attribute": h.attribute, "value": h.value} for h in hits],
                                         adjective=any(h.needs_context for h in hits)))
                hit_size = size
                break
        if hit_size:
            i += hit_size
            continue
        keyword = _about_keyword(tokens, i, adapter, nouns)
        if keyword is not None:
            mentions.append(_Mention(i, i + 1, [{"attribute": KEYWORD, "value": keyword}]))
        i += 1
    return mentions


def _describes_an_item(tokens: Sequence[Token], first: int) -> bool:
    """Is the value at token ``first`` said of an item ("The Ring is really scary", "it's a comedy", "is it a
    comedy?") rather than asked for? A copula shortly before it says so, unless it is "there is", a
    relative clause ("something that is funny"), a wish ("my favourite genre is horror", "what I want is a
    comedy") or turned down ("it's not too scary" is how a seeker asks too)."""
    j = first - 1
    while j >= max(0, first - 5):
        word = tokens[j].word
        if not word[:1].isalnum():
            return False
        if word in _COPULAS:
            if j + 1 < len(tokens) and tokens[j + 1].word == "there":
                return False
            between = {t.word for t in tokens[j + 1 : first]}
            before = {t.word for t in tokens[max(0, j - 3) : j]}
            return not (between & {"not", "too", "no", "more", "less"} or before & _WISH_SUBJECTS)
        j -= 1
    return False


def _about_keyword(tokens: Sequence[Token], i: int, adapter: DomainAdapter, nouns: frozenset[str]) -> str | None:
    """"a movie about sharks": the plot keyword a noun + "about" asks for."""
    j = i - 1
    while j >= 0 and tokens[j].word in _ABOUT_SKIP:
        j -= 1
    if j < 1 or tokens[j].word != "about":
        return None
    before = singular(tokens[j - 1].word)
    if before not in nouns and before not in ("something", "anything", "nothing", "stories", "story"):
        return None
    return adapter.gazetteer.keyword(tokens[i].word)


def _constraints(mentions: Sequence[_Mention], tokens: Sequence[Token], message: str,
                 turn: int) -> list[Constraint]:
    out: list[Constraint] = []
    for mention in mentions:
        start, end = tokens[mention.first].start, tokens[mention.last - 1].end
        for proposal in mention.proposals:
            polarity: Polarity = mention.polarity
            low, high = proposal.get("low"), proposal.get("high")
            if polarity == "avoid" and (low is None) != (high is None):
                # "not before 2000" is "2000 or later": an open era turned down is the era it leaves
                low, high = (high + 1, None) if low is None else (None, low - 1)
                polarity = "want"
            out.append(Constraint(**{**proposal, "low": low, "high": high}, polarity=polarity,
                                  text=message[start:end], start=start, end=end, turn=turn))
    return out


# ---- the state of a conversation ------------------------------------------------------------------------------


class ConstraintState(BaseModel):
    """The constraints that hold in a conversation so far (JSON-serialisable, immutable).

    :meth:`update` adds a message's constraints, in order, by these rules:

    - A constraint on the same attribute and value (or range) as an older one replaces it, whatever the
      polarities: the seeker's latest word wins ("no horror", later "actually horror is fine").
    - "any" (polarity) removes every constraint on its attribute ("any year is fine").
    - Wants from a later turn replace the older turns' wants on the same attribute: the seeker moved on
      ("a comedy", later "how about horror"; "after 2010", later "actually from the 90s"). Wants of one turn
      are alternatives and are all kept ("comedy or romance"; "from the 80s or 90s").
    - An era with one open side that meets the older era of an earlier turn narrows it, when the two
      overlap: "after 2010" then "before 2015" is 2011-2014; "from the 90s" then "after 1995" is 1996-1999.
      When they do not overlap, the new one replaces the old ("after 2010" then "before 1990": -1989).
    - A wanted era removes avoided eras it overlaps; an avoided era removes wanted eras inside it.
    - Avoids accumulate across turns: an aversion holds until it is revoked.
    """

    model_config = ConfigDict(frozen=True)

    constraints: tuple[Constraint, ...] = ()

    def update(self, new: Iterable[Constraint]) -> ConstraintState:
        current = list(self.constraints)
        for constraint in new:
            current = _apply(current, constraint)
        return ConstraintState(constraints=tuple(current))

    def on(self, attribute: str) -> list[Constraint]:
        return [c for c in self.constraints if c.attribute == attribute]

    @property
    def wants(self) -> list[Constraint]:
        return [c for c in self.constraints if c.polarity == "want"]

    @property
    def avoids(self) -> list[Constraint]:
        return [c for c in self.constraints if c.polarity == "avoid"]

    def describe(self) -> list[str]:
        return [c.describe() for c in self.constraints]


def _overlaps(a: Constraint, b: Constraint) -> bool:
    low = max(-float("inf") if a.low is None else a.low, -float("inf") if b.low is None else b.low)
    high = min(float("inf") if a.high is None else a.high, float("inf") if b.high is None else b.high)
    return low <= high


def _inside(inner: Constraint, outer: Constraint) -> bool:
    return ((outer.low is None or (inner.low is not None and inner.low >= outer.low))
            and (outer.high is None or (inner.high is not None and inner.high <= outer.high)))


def _apply(current: list[Constraint], new: Constraint) -> list[Constraint]:
    attribute = new.attribute
    if new.polarity == "any":
        return [c for c in current if c.attribute != attribute]
    current = [c for c in current if not c.same_target(new)]
    if new.is_range:
        if new.polarity == "avoid":
            current = [c for c in current if not (c.attribute == attribute and c.polarity == "want"
                                                  and c.is_range and _inside(c, new))]
            return [*current, new]
        current = [c for c in current if not (c.attribute == attribute and c.polarity == "avoid"
                                              and c.is_range and _overlaps(c, new))]
        older = [c for c in current if c.attribute == attribute and c.polarity == "want" and c.turn < new.turn]
        if older:
            current = [c for c in current if c not in older]
            new = _narrowed(older[-1], new) if len(older) == 1 else new
        return [*current, new]
    if new.polarity == "want":
        current = [c for c in current if not (c.attribute == attribute and c.polarity == "want"
                                              and c.turn < new.turn)]
    return [*current, new]


def _narrowed(old: Constraint, new: Constraint) -> Constraint:
    """``new`` with ``old``'s bound on the side ``new`` leaves open, when the two overlap."""
    if (new.low is None) == (new.high is None) or not _overlaps(old, new):
        return new
    if new.low is None:
        return new.model_copy(update={"low": old.low})
    return new.model_copy(update={"high": old.high})
