"""The HARPO agent's behaviour report: what the agent does on a dataset's samples, next to its retriever alone.

**Protocol.** The ``harpo`` recommender (:mod:`convrec.agent.harpo`) is built and fitted as the harness builds
and fits any recommender (:func:`~convrec.retrieval.base.build_recommender` with shared
:class:`~convrec.resources.Resources`; fitted on train, with valid for its choices unless valid is evaluated),
and scored under the ``standard`` protocol (nothing masked, the whole catalogue ranked) by the harness's own
loop (:func:`convrec.evaluate.runner.evaluate_scores`, batches with a progress bar): every sample of the split in
the harness's order, or the seeded subset of ``--limit`` samples the harness draws (so ``convrec eval
--recommender harpo --limit N --seed S`` scores the same samples). The retriever inside the agent is scored on
the very same context views, batch by batch: "the retriever alone" is its raw score row, with no exclusion.
Each recommender sees a :class:`~convrec.data.model.ContextView` only; the questionnaire and the target stay here.

**1. Questionnaire violations** (datasets whose dialogues carry ``liked`` answers: ReDial). A sample's
*disliked-before* items are the items the seeker mentioned in the turns before the target whose questionnaire
answer is liked = no (seen = yes alone is no violation; liked unknown is not counted). The questionnaire is
filled in after the conversation: it is the label here, never a feature of either system. Among the samples
with at least one such item: the share whose slate holds one (harpo: the slate it recommends after critique;
the retriever: its top ``slate`` items by raw score, ``slate`` the harpo option, 5 by default), and the share
whose top 10 of the final ranking holds one (harpo's score matrix, the retriever's scores; ties in catalogue
order), with the paired difference harpo - retriever on the same samples. Intervals are 95% percentile
intervals of a bootstrap that resamples dialogues (the samples of one dialogue, often several targets of one
turn with the same context, are not independent). A dataset without questionnaire answers gets no part 1,
and the report says why.

**2. Per VTO.** Over every turn's trace: for each of the 21 operations
(:data:`~convrec.agent.vto.PAPER_OPERATIONS`) its calls, calls per turn, share of turns calling it, calls that
changed the slate, and mean and 90th-percentile seconds per call; totals per agent (recommender, critic,
explainer); the Critic's notes counted by the kind of problem. (The agent traces the extraction calls of the
latest seeker turn only: earlier turns are read quietly.)

**3. Slate diversity**, harpo's slates and the retriever's top ``slate``: per slate, for each main attribute of
the catalogue (the categorical and people attributes its domain adapter reads from the items, derived ones
left out: ReDial's genre, director, writer, star; the books' author and genre), the distinct values over the
value mentions of the slate's items (1: no value repeated; 1/k: k items with one shared value); the mean
pairwise Jaccard distance of the items' (attribute, value) sets; and catalogue coverage, the distinct items
over all slates / catalogue size. Empty slates (the agent asked a question) are counted apart.

**4. Reply grounding**, the turns with a slate: the share of reasons (one per slate item) whose stated facts
are all catalogue facts (:func:`convrec.agent.maven.grounded` against ``query_knowledge``), the share of
replies whose first reason ties the item to something the seeker said (``Explanation.ties``), the share whose
first reason fell back to the plain template because its draft (``explain_choice``, recomputed) stated a fact
the catalogue lacks, and the share whose first reason states no fact and ties nothing (that fallback or the
generic "seekers with similar taste" line).

    python -m convrec.evaluate.agent_report --dataset redial --split valid --retriever itemknn \\
        --limit 500 --seed 0 --out runs/agent-report-itemknn

writes ``OUT/agent_report.json`` and ``OUT/agent_report.md`` (atomically).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from convrec.agent.config import HarpoOptions
from convrec.agent.domain import DomainAdapter
from convrec.agent.harpo import HarpoRecommender, HarpoTurn
from convrec.agent.maven import grounded
from convrec.agent.operations import VTOS, AgentContext, ExplainArgs, KnowledgeArgs
from convrec.agent.vto import PAPER_OPERATIONS
from convrec.catalog.items import Catalog
from convrec.data.dataset import CRSDataset
from convrec.data.fetch import default_data_dir, default_mirror
from convrec.data.load import load_dataset
from convrec.data.model import RecSample
from convrec.errors import CheckpointError, ConfigError, DataError, OutputPathError
from convrec.evaluate.harness import without_nan
from convrec.evaluate.paired import paired_bootstrap
from convrec.evaluate.protocol import Protocol
from convrec.evaluate.provenance import provenance
from convrec.evaluate.runner import evaluate_scores
from convrec.options import parse_options, report_main, write_report_files
from convrec.resources import Resources
from convrec.retrieval.base import build_recommender, item_counts, recommender_class, top_indices

TOP_N = 10  # "the top 10 of the final ranking"
BOOTSTRAP = 2000
ACCURACY = ("recall@10", "ndcg@10", "mrr")  # harpo's, for orientation (what `convrec eval` reports)
# The Critic's problems (maven.CriticAgent.review, operations.filter_results) by the words they start with.
_PROBLEM_KINDS = (("ruled out by the seeker", "ruled out (disliked, seen or turned down)"),
                  ("against ", "breaks a stated constraint"),
                  ("known to the seeker already", "known (named or proposed before)"),
                  ("the seeker wrote its title already", "title written by the seeker"),
                  ("too like ", "too like another slate item"))


# ------------------------------------------------------------------------------------------- the run
@dataclass(frozen=True)
class Outcome:
    """One sample as both systems answered it."""

    sample: RecSample
    turn: HarpoTurn
    harpo_top: tuple[str, ...]  # the first TOP_N of harpo's final ranking
    retriever_top: tuple[str, ...]  # the first max(slate, TOP_N) of the retriever's raw scores


def choose_samples(dataset: CRSDataset, split: str, limit: int | None, seed: int
                   ) -> tuple[list[RecSample], dict[str, Any] | None]:
    """The split's samples in the harness's order, or the harness's seeded subset of ``limit`` (the same draw as
    :func:`~convrec.evaluate.harness.evaluate_recommender`); and the subset's record, None for the whole split."""
    samples = dataset.split(split).samples
    if not samples:
        raise DataError(f"dataset {dataset.name!r} has no {split} samples (no dialogue of split {split!r} "
                        "recommends an item)")
    if limit is None or limit >= len(samples):
        return list(samples), None
    return random.Random(seed).sample(samples, limit), {"limit": limit, "seed": seed, "of": len(samples)}


