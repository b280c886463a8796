"""From an LLM's reply to catalogue items: parse the titles it wrote, link each one, count what failed.

The LLM never gets to name an item directly: every title it writes is linked to the catalogue with the
project's title linker (:mod:`convrec.catalog.titles`), and only links to one of the K candidates count.
A title that links to nothing is *unmatched* (hallucinated or mangled); one that links to a catalogue item
outside the candidates is *outside the candidate set*; a candidate named twice is a *duplicate*. RAR
reports the first two as shares of all generated titles (REFERENCE section 4), so they are counted here.

All functions are pure (no model), so they are tested on hand-written replies.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from convrec.catalog.items import Catalog, Item
from convrec.catalog.titles import TitleLinker

_FENCE = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL | re.IGNORECASE)
_LIST_MARKER = re.compile(r"^\s*(?:[-*•·]+|\(?\d{1,3}[.):\]]|#\d+[.:]?)\s*")
_TITLE_WITH_YEAR = re.compile(r"^(.*?\(\d{4}\))")
_EXPLANATION = re.compile(r"\s+(?:-|–|—|because\b|which\b)\s+.*$", re.IGNORECASE)
_QUOTES = "\"'“”‘’`*_ "


def parse_titles(text: str) -> list[str]:
    """The titles in an LLM reply, in order: JSON first (a list, or an object holding one), else one title
    per line with list markers, quotes and trailing explanations removed. Nothing parsed -> []."""
    from_json = _titles_from_json(text)
    if from_json is not None:
        return from_json
    titles = []
    for line in text.splitlines():
        line = _LIST_MARKER.sub("", line).strip().strip(_QUOTES).strip()
        line = line.rstrip(",;").strip().strip(_QUOTES).strip()
        if line and len(line) <= 200 and not line.endswith(":"):
            titles.append(line)
    return titles


def _titles_from_json(text: str) -> list[str] | None:
    candidates = [match.group(1) for match in _FENCE.finditer(text)] + [text]
    for chunk in candidates:
        for start, end in (("{", "}"), ("[", "]")):
            first, last = chunk.find(start), chunk.rfind(end)
            if first == -1 or last <= first:
                continue
            try:
                value = json.loads(chunk[first : last + 1])
            except json.JSONDecodeError:
                continue
            titles = _titles_in(value)
            if titles is not None:
                return titles
    return None


def _titles_in(value: Any) -> list[str] | None:
    if isinstance(value, dict):
        for key in ("ranking", "titles", "movies", "items", "recommendations"):
            if isinstance(value.get(key), list):
                return _titles_in(value[key])
        lists = [v for v in value.values() if isinstance(v, list)]
        return _titles_in(lists[0]) if len(lists) == 1 else None
    if isinstance(value, list):
        titles = []
        for entry in value:
            if isinstance(entry, dict):
                entry = entry.get("title") or entry.get("name")
            if isinstance(entry, str | int | float) and str(entry).strip():
                titles.append(str(entry).strip())
        return titles
    return None


def _variants(title: str) -> list[str]:
    """The title as written, then shorter readings: up to its "(year)", before a dash or "because"."""
    variants = [title]
    match = _TITLE_WITH_YEAR.match(title)
    if match:
        variants.append(match.group(1))
    variants.append(_EXPLANATION.sub("", title))
    variants = [v.strip().strip(_QUOTES).strip() for v in variants]
    return [v for v in dict.fromkeys(variants) if v]


@dataclass
class Grounding:
    """What the titles of one reply became: ``item_ids`` are distinct candidates in the reply's order."""

    item_ids: list[str] = field(default_factory=list)
    titles: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)
    outside_candidates: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)


