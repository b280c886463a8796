"""MAVEN's three roles over the VTOs: the :class:`RecommenderAgent` proposes, the :class:`CriticAgent` checks the
proposal against the state and edits it (up to ``critique_rounds`` rounds), the :class:`ExplainerAgent` writes
the reply, every fact in it from the catalogue (checked).

With ``explainer = "llm"`` the Explainer's template is rewritten by an LLM through the chat's
:class:`~convrec.rerank.reply.ReplyWriter` (its polish prompt and its check: the same titles exactly, no other,
no echo of the prompt) and then read against the items' catalogue facts (:meth:`ExplainerAgent.ungrounded`: no
genre or person an item lacks); a rewrite either check refuses, a failed call or no LLM at all leaves the
template, and :class:`ExplainerReply` says which text stands and why.

Every step is a VTO call recorded in the turn's :class:`~convrec.agent.vto.Trace` with the agent that made
it, and every edit of the Critic is a :class:`CritiqueNote` (which item, what was wrong, what replaced it), so
``/trace`` can show why the slate is what it is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from convrec.agent.constraints import Constraint, ConstraintState, surname
from convrec.agent.domain import DomainAdapter
from convrec.agent.gazetteer import person_key
from convrec.agent.normalise import tokenize, value_key
from convrec.agent.operations import (
    VTOS,
    AgentContext,
    BeliefArgs,
    Candidates,
    CompareArgs,
    Entities,
    ExplainArgs,
    Explanation,
    FilterArgs,
    GraphArgs,
    KnowledgeArgs,
    MatchArgs,
    MessageArgs,
    ModelStateArgs,
    RankArgs,
    Ranked,
    RecallArgs,
    RefineArgs,
    RejectionArgs,
    SearchArgs,
    SelectArgs,
    StateArgs,
    TurnsArgs,
    UserModel,
    a_noun,
)
from convrec.agent.state import AgentState
from convrec.agent.vto import Trace
from convrec.data.model import ContextView, Turn
from convrec.llm.errors import LLMUnavailableError


class CritiqueNote(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    round: int
    item_id: str
    problem: str
    replacement: str | None


@dataclass
class Proposal:
    """The Recommender's work for one turn: the state it read, the action, the ranked candidates, the slate."""

    state: AgentState
    action: UserModel
    ranked: Ranked
    slate: tuple[str, ...]
    removed: tuple[tuple[str, str], ...] = ()
    turns: tuple[Turn, ...] = ()  # the dialogue it answers (the Critic recalls what the seeker said)
    constraints: tuple[Constraint, ...] = ()  # what every item of the slate must hold (the Critic checks)
    relaxed: tuple[Constraint, ...] = ()  # older wishes let go: no item of the catalogue held them all


# A seeker message is read from its first characters only: the rules take about 30 ms per 1,000 characters
# on ReDial, and no chat message is this long (the chat itself cuts at 4,000).
MAX_MESSAGE_CHARS = 20_000


def _call(ctx: AgentContext, trace: Trace | None, agent: str):
    def call(name: str, args: BaseModel):
        return VTOS.call(name, ctx, args, trace, agent)
    return call