def fit_harpo(dataset: CRSDataset, options: dict[str, Any], split: str,
              resources: Resources | None = None) -> HarpoRecommender:
    """``harpo`` with ``options``, fitted as the harness fits it (train; valid unless valid is evaluated)."""
    recommender = build_recommender("harpo", dataset.catalog, options, resources=resources)
    if not isinstance(recommender, HarpoRecommender):  # a registry that maps "harpo" elsewhere
        raise ConfigError(f"'harpo' is registered as {type(recommender).__name__}, not the HARPO agent")
    recommender.fit(dataset.split("train"), dataset.split("valid") if split != "valid" else None)
    return recommender


def run_agent(harpo: HarpoRecommender, samples: Sequence[RecSample], train_counts: np.ndarray,
              batch_size: int = 256, seed: int = 0, progress: bool = True
              ) -> tuple[list[Outcome], dict[str, float]]:
    """Both systems on ``samples`` through the harness's loop; every sample's :class:`Outcome`, and harpo's mean
    accuracy metrics (:data:`ACCURACY`) on them."""
    if harpo.retriever_ is None:
        raise RuntimeError("agent report: fit harpo before running it")
    retriever, catalog = harpo.retriever_, harpo.catalog
    depth = max(harpo.config.slate, TOP_N)
    outcomes: list[Outcome] = []

    def score(views):
        # the runner hands the views of its kept samples in order, and the standard protocol keeps them all
        batch = samples[len(outcomes) : len(outcomes) + len(views)]
        final = harpo.score(views)
        raw = np.asarray(retriever.score(views), dtype=np.float64)
        for row, (sample, view, turn) in enumerate(zip(batch, views, harpo.turns_, strict=True)):
            if view.dialogue_id != sample.dialogue_id or view.turn_index != sample.turn_index:
                raise RuntimeError(f"agent report: view {view.dialogue_id}:{view.turn_index} is not sample "
                                   f"{sample.sample_id}")
            outcomes.append(Outcome(sample, turn, _ids(catalog, top_indices(final[row], TOP_N)),
                                    _ids(catalog, top_indices(raw[row], depth))))
        return final

    values, _ = evaluate_scores(score, samples, catalog, Protocol.STANDARD, train_counts, batch_size, seed,
                                progress, description="harpo and its retriever")
    accuracy = {name: float(np.nanmean(values[name])) for name in ACCURACY if name in values and len(values[name])}
    return outcomes, accuracy


