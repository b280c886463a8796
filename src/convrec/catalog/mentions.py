"""Finding catalogue titles in a message a person typed: "I loved the dark knight and Alien (1979)".

:class:`~convrec.catalog.titles.TitleLinker` links a string that *is* a title; a chat message is prose with
titles somewhere in it. :func:`find_titles` proposes spans and the linker decides what they are:

1. quoted or emphasised spans (``"Up"``, ``'Up'``, ``“Up”``, ``*Up*``) are titles the writer marked: linked
   as the linker links any title, fuzzy matches included;
2. elsewhere, word spans (longest first, left to right) whose normalised text is exactly a catalogue title.
   Many titles are ordinary words ("Up", "Her", "Get Out", "Scary Movie", "Friday"), so an unmarked span
   counts only with evidence that it is meant as a title: a year right after it that is the year of an item
   of that title ("Halloween 1978", "It (2017)"); three or more words ("the dark knight"); or capitals: a
   two-word title written with capitals ("Get Out"), a one-word title capitalised mid-sentence that is not
   part of a longer capitalised name ("Ray" in "Ray Liotta") and not one of the words that are not titles
   (``not_titles``: a month, weekday, holiday or a reply such as "Yes" by default; a domain adds its own, see
   :mod:`convrec.catalog.vocabulary`). A message that is nothing but a title counts too, unless it is a
   reply ("yes", "lol") or function words typed in lower case ("other?").

Titles made only of function words ("It", "Her", "Up", "Us", "To", "A", "Me Before You") are the ordinary
words of any sentence. A word count is no evidence for them ("call me before you go" names no "Me Before You"),
and neither is a bare year after a word that leads a year in prose: "from 2010 to 2015" names no movie "To",
"a 2012 movie" no movie "A", "her 2013 album" no "Her". Such a title counts with its year in brackets
("her (2013)"), written with capitals mid-sentence ("I loved Her 2013"), quoted, or as the whole message; a
pronoun or a particle before a year is no prose, so "it 2017" and "up 2009" count as they are. A year that fits
no item of the title ("I saw 1922", "like post 2014") is no evidence at all, a month before a year is a date
("May 2002"), and a year followed by a year in brackets is a title of its own ("watch 2012 (2009)").

Several items can share a title ("Halloween" 1978 and 2007): a year decides (the most popular of the items
of that year, when a catalogue lists one film twice); without one, the most popular of them (``popularity``,
e.g. mentions in training dialogues) is taken, else the linker's choice.
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
_EMOTICON = re.compile(r"^(?:[:;=8][-']?[A-Za-z]|[xX][dDpP])$")  # ":D", ";P", "XD": faces, not the film "D"
_MINOR = frozenset(("a", "an", "the", "of", "and", "in", "on", "to", "for", "with", "at", "from", "by", "or"))
# The closed-class words of English (articles, determiners, pronouns, prepositions, conjunctions, auxiliaries
# and a few particles): every sentence has them, so a title made only of them needs more than a bare year or a
# word count to be read as a title.
_FUNCTION_WORD_CLASSES = {
    "determiners": "a an the this that these those some any all each every no none both either neither another "
                   "other such one my your his her its our their",
    "pronouns": "i me you he him she it we us they them mine yours hers ours theirs myself yourself himself "
                "herself itself ourselves themselves something anything nothing everything someone anyone "
                "everyone nobody somebody anybody everybody who whom whose which what where when why how "
                "whatever whoever",
    "conjunctions": "and or but nor so yet if then than because though although while unless until till since as "
                    "whether",
    "prepositions": "of in on at to for from by with about above across after against along among around before "
                    "behind below beneath beside besides between beyond down during except inside into like near "
                    "off onto out outside over past per through throughout toward towards under underneath unlike "
                    "up upon via within without",
    "auxiliaries": "is am are was were be been being do does did done have has had having will would shall should "
                   "can could may might must",
    "particles": "not there here now just only also too very ever again still even",
}
FUNCTION_WORDS = frozenset(word for words in _FUNCTION_WORD_CLASSES.values() for word in words.split())
# Short replies and greetings: a message that is only one of them answers the other side, it names no item.
REPLY_WORDS = frozenset((
    "yes", "yeah", "yep", "yup", "no", "nope", "nah", "ok", "okay", "sure", "lol", "haha", "thanks", "thank",
    "hi", "hello", "hey", "bye", "goodbye", "aloha", "cool", "great", "nice", "awesome", "maybe", "please",
))
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august", "september", "october",
           "november", "december")
# Words that come before a year in prose ("from 2010 to 2015", "a 2012 movie", "her 2013 album", "it was 2015",
# "all 2015 movies"). A pronoun or a particle before a year is no prose ("it 2017", "up 2009", "inside out 2015").
_YEAR_LEADERS = frozenset((
    "a", "an", "the", "this", "that", "these", "those", "every", "each", "no", "some", "any", "all", "both", "one",
    "other", "another", "such", "what", "which", "whose", "my", "your", "his", "her", "its", "our", "their",
    "of", "in", "on", "at", "to", "for", "from", "by", "since", "after", "before", "until", "till", "through",
    "around", "about", "circa", "between", "during", "than", "like", "as", "over", "under", "past", "into",
    "and", "or", "nor", "but", "per", "is", "am", "are", "was", "were", "be", "been", "being",
))
# Capitalised words that are rarely meant as an item of the same name when they stand alone, in any domain.
NOT_TITLES_ALONE = frozenset((
    "i", *_MONTHS, "monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday",
    "christmas", "halloween", "easter", "thanksgiving", "valentine", "english", "american", "british", "french",
)) | REPLY_WORDS


@dataclass(frozen=True)
class TitleMention:
    """A title found in a message: ``text`` as written, at ``message[start:end]``, linked to ``item_id``.

    ``evidence`` says why the span was taken for a title: "quoted", "year" (a year of the item right after
    it), "words" (three or more), "capitals" or "whole message".
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
        face = _EMOTICON.match(match.group()) is not None
        if face or _MASK in masked[previous_end : match.start()]:
            run += 1  # no title spans a quoted span or a face (":D"), and a face is no word
        previous_end = match.end()
        if not face:
            tokens.append(_Token(match.start(), match.end(), match.group().strip(_EDGE), run))
    return tokens


