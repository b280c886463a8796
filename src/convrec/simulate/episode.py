"""One episode of the interactive protocol, and its record (one line of the transcripts file).

An episode continues a real test dialogue from the recommender turn of its sample (iEvaLM's protocol): the
system speaks first, on the logged context, then the user answers, for up to ``turns`` system turns or until
the user accepts. Every system turn that recommends is scored against the target, on the system's whole
ranking when it has one (ties broken uniformly at random in expectation, as offline), else on its shown list.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from convrec.agent.domain import DomainAdapter
from convrec.data.model import RecSample, Turn
from convrec.evaluate.metrics import RankedTargets, RecallAt, ranked_targets
from convrec.simulate.goal import Goal, goal_for
from convrec.simulate.system import System
from convrec.simulate.turns import SystemAction, SystemTurn, UserTurn
from convrec.simulate.user import UserOptions, UserSimulator

RECALL_CUTOFFS = (1, 10)


class SystemTurnRecord(BaseModel):
    """A system turn as the transcript keeps it; ``greater``/``ties``: where the target landed in its ranking
    (items scored above it, items tied with it), ``recall``: Recall@1 and @10 of this turn (recommend turns)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Literal["system"] = "system"
    action: SystemAction
    text: str
    slate: tuple[str, ...] = ()
    ask_about: str | None = None
    greater: int | None = None
    ties: int | None = None
    recall: dict[str, float] = {}
    seconds: float = 0.0
    search: dict | None = None  # the searched tree, when the agent searched (STAR)


class UserTurnRecord(UserTurn):
    role: Literal["user"] = "user"
    seconds: float = 0.0


class EpisodeRecord(BaseModel):
    """One finished episode. ``success_turn``: the system turn (1-based) whose slate held the target and was
    accepted; ``close_turn``: the turn a close-enough item was accepted instead; ``wrong_accept_turn``: the turn
    an LLM user accepted a slate that held neither (at most one of the three)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_id: str
    order: int  # the episode's place in the run's seeded order
    goal: Goal
    context_turns: int
    turns: tuple[SystemTurnRecord | UserTurnRecord, ...]
    success_turn: int | None = None
    close_turn: int | None = None
    wrong_accept_turn: int | None = None
    accepted: str | None = None
    guarded: int = 0
    system_seconds: float = 0.0
    user_seconds: float = 0.0

    @property
    def system_turns(self) -> list[SystemTurnRecord]:
        return [t for t in self.turns if isinstance(t, SystemTurnRecord)]

    @property
    def user_turns(self) -> list[UserTurnRecord]:
        return [t for t in self.turns if isinstance(t, UserTurnRecord)]


def target_rank(scores: np.ndarray | None, slate: tuple[str, ...], target: str, target_index: int,
                n_items: int) -> RankedTargets:
    """Where the target lands in the turn's ranking; with no ranking, in its slate (a target not shown counts as
    ranked below every item: Recall@k 0 for any k)."""
    if scores is None:
        greater = slate.index(target) if target in slate else n_items - 1
        return RankedTargets(np.array([greater]), np.array([0]), n_items)
    return ranked_targets(np.asarray(scores, dtype=np.float64)[None, :], np.array([target_index]))


def run_episode(sample: RecSample, order: int, system: System, make_user: Callable[..., UserSimulator],
                adapter: DomainAdapter, turns: int, seed: int = 0, user_options: UserOptions | None = None,
                exclude: Iterable[str] = ()) -> EpisodeRecord:
    """Play one episode (see the module docstring); ``make_user``: a user class, or a factory called like one
    (the LLM user's carries its client); ``exclude``: items the system may never recommend."""
    goal = goal_for(sample, adapter, seed)
    user = make_user(goal, adapter, user_options, seed)
    conversation = system.start(sample.dialogue_id, sample.context, exclude)
    dialogue: list[Turn] = list(sample.context)
    target_index = adapter.catalog.index_of[goal.target]
    records: list[SystemTurnRecord | UserTurnRecord] = []
    outcome: dict[str, Any] = {}
    timing = {"system": 0.0, "user": 0.0}
    answer: UserTurn | None = None
    for number in range(1, turns + 1):
        started = time.perf_counter()
        said: SystemTurn = conversation.respond(answer)
        system_s = time.perf_counter() - started
        records.append(_system_record(said, goal.target, target_index, len(adapter.catalog), system_s))
        dialogue.append(Turn("recommender", said.text, said.slate))
        started = time.perf_counter()
        answer = user.respond(dialogue, said)
        user_s = time.perf_counter() - started
        timing["system"] += system_s
        timing["user"] += user_s
        records.append(UserTurnRecord(**answer.model_dump(), seconds=round(user_s, 5)))
        dialogue.append(Turn("seeker", answer.text))
        if answer.act == "accept":
            if answer.accepted is None:  # an LLM user took a slate without its target: over, no success
                outcome = {"wrong_accept_turn": number}
            else:
                outcome = {"accepted": answer.accepted, "close_turn" if answer.close else "success_turn": number}
            break
    return EpisodeRecord(episode_id=goal.episode_id, order=order, goal=goal, context_turns=len(sample.context),
                         turns=tuple(records), guarded=sum(1 for r in records if getattr(r, "guarded", False)),
                         system_seconds=round(timing["system"], 4), user_seconds=round(timing["user"], 4), **outcome)


def _system_record(said: SystemTurn, target: str, target_index: int, n_items: int,
                   seconds: float) -> SystemTurnRecord:
    if said.action != "recommend":
        return SystemTurnRecord(action=said.action, text=said.text, ask_about=said.ask_about,
                                seconds=round(seconds, 5), search=said.search)
    ranked = target_rank(said.scores, said.slate, target, target_index, n_items)
    recall = {f"recall@{k}": float(RecallAt(k).per_sample(ranked)[0]) for k in RECALL_CUTOFFS}
    return SystemTurnRecord(action=said.action, text=said.text, slate=said.slate, ask_about=said.ask_about,
                            greater=int(ranked.greater[0]), ties=int(ranked.ties[0]), recall=recall,
                            seconds=round(seconds, 5), search=said.search)