class RecommenderAgent:
    """Reads the dialogue into a state and proposes a ranked list and a slate, through the VTOs."""

    name = "recommender"

    def __init__(self, ctx: AgentContext):
        self.ctx = ctx

    def read(self, turns: Sequence[Turn], marks: Sequence[tuple[str, str]] = (), trace: Trace | None = None
             ) -> AgentState:
        """The state after ``turns``: every seeker turn's constraints and people in order (only the latest one's
        calls are traced), the sentiment of every item, explicit ``marks`` (item, like/dislike/seen) on top."""
        call = _call(self.ctx, trace, self.name)
        quiet = _call(self.ctx, None, self.name)
        turns = tuple(turns)
        history = call("track_history", TurnsArgs(turns=turns))
        sentiments = call("analyze_sentiment", TurnsArgs(turns=turns))
        seekers = [i for i, t in enumerate(turns) if t.role == "seeker"]
        state = AgentState()
        constraints: list[Constraint] = []
        people: list[str] = []
        for index in seekers:
            latest = index == seekers[-1]
            run = call if latest else quiet
            text = turns[index].text[:MAX_MESSAGE_CHARS]
            entities: Entities = run("extract_entities", MessageArgs(message=text, turn=index))
            found = run("identify_constraints", MessageArgs(message=text, turn=index)).constraints
            state = state.model_copy(update={"constraints": state.constraints.update(found)})
            constraints += found
            people += entities.people
        return call("update_beliefs", BeliefArgs(state=AgentState(constraints=state.constraints), history=history,
                                                 sentiments=sentiments, people=tuple(people),
                                                 marks=tuple(marks)))

    def propose(self, view: ContextView, state: AgentState, scores: np.ndarray | None = None,
                trace: Trace | None = None, last_proposed: Sequence[str] = (), message: str = "") -> Proposal:
        """``scores``: the retriever's scores of the whole catalogue for ``view`` when already computed."""
        ctx, options = self.ctx, self.ctx.options
        call = _call(ctx, trace, self.name)
        rejected_now: tuple[str, ...] = ()
        message = message[:MAX_MESSAGE_CHARS]
        if last_proposed and message:
            sentiments = call("analyze_sentiment", TurnsArgs(turns=view.context))
            rejection = call("handle_rejection", RejectionArgs(message=message, turn=len(view.context) - 1,
                                                               proposed=tuple(last_proposed), sentiments=sentiments))
            rejected_now = rejection.rejected
            if rejected_now:
                refined = call("refine_query", RefineArgs(state=state, rejection=rejection))
                state = state.model_copy(update={
                    "rejected": tuple(dict.fromkeys((*state.rejected, *rejected_now))),
                    "constraints": ConstraintState(constraints=refined.constraints)})
        action = call("model_user_state", ModelStateArgs(state=state, message=message, rejected_now=rejected_now,
                                                         last_proposed=tuple(last_proposed)))
        if action.action == "explain":  # nothing new to search: the Explainer answers about the last slate
            return Proposal(state=state, action=action, ranked=Ranked(item_ids=(), scores=()),
                            slate=tuple(last_proposed), turns=tuple(view.context))
        blocked = tuple(sorted(ruled_out(state, options))) if options.state_tracking else ()
        candidates = call("search_candidates", SearchArgs(view=view, n=options.candidates, exclude=blocked))
        removed: tuple[tuple[str, str], ...] = ()
        constraints = hard_constraints(state, options) if options.state_tracking else ()
        known = tuple(sorted(state.known)) if options.state_tracking else ()
        holds: tuple[Constraint, ...] = ()
        relaxed: tuple[Constraint, ...] = ()
        if options.state_tracking:
            filtered = call("filter_results", FilterArgs(candidates=candidates, constraints=constraints,
                                                         blocked=blocked))
            removed = filtered.removed
            kept = filtered.kept
            holds, relaxed = self._slate_constraints(state, set(blocked) | set(known))
            # the slate holds every constraint (wanted values too, whatever ``wants`` says of the ranking): when
            # too few of the top-N do, the best of the whole catalogue that do are added
            new = set(kept.item_ids) - set(known)
            holding = [i for i in self.ctx.adapter.filter(kept.item_ids, holds) if i in new] if holds else []
            if holds and len(holding) < options.slate:
                if relaxed:  # the few items that hold everything first ("Hugh Grant" and "after 2010")
                    kept = self._widen(kept, view, (*holds, *relaxed), (*blocked, *known), scores)
                kept = self._widen(kept, view, holds, (*blocked, *known), scores)
        else:
            kept = candidates
        liked = tuple(i for i in state.mentioned if i in set(state.liked))
        wanted = tuple(state.constraints.wants)
        if options.implicit and liked:
            wanted += call("infer_implicit", GraphArgs(candidates=kept.item_ids, liked=liked)).wanted
        matches = call("match_attributes", MatchArgs(item_ids=kept.item_ids, wanted=wanted)) if wanted else None
        support = (call("reason_over_graph", GraphArgs(candidates=kept.item_ids, liked=liked)).support
                   if options.graph_weight and liked else None)
        ranked = call("rank_options", RankArgs(candidates=kept, matches=matches, support=support, view=view,
                                               state=state, known=known))
        slate = call("select_best", SelectArgs(ranked=ranked, k=options.slate, skip=known)).item_ids
        return Proposal(state=state, action=action, ranked=ranked, slate=slate, removed=removed,
                        turns=tuple(view.context), constraints=holds, relaxed=relaxed)

    def _slate_constraints(self, state: AgentState, excluded: set[str]
                           ) -> tuple[tuple[Constraint, ...], tuple[Constraint, ...]]:
        """The constraints a slate must hold, and the ones let go. Every stated one, unless no item of the whole
        catalogue (not excluded) holds them all: then the wishes of the oldest turn are let go first, one turn
        at a time ("thrillers", later "stick to James Patterson", and no book of his is listed as a thriller).
        A few items that hold everything make a short slate rather than a slate that breaks a wish. Avoided
        values are never let go: a seeker who said no to something never gets it."""
        adapter = self.ctx.adapter
        holds = list(state.constraints.constraints)
        relaxed: list[Constraint] = []
        catalog_ids = adapter.catalog.ids
        while True:
            wants = [c for c in holds if c.polarity == "want"]
            if not wants:
                break
            if any(i not in excluded for i in adapter.filter(catalog_ids, holds)):
                break
            oldest = min(c.turn for c in wants)
            relaxed += [c for c in wants if c.turn == oldest]
            holds = [c for c in holds if not (c.polarity == "want" and c.turn == oldest)]
        return tuple(holds), tuple(relaxed)

    def _widen(self, kept: Candidates, view: ContextView, constraints: Sequence[Constraint],
               blocked: Sequence[str], scores: np.ndarray | None) -> Candidates:
        """Too few of the top-N hold the constraints: take the best items of the whole catalogue that do."""
        adapter = self.ctx.adapter
        if scores is None:
            scores = np.asarray(self.ctx.retriever.score([view])[0], dtype=np.float64)
        excluded = set(blocked) | set(kept.item_ids)
        ids = adapter.filter(_by_score(adapter.catalog.ids, scores), constraints, unknown="drop")
        extra = [i for i in ids if i not in excluded][: self.ctx.options.candidates]
        positions = adapter.catalog.indices(extra)
        return Candidates(item_ids=kept.item_ids + tuple(extra),
                          scores=kept.scores + tuple(float(scores[p]) for p in positions))