class CandidateGrounder:
    """Links titles to one sample's candidates, preferring them over the rest of the catalogue.

    Order of trust: an exact title (with a matching or near year) among the candidates; an exact title
    elsewhere in the catalogue (outside the candidate set, even if a candidate is spelled alike); a fuzzy
    match among the candidates; a fuzzy match elsewhere. ``labels`` are the exact strings the prompt named
    the candidates by (display titles, made unique); ``catalog_linker`` is built once per catalogue.
    """

    def __init__(
        self, catalog_linker: TitleLinker, candidates: Sequence[Item], labels: Sequence[str] | None = None
    ):
        self.catalog_linker = catalog_linker
        self.candidate_ids = [item.item_id for item in candidates]
        self.candidate_set = set(self.candidate_ids)
        labels = labels or [item.display_title for item in candidates]
        self.by_label = {label: item.item_id for label, item in zip(labels, candidates, strict=True)}
        self.candidate_linker = TitleLinker(Catalog(candidates, name="candidates"))

    def link(self, title: str) -> tuple[str | None, bool]:
        """(item id, is a candidate) for one title; (None, False) when it links to nothing."""
        if title in self.by_label:
            return self.by_label[title], True
        fuzzy_candidate = None
        for variant in _variants(title):
            local = self.candidate_linker.link(variant)
            if local is not None and local.method != "fuzzy":
                return local.item_id, True
            fuzzy_candidate = fuzzy_candidate or (local.item_id if local else None)
        fuzzy_elsewhere = None
        for variant in _variants(title):
            linked = self.catalog_linker.link(variant)
            if linked is not None and linked.method != "fuzzy":
                return linked.item_id, linked.item_id in self.candidate_set
            fuzzy_elsewhere = fuzzy_elsewhere or (linked.item_id if linked else None)
        if fuzzy_candidate is not None:
            return fuzzy_candidate, True
        if fuzzy_elsewhere is not None:
            return fuzzy_elsewhere, fuzzy_elsewhere in self.candidate_set
        return None, False

    def ground(self, titles: Sequence[str]) -> Grounding:
        result = Grounding(titles=list(titles))
        seen: set[str] = set()
        for title in titles:
            item_id, is_candidate = self.link(title)
            if item_id is None:
                result.unmatched.append(title)
            elif not is_candidate:
                result.outside_candidates.append(title)
            elif item_id in seen:
                result.duplicates.append(title)
            else:
                seen.add(item_id)
                result.item_ids.append(item_id)
        return result


def candidate_labels(items: Sequence[Item]) -> list[str]:
    """How the prompt names each candidate: its display title, with " [id]" added where two collide."""
    counts: dict[str, int] = {}
    for item in items:
        key = item.display_title
        counts[key] = counts.get(key, 0) + 1
    return [
        item.display_title if counts[item.display_title] == 1 else f"{item.display_title} [{item.item_id}]"
        for item in items
    ]


@dataclass
class GroundingStats:
    """Generated titles over a run and what became of them; shares are of all generated titles."""

    replies: int = 0
    generated: int = 0
    matched: int = 0
    unmatched: int = 0
    outside_candidates: int = 0
    duplicates: int = 0
    examples_unmatched: list[str] = field(default_factory=list)
    examples_outside: list[str] = field(default_factory=list)
    max_examples: int = 20

    def add(
        self, generated: Sequence[str], unmatched: Sequence[str], outside: Sequence[str], duplicates: Sequence[str]
    ) -> None:
        self.replies += 1
        self.generated += len(generated)
        self.unmatched += len(unmatched)
        self.outside_candidates += len(outside)
        self.duplicates += len(duplicates)
        self.matched += len(generated) - len(unmatched) - len(outside) - len(duplicates)
        for source, examples in ((unmatched, self.examples_unmatched), (outside, self.examples_outside)):
            for title in source:
                if len(examples) < self.max_examples and title not in examples:
                    examples.append(title)

    def share(self, count: int) -> float | None:
        return None if self.generated == 0 else count / self.generated

    def to_json(self) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 5)

        return {
            "replies": self.replies,
            "generated_titles": self.generated,
            "matched_candidates": self.matched,
            "unmatched_titles": self.unmatched,
            "outside_candidate_titles": self.outside_candidates,
            "duplicate_titles": self.duplicates,
            "unmatched_share": rounded(self.share(self.unmatched)),
            "outside_candidates_share": rounded(self.share(self.outside_candidates)),
            "duplicate_share": rounded(self.share(self.duplicates)),
            "examples_unmatched": self.examples_unmatched,
            "examples_outside_candidates": self.examples_outside,
        }
