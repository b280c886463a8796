"""A seeker asking why the agent proposed something ("why Notting Hill?", "what makes the second one good?",
"why those?"): :func:`asked_why`, which items of the last slate a message asks about.

Read by rules, like the rest of the state. A question needs a why-word (``why``, ``how come``, ``what makes``,
``explain``, ``tell me more about``) and something of the last slate it points at: a title of it (with or
without its year), an ordinal ("the second", "2nd", "#2", "number 2", "the last one"), or, in a short
question, a pronoun ("why that one?" means the first item the reply named; "why these?" the whole slate).
"Why not something older?" and "why don't you ..." are wishes, not questions about the slate, and a message
that turns items down is read as a rejection before this is asked (``model_user_state``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from convrec.catalog.items import Catalog
from convrec.catalog.titles import normalize_title

_WHY = re.compile(r"\b(?:why|how come|what makes|explain|tell me (?:more )?about)\b")
_NOT_A_QUESTION = re.compile(r"\bwhy (?:not|don'?t|dont|didn'?t|didnt|won'?t|wont|can'?t|cant|wouldn'?t|wouldnt)\b")
_ORDINALS = {"first": 0, "1st": 0, "second": 1, "2nd": 1, "third": 2, "3rd": 2, "fourth": 3, "4th": 3, "fifth": 4,
             "5th": 4}
_ORDINAL = re.compile(r"\b(first|1st|second|2nd|third|3rd|fourth|4th|fifth|5th|last)\b|#\s*(\d)\b|\bnumber (\d)\b")
_ONE = re.compile(r"\b(?:it|that|this|that one|this one)\b")
_ALL = re.compile(r"\b(?:these|those|them|they|all of them|the list|your picks|your choices)\b")
SHORT_WORDS = 6  # a pronoun points at the slate only in a short question ("why that one?", "why these?")


def asked_why(message: str, proposed: Sequence[str], catalog: Catalog) -> tuple[str, ...]:
    """The items of ``proposed`` (the last slate, in order) that ``message`` asks the reason for; () when it asks
    none (see the module docstring)."""
    if not proposed:
        return ()
    text = message.lower()
    if not _WHY.search(text) or _NOT_A_QUESTION.search(text):
        return ()
    said = normalize_title(text)
    found = [i for i in proposed if _names(said, catalog.get(i).title)]
    for match in _ORDINAL.finditer(text):
        word, hashed, numbered = match.groups()
        if word == "last":
            position = len(proposed) - 1
        elif word is not None:
            position = _ORDINALS[word]
        else:
            position = int(hashed or numbered) - 1
        if 0 <= position < len(proposed):
            found.append(proposed[position])
    if found:
        return tuple(dict.fromkeys(found))
    if len(text.split()) <= SHORT_WORDS:
        if _ALL.search(text):
            return tuple(proposed)
        if _ONE.search(text) or text.strip(" ?!.") in ("why", "how come"):
            return (proposed[0],)
    return ()


def _names(said: str, title: str) -> bool:
    """Does ``said`` (a message through ``normalize_title``) name ``title`` (a catalogue title, without its year),
    as whole words?"""
    wanted = normalize_title(title)
    if len(wanted) < 3:  # "It", "Up": too easily an ordinary word
        return False
    return re.search(rf"(?:^|\s){re.escape(wanted)}(?:\s|$)", said) is not None