def ruled_out(state: AgentState, options) -> frozenset[str]:
    """Items never to recommend again: disliked and turned down, and seen ones unless ``demote_seen`` is off."""
    return state.blocked if options.demote_seen else frozenset(state.disliked) | frozenset(state.rejected)


def hard_constraints(state: AgentState, options) -> tuple[Constraint, ...]:
    """The constraints no candidate may break: avoided values always, wanted ones when ``wants`` is hard."""
    return tuple(c for c in state.constraints.constraints
                 if c.polarity == "avoid" or (c.polarity == "want" and options.wants == "hard"))


def _by_score(ids: list[str], scores: np.ndarray) -> list[str]:
    order = np.argsort(-scores, kind="stable")
    return [ids[k] for k in order]


class CriticAgent:
    """Checks a slate against the state: a broken constraint, an item ruled out (disliked, seen, turned down),
    an item the seeker already knows (named by them, linked or only typed, or proposed before), a duplicate
    title, two items too alike (a sequel and its original with the same people); replaces each with the next
    candidate that passes. (Ungrounded claims are the Explainer's check, on the reply.)"""

    name = "critic"

    def __init__(self, ctx: AgentContext):
        self.ctx = ctx

    def review(self, proposal: Proposal, trace: Trace | None = None) -> tuple[tuple[str, ...], list[CritiqueNote]]:
        ctx, options = self.ctx, self.ctx.options
        call = _call(ctx, trace, self.name)
        slate = list(proposal.slate)
        notes: list[CritiqueNote] = []
        used = set(slate)
        spare = [i for i in proposal.ranked.item_ids if i not in used]
        state = proposal.state
        constraints = proposal.constraints if options.state_tracking else ()
        blocked = state.blocked if options.state_tracking else frozenset()
        known = state.known if options.state_tracking else frozenset()
        liked = tuple(i for i in state.mentioned if i in set(state.liked))
        turns = proposal.turns if options.state_tracking else ()
        recalled: dict[str, bool] = {}
        adapter = self.ctx.adapter
        asked = (*state.people, *(str(c.value) for c in state.constraints.wants
                                  if c.value is not None and adapter.attribute(c.attribute).kind == "person"))
        for round_number in range(1, options.critique_rounds + 1):
            problems: list[tuple[int, str]] = []
            check = call("filter_results", FilterArgs(candidates=Candidates(item_ids=tuple(slate),
                                                                            scores=(0.0,) * len(slate)),
                                                      constraints=constraints, blocked=tuple(blocked)))
            for item_id, why in check.removed:
                problems.append((slate.index(item_id), why))
            for position, item_id in enumerate(slate):
                if any(p[0] == position for p in problems):
                    continue
                if item_id in known:
                    problems.append((position, "known to the seeker already (named or proposed before)"))
                    continue
                if turns and item_id not in recalled:
                    recalled[item_id] = bool(call("recall_context", RecallArgs(turns=turns, item_id=item_id)).said)
                if recalled.get(item_id):
                    problems.append((position, "the seeker wrote its title already"))
            for a in range(len(slate)):
                for b in range(a + 1, len(slate)):
                    if any(p[0] == b for p in problems):
                        continue
                    comparison = call("compare_options", CompareArgs(first=slate[a], second=slate[b], liked=liked,
                                                                     asked=asked))
                    if comparison.similar:
                        problems.append((b, f"too like {ctx.adapter.catalog.get(slate[a]).display_title}"))
            problems += self._quality_problems(slate, proposal, {p[0] for p in problems})
            if not problems:
                break
            edited: list[str | None] = list(slate)
            # in slate order, so the best spare candidate takes the best place
            for position, why in sorted(problems):
                item_id = slate[position]
                edited[position] = None
                replacement = self._next(spare, [i for i in edited if i is not None], constraints, blocked | known)
                edited[position] = replacement
                if trace is not None:
                    trace.mark_changed()
                notes.append(CritiqueNote(round=round_number, item_id=item_id, problem=why, replacement=replacement))
            slate = [i for i in edited if i is not None]
        return tuple(slate), notes

    def _quality_problems(self, slate: list[str], proposal: Proposal, flagged: set[int]) -> list[tuple[int, str]]:
        """CHARM's models as the Critic's checks (``[quality]`` critic_min_distance, critic_min_satisfaction): an
        item too close to one above it in the slate (diversity's distance), an item whose P(liked) is in the
        bottom share of the candidates'. Items the other checks flagged already are left to them."""
        scorer, options = self.ctx.quality, self.ctx.options.quality
        if scorer is None:
            return []
        problems: list[tuple[int, str]] = []
        if options.critic_min_distance > 0 and scorer.distances is not None and len(slate) > 1:
            distances = scorer.distances.matrix(slate)
            for b in range(1, len(slate)):
                closest = int(np.argmin(distances[b, :b]))
                if b not in flagged and distances[b, closest] < options.critic_min_distance:
                    title = self.ctx.adapter.catalog.get(slate[closest]).display_title
                    problems.append((b, f"too close to {title} (distance {distances[b, closest]:.2f})"))
        values = {q.item_id: q.satisfaction for q in proposal.ranked.quality if q.satisfaction is not None}
        if options.critic_min_satisfaction > 0 and values:
            cut = float(np.quantile(list(values.values()), options.critic_min_satisfaction))
            for position, item_id in enumerate(slate):
                value = values.get(item_id)
                if position not in flagged and value is not None and value < cut and \
                        all(p[0] != position for p in problems):
                    problems.append((position, f"unlikely to please (P(liked) {value:.2f}, in the bottom "
                                               f"{options.critic_min_satisfaction:.0%} of the candidates)"))
        return problems

    def _next(self, spare: list[str], slate: list[str], constraints: Sequence[Constraint],
              blocked: frozenset[str]) -> str | None:
        titles = {self.ctx.adapter.catalog.get(i).title.strip().lower() for i in slate}
        while spare:
            item_id = spare.pop(0)
            if item_id in blocked or item_id in slate:
                continue
            if self.ctx.adapter.catalog.get(item_id).title.strip().lower() in titles:
                continue
            if constraints and not self.ctx.adapter.filter([item_id], constraints, unknown="drop"):
                continue
            return item_id
        return None


