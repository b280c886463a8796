"""What the two participants of a simulated conversation say to each other: :class:`SystemTurn` and
:class:`UserTurn`. Each carries its text (what the other side reads) and, for the runner and the metrics only,
what it meant: the system's action, slate and ranking; the user's act and what it stated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from convrec.simulate.goal import Preference

SystemAction = Literal["recommend", "ask", "chat"]
UserAct = Literal["accept", "reject", "answer", "inform"]


@dataclass(frozen=True)
class SystemTurn:
    """One system turn. ``slate``: the items it recommends, best first (empty unless it recommends);
    ``ask_about``: the attribute it asks about, when it says so; ``scores``: its ranking of the whole catalogue
    (n_items,), higher first, -inf for items it will not recommend, or None when the system shows only its slate
    (Recall@k is then counted on the slate); ``search``: how a searching agent chose the turn."""

    action: SystemAction
    text: str
    slate: tuple[str, ...] = ()
    ask_about: str | None = None
    scores: np.ndarray | None = None
    search: dict | None = None  # the agent's searched tree (STAR's SearchTrace as JSON), when it searched


class LLMTurn(BaseModel):
    """How an LLM user's turn came about, kept for its audit: ``raw_decision`` and ``raw`` are the model's replies
    to its two calls (is the target in the slate? the message) before any check; ``parsed``: both gave a usable
    answer (else the rule user's turn stands: a fallback); ``decision``:
    the model's accept / reject on a recommending turn, ``rule_decision``: the rule user's on the same slate;
    ``names_target``: the raw reply names the target's title, ``leaked``: it did so while the system had not
    shown the target (an accepting turn may name what it accepts); ``mentions_preference``: the reply names the
    value it was asked to state (None: none was); ``error``: the call failed (a fallback too)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    raw_decision: str = ""
    raw: str = ""
    parsed: bool = False
    decision: Literal["accept", "reject"] | None = None
    rule_decision: Literal["accept", "reject"] | None = None
    names_target: bool = False
    leaked: bool = False
    mentions_preference: bool | None = None
    error: str | None = None
    cached: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0


class UserTurn(BaseModel):
    """One user turn. ``accepted``: the item accepted (``close``: by the close-enough rule, not the target;
    None on an accepting turn: an LLM user accepted a slate without its target, which ends the episode without
    success); ``stated``: the preferences this turn stated; ``reason``: the value a rejection named ("horror");
    ``guarded``: the text named the target's title and was replaced by a safe one; ``llm``: how an LLM user's
    turn came about (None for the rule user)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    act: UserAct
    accepted: str | None = None
    close: bool = False
    stated: tuple[Preference, ...] = ()
    reason: str | None = None
    guarded: bool = False
    llm: LLMTurn | None = None
