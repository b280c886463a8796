"""HARPO's 21 Virtual Tool Operations, each a typed function over one :class:`AgentContext` (see
:mod:`convrec.agent.vto` for the registry and the trace).

Every operation does real work on the catalogue through the domain adapter and never names a domain; the ones
that could use an LLM (``analyze_sentiment``) take it from the context and fall back to rules without one. The
agents of :mod:`convrec.agent.maven` call them in order; their arguments and results are what the trace shows.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from convrec.agent.config import HarpoOptions
from convrec.agent.constraints import Constraint, ConstraintState, extract_constraints
from convrec.agent.domain import DomainAdapter, Fact
from convrec.agent.normalise import value_key
from convrec.agent.quality.dimensions import ItemQuality
from convrec.agent.sentiment import SentimentAnalyzer, SentimentResult
from convrec.agent.state import AgentState
from convrec.agent.vto import Category, VTORegistry
from convrec.agent.why import asked_why
from convrec.catalog.items import Catalog
from convrec.data.model import ContextView, Turn, render_turns
from convrec.llm.types import LLM
from convrec.rerank.prompts import PromptOptions
from convrec.rerank.reply import ReplyOptions, ReplyWriter
from convrec.retrieval.base import Recommender

if TYPE_CHECKING:  # charm imports the agent (its satisfaction features read the dialogue as the agent does)
    from convrec.agent.quality.charm import QualityScorer

VTOS = VTORegistry()


@dataclass(frozen=True)
class AgentContext:
    """What the operations work with: the catalogue's adapter, the retriever, the sentiment reader, options.

    ``reply_writer`` polishes the Explainer's replies when ``options.explainer`` is "llm" (None: no LLM, and
    ``llm_problem`` says why; the template stands)."""

    adapter: DomainAdapter
    retriever: Recommender
    sentiment: SentimentAnalyzer
    options: HarpoOptions
    reply_writer: ReplyWriter | None = None
    llm_problem: str | None = None
    quality: QualityScorer | None = None  # CHARM's weighted quality (None: relevance alone)

    @classmethod
    def for_catalog(cls, catalog: Catalog, retriever: Recommender, options: HarpoOptions,
                    dataset_name: str | None = None, llm: LLM | None = None,
                    llm_problem: str | None = None, quality: QualityScorer | None = None) -> AgentContext:
        """The context over ``catalog``: its shared adapter and a rule-path sentiment reader in its words, and
        with ``options.explainer`` "llm" the reply writer that polishes the Explainer's replies with ``llm``
        (the same :class:`ReplyWriter` as the chat's, in the catalogue's words). ``llm_problem``: why there is
        no ``llm`` (a model that failed to load), recorded on every turn that wanted it."""
        adapter = DomainAdapter.of(catalog, dataset_name)
        writer = None
        if options.explainer == "llm":
            if llm is not None:
                prompt = PromptOptions(domain=adapter.domain)
                writer = ReplyWriter(catalog, llm, ReplyOptions(polish=True, prompt=prompt))
            else:
                llm_problem = llm_problem or "no LLM client was given to the agent"
        return cls(adapter, retriever, SentimentAnalyzer(catalog, adapter.vocabulary), options, writer,
                   llm_problem if writer is None else None, quality)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)


# ---------------------------------------------------------------------------------------------- extraction
class MessageArgs(_Model):
    message: str = Field(max_length=100_000)
    turn: int = 0

    def summary(self) -> str:
        return repr(self.message[:80])


class Entities(_Model):
    item_ids: tuple[str, ...] = ()
    people: tuple[str, ...] = ()
    values: tuple[Fact, ...] = ()  # attribute values named (genres, keywords...)

    def summary(self) -> str:
        return f"{len(self.item_ids)} titles, people {list(self.people)}, values {[str(v) for v in self.values]}"


@VTOS.operation(Category.EXTRACTION, MessageArgs, Entities)
def extract_entities(ctx: AgentContext, args: MessageArgs) -> Entities:
    """Titles, people and attribute values a message names, linked to the catalogue."""
    titles = ctx.adapter.find_titles(args.message)
    people = ctx.adapter.find_people(args.message, [(t.start, t.end) for t in titles])
    found = extract_constraints(args.message, ctx.adapter, args.turn, titles)
    kinds = {c.attribute: ctx.adapter.attribute(c.attribute).kind for c in found}
    values = tuple(Fact(attribute=c.attribute, value=c.value, kind=kinds[c.attribute])
                   for c in found if c.value is not None and kinds[c.attribute] != "person")  # people: above
    return Entities(item_ids=tuple(dict.fromkeys(t.item_id for t in titles)),
                    people=tuple(dict.fromkeys(p.name for p in people)), values=values)


class TurnsArgs(_Model):
    turns: tuple[Turn, ...]

    def summary(self) -> str:
        return f"{len(self.turns)} turns"


class Sentiments(_Model):
    result: SentimentResult

    def summary(self) -> str:
        r = self.result
        return (f"liked {len(r.with_label('liked'))}, disliked {len(r.with_label('disliked'))}, seen "
                f"{len(r.with_seen('yes'))} of {len(r.items)} items")


@VTOS.operation(Category.EXTRACTION, TurnsArgs, Sentiments, uses_llm=True)
def analyze_sentiment(ctx: AgentContext, args: TurnsArgs) -> Sentiments:
    """Per item of the dialogue: liked, disliked or neutral, and seen or not (rules, or the LLM when given)."""
    return Sentiments(result=ctx.sentiment.analyze(args.turns))


class ContextText(_Model):
    text: str
    latest_request: str
    items: tuple[str, ...]

    def summary(self) -> str:
        return f"{len(self.text)} chars, {len(self.items)} items; latest: {self.latest_request[:60]!r}"


@VTOS.operation(Category.EXTRACTION, TurnsArgs, ContextText)
def extract_context(ctx: AgentContext, args: TurnsArgs) -> ContextText:
    """The dialogue text the retriever reads (its window), the seeker's latest request and the items so far."""
    latest = next((t.text for t in reversed(args.turns) if t.role == "seeker"), "")
    return ContextText(text=render_turns(args.turns, ctx.options.context_chars), latest_request=latest,
                       items=tuple(i for t in args.turns for i in t.items))