def _capitalised(word: str) -> bool:
    letters = [c for c in word if c.isalpha()]
    return bool(letters) and letters[0].isupper()


def _plain(word: str) -> str:
    return "".join(c for c in word.lower() if c.isalpha())


def _only_function_words(words: list[str]) -> bool:
    """Are the words ("It", "Me Before You", "To") all :data:`FUNCTION_WORDS`? A number is none ("9 to 5")."""
    typed = [w for w in words if any(c.isalnum() for c in w)]
    return bool(typed) and all(_plain(w) in FUNCTION_WORDS and not any(c.isdigit() for c in w) for w in typed)


def _typed_as_title(words: list[str]) -> bool:
    """Capitalised as a title is: the first word and every word but the minor ones ("Lord of the Rings")."""
    lettered = [w for w in words if any(c.isalpha() for c in w)]
    return bool(lettered) and _capitalised(lettered[0]) and all(
        _capitalised(w) for w in lettered if w.lower() not in _MINOR)


def _year_confirms(words: list[str], year_bracketed: bool, sentence_start: bool) -> bool:
    """Does a year right after ``words``, from an item of this title, show they are meant as the title?

    Yes for a title with a word of its own ("Halloween 1978", "gamer 2009"), for any title with the year in
    brackets ("it (2017)"), and for a title of function words whose last word is never followed by a year in
    prose ("it 2017", "up 2009"). One that ends in a word that leads a year in prose ("from 2010 to 2015",
    "a 2012 movie", "After 2019 please") counts only when written as a title mid-sentence ("I loved Her 2013")."""
    if year_bracketed or not _only_function_words(words):
        return True
    if _plain(words[-1]) not in _YEAR_LEADERS:
        return True
    return _typed_as_title(words) and not sentence_start


def _evidence(words: list[str], year: int | None, year_bracketed: bool, sentence_start: bool, before: str | None,
              after: str | None, not_titles: frozenset[str]) -> str | None:
    """Why ``words`` (an exact catalogue title) is meant as a title here, or None (see the module docstring).

    ``year`` is a year right after the words that an item of this title is from. Words are counted as typed,
    but not a leading "a"/"an": "a scary movie" is prose, "the dark knight" a title.
    """
    if year is not None and _year_confirms(words, year_bracketed, sentence_start):
        return "year"
    ordinary = _only_function_words(words)
    typed = [w for w in words if any(c.isalpha() or c.isdigit() for c in w)]
    if typed and typed[0].lower() in ("a", "an"):
        typed = typed[1:]
    if len(typed) >= 3 and not ordinary:
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


