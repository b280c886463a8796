"""What the API says about items and turns: catalogue items as JSON, a turn's answer (the reply, each
recommendation with its facts, scores and reason, the trace), the title search, and the withholding of
research-only item text.

Withholding. The IMDb/TMDB-derived fields of an item (:data:`~convrec.serve.http.settings.RESEARCH_TEXT_FIELDS`:
plot, cast, writers, keywords) may be used for research only, so a server that others can reach leaves them out
of every response. Facts are easy: the fields are dropped. A reason or a reply may also have been written
from them ("It stars Tom Hanks."): the reason is then chosen again over the item without those fields (the same
:func:`~convrec.rerank.reply.choose_reason` the engine uses, through a copy of the engine over the stripped
catalogue), and a reply that names a withheld value of an item it recommends is rewritten as the template reply
with that reason. A trace line that names one is replaced by a note. Both versions of each answer are kept
(:meth:`Presenter.answer`), so a server restarted with the other setting shows stored answers right too.
What is not caught: a reason the HARPO agent built from a single plot keyword ("a story about soldiers"), which
is a word of the user's and of the plot alike.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from rapidfuzz import fuzz, process

from convrec.catalog.items import Catalog, Item
from convrec.catalog.titles import normalize_title, split_year
from convrec.rerank.reply import Reason, choose_reason, template_reply
from convrec.serve.agent_engine import AgentEngine
from convrec.serve.engine import Engine
from convrec.serve.http.settings import RESEARCH_TEXT_FIELDS
from convrec.serve.state import SessionState, TurnRecord
from convrec.trace import TraceRecord

WITHHELD_NOTE = "(withheld: research-only item text)"
_PLOT_SHINGLE = 5  # a reply quoting this many words of a plot in a row quotes the plot


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity: a score that is not a number is null."""
    return None if value is None or not math.isfinite(value) else float(value)


def strip_item(item: Item, fields: Sequence[str] = RESEARCH_TEXT_FIELDS) -> Item:
    if not any(key in item.metadata for key in fields):
        return item
    return replace(item, metadata={k: v for k, v in item.metadata.items() if k not in fields})


