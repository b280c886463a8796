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
    (Recall@k is then counted on the slate)."""

    action: SystemAction
    text: str
    slate: tuple[str, ...] = ()
    ask_about: str | None = None
    scores: np.ndarray | None = None


class UserTurn(BaseModel):
    """One user turn. ``accepted``: the item accepted (``close``: by the close-enough rule, not the target);
    ``stated``: the preferences this turn stated; ``reason``: the value a rejection named ("horror");
    ``guarded``: the composed text named the target's title and was replaced by a safe one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    act: UserAct
    accepted: str | None = None
    close: bool = False
    stated: tuple[Preference, ...] = ()
    reason: str | None = None
    guarded: bool = False
