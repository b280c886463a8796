"""The candidates a learned ranker orders, and what it knows of each (CHARM's relevance dimension).

Candidates are the union of the top ``per_retriever`` items of several fitted first-stage retrievers. Each
(context, candidate) pair gets a row of features, in named groups so that an ablation can drop a group:

- ``retrievers``: per retriever its score, the score's z-value over the whole catalogue, log rank, and whether
  the item is in its top list; and how many retrievers put it there.
- ``popularity``: log of the item's mentions in the training split, and in its latest fifth (what people asked
  for drifts over time: ReDial's test was collected after its train); its year.
- ``mentions``: whether the dialogue mentioned the item, how often, how many turns ago, and whether the seeker
  or the recommender did (a recommender repeats its own suggestions; the standard protocol counts them).
- ``state``: the agent's reading of the dialogue (:class:`~convrec.agent.state.AgentState`): liked, disliked,
  seen; how many of the seeker's wanted values (genre, person, era) the item holds, lacks or breaks, and
  whether it has an avoided value.
- ``attributes``: values shared with the items the seeker named (genres, people, plot keywords) and the
  distance of its year from theirs.
- ``context``: per-context counts (items mentioned, seeker turns, liked items, constraints): constant across
  a context's candidates, they let a tree weigh the other groups differently early and late in a dialogue.

Everything is read from the turns before the target (a :class:`~convrec.data.model.ContextView`): never the
questionnaire answers, which were written after the conversation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from convrec.agent.config import HarpoOptions
from convrec.agent.maven import RecommenderAgent
from convrec.agent.operations import AgentContext
from convrec.agent.schema import PERSON
from convrec.agent.state import AgentState
from convrec.catalog.items import Catalog
from convrec.data.dataset import Split
from convrec.data.model import ContextView
from convrec.errors import ConfigError
from convrec.retrieval.base import Recommender

FEATURE_GROUPS = ("retrievers", "popularity", "mentions", "state", "attributes", "context")
RETRIEVER_FEATURES = ("score", "z", "log_rank", "in_top")  # per retriever, named "retriever:feature"
# the features of every other group, in column order (the retrievers' come first, then "retrievers:votes")
GROUP_FEATURES = {
    "popularity": ("log_count", "recent_log_count", "year"),
    "mentions": ("mentioned", "mention_count", "turns_since_mention", "named_by_seeker", "named_by_recommender"),
    "state": ("liked", "disliked", "seen", "wanted_held", "wanted_unknown", "wanted_broken", "avoided_held",
              "person_asked"),
    "attributes": ("shared_categorical", "shared_person", "shared_keyword", "year_gap"),
    "context": ("context_items", "seeker_turns", "liked_items", "constraints"),
}


def group_of(names: Sequence[str]) -> list[str]:
    """The group of each feature name (a retriever's features are named ``retriever:...``)."""
    fixed = {feature: group for group, features in GROUP_FEATURES.items() for feature in features}
    return ["retrievers" if ":" in name else fixed[name] for name in names]
NOT_MENTIONED = 50.0  # "turns since the item was mentioned" of an item never mentioned
SCORE_BATCH = 256


def recent_item_counts(split: Split, share: float = 0.2) -> np.ndarray:
    """Mentions per item in the latest ``share`` of the split's dialogues: by numeric dialogue id where every id
    is a number (ReDial's ids follow collection order), else in the split's own order."""
    dialogues = list(split.dialogues)
    if dialogues and all(d.dialogue_id.isdigit() for d in dialogues):
        dialogues.sort(key=lambda d: int(d.dialogue_id))
    latest = dialogues[int(len(dialogues) * (1 - share)):]
    counts = np.zeros(len(split.catalog))
    for dialogue in latest:
        for item in dialogue.items_in_order():
            counts[split.catalog.index_of[item]] += 1
    return counts


@dataclass(frozen=True)
class CandidateRows:
    """One context's candidates (catalogue positions) and their feature rows, (len(positions), n_features)."""

    positions: np.ndarray
    features: np.ndarray


class CandidateFeaturizer:
    """Builds :class:`CandidateRows` for contexts from fitted retrievers (the first one also orders the items
    outside the candidates) and the agent's state reader."""

    def __init__(self, catalog: Catalog, retrievers: Mapping[str, Recommender], train_counts: np.ndarray,
                 per_retriever: int, dataset_name: str | None = None, recent_counts: np.ndarray | None = None):
        if not retrievers:
            raise ConfigError("a learned ranker needs at least one retriever")
        self.catalog = catalog
        self.retrievers = dict(retrievers)
        self.per_retriever = per_retriever
        self.log_counts = np.log1p(np.asarray(train_counts, dtype=np.float64))
        self.recent_log_counts = np.log1p(np.asarray(train_counts if recent_counts is None else recent_counts,
                                                     dtype=np.float64))
        first = next(iter(self.retrievers.values()))
        self.ctx = AgentContext.for_catalog(catalog, first, HarpoOptions(), dataset_name)
        self.reader = RecommenderAgent(self.ctx)
        adapter = self.ctx.adapter
        kinds: dict[str, list[str]] = {"categorical": [], "person": [], "keyword": []}
        for attribute in adapter.attributes:
            if attribute.kind in kinds and not attribute.derived:
                kinds[attribute.kind].append(attribute.name)
        # the virtual "person" attribute (every people field) when the schema has one: one overlap count
        if adapter.schema.get(PERSON) is not None:
            kinds["person"] = [PERSON]
        keyword = [a.name for a in adapter.attributes if a.kind == "keyword"]
        kinds["keyword"] = keyword
        self._keys = {kind: [adapter.value_keys(name) for name in names] for kind, names in kinds.items()}
        years = [item.year for item in catalog]
        self.years = np.asarray([np.nan if y is None else float(y) for y in years], dtype=np.float64)
        # every group is computed; a model reads the columns of its own groups (:meth:`columns`)
        self.names = [f"{name}:{feature}" for name in self.retrievers for feature in RETRIEVER_FEATURES]
        self.names += ["retrievers:votes", *(f for features in GROUP_FEATURES.values() for f in features)]
        self.group_of = group_of(self.names)

    # ---- names ------------------------------------------------------------------------------------------

    def columns(self, groups: Sequence[str]) -> np.ndarray:
        """The feature columns of ``groups``, in feature order."""
        unknown = sorted(set(groups) - set(FEATURE_GROUPS))
        if unknown:
            raise ConfigError(f"unknown feature group(s) {', '.join(unknown)}: choose from {', '.join(FEATURE_GROUPS)}")
        return np.asarray([i for i, group in enumerate(self.group_of) if group in groups], dtype=np.int64)

    # ---- rows -------------------------------------------------------------------------------------------

    def scores(self, views: Sequence[ContextView]) -> dict[str, np.ndarray]:
        """Each retriever's (len(views), n_items) scores, NaN as -inf."""
        out = {}
        for name, retriever in self.retrievers.items():
            parts = [np.asarray(retriever.score(views[start : start + SCORE_BATCH]), dtype=np.float64)
                     for start in range(0, len(views), SCORE_BATCH)]
            block = np.concatenate(parts) if parts else np.zeros((0, len(self.catalog)))
            out[name] = np.nan_to_num(block, nan=-np.inf)
        return out

    def rows_of(self, view: ContextView, scores: Mapping[str, np.ndarray]) -> CandidateRows:
        """The candidates of one context and their features; ``scores``: each retriever's row for it."""
        ranks, in_top = {}, {}
        for name in self.retrievers:
            row = scores[name]
            order = np.argsort(-row, kind="stable")
            rank = np.empty(len(row), dtype=np.int64)
            rank[order] = np.arange(len(row))
            ranks[name] = rank
            in_top[name] = rank < self.per_retriever
        union = np.zeros(len(self.catalog), dtype=bool)
        for mask in in_top.values():
            union |= mask
        positions = np.flatnonzero(union)
        columns: list[np.ndarray] = []
        votes = np.zeros(len(positions))
        for name in self.retrievers:
            row = scores[name]
            finite = row[np.isfinite(row)]
            mean, std = (finite.mean(), finite.std()) if len(finite) else (0.0, 1.0)
            chosen = row[positions]
            chosen = np.where(np.isfinite(chosen), chosen, mean - 10 * (std + 1e-12))
            top = in_top[name][positions].astype(np.float64)
            columns += [chosen, (chosen - mean) / (std + 1e-12), np.log1p(ranks[name][positions]), top]
            votes += top
        columns.append(votes)
        columns += [self.log_counts[positions], self.recent_log_counts[positions], self.years[positions]]
        columns += self._mentions(view, positions)
        state = self.state_of(view)
        columns += self.state_columns(state, positions)
        columns += self.attribute_columns(state, positions)
        n = len(positions)
        columns += [np.full(n, float(len(view.context_items))), np.full(n, float(state.seeker_turns)),
                    np.full(n, float(len(state.liked))), np.full(n, float(len(state.constraints.constraints)))]
        features = np.column_stack(columns)
        return CandidateRows(positions, features.astype(np.float32))

    def state_of(self, view: ContextView) -> AgentState:
        return self.reader.read(view.context)

    def _mentions(self, view: ContextView, positions: np.ndarray) -> list[np.ndarray]:
        n_items = len(self.catalog)
        count = np.zeros(n_items)
        last = np.full(n_items, NOT_MENTIONED)
        by_seeker = np.zeros(n_items)
        by_recommender = np.zeros(n_items)
        turns = view.context
        for index, turn in enumerate(turns):
            if not turn.items:
                continue
            where = self.catalog.indices([i for i in turn.items if i in self.catalog.index_of])
            count[where] += 1
            last[where] = min(len(turns) - index, NOT_MENTIONED)
            if turn.role == "seeker":
                by_seeker[where] = 1
            elif turn.role == "recommender":
                by_recommender[where] = 1
        return [(count[positions] > 0).astype(np.float64), count[positions], last[positions], by_seeker[positions],
                by_recommender[positions]]

    def _flags(self, items: Sequence[str], positions: np.ndarray) -> np.ndarray:
        flags = np.zeros(len(self.catalog))
        known = [i for i in items if i in self.catalog.index_of]
        if known:
            flags[self.catalog.indices(known)] = 1
        return flags[positions]

    def state_columns(self, state: AgentState, positions: np.ndarray) -> list[np.ndarray]:
        adapter = self.ctx.adapter
        held = np.zeros(len(positions))
        unknown = np.zeros(len(positions))
        broken = np.zeros(len(positions))
        avoided = np.zeros(len(positions))
        for constraint in state.constraints.constraints:
            if constraint.polarity == "any":
                continue
            satisfied, known = adapter.mask(constraint)
            satisfied, known = satisfied[positions], known[positions]
            if constraint.polarity == "want":
                held += satisfied
                unknown += ~known
                broken += known & ~satisfied
            else:  # avoid: ``satisfied`` is "known and without the value"
                avoided += known & ~satisfied
        person = np.zeros(len(positions))
        if state.people and adapter.schema.get(PERSON) is not None:
            keys = adapter.value_keys(PERSON)
            wanted = {adapter.gazetteer.key(adapter.attribute(PERSON).fields[0], p) for p in state.people}
            person = np.asarray([float(len(keys[p] & wanted)) for p in positions])
        return [self._flags(state.liked, positions), self._flags(state.disliked, positions),
                self._flags(state.seen, positions), held, unknown, broken, avoided, person]

    def attribute_columns(self, state: AgentState, positions: np.ndarray) -> list[np.ndarray]:
        # what the seeker named (liked first: a disliked item's genre is no reason), else every item named
        disliked = set(state.disliked)
        anchors = [i for i in (state.liked or state.named) if i not in disliked and i in self.catalog.index_of]
        anchor_positions = self.catalog.indices(anchors)
        columns = []
        for kind in ("categorical", "person", "keyword"):
            shared = np.zeros(len(positions))
            for keys in self._keys[kind]:
                pooled = frozenset().union(*(keys[p] for p in anchor_positions)) if anchor_positions else frozenset()
                if pooled:
                    shared += np.asarray([float(len(keys[p] & pooled)) for p in positions])
            columns.append(shared)
        anchor_years = self.years[anchor_positions] if anchor_positions else np.zeros(0)
        anchor_years = anchor_years[~np.isnan(anchor_years)]
        gap = (np.abs(self.years[positions] - np.median(anchor_years)) if len(anchor_years)
               else np.full(len(positions), np.nan))
        columns.append(gap)
        return columns