# ------------------------------------------------------------------------------------------ user modelling
class Constraints(_Model):
    constraints: tuple[Constraint, ...]

    def summary(self) -> str:
        return "; ".join(c.describe() for c in self.constraints) or "none"


@VTOS.operation(Category.USER_MODELLING, MessageArgs, Constraints)
def identify_constraints(ctx: AgentContext, args: MessageArgs) -> Constraints:
    """The constraints a seeker message states: eras, genres or people wanted or avoided."""
    return Constraints(constraints=tuple(extract_constraints(args.message, ctx.adapter, args.turn)))


class StateArgs(_Model):
    state: AgentState

    def summary(self) -> str:
        return self.state.summary()


class Preferences(_Model):
    liked: tuple[str, ...]
    wanted: tuple[Constraint, ...]
    avoided: tuple[Constraint, ...]
    people: tuple[str, ...]

    def summary(self) -> str:
        return (f"{len(self.liked)} liked items, wants {[c.describe() for c in self.wanted]}, avoids "
                f"{[c.describe() for c in self.avoided]}")


@VTOS.operation(Category.USER_MODELLING, StateArgs, Preferences)
def retrieve_preferences(ctx: AgentContext, args: StateArgs) -> Preferences:
    """What the seeker wants, as the state holds it: liked items (most recent last), wanted and avoided values."""
    state = args.state
    liked = tuple(i for i in state.mentioned if i in set(state.liked))
    return Preferences(liked=liked, wanted=tuple(state.constraints.wants), avoided=tuple(state.constraints.avoids),
                       people=state.people)


Action = Literal["ask", "recommend", "refine", "explain"]


class UserModel(_Model):
    action: Action
    ask_about: str | None = None
    about: tuple[str, ...] = ()  # explain: the items of the last slate the seeker asked about
    reason: str

    def summary(self) -> str:
        return f"{self.action}" + (f" ({self.ask_about})" if self.ask_about else "") + f": {self.reason}"


class ModelStateArgs(_Model):
    state: AgentState
    message: str = ""
    rejected_now: tuple[str, ...] = ()
    last_proposed: tuple[str, ...] = ()  # the agent's previous slate, which a "why?" asks about

    def summary(self) -> str:
        return self.state.summary()


