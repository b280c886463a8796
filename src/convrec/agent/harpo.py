"""The HARPO agent (part 1: VTOs, tracked state, MAVEN's three roles) and the ``harpo`` recommender.

:class:`HarpoAgent` answers one point of a conversation: the Recommender reads the turns into an
:class:`~convrec.agent.state.AgentState` and proposes through the VTOs, the Critic checks and edits the slate,
the Explainer writes the reply. :class:`HarpoTurn` holds all of it (action, slate, reply, reasons, state,
VTO trace, the Critic's notes, and whether the LLM's rewrite of the reply was kept or why not),
JSON-serialisable. With ``explainer = "llm"`` the recommender takes its LLM client from its resources, as
``rar`` does (``llm``, ``llm_cache``); a model that cannot load leaves the template replies, and says so.

:class:`HarpoRecommender` (``harpo`` in the registry) makes the agent a recommender like any other, so
``convrec eval --recommender harpo`` runs it on every dataset and protocol. Its score matrix is its final
ranking of the whole catalogue, in tiers: the slate after critique first (in its order), then the rest of the
Recommender's draft slate (in ``rank_options``' order), then the rest of the catalogue in the retriever's order
(with CHARM's quality weights, :mod:`convrec.agent.quality.charm`, the candidates among them in their weighted
order, on the places they hold in the retriever's order), then items that break an avoided value (or a wanted
one, when ``wants`` is hard), and last the items the seeker ruled out (disliked, seen, turned down). Items the
seeker named, or that were proposed before, are never in a slate, but they are not ruled out: they keep their
place in the retriever's order. Only the turns before the target are read (a
:class:`~convrec.data.model.ContextView`), never the questionnaire.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from convrec.agent.config import HarpoOptions
from convrec.agent.constraints import Constraint
from convrec.agent.maven import (
    CriticAgent,
    CritiqueNote,
    ExplainerAgent,
    RecommenderAgent,
    hard_constraints,
    ruled_out,
)
from convrec.agent.operations import VTOS, AgentContext, Explanation, UserModel
from convrec.agent.quality.dimensions import ItemQuality
from convrec.agent.state import AgentState
from convrec.agent.vto import Trace, VTOCall
from convrec.catalog.items import Catalog
from convrec.data.dataset import Split
from convrec.data.model import ContextView, Turn
from convrec.errors import ConfigError
from convrec.llm.errors import LLMError
from convrec.llm.types import LLM
from convrec.rerank.pipeline import with_default_cache
from convrec.resources import Resources
from convrec.retrieval.base import Recommender, build_recommender, recommender_class, register

NOT_RETRIEVERS = ("harpo", "rar")
CANDIDATES_KEPT = 50


class HarpoTurn(BaseModel):
    """One answer of the agent."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: UserModel
    slate: tuple[str, ...]
    proposed: tuple[str, ...]  # the Recommender's slate, before critique
    reply: str
    reasons: tuple[Explanation, ...]
    state: AgentState
    critique: tuple[CritiqueNote, ...]
    trace: tuple[VTOCall, ...]
    removed: tuple[tuple[str, str], ...] = ()
    relaxed: tuple[Constraint, ...] = ()  # older wishes let go this turn: no item held them all
    # the Explainer (HarpoOptions.explainer): who wrote ``reply``; with "llm", the template the LLM rewrote, the
    # LLM's text when it was refused, and why (or why there was no LLM)
    explainer_source: Literal["template", "llm"] = "template"
    explainer_draft: str | None = None
    explainer_rejected: str | None = None
    explainer_refusal: str | None = None
    # CHARM (quality weights beyond relevance): the slate's quality per item, and the candidates' whole
    # weighted order, which ranks the catalogue below the slate (empty with relevance alone)
    quality: tuple[ItemQuality, ...] = ()
    ranked: tuple[str, ...] = ()
    # the Recommender's ranked candidates, best first (at most CANDIDATES_KEPT): other slates are drawn from them
    candidates: tuple[str, ...] = ()