class Presenter:
    """Turns the engine's items and turn records into JSON (see the module docstring)."""

    def __init__(self, engine: Engine, withheld_fields: Sequence[str] = RESEARCH_TEXT_FIELDS):
        self.engine = engine
        self.catalog = engine.catalog
        self.withheld_fields = tuple(withheld_fields)
        self.stripped = Catalog([strip_item(item, self.withheld_fields) for item in engine.catalog],
                                name=engine.catalog.name)
        # The engine's own `why`, over the stripped catalogue: its reasons can only name what stays.
        self._stripped_engine = copy.copy(engine)
        self._stripped_engine.catalog = self.stripped
        self.search_index = TitleSearch(engine.catalog, engine.popularity)
        self._withheld_cache: dict[str, _WithheldValues] = {}

    # -- items -----------------------------------------------------------------------------------------------

    def facts(self, item_id: str, withhold: bool) -> dict[str, Any]:
        item = (self.stripped if withhold else self.catalog).get(item_id)
        return dict(item.metadata)

    def item(self, item_id: str, withhold: bool) -> dict[str, Any]:
        item = self.catalog.get(item_id)
        return {"item_id": item.item_id, "title": item.title, "year": item.year,
                "display_title": item.display_title, "facts": self.facts(item_id, withhold)}

    # -- turns -----------------------------------------------------------------------------------------------

    def answer(self, state: SessionState, record: TurnRecord) -> dict[str, dict[str, Any]]:
        """The answer to one turn (``state``: the state after it), as shown with research text and without."""
        numbers = range(1, len(record.recommendations) + 1)
        open_reasons = [self.engine.why(state, n).reason for n in numbers]
        if isinstance(self.engine, AgentEngine):  # the agent's own reasons, unless one names withheld text
            withheld_reasons = [reason if not self.leaks(reason, [r.item_id]) else self._stripped_why(state, n)
                                for n, reason, r in zip(numbers, open_reasons, record.recommendations, strict=True)]
        else:  # chosen from the catalogue's facts: chosen again from the facts that stay
            withheld_reasons = [self._stripped_why(state, n) for n in numbers]
        shown = [r.item_id for r in record.recommendations]
        reply = record.reply.text
        withheld_reply = reply
        plot_or_cast = record.reply.reason.kind in ("plot", "cast") and record.reply.source == "template"
        if record.reply.item_ids and (plot_or_cast or self.leaks(reply, record.reply.item_ids)):
            first = record.reply.item_ids[0]
            reason = (withheld_reasons[shown.index(first)] if first in shown
                      else choose_reason(self.stripped.get(first), "", self.engine.vocabulary).text)
            named = record.reply.item_ids[: self.engine.writer.options.n_items]  # the agent's holds its whole slate
            withheld_reply = template_reply([self.catalog.get(i) for i in named], Reason("none", reason))
        return {"open": self._answer(record, reply, open_reasons, withhold=False),
                "withheld": self._answer(record, withheld_reply, withheld_reasons, withhold=True)}

    def _stripped_why(self, state: SessionState, number: int) -> str:
        """The two-stage engine's reason for the N-th recommendation (whatever the engine), over the item
        without its research-only fields."""
        return Engine.why(self._stripped_engine, state, number).reason

    def _answer(self, record: TurnRecord, reply: str, reasons: Sequence[str], withhold: bool) -> dict[str, Any]:
        recommendations = []
        for number, (r, why) in enumerate(zip(record.recommendations, reasons, strict=True), start=1):
            item = self.catalog.get(r.item_id)
            recommendations.append({
                "number": number, "item_id": r.item_id, "title": item.title, "year": item.year,
                "display_title": item.display_title, "facts": self.facts(r.item_id, withhold),
                "score": _finite(r.score), "retriever_score": _finite(r.retriever_score),
                "retriever_rank": r.retriever_rank, "llm_score": _finite(r.llm_score), "quality": r.quality,
                "why": why})
        ids = [r.item_id for r in record.recommendations]
        trace = [self._trace_line(line, ids, withhold) for line in record.trace]
        return {"conversation": record.conversation, "turn": record.number, "reply": reply,
                "recommendations": recommendations, "action": record.action,
                "recognised": [{"text": m.text, "item_id": m.item_id,
                                "title": self.catalog.get(m.item_id).display_title} for m in record.mentions],
                "trace": trace, "search": self._search(record), "seconds": _finite(record.timing.total_s)}

    def _search(self, record: TurnRecord) -> dict[str, Any] | None:
        """STAR's tree when the agent chose its move by search: its nodes, and as text (titles, no facts)."""
        if record.search is None:
            return None
        return {**record.search.model_dump(mode="json"),
                "text": record.search.render(lambda item_id: self.catalog.get(item_id).display_title)}

    def _trace_line(self, line: TraceRecord, item_ids: Sequence[str], withhold: bool) -> dict[str, Any]:
        data = line.model_dump(mode="json")
        if withhold:
            for key in ("input", "output"):
                if self.leaks(data[key], item_ids):
                    data[key] = WITHHELD_NOTE
        return data

    # -- withholding -----------------------------------------------------------------------------------------

    def leaks(self, text: str, item_ids: Iterable[str]) -> bool:
        """Does ``text`` name a withheld value of one of the items: a person of a withheld field (cast, writer)
        who is not also in a field that stays (a director) of one of them, a keyword, or five words of its plot
        in a row?"""
        if not text:
            return False
        lowered = text.lower()
        profiles = [self._withheld_values(item_id) for item_id in item_ids]
        # a name that stays as a fact of any of them (Tom Hanks directed one and stars in another) is no leak
        kept = frozenset().union(*(profile.kept for profile in profiles))
        words = None
        for profile in profiles:
            if any(value not in kept and _names_word(lowered, value) for value in profile.names):
                return True
            for value, shingles in profile.plots:
                if value in kept:
                    continue
                words = " ".join(_WORD.findall(lowered)) if words is None else words
                if any(shingle in words for shingle in shingles):
                    return True
        return False

    def _withheld_values(self, item_id: str) -> _WithheldValues:
        """What :meth:`leaks` looks for in one item, worked out once per item: every turn checks its reply and
        trace against its recommendations. (No regular expression per name: compiling one for each name of
        each newly seen item made a fresh server's first minutes slow, with stalls of ~100 ms under load.)"""
        found = self._withheld_cache.get(item_id)
        if found is None:
            item = self.catalog.get(item_id)
            kept, names, plots = set(), [], []
            for key, value in _values(item):
                lowered = value.lower()
                if key not in self.withheld_fields:
                    kept.add(lowered)
                elif key == "plot":
                    plot = _WORD.findall(lowered)
                    plots.append((lowered, tuple(" ".join(plot[i:i + _PLOT_SHINGLE])
                                                 for i in range(len(plot) - _PLOT_SHINGLE + 1))))
                elif len(value) >= 4:
                    names.append(lowered)
            found = _WithheldValues(frozenset(kept), tuple(names), tuple(plots))
            self._withheld_cache[item_id] = found  # a race only computes the same value twice
        return found