def _ids(catalog: Catalog, columns: np.ndarray) -> tuple[str, ...]:
    return tuple(catalog.id_at(int(k)) for k in columns)


# ------------------------------------------------------------------------- 1. questionnaire violations
class Rate(BaseModel):
    model_config = ConfigDict(frozen=True)

    count: int
    of: int
    rate: float | None  # None when ``of`` is 0
    low: float | None  # 95% bootstrap interval, dialogues resampled
    high: float | None


class Difference(BaseModel):
    model_config = ConfigDict(frozen=True)

    diff: float | None  # mean over samples of harpo - retriever (each 0 or 1)
    low: float | None
    high: float | None
    samples: int
    dialogues: int


class Violations(BaseModel):
    """Where the disliked-before items were looked for (``slate`` or ``top10``), and how often they were found."""

    model_config = ConfigDict(frozen=True)

    where: str
    harpo: Rate
    retriever: Rate
    difference: Difference


class QuestionnaireReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    available: bool
    reason: str | None = None  # why not, when not available
    samples: int = 0  # all samples of the run
    eligible: int = 0  # samples with at least one disliked-before item
    eligible_dialogues: int = 0
    eligible_contexts: int = 0  # distinct (dialogue, turn): the samples of one turn share their context
    disliked_items: int = 0  # disliked-before items over the eligible samples
    slate_size: int = 0
    slate: Violations | None = None
    top10: Violations | None = None
    harpo_top10_examples: tuple[str, ...] = ()  # the first sample ids where harpo's top 10 holds one


def disliked_before(sample: RecSample) -> tuple[str, ...]:
    """The items the seeker mentioned before the target whose questionnaire answer is liked = no."""
    feedback = sample.dialogue.feedback
    mentioned = dict.fromkeys(i for turn in sample.context if turn.role == "seeker" for i in turn.items)
    return tuple(i for i in mentioned if i in feedback and feedback[i].liked is False)


def has_questionnaire(dataset: CRSDataset, split: str) -> bool:
    """Whether any dialogue of the split with speaker roles carries a liked yes/no answer."""
    return any(d.has_roles and any(f.liked is not None for f in d.feedback.values())
               for d in dataset.split(split).dialogues)


def questionnaire_violations(dataset: CRSDataset, split: str, outcomes: Sequence[Outcome], slate: int,
                             seed: int = 0, resamples: int = BOOTSTRAP) -> QuestionnaireReport:
    """Part 1 (see the module docstring); a :class:`DataError` when the split has no questionnaire answers."""
    if not has_questionnaire(dataset, split):
        raise DataError(f"dataset {dataset.name!r} has no questionnaire answers (liked yes/no on the seeker's "
                        f"items) in its {split} dialogues: the violation rate needs them (ReDial has them)")
    eligible = [(o, set(disliked_before(o.sample))) for o in outcomes]
    eligible = [(o, items) for o, items in eligible if items]
    clusters = [o.sample.dialogue_id for o, _ in eligible]

    def found(where: str) -> tuple[np.ndarray, np.ndarray]:
        harpo = [bool(items & set(o.turn.slate if where == "slate" else o.harpo_top)) for o, items in eligible]
        retriever = [bool(items & set(o.retriever_top[: slate if where == "slate" else TOP_N]))
                     for o, items in eligible]
        return np.asarray(harpo, dtype=np.float64), np.asarray(retriever, dtype=np.float64)

    def rate(hits: np.ndarray) -> Rate:
        if not len(hits):
            return Rate(count=0, of=0, rate=None, low=None, high=None)
        mean, low, high = paired_bootstrap(hits, np.zeros_like(hits), clusters, resamples, seed)
        return Rate(count=int(hits.sum()), of=len(hits), rate=mean, low=low, high=high)

    def violations(where: str) -> Violations:
        harpo, retriever = found(where)
        if len(harpo):
            diff, low, high = paired_bootstrap(harpo, retriever, clusters, resamples, seed)
        else:
            diff = low = high = None
        return Violations(where=where, harpo=rate(harpo), retriever=rate(retriever),
                          difference=Difference(diff=diff, low=low, high=high, samples=len(harpo),
                                                dialogues=len(set(clusters))))

    top10 = violations("top10")
    examples = tuple(o.sample.sample_id for o, items in eligible if items & set(o.harpo_top))[:10]
    return QuestionnaireReport(
        available=True, samples=len(outcomes), eligible=len(eligible), eligible_dialogues=len(set(clusters)),
        eligible_contexts=len({(o.sample.dialogue_id, o.sample.turn_index) for o, _ in eligible}),
        disliked_items=sum(len(items) for _, items in eligible), slate_size=slate, slate=violations("slate"),
        top10=top10, harpo_top10_examples=examples)