@VTOS.operation(Category.USER_MODELLING, ModelStateArgs, UserModel)
def model_user_state(ctx: AgentContext, args: ModelStateArgs) -> UserModel:
    """Where the seeker is: just turned down items (refine), asking why items of the last slate were proposed
    (explain), nothing known yet (ask about an attribute), or enough to recommend."""
    state = args.state
    if args.rejected_now:
        return UserModel(action="refine", reason=f"turned down {len(args.rejected_now)} recommended items")
    about = asked_why(args.message, args.last_proposed, ctx.adapter.catalog)
    if about:
        titles = ", ".join(ctx.adapter.catalog.get(i).display_title for i in about)
        return UserModel(action="explain", about=about, reason=f"asked why: {titles}"[:200])
    if not state.has_signal and ctx.options.ask_first:
        askable = [a.name for a in ctx.adapter.attributes if a.kind in ("categorical", "person")
                   and a.name not in state.asked and not a.derived]
        if askable:
            return UserModel(action="ask", ask_about=askable[0], reason="no liked item, person or constraint yet")
    return UserModel(action="recommend", reason="preferences known" if state.has_signal else "asked already")


# ----------------------------------------------------------------------------------------------- retrieval
class SearchArgs(_Model):
    view: ContextView
    n: int = Field(ge=1)
    exclude: tuple[str, ...] = ()
    prefer: tuple[str, ...] = ()

    def summary(self) -> str:
        return f"top {self.n} for {len(self.view.context)} turns, {len(self.exclude)} excluded"


class Candidates(_Model):
    item_ids: tuple[str, ...]
    scores: tuple[float, ...]

    def summary(self) -> str:
        return f"{len(self.item_ids)} candidates"


@VTOS.operation(Category.RETRIEVAL, SearchArgs, Candidates)
def search_candidates(ctx: AgentContext, args: SearchArgs) -> Candidates:
    """The retriever's top-n for the dialogue so far (any registered recommender; lrurec-text by default)."""
    found = ctx.retriever.retrieve([args.view], args.n, [args.exclude], prefer=[args.prefer])[0]
    return Candidates(item_ids=tuple(found.item_ids), scores=tuple(float(s) for s in found.scores))


class FilterArgs(_Model):
    candidates: Candidates
    constraints: tuple[Constraint, ...] = ()
    blocked: tuple[str, ...] = ()

    def summary(self) -> str:
        return f"{len(self.candidates.item_ids)} candidates, {len(self.constraints)} constraints, " \
               f"{len(self.blocked)} blocked items"


class Filtered(_Model):
    kept: Candidates
    removed: tuple[tuple[str, str], ...] = ()  # (item id, why)

    def summary(self) -> str:
        return f"kept {len(self.kept.item_ids)}, removed {len(self.removed)}"


@VTOS.operation(Category.RETRIEVAL, FilterArgs, Filtered)
def filter_results(ctx: AgentContext, args: FilterArgs) -> Filtered:
    """Drop candidates the seeker ruled out: disliked, seen or turned down, or against a stated constraint
    (an item whose metadata does not say is dropped too: a stated constraint must hold)."""
    blocked = set(args.blocked)
    ids = [i for i in args.candidates.item_ids if i not in blocked]
    removed = [(i, "ruled out by the seeker") for i in args.candidates.item_ids if i in blocked]
    passing = set(ctx.adapter.filter(ids, args.constraints, unknown="drop")) if args.constraints else set(ids)
    for item_id in ids:
        if item_id not in passing:
            broken = [c.describe() for c in args.constraints if ctx.adapter.match(item_id, c) is not True]
            removed.append((item_id, "against " + "; ".join(broken)))
    keep = [k for k, i in enumerate(args.candidates.item_ids) if i in passing and i not in blocked]
    return Filtered(kept=Candidates(item_ids=tuple(args.candidates.item_ids[k] for k in keep),
                                    scores=tuple(args.candidates.scores[k] for k in keep)),
                    removed=tuple(removed))


class MatchArgs(_Model):
    item_ids: tuple[str, ...]
    wanted: tuple[Constraint, ...]

    def summary(self) -> str:
        return f"{len(self.item_ids)} items against {len(self.wanted)} wanted values"


class Matches(_Model):
    counts: tuple[int, ...]  # per item, how many wanted values it has

    def summary(self) -> str:
        return f"{sum(1 for c in self.counts if c)} of {len(self.counts)} items match"