@dataclass(frozen=True)
class _WithheldValues:
    """One item's values for :meth:`Presenter.leaks`: those of fields that stay (lower case), the withheld names
    and keywords (lower case) and the withheld plots (lower case, with their runs of five words)."""

    kept: frozenset[str]
    names: tuple[str, ...]
    plots: tuple[tuple[str, tuple[str, ...]], ...]


_WORD = re.compile(r"\w+")


def _names_word(text: str, phrase: str) -> bool:
    """Is ``phrase`` in ``text`` as a whole word or words (no letter, digit or _ right before or after it)?"""
    start = text.find(phrase)
    while start != -1:
        end = start + len(phrase)
        if (start == 0 or not _word_char(text[start - 1])) and (end == len(text) or not _word_char(text[end])):
            return True
        start = text.find(phrase, start + 1)
    return False


def _word_char(char: str) -> bool:
    return char.isalnum() or char == "_"


def _values(item: Item) -> Iterable[tuple[str, str]]:
    for key, value in item.metadata.items():
        if isinstance(value, str):
            yield key, value
        elif isinstance(value, list | tuple):
            yield from ((key, str(v)) for v in value)


def _typed_ratio(query: str, name: str, **_: object) -> float:
    """How close ``query`` is to ``name`` or to its start ("terminater 2" is a typo of "Terminator 2: ...")."""
    return max(fuzz.ratio(query, name), fuzz.ratio(query, name[:len(query)]))


class TitleSearch:
    """Find catalogue items by title, as a user types it: the catalogue's own title normalisation
    (:func:`~convrec.catalog.titles.normalize_title`: case, accents, punctuation, articles) on titles and
    aliases, then exact > prefix > word-start > substring > fuzzy (rapidfuzz), a year in the query ("alien
    1979", "Alien (1979)") preferring items of that year, and the more popular item first among equals."""

    def __init__(self, catalog: Catalog, popularity: dict[str, float] | None = None):
        self.catalog = catalog
        self.popularity = popularity or {}
        self._keys: list[str] = []
        self._positions: list[int] = []
        for position, item in enumerate(catalog):
            for name in dict.fromkeys((item.title, *item.aliases)):
                key = normalize_title(split_year(name)[0])
                if key:
                    self._keys.append(key)
                    self._positions.append(position)

    def search(self, query: str, limit: int) -> list[tuple[Item, float]]:
        bare, year = split_year(query.strip())
        if year is None and (match := re.fullmatch(r"(.*\S)\s+(\d{4})", bare)):
            bare, year = match.group(1), int(match.group(2))
        key = normalize_title(bare)
        if not key:
            return []
        best: dict[int, float] = {}
        for name, position in zip(self._keys, self._positions, strict=True):
            if name == key:
                score = 100.0
            elif name.startswith(key):
                score = 90.0
            elif f" {key}" in f" {name}":
                score = 85.0
            elif key in name:
                score = 75.0
            else:
                continue
            best[position] = max(score, best.get(position, 0.0))
        if len(best) < limit and len(key) >= 3:
            for _, score, index in process.extract(key, self._keys, scorer=_typed_ratio, score_cutoff=70.0,
                                                   limit=limit * 2):
                position = self._positions[index]
                best[position] = max(0.7 * score, best.get(position, 0.0))
        if year is not None:
            for position in best:
                item_year = self.catalog[position].year
                best[position] += 5.0 if item_year == year else (-5.0 if item_year is not None else 0.0)
        ranked = sorted(best.items(), key=lambda pair: (
            -pair[1], -self.popularity.get(self.catalog[pair[0]].item_id, 0.0), pair[0]))
        return [(self.catalog[position], round(score, 1)) for position, score in ranked[:limit]]
