"""STAR's options (``HarpoOptions.search``): which look-ahead chooses the agent's move, and how far it looks."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from convrec.errors import ConfigError


class SearchOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["greedy", "value", "rollout"] = Field(
        "greedy", description="greedy: the agent's own move (ask once while nothing is known, then recommend); "
        "value: the move the value network rates most likely to end in success; rollout: the move whose "
        "simulated conversations (users whose goals are drawn from the agent's belief) succeed most")
    value_network: str | None = Field(None, description="run dir of `python -m convrec.simulate.star` (needed by "
                                      "value; rollout uses it to order the moves and value the leaves)")
    horizon: int = Field(5, ge=1, le=50, description="the turns a conversation is valued over (P(success within))")
    width: int = Field(3, ge=1, le=10, description="rollout: the moves searched, the best by the value network")
    depth: int = Field(2, ge=1, le=10, description="rollout: turns each roll-out plays (the move, then greedy)")
    rollouts: int = Field(6, ge=1, le=200, description="rollout: simulated users per move (the same for each)")
    discount: float = Field(0.8, gt=0, le=1, description="rollout: a success n turns ahead is worth discount ** "
                            "(n - 1) (the value network's training used the same, python -m convrec.simulate.star)")
    spread: bool = Field(True, description="consider a varied slate beside the agent's own")
    asks: int = Field(2, ge=0, le=10, description="consider questions about at most this many attributes")
    belief_top: int = Field(200, ge=5, description="the items the belief spreads over")
    seed: int = Field(0, ge=0, description="the roll-outs' goals (drawn per conversation and turn)")

    @model_validator(mode="after")
    def _needs_a_network(self) -> SearchOptions:
        if self.kind == "value" and self.value_network is None:
            raise ConfigError("search.kind = value needs search.value_network (a run dir of `python -m "
                              "convrec.simulate.star`)")
        return self