@VTOS.operation(Category.RETRIEVAL, MatchArgs, Matches)
def match_attributes(ctx: AgentContext, args: MatchArgs) -> Matches:
    """How many of the wanted attribute values each item has (a soft score beside the hard filter)."""
    counts = [sum(1 for c in args.wanted if ctx.adapter.match(item_id, c) is True) for item_id in args.item_ids]
    return Matches(counts=tuple(counts))


# ------------------------------------------------------------------------------------------------- ranking
class RankArgs(_Model):
    candidates: Candidates
    matches: Matches | None = None
    support: tuple[float, ...] | None = None  # per candidate, graph support from liked items
    # what CHARM's quality models read (with quality weights beyond relevance): the dialogue, the agent's
    # state, and the items the seeker knows already (no slate holds them: they go last, out of diversity's way)
    view: ContextView | None = None
    state: AgentState | None = None
    known: tuple[str, ...] = ()

    def summary(self) -> str:
        return f"{len(self.candidates.item_ids)} candidates"


class Ranked(_Model):
    item_ids: tuple[str, ...]
    scores: tuple[float, ...]
    quality: tuple[ItemQuality, ...] = ()  # per item, in order, when CHARM's weights ranked them

    def summary(self) -> str:
        return f"{len(self.item_ids)} ranked"


@VTOS.operation(Category.RANKING, RankArgs, Ranked)
def rank_options(ctx: AgentContext, args: RankArgs) -> Ranked:
    """Order the candidates: the retriever's rank score plus the attribute and graph weights of the options
    (relevance); with CHARM's quality weights, the greedy order of their weighted quality
    (:mod:`convrec.agent.quality.charm`)."""
    n = len(args.candidates.item_ids)
    if not n:
        return Ranked(item_ids=(), scores=())
    # rank scores in (0, 1], so that the weights mean the same whatever the retriever's scale
    score = 1.0 - np.arange(n, dtype=np.float64) / n
    if args.matches is not None:
        score = score + ctx.options.attribute_weight * np.asarray(args.matches.counts, dtype=np.float64)
    if args.support is not None:
        score = score + ctx.options.graph_weight * np.asarray(args.support, dtype=np.float64)
    order = np.argsort(-score, kind="stable")
    if ctx.quality is None or args.view is None:
        return Ranked(item_ids=tuple(args.candidates.item_ids[k] for k in order),
                      scores=tuple(float(score[k]) for k in order))
    known = set(args.known)
    fresh = [int(k) for k in order if args.candidates.item_ids[k] not in known]
    last = [int(k) for k in order if args.candidates.item_ids[k] in known]
    weighed = ctx.quality.order(args.view, args.state, [args.candidates.item_ids[k] for k in fresh], score[fresh])
    chosen = [fresh[k] for k in weighed.order]
    return Ranked(item_ids=tuple(args.candidates.item_ids[k] for k in (*chosen, *last)),
                  scores=(*(q.score for q in weighed.quality), *(float("-inf"),) * len(last)),
                  quality=tuple(weighed.quality))


class CompareArgs(_Model):
    first: str
    second: str
    liked: tuple[str, ...] = ()
    asked: tuple[str, ...] = ()  # people the seeker asked for: sharing them is what they want, not sameness

    def summary(self) -> str:
        return f"{self.first} vs {self.second}"


class Comparison(_Model):
    shared: tuple[Fact, ...]
    first_support: int
    second_support: int
    similar: bool

    def summary(self) -> str:
        return f"{len(self.shared)} shared values, support {self.first_support} vs {self.second_support}"


@VTOS.operation(Category.RANKING, CompareArgs, Comparison)
def compare_options(ctx: AgentContext, args: CompareArgs) -> Comparison:
    """What two items share, and how much each is linked to the liked items (the Critic's diversity check: one
    title twice, or two people in common besides those the seeker asked for, a sequel by the same director with
    the same star, is too alike for one slate)."""
    shared = tuple(ctx.adapter.paths(args.first, args.second))
    support = [sum(len(ctx.adapter.paths(i, liked)) for liked in args.liked) for i in (args.first, args.second)]
    asked = {value_key(name) for name in args.asked}
    people = sum(1 for f in shared if f.kind == "person" and value_key(str(f.value)) not in asked)
    similar = _same_title(ctx, args.first, args.second) or people >= 2
    return Comparison(shared=shared, first_support=support[0], second_support=support[1], similar=similar)