class ExplainerReply(BaseModel):
    """The Explainer's reply to one slate: the text shown, who wrote it (``source``), and with explainer "llm"
    the template the LLM rewrote (``draft``), its text when refused (``rejected``) and why (``refusal``; also
    why there was no LLM). JSON-serialisable."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    reasons: tuple[Explanation, ...] = ()
    source: Literal["template", "llm"] = "template"
    draft: str | None = None
    rejected: str | None = None
    refusal: str | None = None


class ExplainerAgent:
    """The reply: the first item with its reason, the next ones by title; every reason from ``explain_choice``,
    whose facts are checked against ``query_knowledge`` (a reason stating a fact the item lacks is replaced by
    the plain template). With ``explainer = "llm"`` the LLM may rewrite that template (:meth:`reply`)."""

    name = "explainer"

    def __init__(self, ctx: AgentContext):
        self.ctx = ctx

    def explain(self, slate: Sequence[str], state: AgentState, trace: Trace | None = None,
                relaxed: Sequence[Constraint] = ()) -> tuple[str, list[Explanation]]:
        """``relaxed``: wishes the Recommender let go because nothing held them all; the reply says so."""
        text, explanations = self._template(slate, state, trace)
        return (text + self._relaxed_note(relaxed) if slate else text), explanations

    def reply(self, view: ContextView, slate: Sequence[str], state: AgentState, trace: Trace | None = None,
              relaxed: Sequence[Constraint] = ()) -> ExplainerReply:
        """:meth:`explain`'s reply, or with ``explainer = "llm"`` the LLM's rewrite of it (``view``: the dialogue
        it reads), kept only if both checks accept it: the :class:`~convrec.rerank.reply.ReplyWriter`'s, the same
        as the chat's (every title of the template named exactly, no other title, no echo of the prompt, not too
        long, not cut off), and the agent's grounding (:meth:`ungrounded`: no genre or person an item lacks).
        Otherwise the template stands and the turn says why. The note on wishes let go is not given to the LLM:
        it names values the slate lacks on purpose; it follows the rewritten text as written. An LLM that cannot
        serve (none given, a dead endpoint) leaves the template, with the reason, never an error."""
        template, explanations = self._template(slate, state, trace)
        note = self._relaxed_note(relaxed) if slate else ""
        plain = ExplainerReply(text=template + note, reasons=tuple(explanations))
        if self.ctx.options.explainer != "llm" or not slate:
            return plain
        writer = self.ctx.reply_writer
        if writer is None:
            return plain.model_copy(update={"refusal": f"no LLM: {self.ctx.llm_problem}"})
        catalog = self.ctx.adapter.catalog
        shown = tuple(slate[:3])
        # the liked items a reason compares with ("Like Alien (1979), which you enjoyed, ...") are titles of the
        # template too: the rewrite must keep them, and may say what they share with the item
        ties = tuple(i for i in dict.fromkeys(state.mentioned)
                     if i not in shown and catalog.get(i).display_title in template)
        try:
            polished = writer.polish(view, template, (*shown, *ties))
        except LLMUnavailableError as err:
            return plain.model_copy(update={"draft": template, "refusal": f"LLM unavailable: {err}"[:300]})
        if polished.source != "llm":
            return plain.model_copy(update={"draft": template, "rejected": polished.rejected,
                                            "refusal": polished.rejection or "the LLM gave no reply"})
        problem = self.ungrounded(polished.text, shown, ties, trace)
        if problem is not None:
            return plain.model_copy(update={"draft": template, "rejected": polished.text, "refusal": problem})
        return plain.model_copy(update={"text": polished.text + note, "source": "llm", "draft": template})

    def ungrounded(self, text: str, recommended: Sequence[str], ties: Sequence[str] = (),
                   trace: Trace | None = None) -> str | None:
        """What ``text`` states of an item that its catalogue facts (``query_knowledge``) do not: a genre (any
        categorical value) or a person; None when it states nothing of the kind.

        Read sentence by sentence: a sentence is about the ``recommended`` items it names by display title, one
        that names none about those of the sentence before ("It stars ..."), and before any, about all of them.
        Each genre word ("horror", "a love story") and each full name of a catalogue person (or a surname alone
        that names one clearly: "Spielberg") in it must be a fact of one of those items, or of a liked item it
        names (``ties``: what a reason compares with). Who the value is said of is not parsed ("since you like
        comedies, Alien is ..." is refused when Alien is no comedy): a refusal only costs the rewrite. Words that
        only hint at a genre or are as often ordinary words ("scary", "family") are not read as one."""
        adapter = self.ctx.adapter
        catalog, gazetteer = adapter.catalog, adapter.gazetteer
        call = _call(self.ctx, trace, self.name)
        known: dict[str, tuple] = {}

        def facts(item_id: str) -> tuple:
            if item_id not in known:
                known[item_id] = call("query_knowledge", KnowledgeArgs(item_id=item_id)).facts
            return known[item_id]

        titled = sorted(dict.fromkeys((*recommended, *ties)), key=lambda i: -len(catalog.get(i).display_title))
        for index, item_id in enumerate(titled):  # longest first: "Alien (1979)" inside no other title
            text = text.replace(catalog.get(item_id).display_title, f" \x00{index}\x00 ")
        about: tuple[str, ...] = tuple(recommended)
        for sentence in _SENTENCE_END.split(text):
            named = [titled[int(k)] for k in _PLACEHOLDER.findall(sentence)]
            subjects = tuple(i for i in named if i in set(recommended))
            about = subjects or about
            allowed = (*about, *(i for i in named if i not in subjects))
            plain = _PLACEHOLDER.sub("  ", sentence)
            for attribute, values, said in _genres_stated(adapter, plain):
                keys = [gazetteer.key(attribute, v) for v in values]
                if not any(f.attribute == attribute and any(gazetteer.covers(attribute, gazetteer.key(
                        attribute, str(f.value)), k) for k in keys) for i in allowed for f in facts(i)):
                    return f"states the {attribute} {said!r}, which {_titles(catalog, about)} lack(s)"
            for name in _people_stated(adapter, plain):
                if not any(f.kind == "person" and person_key(str(f.value)) == person_key(name)
                           for i in allowed for f in facts(i)):
                    return f"names {name}, whom the catalogue does not list for {_titles(catalog, about)}"
        return None

    def why(self, slate: Sequence[str], about: Sequence[str], state: AgentState, trace: Trace | None = None
            ) -> ExplainerReply:
        """The answer to "why those?": the reason for each item of ``about`` (items of the last ``slate``), from
        the same grounded ``explain_choice`` as the slate's reply; the reasons of the whole slate go with it, so
        ``/why N`` still reads the slate it numbers. Never rewritten by the LLM: it is the reason itself."""
        explanations = self._explanations(slate, state, trace)
        reasons = dict(zip(slate, explanations, strict=True))
        catalog = self.ctx.adapter.catalog
        text = " ".join(f"{catalog.get(i).display_title}: {reasons[i].text}" for i in about if i in reasons)
        return ExplainerReply(text=text + " Shall I look for something else?", reasons=tuple(explanations))

    def _explanations(self, slate: Sequence[str], state: AgentState, trace: Trace | None) -> list[Explanation]:
        call = _call(self.ctx, trace, self.name)
        noun = self.ctx.adapter.vocabulary.noun
        explanations = []
        for item_id in slate:
            explanation = call("explain_choice", ExplainArgs(item_id=item_id, state=state))
            known = call("query_knowledge", KnowledgeArgs(item_id=item_id)).facts
            if not grounded(explanation, known):
                explanation = Explanation(text=f"It is {a_noun(noun)} I think fits what you said.", facts=(), ties=())
            explanations.append(explanation)
        return explanations

    def _template(self, slate: Sequence[str], state: AgentState, trace: Trace | None
                  ) -> tuple[str, list[Explanation]]:
        catalog, vocabulary = self.ctx.adapter.catalog, self.ctx.adapter.vocabulary
        if not slate:
            return (f"I could not find {a_noun(vocabulary.noun)} that fits everything you asked for. Could you "
                    "loosen one of your wishes?"), []
        explanations = self._explanations(slate, state, trace)
        first = catalog.get(slate[0]).display_title
        text = f"How about {first}? {explanations[0].text}"
        others = [catalog.get(i).display_title for i in slate[1:3]]
        if others:
            text += " You might also like " + " or ".join(others) + "."
        return text, explanations

    def _relaxed_note(self, relaxed: Sequence[Constraint]) -> str:
        if not relaxed:
            return ""
        said = ", ".join(dict.fromkeys(c.text or c.describe() for c in relaxed))
        noun = self.ctx.adapter.vocabulary.noun
        return f" No {noun} fits everything you asked for, so these leave out what you asked for first: {said}."

    def ask(self, attribute: str) -> str:
        noun = self.ctx.adapter.vocabulary.noun
        label = attribute.replace("_", " ")
        return (f"Happy to help! What kind of {noun} are you in the mood for: {a_noun(label)} you enjoy, "
                f"{a_noun(noun)} you liked, or someone whose work you like?")


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")
_CAPITALISED = re.compile(r"\b[A-Z][^\W\d_]+\b")
_NAME_BEFORE = re.compile(r"[A-Z][\w.'-]*\s+$")
_NAME_AFTER = re.compile(r"\s+[A-Z]")


def _titles(catalog, item_ids: Sequence[str]) -> str:
    return " / ".join(catalog.get(i).display_title for i in item_ids)


def _genres_stated(adapter: DomainAdapter, text: str) -> list[tuple[str, tuple[str, ...], str]]:
    """The categorical values ``text`` names outright, longest phrase first: (attribute, the values the words
    may mean, the words). Hints and ordinary words (``needs_context``) are left out."""
    gazetteer = adapter.gazetteer
    tokens = [t for t in tokenize(text) if t.word[:1].isalnum()]
    found: list[tuple[str, tuple[str, ...], str]] = []
    i = 0
    while i < len(tokens):
        step = 1
        for size in range(min(gazetteer.max_words, len(tokens) - i), 0, -1):
            span = tokens[i : i + size]
            hits = [h for h in gazetteer.lookup(value_key(" ".join(t.word for t in span))) if not h.needs_context]
            if hits:
                said = text[span[0].start : span[-1].end]
                for attribute in dict.fromkeys(h.attribute for h in hits):
                    found.append((attribute, tuple(h.value for h in hits if h.attribute == attribute), said))
                step = size
                break
        i += step
    return found


def _people_stated(adapter: DomainAdapter, text: str) -> list[str]:
    """The catalogue's people ``text`` names: full names, and one-word names or surnames that name one person
    clearly, standing alone (no capitalised word next to them: "George" of "George Miller" is no name alone)."""
    names = [p.name for p in adapter.find_people(text)]
    for match in _CAPITALISED.finditer(text):
        if _NAME_BEFORE.search(text, 0, match.start()) or _NAME_AFTER.match(text, match.end()):
            continue
        name = adapter.single_name(match.group()) or surname(adapter, match.group())
        if name is not None:
            names.append(name)
    return list(dict.fromkeys(names))


def grounded(explanation: Explanation, known: Sequence) -> bool:
    """Every fact the explanation states is one of the item's catalogue facts, values compared by the
    gazetteer's keys: a shared keyword may be written as the other item writes it ("soldier" for a plot that
    says "soldiers"), and the same value is the same fact whatever its spelling."""
    facts = {_fact_key(f) for f in known}
    return all(_fact_key(f) in facts for f in explanation.facts)


def _fact_key(fact) -> tuple[str, str]:
    """(attribute, value key): :func:`person_key` for a person, :func:`value_key` for a categorical or
    keyword value (case, accents, plurals), the number as written for a numeric one (1998 and "1998")."""
    value = str(fact.value)
    if fact.kind == "person":
        return fact.attribute, person_key(value)
    if fact.kind == "numeric":
        return fact.attribute, value.strip().lower()
    return fact.attribute, value_key(value)


__all__ = ["CriticAgent", "CritiqueNote", "ExplainerAgent", "ExplainerReply", "Proposal", "RecommenderAgent",
           "StateArgs", "grounded"]
