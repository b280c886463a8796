"""The simulated users of STAR's roll-outs: the rule user, with a goal drawn from the agent's belief.

:class:`~convrec.agent.search.star.StarSearch` plays moves ahead against users it gets from a factory
(:data:`~convrec.agent.search.star.RolloutUsers`); :func:`rollout_users` makes that factory here, where the
simulator lives (the agent does not import it). A roll-out user wants the item the search drew from its belief,
never the episode's target; its preferences are that item's values (:func:`~convrec.simulate.goal.preferences`),
less the ones the seeker's turns already say (it would not say them again first).
"""

from __future__ import annotations

import random

from convrec.agent.domain import DomainAdapter
from convrec.agent.search.dialogue import AgentDialogue, Reply
from convrec.agent.search.star import RolloutUser, RolloutUsers
from convrec.simulate.goal import Goal, preferences
from convrec.simulate.turns import SystemTurn
from convrec.simulate.user import RuleUser, UserOptions, UserSimulator


class SimulatedRolloutUser:
    """A :class:`~convrec.simulate.user.UserSimulator` behind the search's :class:`RolloutUser` interface."""

    def __init__(self, user: UserSimulator):
        self.user = user

    def answer(self, dialogue: AgentDialogue, reply: Reply) -> tuple[str, bool]:
        said = self.user.respond(dialogue.turns, SystemTurn(reply.action, reply.text, reply.slate,
                                                            ask_about=reply.ask_about))
        return said.text, said.act == "accept" and said.accepted == self.user.goal.target


def rollout_users(adapter: DomainAdapter, options: UserOptions | None = None, seed: int = 0) -> RolloutUsers:
    """The factory of rule users for roll-outs (``options``: the decision rule of the episode's own user, its
    fields shared by every kind of user)."""
    rule = UserOptions(**{k: getattr(options, k) for k in UserOptions.model_fields}) if options else UserOptions()

    def make(target: str, dialogue: AgentDialogue) -> RolloutUser:
        said = " ".join(t.text.lower() for t in dialogue.turns if t.role == "seeker")
        rng = random.Random(f"{seed}:{dialogue.dialogue_id}:{dialogue.played}:{target}")
        wanted = tuple(p for p in preferences(adapter, target, rng) if p.value.lower() not in said)
        goal = Goal(episode_id=f"rollout:{dialogue.dialogue_id}:{target}", dialogue_id=dialogue.dialogue_id,
                    turn_index=dialogue.real_turns, target=target, history=(), preferences=wanted)
        return SimulatedRolloutUser(RuleUser(goal, adapter, rule, seed))

    return make