# ------------------------------------------------------------------------------------------ 2. per VTO
class OperationStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    operation: str
    category: str
    calls: int
    calls_per_turn: float
    turns_calling: int
    turn_share: float
    changed_slate: int
    seconds_mean: float | None  # None when never called
    seconds_p90: float | None
    seconds_total: float


class AgentStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    agent: str
    calls: int
    changed_slate: int
    seconds_total: float


class VTOReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    turns: int
    calls: int
    actions: dict[str, int]  # recommend / ask / refine
    operations: tuple[OperationStats, ...]  # the paper's 21, by category
    other_operations: dict[str, int]  # traced operations outside the paper's 21 (expected: none)
    agents: tuple[AgentStats, ...]
    critic_turns: int  # turns with at least one Critic note
    critic_notes: dict[str, int]  # by kind of problem
    critic_unreplaced: int  # notes whose item had no replacement (the slate got shorter)


def problem_kind(problem: str) -> str:
    return next((kind for prefix, kind in _PROBLEM_KINDS if problem.startswith(prefix)), "other")


def vto_statistics(turns: Sequence[HarpoTurn]) -> VTOReport:
    """Part 2 (see the module docstring)."""
    n = len(turns)
    calls = [call for turn in turns for call in turn.trace]
    operations = []
    for category, names in PAPER_OPERATIONS.items():
        for name in names:
            seconds = np.asarray([c.seconds for c in calls if c.operation == name], dtype=np.float64)
            calling = sum(1 for turn in turns if any(c.operation == name for c in turn.trace))
            operations.append(OperationStats(
                operation=name, category=str(category), calls=len(seconds),
                calls_per_turn=len(seconds) / n if n else 0.0, turns_calling=calling,
                turn_share=calling / n if n else 0.0,
                changed_slate=sum(1 for c in calls if c.operation == name and c.changed_slate),
                seconds_mean=float(seconds.mean()) if len(seconds) else None,
                seconds_p90=float(np.percentile(seconds, 90)) if len(seconds) else None,
                seconds_total=float(seconds.sum())))
    known = {name for names in PAPER_OPERATIONS.values() for name in names}
    agents = [AgentStats(agent=agent, calls=sum(1 for c in calls if c.agent == agent),
                         changed_slate=sum(1 for c in calls if c.agent == agent and c.changed_slate),
                         seconds_total=float(sum(c.seconds for c in calls if c.agent == agent)))
              for agent in dict.fromkeys(("recommender", "critic", "explainer", *(c.agent for c in calls)))]
    notes = [note for turn in turns for note in turn.critique]
    return VTOReport(
        turns=n, calls=len(calls), actions=dict(Counter(turn.action.action for turn in turns).most_common()),
        operations=tuple(operations),
        other_operations=dict(Counter(c.operation for c in calls if c.operation not in known)),
        agents=tuple(agents), critic_turns=sum(1 for turn in turns if turn.critique),
        critic_notes=dict(Counter(problem_kind(note.problem) for note in notes).most_common()),
        critic_unreplaced=sum(1 for note in notes if note.replacement is None))


# ----------------------------------------------------------------------------------- 3. slate diversity
class DiversityStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    system: str
    slates: int  # non-empty slates
    empty_slates: int
    mean_size: float | None
    distinct_share: dict[str, float | None]  # per main attribute: mean over slates where any item has a value
    distinct_share_mean: float | None  # the mean of the attributes' values
    jaccard_distance: float | None  # mean over slates of the mean pairwise distance of attribute sets
    distinct_items: int
    coverage: float  # distinct items over all slates / catalogue size


def main_attributes(adapter: DomainAdapter) -> tuple[str, ...]:
    """The attributes items are told apart by: categorical and people ones read from the items (not derived:
    no decade, no virtual "person", no plot keywords); the attributes the agent asks about."""
    return tuple(a.name for a in adapter.attributes if a.kind in ("categorical", "person") and not a.derived)