def _same_title(ctx: AgentContext, a: str, b: str) -> bool:
    first, second = ctx.adapter.catalog.get(a), ctx.adapter.catalog.get(b)
    return first.title.strip().lower() == second.title.strip().lower()


class SelectArgs(_Model):
    ranked: Ranked
    k: int = Field(ge=1)
    skip: tuple[str, ...] = ()  # items known to the seeker (named, or proposed before): no slate repeats them

    def summary(self) -> str:
        return f"best {self.k} of {len(self.ranked.item_ids)}, {len(self.skip)} known skipped"


class Slate(_Model):
    item_ids: tuple[str, ...]

    def summary(self) -> str:
        return ", ".join(self.item_ids[:5])


@VTOS.operation(Category.RANKING, SelectArgs, Slate)
def select_best(ctx: AgentContext, args: SelectArgs) -> Slate:
    """The top k, one entry per title (a catalogue may list a title twice: ReDial does), none of them known to
    the seeker already."""
    chosen: list[str] = []
    titles: set[str] = set()
    skip = set(args.skip)
    for item_id in args.ranked.item_ids:
        if item_id in skip:
            continue
        title = ctx.adapter.catalog.get(item_id).title.strip().lower()
        if title in titles:
            continue
        titles.add(title)
        chosen.append(item_id)
        if len(chosen) == args.k:
            break
    return Slate(item_ids=tuple(chosen))


# ----------------------------------------------------------------------------------------------- reasoning
class KnowledgeArgs(_Model):
    item_id: str
    attributes: tuple[str, ...] | None = None

    def summary(self) -> str:
        return self.item_id


class Knowledge(_Model):
    facts: tuple[Fact, ...]

    def summary(self) -> str:
        return "; ".join(str(f) for f in self.facts[:4])


@VTOS.operation(Category.REASONING, KnowledgeArgs, Knowledge)
def query_knowledge(ctx: AgentContext, args: KnowledgeArgs) -> Knowledge:
    """The catalogue's facts about an item (the only facts a reply may state)."""
    return Knowledge(facts=tuple(ctx.adapter.facts(args.item_id, args.attributes)))


class GraphArgs(_Model):
    candidates: tuple[str, ...]
    liked: tuple[str, ...]

    def summary(self) -> str:
        return f"{len(self.candidates)} candidates, {len(self.liked)} liked"


class GraphSupport(_Model):
    support: tuple[float, ...]  # per candidate
    paths: tuple[tuple[str, str, tuple[Fact, ...]], ...]  # (candidate, liked item, shared values)

    def summary(self) -> str:
        return f"{sum(1 for s in self.support if s)} of {len(self.support)} candidates linked to liked items"


@VTOS.operation(Category.REASONING, GraphArgs, GraphSupport)
def reason_over_graph(ctx: AgentContext, args: GraphArgs) -> GraphSupport:
    """item -- value -- item paths from each candidate to the liked items (shared people weigh most)."""
    support, paths = [], []
    for candidate in args.candidates:
        total = 0.0
        for liked in args.liked[-ctx.options.liked_window:]:
            if liked == candidate:
                continue
            shared = tuple(ctx.adapter.paths(candidate, liked))
            if shared:
                paths.append((candidate, liked, shared))
                total += sum(1.0 if f.kind == "person" else 0.25 for f in shared)
        support.append(min(total, 3.0) / 3.0)
    return GraphSupport(support=tuple(support), paths=tuple(paths))


class Implicit(_Model):
    wanted: tuple[Constraint, ...]

    def summary(self) -> str:
        return "; ".join(c.describe() for c in self.wanted) or "nothing shared"


