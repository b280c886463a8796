"""What the agent believes about the seeker: :class:`AgentState` (immutable, JSON-serialisable).

Derived from the dialogue by the memory and user-modelling VTOs (``track_history``, ``update_beliefs``):
items the seeker liked, disliked or has seen (from :mod:`convrec.agent.sentiment`), items the agent recommended
and the seeker turned down, the attribute constraints the seeker stated (:class:`ConstraintState`), the people
they asked for, the items they named, and what the agent already asked and recommended. Explicit marks
(``/like``, ``/dislike``, ``/seen`` in the chat) are merged in and win over what the rules read.

Never a feature: ReDial's questionnaire answers (``Dialogue.feedback``), written after the conversation. The
state is built from the turns of a :class:`~convrec.data.model.ContextView`, which does not carry them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from convrec.agent.constraints import ConstraintState

STATE_VERSION = 1


class AgentState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = STATE_VERSION
    constraints: ConstraintState = ConstraintState()
    liked: tuple[str, ...] = ()
    disliked: tuple[str, ...] = ()
    seen: tuple[str, ...] = ()
    rejected: tuple[str, ...] = ()  # recommended by the agent, then turned down by the seeker
    mentioned: tuple[str, ...] = ()  # every item of the dialogue, in order of first mention
    people: tuple[str, ...] = ()  # people the seeker asked for, as the catalogue writes them
    asked: tuple[str, ...] = ()  # attributes the agent asked about
    recommended: tuple[str, ...] = ()  # every item the agent (or the logged recommender) proposed
    named: tuple[str, ...] = ()  # items the seeker named, whatever they said of them: known to them
    seeker_turns: int = 0

    @property
    def blocked(self) -> frozenset[str]:
        """Items never to recommend again in this conversation: disliked, seen, or turned down."""
        return frozenset(self.disliked) | frozenset(self.seen) | frozenset(self.rejected)

    @property
    def known(self) -> frozenset[str]:
        """Items no slate proposes again: those the seeker named (they know them) and those already proposed.
        Unlike :attr:`blocked` they are not ruled out: the ranking keeps them in the retriever's order."""
        return frozenset(self.named) | frozenset(self.recommended)

    @property
    def has_signal(self) -> bool:
        """Whether anything is known to recommend from: a liked item, a constraint or a person."""
        return bool(self.liked or self.mentioned or self.constraints.constraints or self.people)

    def summary(self) -> str:
        parts = [f"{len(self.liked)} liked", f"{len(self.disliked)} disliked", f"{len(self.seen)} seen",
                 f"{len(self.rejected)} rejected"]
        if self.constraints.constraints:
            parts.append("constraints: " + "; ".join(self.constraints.describe()))
        if self.people:
            parts.append("people: " + ", ".join(self.people))
        return ", ".join(parts)
