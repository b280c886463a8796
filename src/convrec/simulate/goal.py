"""A simulated user's hidden goal, drawn from one real test sample, and the seeded choice of episodes.

An episode is one :class:`~convrec.data.model.RecSample` of the split being evaluated: the real dialogue up to
a recommender turn is where the conversation starts (as iEvaLM's episodes do), and the item that turn
recommended is the target the simulated user wants. The :class:`Goal` holds what the user knows and the
system does not:

- ``target``: the item it will accept;
- ``history``: the items the seeker liked in that dialogue (:func:`liked_items`: the dataset's feedback,
  ReDial's questionnaire "liked", INSPIRED's "accepted", and where no feedback says what the seeker liked, the
  items the seeker named); the target is never part of it;
- ``preferences``: the target's attribute values (:meth:`~convrec.agent.domain.DomainAdapter.facts`), in the
  order the user states them: one value of each attribute, then a second of each, and so on (each
  attribute's values in a seeded order); within a round the broadest value first, the one most items hold (a
  genre before a star before a director), as a seeker says what kind of item they want before naming names. Values that would say the target's title ("alien" for *Alien*)
  are left out, and so are numbers (a year is stated through its decade) and plot keywords (single words of
  the plot such as "intervenes": no seeker asks for "a movie about intervenes").

The goal belongs to the user side only: the system sees the same :class:`~convrec.data.model.ContextView` as in
offline evaluation, never the goal and never the feedback.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

from convrec.agent.domain import DomainAdapter
from convrec.agent.schema import PERSON, AttributeKind
from convrec.catalog.titles import normalize_title
from convrec.data.model import Dialogue, RecSample
from convrec.evaluate.protocol import Protocol, select_samples


class Preference(BaseModel):
    """One attribute value of the target that the user may state ("genre: comedy")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    attribute: str
    value: str
    kind: AttributeKind


class Goal(BaseModel):
    """What the simulated user wants and knows (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    episode_id: str  # the sample's id: "<dialogue>:<turn>:<target>"
    dialogue_id: str
    turn_index: int  # the real dialogue's turns before this one are the episode's starting context
    target: str
    history: tuple[str, ...]
    preferences: tuple[Preference, ...]


def episode_seed(seed: int, episode_id: str) -> int:
    """The seed of one episode: the run's seed and the episode, never its position in the run, so that an
    episode plays the same whether it runs first, last, in a resumed run or on another thread."""
    return random.Random(f"{seed}:{episode_id}").getrandbits(63)


def goal_for(sample: RecSample, adapter: DomainAdapter, seed: int = 0) -> Goal:
    """The goal of the episode that starts at ``sample`` (see the module docstring)."""
    rng = random.Random(episode_seed(seed, sample.sample_id))
    return Goal(episode_id=sample.sample_id, dialogue_id=sample.dialogue_id, turn_index=sample.turn_index,
                target=sample.target, history=_history(sample), preferences=preferences(adapter, sample.target, rng))


def _history(sample: RecSample) -> tuple[str, ...]:
    return tuple(i for i in liked_items(sample.dialogue) if i != sample.target)


def liked_items(dialogue: Dialogue) -> tuple[str, ...]:
    """The items the seeker liked in ``dialogue``, in order of mention: those its feedback marks liked (or
    accepted); when no mark says whether the seeker liked an item (INSPIRED labels only acceptances, some
    datasets nothing), also the items the seeker named, which a seeker mostly names as examples of what they
    like."""
    marked = {item for item, mark in dialogue.feedback.items() if mark.liked or mark.accepted}
    if not any(mark.liked is not None for mark in dialogue.feedback.values()):
        marked |= {item for turn in dialogue.turns if turn.role == "seeker" for item in turn.items}
    ordered = dict.fromkeys(i for i in dialogue.items_in_order() if i in marked)
    ordered.update(dict.fromkeys(sorted(marked - set(ordered))))  # marked but never named in the turns
    return tuple(ordered)


def preferences(adapter: DomainAdapter, item_id: str, rng: random.Random) -> tuple[Preference, ...]:
    """The item's statable attribute values in the order a user states them (see the module docstring)."""
    title = adapter.catalog.get(item_id).title
    by_attribute: dict[str, list[Preference]] = {}
    for fact in adapter.facts(item_id):
        if fact.kind in ("numeric", "keyword") or fact.attribute == PERSON or not isinstance(fact.value, str):
            continue
        if names_title(fact.value, title):
            continue
        by_attribute.setdefault(fact.attribute, []).append(
            Preference(attribute=fact.attribute, value=fact.value, kind=fact.kind))
    for values in by_attribute.values():
        rng.shuffle(values)
    ordered: list[Preference] = []
    depth = 0
    while any(depth < len(values) for values in by_attribute.values()):
        round_ = [values[depth] for values in by_attribute.values() if depth < len(values)]
        # broad wishes before narrow ones: a genre before a director (stable: schema order among equals)
        ordered += sorted(round_, key=lambda p: -len(adapter.items_with(p.attribute, p.value)))
        depth += 1
    return tuple(ordered)


def names_title(text: str, title: str) -> bool:
    """Whether ``text`` holds ``title`` as whole words, compared as titles are (case, accents, punctuation and
    a leading article ignored): "a movie about aliens" does not name *Alien*, "the alien" does."""
    key = normalize_title(title)
    if not key:
        return False
    return re.search(rf"(?<!\w){re.escape(key)}(?!\w)", normalize_title(text)) is not None


def choose_samples(samples: Sequence[RecSample], episodes: int | None, seed: int,
                   protocol: Protocol = Protocol.STANDARD) -> list[RecSample]:
    """The samples the protocol keeps, or the first ``episodes`` of them in a seeded random order. The subsets of
    one seed are nested (the first 50 episodes of a 200-episode run are the 50-episode run), so that a slow
    system run on fewer episodes is still paired with the others on the episodes they share."""
    kept = select_samples(samples, protocol)
    if episodes is None or episodes >= len(kept):
        return kept
    order = list(kept)
    random.Random(seed).shuffle(order)
    return order[:episodes]
