"""The keys attribute values are compared by, and the words of a message with their positions.

A value key is case-, accent- and punctuation-free, each word in its singular form, and a few spellings of one
thing made one ("sci-fi", "scifi", "science fiction" -> "sci fi"), so that a catalogue's "Sci-Fi", a seeker's
"science fiction movies" and another catalogue's "Science Fiction" meet on one key. The singular is the plain
English rule (comedies -> comedy, thrillers -> thriller, witches -> witch), which is all a genre list needs.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_APOSTROPHES = re.compile(r"['’‘`´]")
_NOT_WORD = re.compile(r"[\W_]+")
# A word as typed, with an inner apostrophe ("don't", "children's"); a hyphen splits ("sci-fi": two words).
_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[,.!?;:\n]")
# Plurals in "-ies" of words in "-ie" (the rule would make "movies" "movy").
_IE_PLURALS = frozenset(("movies", "zombies", "cookies", "rookies", "hippies", "calories", "brownies", "genies",
                         "selfies", "smoothies", "newbies", "yuppies", "indies", "boogies", "freebies", "aussies",
                         "collies", "goalies", "hoodies", "junkies", "veggies", "walkies", "prairies"))
# Words whose final "s" is not a plural.
_NOT_PLURAL = frozenset(("news", "series", "species", "always", "various", "famous", "serious", "previous",
                         "thus", "yes", "was", "has", "is", "his", "this", "its", "us", "bus", "plus"))
# Spellings of one value: each tuple's members get the first member's key.
EQUIVALENT_SPELLINGS: tuple[tuple[str, ...], ...] = (
    ("sci fi", "scifi", "science fiction"),
    ("non fiction", "nonfiction"),
    ("young adult", "ya fiction"),
    ("film noir", "noir film"),
    ("rom com", "romcom"),
)


def fold(text: str) -> str:
    """Lower case, accents off, apostrophes out ("Amélie's" -> "amelies")."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in text if not unicodedata.combining(ch))
    return _APOSTROPHES.sub("", text).lower()


def singular(word: str) -> str:
    if len(word) <= 3 or word in _NOT_PLURAL or not word.endswith("s") or word.endswith(("ss", "us", "is")):
        return word
    if word.endswith("ies") and len(word) > 4 and word not in _IE_PLURALS:
        return word[:-3] + "y"
    if word.endswith(("ches", "shes", "xes", "zes", "sses")):
        return word[:-2]
    return word[:-1]


def _equivalents() -> dict[tuple[str, ...], tuple[str, ...]]:
    table: dict[tuple[str, ...], tuple[str, ...]] = {}
    for group in EQUIVALENT_SPELLINGS:
        canonical = tuple(group[0].split())
        for spelling in group:
            table[tuple(spelling.split())] = canonical
    return table


_EQUIVALENTS = _equivalents()
_LONGEST_SPELLING = max(len(k) for k in _EQUIVALENTS)


def value_key(text: str) -> str:
    """The key of an attribute value or of the words a seeker typed for one (see the module docstring)."""
    words = [singular(w) for w in _NOT_WORD.sub(" ", fold(text).replace("&", " and ")).split()]
    out: list[str] = []
    i = 0
    while i < len(words):
        for size in range(min(_LONGEST_SPELLING, len(words) - i), 0, -1):
            canonical = _EQUIVALENTS.get(tuple(words[i : i + size]))
            if canonical is not None:
                out.extend(canonical)
                i += size
                break
        else:
            out.append(words[i])
            i += 1
    return " ".join(out)


def contains_run(key: str, part: str) -> bool:
    """Does ``key`` hold ``part`` as whole words ("psychological thriller" holds "thriller"), not negated by a
    "non" before it ("non fiction" does not hold "fiction")?"""
    words, needle = key.split(), part.split()
    size = len(needle)
    for i in range(len(words) - size + 1):
        if words[i : i + size] == needle and (i == 0 or words[i - 1] != "non"):
            return True
    return False


@dataclass(frozen=True)
class Token:
    """A word of a message at ``text[start:end]``; ``word`` is its folded form ("don't" -> "dont").
    Punctuation that ends a clause or separates a list is a token of its own."""

    start: int
    end: int
    word: str


def tokenize(text: str) -> list[Token]:
    tokens = []
    for match in _TOKEN.finditer(text):
        tokens.append(Token(match.start(), match.end(), fold(match.group())))
    return tokens