@VTOS.operation(Category.REASONING, GraphArgs, Implicit)
def infer_implicit(ctx: AgentContext, args: GraphArgs) -> Implicit:
    """Preferences nobody stated: a value most liked items share (a director of two of them, a genre of all)."""
    liked = args.liked[-ctx.options.liked_window:]
    if len(liked) < 2:
        return Implicit(wanted=())
    counts: Counter[tuple[str, str]] = Counter()
    people: set[tuple[str, str]] = set()
    for item_id in liked:
        facts = [f for f in ctx.adapter.facts(item_id) if f.kind != "numeric"]
        people.update((f.attribute, str(f.value)) for f in facts if f.kind == "person")
        for fact in dict.fromkeys((f.attribute, str(f.value)) for f in facts):  # in schema order: ties stay put
            counts[fact] += 1
    need = max(2, (len(liked) + 1) // 2 + (1 if len(liked) > 2 else 0))
    # the most shared first; among equals a person (more telling than a genre), then in the order read
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0] not in people))
    wanted = tuple(Constraint(attribute=a, value=v, text="(implicit)") for (a, v), n in ranked[:3] if n >= need)
    return Implicit(wanted=wanted)


# --------------------------------------------------------------------------------------------- interaction
class ExplainArgs(_Model):
    item_id: str
    state: AgentState

    def summary(self) -> str:
        return self.item_id


class Explanation(_Model):
    text: str
    facts: tuple[Fact, ...]  # the facts the text states, every one from query_knowledge
    ties: tuple[str, ...]  # what the seeker said that the reason ties to

    def summary(self) -> str:
        return self.text


@VTOS.operation(Category.INTERACTION, ExplainArgs, Explanation)
def explain_choice(ctx: AgentContext, args: ExplainArgs) -> Explanation:
    """A reason that ties the item to something the seeker said: a person or value they asked for, or what it
    shares with an item they liked; every fact from the catalogue."""
    vocabulary = ctx.adapter.vocabulary
    state = args.state
    for constraint in state.constraints.wants:
        if constraint.attribute in ("year", "decade") or ctx.adapter.match(args.item_id, constraint) is not True:
            continue
        fact = _fact_for(ctx, args.item_id, constraint)
        if fact is not None:
            return Explanation(text=_says(ctx, fact, f"you asked for {constraint.text or constraint.value}"),
                               facts=(fact,), ties=(constraint.text or str(constraint.value),))
    for person in state.people:
        facts = [f for f in ctx.adapter.facts(args.item_id) if f.kind == "person" and str(f.value) == person]
        if facts:
            return Explanation(text=_says(ctx, facts[0], f"you asked for {person}"), facts=(facts[0],),
                               ties=(person,))
    for liked in reversed([i for i in state.mentioned if i in set(state.liked)]):
        shared = [f for f in ctx.adapter.paths(args.item_id, liked) if f.kind != "numeric"]
        if shared:
            title = ctx.adapter.catalog.get(liked).display_title
            best = sorted(shared, key=lambda f: f.kind != "person")[:2]
            what = _phrases(ctx, best)
            return Explanation(text=f"Like {title}, which you enjoyed, it {what}.", facts=tuple(best), ties=(title,))
    year = next((f for f in ctx.adapter.facts(args.item_id, ["year"])), None)
    within = [c for c in state.constraints.wants if c.attribute == "year"]
    if year is not None and within:
        return Explanation(text=f"It is from {year.value}, as you asked ({within[0].text or within[0].describe()}).",
                           facts=(year,), ties=(within[0].text,))
    return Explanation(text=f"It is {a_noun(vocabulary.noun)} many seekers with similar taste were recommended.",
                       facts=(), ties=())


def a_noun(noun: str) -> str:
    """"a movie", "an item"."""
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


def _fact_for(ctx: AgentContext, item_id: str, constraint: Constraint) -> Fact | None:
    facts = ctx.adapter.facts(item_id, [constraint.attribute]) if constraint.attribute != "person" else [
        f for f in ctx.adapter.facts(item_id) if f.kind == "person"]
    wanted = str(constraint.value).lower()
    return next((f for f in facts if str(f.value).lower() == wanted), facts[0] if facts else None)


def _phrase(ctx: AgentContext, fact: Fact) -> str:
    creators = {c.field: c.made_by for c in ctx.adapter.vocabulary.creators}
    if fact.attribute in creators:
        return f"is {creators[fact.attribute]} {fact.value}"
    if fact.attribute in ("star", "cast", "actor"):
        return f"stars {fact.value}"
    if fact.kind == "person":
        return f"has {fact.value} ({fact.attribute})"
    return f"shares the {fact.attribute} {fact.value}"