class _ItemValues:
    """Each item's values of the main attributes, read once through the adapter (case-folded)."""

    def __init__(self, adapter: DomainAdapter):
        self.adapter = adapter
        self.attributes = main_attributes(adapter)
        self._cache: dict[str, dict[str, frozenset[str]]] = {}

    def of(self, item_id: str) -> dict[str, frozenset[str]]:
        found = self._cache.get(item_id)
        if found is None:
            found = self._cache[item_id] = {a: frozenset(v.casefold() for v in self.adapter.values(item_id, a))
                                            for a in self.attributes}
        return found

    def pairs(self, item_id: str) -> frozenset[tuple[str, str]]:
        return frozenset((a, v) for a, values in self.of(item_id).items() for v in values)


def slate_diversity(system: str, slates: Sequence[Sequence[str]], values: _ItemValues) -> DiversityStats:
    """Part 3 for one system's slates (see the module docstring)."""
    filled = [tuple(s) for s in slates if s]
    shares: dict[str, list[float]] = {a: [] for a in values.attributes}
    distances: list[float] = []
    for slate in filled:
        for attribute in values.attributes:
            mentions = [v for item in slate for v in values.of(item)[attribute]]
            if mentions:
                shares[attribute].append(len(set(mentions)) / len(mentions))
        pairs = [values.pairs(item) for item in slate]
        slate_distances = [1.0 - len(a & b) / len(a | b) for k, a in enumerate(pairs) for b in pairs[k + 1 :]
                           if a | b]
        if slate_distances:
            distances.append(float(np.mean(slate_distances)))
    per_attribute = {a: float(np.mean(s)) if s else None for a, s in shares.items()}
    known = [v for v in per_attribute.values() if v is not None]
    items = {item for slate in filled for item in slate}
    return DiversityStats(
        system=system, slates=len(filled), empty_slates=len(slates) - len(filled),
        mean_size=float(np.mean([len(s) for s in filled])) if filled else None, distinct_share=per_attribute,
        distinct_share_mean=float(np.mean(known)) if known else None,
        jaccard_distance=float(np.mean(distances)) if distances else None, distinct_items=len(items),
        coverage=len(items) / len(values.adapter.catalog))


# ------------------------------------------------------------------------------------ 4. reply grounding
class GroundingStats(BaseModel):
    model_config = ConfigDict(frozen=True)

    replies: int  # turns with a slate
    reasons: int  # one per slate item
    reasons_grounded: int
    reasons_grounded_share: float | None
    reasons_plain: int  # the draft stated a fact the item lacks: replaced by the plain template
    replies_tied: int  # the first reason ties the item to something the seeker said
    replies_tied_share: float | None
    replies_plain: int  # the first reason fell back to the plain template (its draft was ungrounded)
    replies_plain_share: float | None
    replies_factless: int  # the first reason states no fact and ties nothing (plain or generic)
    replies_factless_share: float | None
    replies_by_source: dict[str, int]  # who wrote the reply: the template, or the LLM (explainer = llm)
    recomputed_differs: int  # grounded drafts unlike the turn's reason (expected 0: the draft is recomputed)


def reply_grounding(ctx: AgentContext, turns: Sequence[HarpoTurn]) -> GroundingStats:
    """Part 4 (see the module docstring). The facts come from ``query_knowledge`` and the check is
    :func:`~convrec.agent.maven.grounded`, the Explainer's own; each reason's draft is ``explain_choice`` called
    again on the turn's state (what it reads of the state, the Recommender's, is unchanged in the turn's)."""
    answered = [turn for turn in turns if turn.slate]
    reasons = grounded_count = plain_count = 0
    tied = plain_first = factless = differs = 0
    for turn in answered:
        for position, (item_id, reason) in enumerate(zip(turn.slate, turn.reasons, strict=True)):
            known = VTOS.call("query_knowledge", ctx, KnowledgeArgs(item_id=item_id), None).facts
            draft = VTOS.call("explain_choice", ctx, ExplainArgs(item_id=item_id, state=turn.state), None)
            reasons += 1
            grounded_count += grounded(reason, known)
            fell_back = not grounded(draft, known)
            plain_count += fell_back
            differs += not fell_back and draft != reason
            if position == 0:
                tied += bool(reason.ties)
                plain_first += fell_back
                factless += not reason.facts and not reason.ties
    n = len(answered)

    def share(count: int, of: int) -> float | None:
        return count / of if of else None

    return GroundingStats(
        replies=n, reasons=reasons, reasons_grounded=grounded_count,
        reasons_grounded_share=share(grounded_count, reasons), reasons_plain=plain_count, replies_tied=tied,
        replies_tied_share=share(tied, n), replies_plain=plain_first, replies_plain_share=share(plain_first, n),
        replies_factless=factless, replies_factless_share=share(factless, n),
        replies_by_source=dict(Counter(turn.explainer_source for turn in answered).most_common()),
        recomputed_differs=differs)


