"""Linking free-text titles ("The Matrix (1999)", "matrix", "Matrix, The") to catalogue items.

Datasets that name items by title (INSPIRED, parts of ReDial's train fragments, OpenDialKG) and LLM output
all go through :class:`TitleLinker`. Linking is year-aware: an exact normalised title with a matching year
wins, then an exact title with a close year, then a fuzzy match (rapidfuzz) above a threshold.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from rapidfuzz import fuzz, process

from convrec.catalog.items import Catalog

# "(1999)", "(1999-2003)", "(2015 film)" and the unclosed "(1995" seen in INSPIRED
_YEAR_AT_END = re.compile(r"\s*\((\d{4})(?:[-–]\d{0,4})?(?:\s+film)?\)?\s*$")
_EMPTY_PARENS_AT_END = re.compile(r"\s*\(\s*\)\s*$")
_TRAILING_ARTICLE = re.compile(r",\s*(the|a|an|les|la|le|il|el|die|der|das)$")
_LEADING_ARTICLE = re.compile(r"^(the|a|an)\s+")
_NON_WORD = re.compile(r"[^\w\s]")
_SPACES = re.compile(r"\s+")
_ARTICLES = frozenset({"the", "a", "an"})  # the words _LEADING_ARTICLE drops


def split_year(title: str) -> tuple[str, int | None]:
    """``"Police Academy  (1984)"`` -> ``("Police Academy", 1984)``; a title with no year keeps ``None``."""
    title = _EMPTY_PARENS_AT_END.sub("", title)
    match = _YEAR_AT_END.search(title)
    if match:
        return title[: match.start()].strip(), int(match.group(1))
    return title.strip(), None


def normalize_title(title: str) -> str:
    """Case, accents, punctuation, articles and spacing removed: the key titles are compared by."""
    if title.isascii():  # no accents to take off (NFKD leaves ASCII as it is): the common case, kept fast
        text = title.lower().strip()
    else:
        text = unicodedata.normalize("NFKD", title)
        text = "".join(ch for ch in text if not unicodedata.combining(ch)).lower().strip()
    text = text.replace("&", " and ")
    text = _TRAILING_ARTICLE.sub("", text)
    text = _NON_WORD.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    text = _LEADING_ARTICLE.sub("", text)
    return text


@dataclass(frozen=True)
class Link:
    item_id: str
    score: float  # 100 for an exact normalised match
    method: str  # "exact", "exact-near-year", "exact-any-year", "fuzzy"


@dataclass
class LinkReport:
    """What linking did over a whole dataset: counts per method and the titles that failed."""

    attempted: int = 0
    by_method: Counter = field(default_factory=Counter)
    failures: Counter = field(default_factory=Counter)

    def record(self, title: str, link: Link | None) -> None:
        self.attempted += 1
        if link is None:
            self.failures[title] += 1
        else:
            self.by_method[link.method] += 1

    @property
    def linked(self) -> int:
        return sum(self.by_method.values())

    @property
    def failure_rate(self) -> float:
        return 0.0 if self.attempted == 0 else 1.0 - self.linked / self.attempted

    def to_json(self, max_failures: int = 50) -> dict:
        return {
            "attempted": self.attempted,
            "linked": self.linked,
            "failure_rate": round(self.failure_rate, 5),
            "by_method": dict(self.by_method),
            "most_common_failures": [[t, n] for t, n in self.failures.most_common(max_failures)],
        }


class TitleLinker:
    """Index a catalogue's titles (and aliases) once; link many titles fast."""

    def __init__(self, catalog: Catalog, fuzzy_threshold: float = 90.0, max_year_gap: int = 1):
        self.catalog = catalog
        self.fuzzy_threshold = fuzzy_threshold
        self.max_year_gap = max_year_gap
        self._by_key: dict[str, list[tuple[str, int | None]]] = defaultdict(list)
        for item in catalog:
            names = [item.title, *item.aliases]
            for name in names:
                bare, year_in_name = split_year(name)
                key = normalize_title(bare)
                if key:
                    self._by_key[key].append((item.item_id, item.year or year_in_name))
        self._keys = list(self._by_key)
        self._first_words = frozenset(key.split()[0] for key in self._by_key)

    def _pick(self, candidates: list[tuple[str, int | None]], year: int | None) -> tuple[str, str] | None:
        if year is None:
            # No year: the first catalogue entry with this title (catalogues list the canonical one first).
            return candidates[0][0], "exact"
        for item_id, item_year in candidates:
            if item_year == year:
                return item_id, "exact"
        near = [(abs(item_year - year), item_id) for item_id, item_year in candidates if item_year is not None]
        near = [pair for pair in near if pair[0] <= self.max_year_gap]
        if near:
            return min(near)[1], "exact-near-year"
        undated = [item_id for item_id, item_year in candidates if item_year is None]
        if undated:
            return undated[0], "exact-any-year"
        return None

    def may_begin_title(self, word: str) -> bool:
        """Can a title that starts with ``word`` be in the catalogue? False only when ``word`` normalises to a
        first word no title or alias has (an article or a year-only word can still begin one, so: True). A
        cheap test that lets a title finder skip a position instead of normalising every span from it."""
        key = normalize_title(split_year(word)[0])
        if not key:
            return True
        first = key.split()[0]
        return first in _ARTICLES or first in self._first_words

    def knows(self, title: str) -> bool:
        """Is ``title`` (normalised, any "(YYYY)" ignored) exactly a title or alias in the catalogue?"""
        key = normalize_title(split_year(title)[0])
        return bool(key) and key in self._by_key

    def items_titled(self, title: str) -> list[str]:
        """Every item whose title or alias is exactly ``title`` (normalised, year ignored), catalogue order."""
        key = normalize_title(split_year(title)[0])
        return list(dict.fromkeys(item_id for item_id, _ in self._by_key.get(key, ())))

    def link(self, title: str, year: int | None = None) -> Link | None:
        """Link ``title`` (which may end in "(YYYY)") to an item, or ``None`` when nothing is close enough."""
        bare, year_in_title = split_year(title)
        year = year if year is not None else year_in_title
        key = normalize_title(bare)
        if not key:
            return None
        if key in self._by_key:
            picked = self._pick(self._by_key[key], year)
            if picked:
                return Link(picked[0], 100.0, picked[1])
        if len(key) < 4:  # fuzzy matching of very short titles links noise
            return None
        for match_key, score, _ in process.extract(
            key, self._keys, scorer=fuzz.ratio, score_cutoff=self.fuzzy_threshold, limit=5
        ):
            picked = self._pick(self._by_key[match_key], year)
            if picked:
                return Link(picked[0], float(score), "fuzzy")
        return None

    def link_all(self, titles: Iterable[str], report: LinkReport | None = None) -> list[Link | None]:
        links = []
        for title in titles:
            link = self.link(title)
            if report is not None:
                report.record(title, link)
            links.append(link)
        return links