def _whole_message_is_title(words: list[str]) -> bool:
    """A message of nothing but a title's words is that title, unless it is a reply ("yes!", "lol") or
    function words in lower case ("other?", "it"), which answer rather than name."""
    lettered = [_plain(w) for w in words if any(c.isalpha() for c in w)]
    if lettered and all(w in REPLY_WORDS for w in lettered):
        return False
    return not _only_function_words(words) or _typed_as_title(words)


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
        item_id = _link(linker, message[start:end], popularity) if end > start else None
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
    start, end = _trimmed(message, tokens[i].start, tokens[i].end)
    if end > start and not linker.may_begin_title(message[start:end]):
        # Every span from here normalises to a key that starts with this word's first word (normalising is
        # word by word; an article or an empty word is never skipped): none can be a title. Most positions
        # end here, and finding titles went from ~2 ms a message to a fraction of that.
        return None
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
        words = [token.word for token in tokens[i : j + 1]]
        year, bracketed = _year_after(message, tokens, j + 1, run)
        if year is not None and not bracketed and len(words) == 1 and _plain(words[0]) in _MONTHS:
            year = None  # "May 2002" is a date
        year_items = _items_of_year(linker, text, year) if year is not None else []
        if not year_items:
            year = None  # no item of this title is from then: "I saw 1922", "like post 2014"
        whole = not marked and i == 0 and (j == len(tokens) - 1 or (year is not None and j == len(tokens) - 2))
        if whole and _whole_message_is_title(words):
            evidence: str | None = "whole message"
        else:
            evidence = _evidence(words, year, bracketed, sentence_start, previous.word if previous else None,
                                 following.word if following is not None and year is None else None, not_titles)
        if evidence is None:
            continue
        year_read = year is not None and evidence in ("year", "whole message")
        if year_read:
            item_id: str | None = _most_popular(year_items, popularity)
        else:
            item_id = _link(linker, text, popularity)
        if item_id is None:
            continue
        used = j + 1 - i + (1 if year_read else 0)
        return TitleMention(text, start, end, item_id, evidence), used
    return None


def _year_after(message: str, tokens: list[_Token], k: int, run: int) -> tuple[int | None, bool]:
    """The year token ``k`` is ("2015", "(2015)"), and whether it is in brackets; None when it is no year, or
    when it is a title followed by its own year ("watch 2012 (2009)")."""
    if k >= len(tokens) or tokens[k].run != run:
        return None, False
    raw = message[tokens[k].start : tokens[k].end]
    match = _YEAR.match(raw)
    if match is None:
        return None, False
    bracketed = raw[0] in "(["
    if not bracketed and k + 1 < len(tokens) and tokens[k + 1].run == run:
        after = message[tokens[k + 1].start : tokens[k + 1].end]
        if after[0] in "([" and _YEAR.match(after):
            return None, False
    return int(match.group(1)), bracketed


def _item_year(linker: TitleLinker, item_id: str) -> int | None:
    item = linker.catalog.get(item_id)
    return item.year if item.year is not None else split_year(item.title)[1]


def _items_of_year(linker: TitleLinker, text: str, year: int) -> list[str]:
    """The items titled exactly ``text`` from ``year``, else from the nearest year within the linker's
    ``max_year_gap`` (a year misremembered by one); none when no item of that title is from around then."""
    gaps = {item_id: abs(item_year - year) for item_id in linker.items_titled(text)
            if (item_year := _item_year(linker, item_id)) is not None}
    nearest = min(gaps.values(), default=None)
    if nearest is None or nearest > linker.max_year_gap:
        return []
    return [item_id for item_id, gap in gaps.items() if gap == nearest]


def _most_popular(item_ids: list[str], popularity: Mapping[str, float] | None) -> str | None:
    """Ties (and no popularity) go to the first in catalogue order."""
    if not item_ids:
        return None
    if popularity is None:
        return item_ids[0]
    return max(item_ids, key=lambda item_id: popularity.get(item_id, 0.0))


def _link(linker: TitleLinker, text: str, popularity: Mapping[str, float] | None) -> str | None:
    """The item ``text`` names: with a year of its own ("Alien (1979)") the most popular item of exactly that
    title from that year; without one (or when the year fits none) the most popular item of exactly that
    title; else the linker's match (fuzzy), for a quoted title."""
    bare, year = split_year(text)
    same_title = linker.items_titled(bare)
    if same_title:
        of_year = _items_of_year(linker, bare, year) if year is not None else []
        return _most_popular(of_year or same_title, popularity)
    link = linker.link(text, year)
    return link.item_id if link is not None else None