@dataclass
class HarpoAgent:
    """The three agents over one context (adapter, retriever, sentiment reader, options)."""

    ctx: AgentContext

    @classmethod
    def build(cls, catalog: Catalog, retriever: Recommender, options: HarpoOptions,
              dataset_name: str | None = None, llm: LLM | None = None, llm_problem: str | None = None,
              train: Split | None = None) -> HarpoAgent:
        """``llm``: the Explainer's, used when ``options.explainer`` is "llm" (``llm_problem``: why there is none).
        ``train``: the split CHARM's satisfaction and engagement models read their answer rates from (needed
        only when ``options.quality`` weighs them)."""
        from convrec.agent.quality.charm import QualityScorer

        ctx = AgentContext.for_catalog(catalog, retriever, options, dataset_name, llm, llm_problem)
        quality = QualityScorer.build(options.quality, ctx.adapter, train, dataset_name)
        return cls(replace(ctx, quality=quality) if quality is not None else ctx)

    def respond(self, view: ContextView, marks: Sequence[tuple[str, str]] = (), scores: np.ndarray | None = None,
                last_proposed: Sequence[str] = (), ctx: AgentContext | None = None) -> HarpoTurn:
        """The agent's answer after the turns of ``view`` (its last turn is the seeker's message in a chat).
        ``last_proposed``: the agent's previous slate, to read a rejection of it in the latest message."""
        ctx = ctx or self.ctx
        trace = Trace()
        recommender, critic, explainer = RecommenderAgent(ctx), CriticAgent(ctx), ExplainerAgent(ctx)
        turns: tuple[Turn, ...] = view.context
        state = recommender.read(turns, marks, trace)
        message = turns[-1].text if turns and turns[-1].role == "seeker" else ""
        proposal = recommender.propose(view, state, scores, trace, last_proposed, message)
        if proposal.action.action == "ask" and ctx.options.vtos:
            attribute = proposal.action.ask_about or "genre"
            state = proposal.state.model_copy(update={"asked": (*proposal.state.asked, attribute)})
            return HarpoTurn(action=proposal.action, slate=(), proposed=(), reply=explainer.ask(attribute), reasons=(),
                             state=state, critique=(), trace=tuple(trace), removed=proposal.removed,
                             relaxed=proposal.relaxed)
        if proposal.action.action == "explain":
            answered = explainer.why(proposal.slate, proposal.action.about, proposal.state, trace)
            return HarpoTurn(action=proposal.action, slate=proposal.slate, proposed=proposal.slate,
                             reply=answered.text, reasons=answered.reasons, state=proposal.state, critique=(),
                             trace=tuple(trace))
        slate, notes = proposal.slate, []
        if ctx.options.critic and ctx.options.vtos:
            slate, notes = critic.review(proposal, trace)
        explained = explainer.reply(view, slate, proposal.state, trace, proposal.relaxed)
        state = proposal.state.model_copy(update={"recommended": tuple(dict.fromkeys((*proposal.state.recommended,
                                                                                        *slate)))})
        quality = {q.item_id: q for q in proposal.ranked.quality}
        return HarpoTurn(action=proposal.action, slate=tuple(slate), proposed=proposal.slate, reply=explained.text,
                         reasons=explained.reasons, state=state, critique=tuple(notes), trace=tuple(trace),
                         removed=proposal.removed, relaxed=proposal.relaxed, explainer_source=explained.source,
                         explainer_draft=explained.draft, explainer_rejected=explained.rejected,
                         explainer_refusal=explained.refusal,
                         quality=tuple(quality[i] for i in slate if i in quality),
                         ranked=tuple(q.item_id for q in proposal.ranked.quality),
                         candidates=proposal.ranked.item_ids[:CANDIDATES_KEPT])

    def final_scores(self, view: ContextView, scores: np.ndarray) -> tuple[np.ndarray, HarpoTurn]:
        """The agent's ranking of the whole catalogue as scores (see the module docstring), and its turn."""
        ctx = replace(self.ctx, retriever=PrecomputedScores(self.ctx.retriever, scores))
        turn = self.respond(view, scores=scores, ctx=ctx)
        catalog = ctx.adapter.catalog
        n = len(catalog)
        # the retriever's scores squeezed into [0, 1) (ties stay ties: the metrics break them at random in
        # expectation), so that the tiers below, whole numbers, decide first and the retriever within a tier
        finite = np.isfinite(scores)
        low, high = (scores[finite].min(), scores[finite].max()) if finite.any() else (0.0, 1.0)
        base = np.where(finite, (scores - low) / (high - low + 1e-12), 0.0) * 0.999
        final = base.copy()
        options = ctx.options
        if not options.vtos:
            return final, turn
        if turn.ranked:
            # CHARM: the candidates take the places they hold in the retriever's order, in their weighted order
            # (so the weights re-order them among themselves, and move nothing else, known items included)
            ranked = np.asarray(catalog.indices(list(turn.ranked)))
            # less a hair per place, so that places the retriever tied keep the weighted order too
            final[ranked] = np.sort(base[ranked])[::-1] - 1e-6 * np.arange(len(ranked))  # (float32 resolves 1e-6)
        positions = catalog.indices(_ranked_ids(turn))
        final[positions] = 2.0 + (1.0 - np.arange(len(positions)) / max(len(positions), 1))
        slate = catalog.indices(turn.slate)
        final[slate] = 4.0 + (1.0 - np.arange(len(slate)) / max(len(slate), 1))
        if options.state_tracking:
            state = turn.state
            broken = np.zeros(n, dtype=bool)
            for constraint in hard_constraints(state, options):
                satisfied, known = ctx.adapter.mask(constraint)
                broken |= known & ~satisfied
            final[broken] -= 4.0
            blocked = catalog.indices(sorted(ruled_out(state, options)))
            final[blocked] = base[blocked] - 8.0
        return final, turn