# ----------------------------------------------------------------------------------------- the report
class AgentReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    run: dict[str, Any]
    harpo_accuracy: dict[str, float]
    questionnaire: QuestionnaireReport
    vtos: VTOReport
    diversity: tuple[DiversityStats, ...]
    grounding: GroundingStats


def build_report(dataset: CRSDataset, split: str, harpo: HarpoRecommender, outcomes: Sequence[Outcome],
                 accuracy: dict[str, float], run: dict[str, Any], seed: int = 0) -> AgentReport:
    """The four parts over ``outcomes`` (:func:`run_agent`); part 1 is marked not available, with the reason,
    on a dataset without questionnaire answers."""
    if harpo.agent_ is None:
        raise RuntimeError("agent report: fit harpo before reporting on it")
    ctx = harpo.agent_.ctx
    slate = harpo.config.slate
    try:
        questionnaire = questionnaire_violations(dataset, split, outcomes, slate, seed)
    except DataError as err:
        questionnaire = QuestionnaireReport(available=False, reason=str(err), samples=len(outcomes),
                                            slate_size=slate)
    values = _ItemValues(ctx.adapter)
    turns = [o.turn for o in outcomes]
    diversity = (slate_diversity("harpo", [t.slate for t in turns], values),
                 slate_diversity("retriever", [o.retriever_top[:slate] for o in outcomes], values))
    return AgentReport(run=run, harpo_accuracy=accuracy, questionnaire=questionnaire, vtos=vto_statistics(turns),
                       diversity=diversity, grounding=reply_grounding(ctx, turns))


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _rate(rate: Rate) -> str:
    if rate.rate is None:
        return "n/a (0 samples)"
    return f"{rate.count}/{rate.of} = {rate.rate:.3f} [{rate.low:.3f}, {rate.high:.3f}]"