def _phrases(ctx: AgentContext, facts: Sequence[Fact]) -> str:
    """Facts joined as one phrase: two values of one attribute said once ("shares the genres romance and
    comedy", "shares the writers Chad Hayes and Carey W. Hayes"), others one after the other."""
    if len(facts) == 2 and facts[0].attribute == facts[1].attribute:
        attribute = facts[0].attribute
        creators = {c.field: c.made_by for c in ctx.adapter.vocabulary.creators}
        both = f"{facts[0].value} and {facts[1].value}"
        if attribute in creators:
            return f"is {creators[attribute]} {both}"
        if attribute in ("star", "cast", "actor"):
            return f"stars {both}"
        return f"shares the {attribute}s {both}"
    return " and ".join(_phrase(ctx, f) for f in facts)


def _says(ctx: AgentContext, fact: Fact, because: str) -> str:
    return f"It {_phrase(ctx, fact)}, and {because}."


class RejectionArgs(_Model):
    message: str
    turn: int = 0
    proposed: tuple[str, ...]
    sentiments: Sentiments

    def summary(self) -> str:
        return f"{len(self.proposed)} proposed items"


class Rejection(_Model):
    rejected: tuple[str, ...]
    reasons: tuple[Constraint, ...]  # constraints stated in the rejection ("too old", "no horror")

    def summary(self) -> str:
        return f"rejected {len(self.rejected)}, reasons {[c.describe() for c in self.reasons]}"


@VTOS.operation(Category.INTERACTION, RejectionArgs, Rejection)
def handle_rejection(ctx: AgentContext, args: RejectionArgs) -> Rejection:
    """Which of the last proposed items the seeker turned down, and the reason as a constraint if they gave one."""
    proposed = set(args.proposed)
    rejected = tuple(s.item_id for s in args.sentiments.result.items
                     if s.item_id in proposed and (s.label == "disliked" or s.seen == "yes"))
    reasons = tuple(extract_constraints(args.message, ctx.adapter, args.turn)) if rejected else ()
    return Rejection(rejected=rejected, reasons=reasons)


class RefineArgs(_Model):
    state: AgentState
    rejection: Rejection

    def summary(self) -> str:
        return self.rejection.summary()


class Refined(_Model):
    exclude: tuple[str, ...]
    constraints: tuple[Constraint, ...]

    def summary(self) -> str:
        return f"exclude {len(self.exclude)}, constraints {[c.describe() for c in self.constraints]}"


@VTOS.operation(Category.INTERACTION, RefineArgs, Refined)
def refine_query(ctx: AgentContext, args: RefineArgs) -> Refined:
    """The next search after a rejection: the turned-down items excluded, the reason's constraints added."""
    constraints = args.state.constraints.update(args.rejection.reasons)
    return Refined(exclude=tuple(sorted(args.state.blocked | set(args.rejection.rejected))),
                   constraints=constraints.constraints)


# -------------------------------------------------------------------------------------------------- memory
class History(_Model):
    seeker_turns: int
    recommended: tuple[str, ...]
    mentioned: tuple[str, ...]
    seeker_items: tuple[str, ...]

    def summary(self) -> str:
        return f"{self.seeker_turns} seeker turns, {len(self.recommended)} recommended, {len(self.mentioned)} items"


@VTOS.operation(Category.MEMORY, TurnsArgs, History)
def track_history(ctx: AgentContext, args: TurnsArgs) -> History:
    """Who said what so far: the seeker's turns, the items each side named."""
    recommended = tuple(dict.fromkeys(i for t in args.turns if t.role != "seeker" for i in t.items))
    seeker_items = tuple(dict.fromkeys(i for t in args.turns if t.role == "seeker" for i in t.items))
    mentioned = tuple(dict.fromkeys(i for t in args.turns for i in t.items))
    return History(seeker_turns=sum(1 for t in args.turns if t.role == "seeker"), recommended=recommended,
                   mentioned=mentioned, seeker_items=seeker_items)


class BeliefArgs(_Model):
    state: AgentState
    history: History
    sentiments: Sentiments
    constraints: tuple[Constraint, ...] = ()
    people: tuple[str, ...] = ()
    marks: tuple[tuple[str, str], ...] = ()  # (item id, like / dislike / seen) the seeker set explicitly

    def summary(self) -> str:
        return f"{len(self.constraints)} new constraints, {len(self.marks)} marks"


