"""CHARM's quality dimensions as the agent's config and its turns name them (no models here: those are in
:mod:`convrec.agent.quality.charm`, which imports the agent; this module imports nothing of it)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

QUALITY_DIMENSIONS = ("relevance", "diversity", "satisfaction", "engagement")


class QualityOptions(BaseModel):
    """How the agent weighs the quality dimensions (``[quality]`` under a harpo config)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    weights: dict[str, float] = Field(
        {"relevance": 1.0}, description="fixed weight per dimension (relevance, diversity, satisfaction, "
        "engagement; missing = 0): relevance alone ranks as HARPO part 1 does")
    satisfaction_run: str | None = Field(
        None, description="run dir of `python -m convrec.agent.quality.satisfaction` (needed when the "
        "satisfaction weight is above 0)")
    engagement_run: str | None = Field(
        None, description="run dir of `python -m convrec.agent.quality.satisfaction --dimension engagement`")
    weights_run: str | None = Field(
        None, description="run dir of `python -m convrec.agent.quality.weights`: per turn, the network's weights "
        "for the context replace the fixed ones (the models it was trained with are then needed)")
    run: str | None = Field(
        None, description="a `convrec train --recommender harpo` run dir: its satisfaction/, engagement/ and "
        "weights/ folders stand for the *_run options not set (so the network's weights rank)")
    below_slate: Literal["retriever", "agent"] = Field(
        "retriever", description="with relevance alone, the order below the slate: the retriever's (HARPO part 1), "
        "or the agent's (rank_options' order of its candidates, on the places they hold in the retriever's order, "
        "as quality weights always give it): the control that isolates what the weights add")
    critic_min_distance: float = Field(
        0.0, ge=0.0, le=1.0, description="the Critic: two slate items closer than this (diversity's distance, "
        "0 = the same genres and people) are too alike, the later one replaced; 0 = off")
    critic_min_satisfaction: float = Field(
        0.0, ge=0.0, le=1.0, description="the Critic: a slate item whose P(liked) is in this bottom share of the "
        "candidates' (e.g. 0.1: the bottom tenth) is replaced by the next candidate, checked again in the next "
        "round; 0 = off (needs the satisfaction model)")

    @field_validator("weights")
    @classmethod
    def _known_dimensions(cls, weights: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(weights) - set(QUALITY_DIMENSIONS))
        if unknown:
            raise ValueError(f"unknown quality dimension(s) {', '.join(map(repr, unknown))}: expected "
                             f"{', '.join(QUALITY_DIMENSIONS)}")
        if any(w < 0 for w in weights.values()):
            raise ValueError("quality weights must be 0 or more")
        if not sum(weights.values()) > 0:
            raise ValueError("at least one quality weight must be above 0")
        return weights

    def weight(self, dimension: str) -> float:
        return float(self.weights.get(dimension, 0.0))

    @property
    def relevance_only(self) -> bool:
        return all(self.weight(d) == 0 for d in QUALITY_DIMENSIONS if d != "relevance")

    def run_of(self, dimension: str) -> str | None:
        """The run dir of a dimension's model (or of the weight network: ``"weights"``): set here, or the
        folder of that name in ``run`` when it exists."""
        explicit = {"satisfaction": self.satisfaction_run, "engagement": self.engagement_run,
                    "weights": self.weights_run}[dimension]
        if explicit is None and self.run is not None and (Path(self.run) / dimension).is_dir():
            return str(Path(self.run) / dimension)
        return explicit


class ItemQuality(BaseModel):
    """One ranked candidate's quality (``/why N`` shows it): relevance and diversity as described in the
    module docstring, satisfaction and engagement as the models' probabilities (None: that model is off), and
    the weighted score that placed it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    item_id: str
    relevance: float
    diversity: float | None = None
    satisfaction: float | None = None
    engagement: float | None = None
    score: float

    def shown(self) -> dict[str, float]:
        """The dimensions that were scored, by name (for the chat and the API)."""
        return {d: round(float(v), 4) for d in QUALITY_DIMENSIONS if (v := getattr(self, d)) is not None}