def markdown(report: AgentReport) -> str:
    run, q, v, g = report.run, report.questionnaire, report.vtos, report.grounding
    subset = run.get("subset")
    drawn = (f"a seeded random subset of {subset['limit']} of {subset['of']} samples (seed {subset['seed']})"
             if subset else "every sample of the split")
    lines = [f"# HARPO behaviour report: {run['dataset']} {run['split']}, retriever {run['retriever']}", "",
             f"{run['samples']} samples ({drawn}), protocol `standard` ({Protocol.STANDARD.description}); harpo "
             f"options {run['options']}. The retriever alone: its raw scores for the same context views.", ""]
    if report.harpo_accuracy:
        lines += ["harpo on these samples: " + ", ".join(f"{k} {val:.4f}" for k, val in report.harpo_accuracy.items()),
                  ""]
    lines += ["## 1. Questionnaire violations", ""]
    if not q.available:
        lines += [f"Not available: {q.reason}.", ""]
    else:
        lines += [f"Samples with a disliked-before item (seeker-mentioned, questionnaire liked = no): {q.eligible} "
                  f"of {q.samples} ({q.eligible_contexts} contexts, {q.eligible_dialogues} dialogues, "
                  f"{q.disliked_items} such items). Rate: share of those samples whose list holds one; "
                  "95% bootstrap intervals over dialogues.", "",
                  "| list | harpo | retriever | harpo - retriever (paired) |", "|---|---|---|---|"]
        for name, found in ((f"slate (top {q.slate_size})", q.slate), (f"top {TOP_N} of the ranking", q.top10)):
            if found is None:
                continue
            d = found.difference
            diff = "n/a" if d.diff is None else f"{d.diff:+.3f} [{d.low:+.3f}, {d.high:+.3f}]"
            lines.append(f"| {name} | {_rate(found.harpo)} | {_rate(found.retriever)} | {diff} |")
        if q.harpo_top10_examples:
            lines += ["", "Samples where harpo's top 10 holds one: " + ", ".join(q.harpo_top10_examples)]
        lines.append("")
    lines += ["## 2. Per VTO", "",
              f"{v.turns} turns, {v.calls} calls; actions: "
              + ", ".join(f"{k} {n}" for k, n in v.actions.items()) + ".", "",
              "| category | operation | calls | per turn | share of turns | changed slate | mean ms | p90 ms |",
              "|---|---|---|---|---|---|---|---|"]
    for op in v.operations:
        mean = "" if op.seconds_mean is None else f"{op.seconds_mean * 1000:.3f}"
        p90 = "" if op.seconds_p90 is None else f"{op.seconds_p90 * 1000:.3f}"
        lines.append(f"| {op.category} | {op.operation} | {op.calls} | {op.calls_per_turn:.2f} | "
                     f"{op.turn_share:.3f} | {op.changed_slate} | {mean} | {p90} |")
    lines += ["", "| agent | calls | changed slate | seconds |", "|---|---|---|---|"]
    lines += [f"| {a.agent} | {a.calls} | {a.changed_slate} | {a.seconds_total:.2f} |" for a in v.agents]
    notes = ", ".join(f"{kind} {n}" for kind, n in v.critic_notes.items()) or "none"
    lines += ["", f"Critic: notes in {v.critic_turns} of {v.turns} turns; by problem: {notes}; "
              f"{v.critic_unreplaced} without a replacement."]
    if v.other_operations:
        lines.append(f"Operations outside the paper's 21: {v.other_operations}.")
    attributes = list(report.diversity[0].distinct_share)
    lines += ["", "## 3. Slate diversity", "",
              "Distinct share: distinct values / value mentions over a slate's items, per main attribute. Jaccard: "
              "mean pairwise distance of the items' (attribute, value) sets. Coverage: distinct slate items / "
              "catalogue.", "",
              "| system | slates | empty | mean size | " + " | ".join(attributes) + " | mean | Jaccard | items | "
              "coverage |", "|---" * (len(attributes) + 8) + "|"]
    for d in report.diversity:
        shares = " | ".join(_num(d.distinct_share[a]) for a in attributes)
        lines.append(f"| {d.system} | {d.slates} | {d.empty_slates} | {_num(d.mean_size, 2)} | {shares} | "
                     f"{_num(d.distinct_share_mean)} | {_num(d.jaccard_distance)} | {d.distinct_items} | "
                     f"{d.coverage:.4f} |")
    sources = ", ".join(f"{k} {n}" for k, n in g.replies_by_source.items()) or "none"
    lines += ["", "## 4. Reply grounding", "",
              f"{g.replies} replies with a slate, {g.reasons} reasons (one per slate item); replies written by: "
              f"{sources}.", "",
              f"- reasons whose facts are all catalogue facts: {g.reasons_grounded}/{g.reasons} "
              f"({_num(g.reasons_grounded_share)})",
              f"- replies whose first reason ties the item to what the seeker said: {g.replies_tied}/{g.replies} "
              f"({_num(g.replies_tied_share)})",
              f"- replies whose first reason fell back to the plain template (draft ungrounded): "
              f"{g.replies_plain}/{g.replies} ({_num(g.replies_plain_share)}); reasons: {g.reasons_plain}",
              f"- replies whose first reason states no fact and ties nothing: {g.replies_factless}/{g.replies} "
              f"({_num(g.replies_factless_share)})"]
    if g.recomputed_differs:
        lines.append(f"- recomputed drafts unlike the turn's reason: {g.recomputed_differs} (expected 0)")
    lines += ["", f"Command: `{run['command']}`"]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------- entry
def harpo_options(args: argparse.Namespace) -> dict[str, Any]:
    """The harpo options of the command line, checked before any data is loaded: ``--set`` pairs, then
    ``--retriever`` and ``--checkpoint`` (default retriever: lrurec-text with a checkpoint, else itemknn)."""
    options = parse_options(args.options)
    if args.retriever is not None:
        options["retriever"] = args.retriever
    if args.checkpoint is not None:
        options["checkpoint"] = str(args.checkpoint)
    options.setdefault("retriever", "lrurec-text" if options.get("checkpoint") else "itemknn")
    try:
        config = HarpoOptions.model_validate(options)
    except ValidationError as err:
        problem = err.errors()[0]
        field = ".".join(str(p) for p in problem["loc"]) or "?"
        raise ConfigError(f"harpo option {field!r}: {problem['msg']} (see `convrec recommenders`)") from None
    retriever = recommender_class(config.retriever)  # an unknown name fails here
    if config.retriever in ("harpo", "rar"):
        raise ConfigError(f"--retriever {config.retriever}: choose a first-stage retriever (itemknn, lrurec-text, "
                          "ease...)")
    if config.checkpoint is not None:
        if "checkpoint" not in retriever.config_class.model_fields:
            raise ConfigError(f"--checkpoint: retriever {config.retriever!r} does not load checkpoints")
        if not Path(config.checkpoint).is_dir():
            raise CheckpointError(f"--checkpoint {config.checkpoint}: no such run folder (a `convrec train` run)")
    return options