def _ranked_ids(turn: HarpoTurn) -> list[str]:
    removed = {item_id for item_id, _ in turn.removed}
    return [i for i in turn.proposed if i not in removed]


class PrecomputedScores(Recommender):
    """The retriever's scores of one sample, computed once in a batch: the agent's search reads them."""

    name = "precomputed"

    def __init__(self, inner: Recommender, scores: np.ndarray):
        super().__init__(inner.catalog, inner.config)
        self._scores = scores

    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        return np.tile(self._scores, (len(samples), 1)).astype(np.float32)


@register
class HarpoRecommender(Recommender):
    """HARPO part 1 as a recommender: the agent's final ranking of the catalogue for each context."""

    name = "harpo"
    config_class = HarpoOptions
    config: HarpoOptions
    uses_resources = True

    def __init__(self, catalog: Catalog, config: HarpoOptions | None = None, *, resources: Resources | None = None):
        super().__init__(catalog, config)
        if self.config.retriever in NOT_RETRIEVERS:
            raise ConfigError(f"harpo: retriever {self.config.retriever!r} is not a first-stage retriever: choose "
                              "one of lrurec-text, lrurec, ease, itemknn, dense-text, popularity")
        recommender_class(self.config.retriever)  # an unknown name fails here, before any work
        self.resources = resources or Resources.from_env()
        self.retriever_: Recommender | None = None
        self.agent_: HarpoAgent | None = None
        self.turns_: list[HarpoTurn] = []  # per sample of the last score() call

    def fit(self, train: Split, valid: Split | None = None) -> None:
        options = dict(self.config.retriever_options)
        if self.config.checkpoint is not None:
            options["checkpoint"] = self.config.checkpoint
        self.retriever_ = build_recommender(self.config.retriever, self.catalog, options, resources=self.resources)
        self.retriever_.fit(train, valid)
        llm, problem = self._explainer_llm() if self.config.explainer == "llm" else (None, None)
        self.agent_ = HarpoAgent.build(self.catalog, self.retriever_, self.config, train.dataset or None, llm,
                                       problem, train)

    def _explainer_llm(self) -> tuple[LLM | None, str | None]:
        """The Explainer's LLM client, as rar gets its own (one per config from the resources, caching replies
        unless ``llm_cache`` is off), or None and why: a model that cannot load leaves the template replies."""
        try:
            return self.resources.llm(with_default_cache(self.config.llm, self.config.llm_cache, self.resources)), None
        except LLMError as err:
            return None, f"{type(err).__name__}: {err}"[:300]

    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        if self.agent_ is None or self.retriever_ is None:
            raise RuntimeError("harpo: call fit() before score()")
        base = np.asarray(self.retriever_.score(samples), dtype=np.float64)
        out = np.empty_like(base, dtype=np.float32)
        self.turns_ = []
        for row, view in enumerate(samples):
            final, turn = self.agent_.final_scores(view, base[row])
            out[row] = final
            self.turns_.append(turn)
        return out

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        if self.retriever_ is not None:
            described["retriever"] = self.retriever_.describe()
        described["vtos"] = len(VTOS)
        return described