@VTOS.operation(Category.MEMORY, BeliefArgs, AgentState)
def update_beliefs(ctx: AgentContext, args: BeliefArgs) -> AgentState:
    """The new state: what was read this turn merged into the old (explicit marks win over what rules read)."""
    result = args.sentiments.result
    liked = dict.fromkeys(result.with_label("liked"))
    disliked = dict.fromkeys(result.with_label("disliked"))
    seen = dict.fromkeys(result.with_seen("yes"))
    for item_id, kind in args.marks:
        for group in (liked, disliked, seen):
            group.pop(item_id, None)
        {"like": liked, "dislike": disliked, "seen": seen}[kind][item_id] = None
    seeker_items = set(args.history.seeker_items)
    # an item the seeker named without a word about it counts as liked: "something like Alien"; not one they
    # only say they have seen ("no horror, and I've seen Insidious"): a reason must not say they enjoyed it
    for item_id in args.history.seeker_items:
        read = result.get(item_id)
        if item_id not in disliked and item_id not in liked and read is not None and read.label == "neutral" \
                and item_id not in seen:
            liked[item_id] = None
    recommended = set(args.history.recommended)
    rejected = tuple(i for i in disliked if i in recommended and i not in seeker_items) + tuple(
        i for i in args.state.rejected if i not in disliked)
    state = args.state
    constraints = state.constraints.update(args.constraints)
    # "people the seeker asked for": not those they turned down ("no Nicolas Cage"), which the message names too
    avoided = {value_key(c.value) for c in constraints.avoids if c.value is not None}
    people = tuple(p for p in dict.fromkeys((*state.people, *args.people)) if value_key(p) not in avoided)
    return state.model_copy(update={
        "constraints": constraints,
        "liked": tuple(liked), "disliked": tuple(disliked), "seen": tuple(seen),
        "rejected": tuple(dict.fromkeys(rejected)), "mentioned": args.history.mentioned,
        "people": people,
        "recommended": tuple(dict.fromkeys((*state.recommended, *args.history.recommended))),
        "named": tuple(dict.fromkeys((*state.named, *args.history.seeker_items))),
        "seeker_turns": args.history.seeker_turns,
    })


class RecallArgs(_Model):
    turns: tuple[Turn, ...]
    item_id: str

    def summary(self) -> str:
        return self.item_id


class Recollection(_Model):
    said: tuple[str, ...]  # the seeker's sentences that name the item

    def summary(self) -> str:
        return f"{len(self.said)} mentions"


@VTOS.operation(Category.MEMORY, RecallArgs, Recollection)
def recall_context(ctx: AgentContext, args: RecallArgs) -> Recollection:
    """What the seeker said earlier about an item, in their words: the turns that name it, linked or not (a
    title typed in lower case, "the conjuring is done", is not linked to the catalogue but is still said)."""
    title = title_words(ctx.adapter.catalog.get(args.item_id).title)
    said = tuple(t.text for t in args.turns if t.role == "seeker" and (
        args.item_id in t.items or (title is not None and f" {title} " in f" {_words(t.text)} ")))
    return Recollection(said=said)


TITLE_WORD_MIN_LETTERS = 7


def title_words(title: str) -> str | None:
    """A title as the words a message would hold (lower case, no punctuation, its article kept: "the notebook",
    not "a notebook"), or None when it is too short to tell from ordinary words when typed in lower case: one
    word of fewer than :data:`TITLE_WORD_MIN_LETTERS` letters ("Up", "Alien"), or no words at all."""
    words = _words(title)
    if not words or (" " not in words and len(words) < TITLE_WORD_MIN_LETTERS):
        return None
    return words


def _words(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text)
    folded = "".join(ch for ch in folded if not unicodedata.combining(ch)).lower().replace("&", " and ")
    return " ".join(re.sub(r"[^\w\s]|_", " ", folded).split())


def seeker_turn_indices(turns: Sequence[Turn]) -> list[int]:
    return [i for i, t in enumerate(turns) if t.role == "seeker"]


def constraint_state(ctx: AgentContext, turns: Sequence[Turn]) -> ConstraintState:
    """The constraints of every seeker turn, applied in order (what a replayed dialogue states)."""
    state = ConstraintState()
    for index in seeker_turn_indices(turns):
        state = state.update(extract_constraints(turns[index].text, ctx.adapter, index))
    return state