def parser() -> argparse.ArgumentParser:
    first, _, rest = (__doc__ or "").partition("\n\n")
    # the docstring's protocol paragraph, its reST markup dropped for the terminal
    protocol = re.sub(r":\w+:`~?([^`]+)`", r"\1", rest.split("**1.")[0].strip()).replace("``", "").replace("**", "")
    parse = argparse.ArgumentParser(
        prog="python -m convrec.evaluate.agent_report", formatter_class=argparse.RawDescriptionHelpFormatter,
        description=first + "\n\nReports (1) questionnaire violations, (2) per-VTO statistics, (3) slate "
        "diversity and (4) reply grounding; see the module's docstring for each definition.\n\n" + protocol)
    parse.add_argument("--dataset", default="redial", help="redial (with questionnaire), inspired, "
                       "opendialkg-books or an imported name (default redial)")
    parse.add_argument("--split", default="test", choices=("valid", "test"), help="the split (default test)")
    parse.add_argument("--checkpoint", type=Path, default=None,
                       help="a `convrec train` run folder for the retriever (lrurec-text by default with it)")
    parse.add_argument("--retriever", default=None,
                       help="harpo's first-stage retriever (default: lrurec-text with --checkpoint, else itemknn)")
    parse.add_argument("--limit", type=int, default=None,
                       help="a seeded random subset of this many samples (the harness's draw); default all")
    parse.add_argument("--seed", type=int, default=0, help="the subset's seed and the bootstrap's (default 0)")
    parse.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE",
                       help="a harpo option (repeatable), e.g. --set slate=3 --set ask_first=false; the slate "
                       "size also sets the retriever's slate compared in parts 1 and 3")
    parse.add_argument("--batch-size", type=int, default=256, help="samples scored per batch (default 256)")
    parse.add_argument("--out", type=Path, required=True, help="folder for agent_report.json and agent_report.md")
    parse.add_argument("--quiet", action="store_true", help="no progress bar")
    parse.add_argument("--data-dir", type=Path, default=None,
                       help="fetched and processed data (default $CONVREC_DATA_DIR or ./data)")
    parse.add_argument("--mirror", type=Path, default=None,
                       help="local folder holding the public datasets (default $CONVREC_DATA_MIRROR)")
    return parse


def run(argv: Sequence[str] | None = None, resources: Resources | None = None) -> AgentReport:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    for value, option in ((args.limit, "--limit"), (args.batch_size, "--batch-size")):
        if value is not None and value < 1:
            raise ConfigError(f"{option} must be at least 1, got {value}")
    if args.seed < 0:
        raise ConfigError(f"--seed must be a non-negative integer, got {args.seed}")
    if args.out.exists() and not args.out.is_dir():
        raise OutputPathError(f"--out {args.out}: is a file, expected a folder")
    options = harpo_options(args)
    data_dir = args.data_dir or default_data_dir()
    owned = resources is None
    resources = resources or Resources.from_env(data_dir=data_dir)
    try:
        dataset = load_dataset(args.dataset, data_dir, args.mirror or default_mirror())
        samples, subset = choose_samples(dataset, args.split, args.limit, args.seed)
        started = time.perf_counter()
        harpo = fit_harpo(dataset, options, args.split, resources)
        fit_seconds = time.perf_counter() - started
        recorded = provenance(harpo.describe())
        started = time.perf_counter()
        outcomes, accuracy = run_agent(harpo, samples, item_counts(dataset.split("train")), args.batch_size,
                                       args.seed, progress=not args.quiet)
        score_seconds = time.perf_counter() - started
    finally:
        if owned:
            resources.close()
    info = {"dataset": dataset.name, "split": args.split, "protocol": str(Protocol.STANDARD),
            "samples": len(samples), "subset": subset, "seed": args.seed, "retriever": options["retriever"],
            "checkpoint": options.get("checkpoint"), "options": options, "fit_seconds": round(fit_seconds, 2),
            "score_seconds": round(score_seconds, 2), "data_hash": dataset.fingerprint,
            "config": harpo.describe(), "provenance": recorded,
            "command": "python -m convrec.evaluate.agent_report " + " ".join(argv)}
    report = build_report(dataset, args.split, harpo, outcomes, accuracy, info, args.seed)
    write_report_files(args.out / "agent_report.json", without_nan(report.model_dump(mode="json")),
                       args.out / "agent_report.md", markdown(report), f"--out {args.out}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    return report_main("agent_report", run, markdown, argv)


if __name__ == "__main__":
    sys.exit(main())
