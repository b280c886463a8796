"""Joining several movie lists into one de-duplicated catalogue, with a report of what merged and what conflicted.

Records from each source are grouped by IMDb id, the one key every large source shares. A record without an
IMDb id (a MovieLens-1M row whose id MovieLens' links do not cover) joins the IMDb group whose normalised
(title, year) it matches; if it matches none it becomes a group of its own, and if it matches several the one
holding an anchor record wins and the ambiguity is reported. Within a group the source listed first wins each
field. Anchor records (ReDial's catalogue) are never merged away nor changed: every one stays an item with its
own id, so a dataset built on the anchor catalogue keeps its targets, and the joined catalogue only adds
distractors.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from convrec.catalog.items import Catalog, Item
from convrec.catalog.titles import normalize_title

# Fields copied into a joined item's metadata, in the priority order of the sources that carry them.
JOINED_FIELDS = ("genre", "plot", "director", "writer", "star", "keywords", "imdb_id")
MAX_EXAMPLES = 25  # conflicts listed by name in the report, per kind


@dataclass(frozen=True)
class SourceRecord:
    """One movie as one source lists it. ``source`` orders priority: see :func:`join_catalogs`."""

    source: str
    key: str  # the record's id in its source
    title: str
    year: int | None
    imdb_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def title_key(self) -> tuple[str, int | None]:
        return normalize_title(self.title), self.year


@dataclass
class JoinReport:
    """What the join did: records read per source, how they merged, and each kind of conflict with examples."""

    records: Counter = field(default_factory=Counter)
    merged_by: Counter = field(default_factory=Counter)
    conflicts: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    items: int = 0
    anchor_items: int = 0

    def conflict(self, kind: str, example: str) -> None:
        self.conflicts[kind] += 1
        if len(self.examples[kind]) < MAX_EXAMPLES:
            self.examples[kind].append(example)

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "anchor_items": self.anchor_items, "added_items": self.items - self.anchor_items,
                "records_per_source": dict(self.records), "merged_by": dict(self.merged_by),
                "conflicts": dict(self.conflicts), "conflict_examples": {k: list(v) for k, v in self.examples.items()}}


def _describe(record: SourceRecord) -> str:
    year = f" ({record.year})" if record.year else ""
    return f"{record.source}:{record.key} {record.title!r}{year}"


def _merge_fields(records: Sequence[SourceRecord], priority: dict[str, int]) -> dict[str, Any]:
    metadata: dict[str, Any] = {}
    for record in sorted(records, key=lambda r: priority[r.source]):
        for key in JOINED_FIELDS:
            value = record.metadata.get(key)
            if value and not metadata.get(key):
                metadata[key] = value
        if record.imdb_id and not metadata.get("imdb_id"):
            metadata["imdb_id"] = record.imdb_id
    return metadata


def join_catalogs(anchor: Catalog, records: Iterable[SourceRecord], sources: Sequence[str],
                  title_priority: Sequence[str] | None = None) -> tuple[Catalog, JoinReport]:
    """``anchor``'s items first, unchanged and in order, then one item per movie the other sources add.

    ``sources`` lists the non-anchor sources by priority for metadata fields; ``title_priority`` (default:
    the same order) by priority for the title and year shown. A new item's id is its IMDb id, or
    ``SOURCE-KEY`` for a movie no source gives one."""
    priority = {source: rank for rank, source in enumerate(sources)}
    title_rank = {source: rank for rank, source in enumerate(title_priority or sources)}
    report = JoinReport()
    groups: dict[str, list[SourceRecord]] = defaultdict(list)  # IMDb id -> records
    untied: list[SourceRecord] = []
    anchor_by_imdb: dict[str, list[str]] = defaultdict(list)
    anchor_by_title: dict[tuple[str, int | None], list[str]] = defaultdict(list)
    anchor_titles: dict[tuple[str, int | None], list[str]] = defaultdict(list)
    for item in anchor:
        report.records["anchor"] += 1
        imdb = item.metadata.get("imdb_id")
        anchor_titles[(normalize_title(item.title), item.year)].append(item.item_id)
        if imdb:
            anchor_by_imdb[imdb].append(item.item_id)
        else:
            anchor_by_title[(normalize_title(item.title), item.year)].append(item.item_id)
    for record in records:
        if record.source not in priority:
            raise ValueError(f"record {_describe(record)} is from an unlisted source")
        report.records[record.source] += 1
        if record.imdb_id:
            groups[record.imdb_id].append(record)
        else:
            untied.append(record)
    for imdb, ids in anchor_by_imdb.items():
        if len(ids) > 1:  # the anchor's own duplicates: its dialogues name both ids, so both stay
            report.conflict("anchor items sharing an IMDb id (all kept)", f"{imdb}: {', '.join(ids)}")

    # A group's (title, year) keys, to tie records without an IMDb id to one.
    by_title: dict[tuple[str, int | None], set[str]] = defaultdict(set)
    for imdb, members in groups.items():
        for record in members:
            by_title[record.title_key].add(imdb)
    for item in anchor:
        if item.metadata.get("imdb_id"):
            by_title[(normalize_title(item.title), item.year)].add(item.metadata["imdb_id"])
    loose: dict[tuple[str, int | None], list[SourceRecord]] = defaultdict(list)
    for record in untied:
        matches = sorted(by_title.get(record.title_key, ()))
        if record.year is not None and len(matches) >= 1:
            if len(matches) > 1:
                chosen = next((m for m in matches if m in anchor_by_imdb), matches[0])
                report.conflict("title and year match several IMDb ids (joined to one)",
                                f"{_describe(record)} -> {', '.join(matches)}; joined to {chosen}")
            else:
                chosen = matches[0]
            groups[chosen].append(record)
            report.merged_by["title and year"] += 1
        else:
            loose[record.title_key].append(record)

    items: list[Item] = list(anchor)
    report.anchor_items = len(items)
    taken = set(anchor.index_of)
    reported_titles: set[tuple[str, int | None]] = set()
    for imdb in sorted(groups):
        members = groups[imdb]
        report.merged_by["IMDb id"] += len(members)
        shown = min(members, key=lambda r: title_rank[r.source])
        years = {r.year for r in members if r.year is not None}
        if years and max(years) - min(years) > 1:
            report.conflict("one IMDb id, years more than a year apart (first source's kept)",
                            f"{imdb}: " + "; ".join(_describe(r) for r in members))
        titles = {r.title_key[0] for r in members}
        if len(titles) > 1:
            report.conflict("one IMDb id, different normalised titles (first source's kept)",
                            f"{imdb}: " + "; ".join(_describe(r) for r in members))
        if imdb in anchor_by_imdb:
            report.merged_by["into an anchor item"] += len(members)
            continue
        anchored = anchor_titles.get(shown.title_key)
        if anchored and shown.year is not None:
            # An anchor item of this title and year is this movie (it has no IMDb id, or the anchor's metadata
            # names another one): it stays, the group adds nothing, so no target gets a look-alike distractor.
            report.merged_by["into an anchor item"] += len(members)
            report.merged_by["title and year"] += len(members)
            if any(anchor.get(i).metadata.get("imdb_id") for i in anchored):
                report.conflict("an anchor item's title and year under another IMDb id (joined to the anchor)",
                                f"{imdb} {shown.title!r} ({shown.year}) -> anchor {', '.join(anchored)}")
            continue
        if len({imdb, *by_title.get(shown.title_key, ())}) > 1 and shown.year is not None \
                and shown.title_key not in reported_titles:
            reported_titles.add(shown.title_key)
            report.conflict("one title and year, several IMDb ids (kept apart)",
                            f"{shown.title} ({shown.year}): {', '.join(sorted(by_title[shown.title_key]))}")
        items.append(Item(imdb, shown.title, shown.year, _merge_fields(members, priority)))
        taken.add(imdb)
    for (title, year), members in sorted(loose.items(), key=lambda kv: (kv[0][0], kv[0][1] or 0)):
        anchored = anchor_by_title.get((title, year))
        if anchored and year is not None:
            report.merged_by["into an anchor item"] += len(members)
            report.merged_by["title and year"] += len(members)
            continue
        shown = min(members, key=lambda r: title_rank[r.source])
        item_id = f"{shown.source}-{shown.key}"
        if item_id in taken:
            report.conflict("id taken (record dropped)", _describe(shown))
            continue
        if len(members) > 1:
            report.merged_by["title and year"] += len(members)
        items.append(Item(item_id, shown.title, shown.year, _merge_fields(members, priority)))
        taken.add(item_id)
    report.items = len(items)
    return Catalog(items, name=f"{anchor.name}-joined"), report
