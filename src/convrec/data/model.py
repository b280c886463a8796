"""The one data model every domain is converted into: dialogues of turns, and recommendation samples.

A :class:`RecSample` does not copy its context: it points at its dialogue and the index of the turn
that mentions the target, so 5,000 samples of one dialogue set cost little memory. It belongs to the
harness, which knows the answer; a recommender only ever gets its :meth:`RecSample.view`, a
:class:`ContextView` of the turns before the target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

Role = Literal["seeker", "recommender", "unknown"]
ROLES: tuple[str, ...] = ("seeker", "recommender", "unknown")
SPLITS: tuple[str, ...] = ("train", "valid", "test")


@dataclass(frozen=True)
class Turn:
    """One message. ``items`` are catalogue ids in order of mention (a repeat in one message is kept once)."""

    role: Role
    text: str = ""
    items: tuple[str, ...] = ()


@dataclass(frozen=True)
class ItemFeedback:
    """What the seeker said about an item, where the data records it (``None``: not said)."""

    liked: bool | None = None
    seen: bool | None = None
    accepted: bool | None = None  # INSPIRED: the seeker accepted the recommendation

    def to_json(self) -> dict[str, bool]:
        return {k: v for k, v in (("liked", self.liked), ("seen", self.seen), ("accepted", self.accepted)) if v is not None}


@dataclass
class Dialogue:
    dialogue_id: str
    split: str
    turns: list[Turn]
    feedback: dict[str, ItemFeedback] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    _mention_offsets: list[int] | None = field(default=None, init=False, repr=False, compare=False)
    _mentions: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    @property
    def has_roles(self) -> bool:
        """False for sequence-only records (e.g. ReDial train fragments with only the movie list)."""
        return any(turn.role != "unknown" for turn in self.turns)

    def items_in_order(self) -> list[str]:
        return [item for turn in self.turns for item in turn.items]

    def items_before(self, turn_index: int) -> tuple[str, ...]:
        """Items mentioned in turns ``0 .. turn_index - 1``, in order. Computed on demand so a long item
        sequence (a MovieLens user) does not store a quadratic number of context copies."""
        if self._mention_offsets is None or len(self._mention_offsets) != len(self.turns) + 1:
            offsets = [0]
            for turn in self.turns:
                offsets.append(offsets[-1] + len(turn.items))
            self._mention_offsets = offsets
            self._mentions = tuple(self.items_in_order())
        return self._mentions[: self._mention_offsets[turn_index]]


@dataclass(frozen=True)
class ContextView:
    """What a recommender (and the agent, and a simulator's system side) may see at one point of a dialogue:
    the turns before it, and the items they mention.

    It holds no reference to a :class:`Dialogue`, so the target, the turns from the target's on and the
    ``feedback`` (questionnaire answers written after the conversation, which name 93% of ReDial's test
    targets) are out of reach, not merely unnamed. ``metadata`` is what the caller knows at that point (a
    chat session's options, say); a dataset dialogue's ``metadata`` is not copied into the view, since its
    free fields describe the whole record.

    ``context_items`` are the items mentioned in ``context``, in order of mention, repeats included (the
    most recent mention is last); ``turn_index`` is the index of the turn to be written next.
    """

    dialogue_id: str
    context: tuple[Turn, ...]
    metadata: Mapping[str, Any] = field(default_factory=dict, hash=False)
    context_items: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        # A list passed in must not change the view later, nor a metadata dict the caller keeps.
        object.__setattr__(self, "context", tuple(self.context))
        object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))
        object.__setattr__(self, "context_items", tuple(item for turn in self.context for item in turn.items))

    @property
    def turn_index(self) -> int:
        return len(self.context)

    def context_text(self, max_chars: int | None = None, with_roles: bool = True) -> str:
        """The dialogue so far as "Seeker: ... / Recommender: ..." lines; ``max_chars`` keeps the most recent."""
        return render_turns(self.context, max_chars, with_roles)


@dataclass(frozen=True)
class RecSample:
    """Recommend ``target`` given the dialogue before turn ``turn_index``.

    ``context_items`` are the items mentioned before that turn, in order of mention, repeats included
    (the most recent mention is last). The harness keeps the sample; recommenders get :meth:`view`.
    """

    dialogue: Dialogue
    turn_index: int
    target: str

    @property
    def context_items(self) -> tuple[str, ...]:
        return self.dialogue.items_before(self.turn_index)

    @property
    def dialogue_id(self) -> str:
        return self.dialogue.dialogue_id

    @property
    def sample_id(self) -> str:
        return f"{self.dialogue.dialogue_id}:{self.turn_index}:{self.target}"

    @property
    def context(self) -> Sequence[Turn]:
        return self.dialogue.turns[: self.turn_index]

    @property
    def target_in_context(self) -> bool:
        return self.target in self.context_items

    @property
    def target_feedback(self) -> ItemFeedback | None:
        return self.dialogue.feedback.get(self.target)

    def context_text(self, max_chars: int | None = None, with_roles: bool = True) -> str:
        """The dialogue so far as "Seeker: ... / Recommender: ..." lines; ``max_chars`` keeps the most recent."""
        return render_turns(self.context, max_chars, with_roles)

    def view(self) -> ContextView:
        """What a recommender may see of this sample: the turns before the target's, no target, no feedback."""
        return ContextView(self.dialogue.dialogue_id, tuple(self.context))


def render_turns(turns: Sequence[Turn], max_chars: int | None = None, with_roles: bool = True) -> str:
    """Turns as "Seeker: ... / Recommender: ..." lines (empty texts skipped); ``max_chars`` keeps the most
    recent characters, dropping a partial first line."""
    lines = []
    for turn in turns:
        if not turn.text:
            continue
        lines.append(f"{turn.role.capitalize()}: {turn.text}" if with_roles else turn.text)
    text = "\n".join(lines)
    if max_chars is not None and len(text) > max_chars:
        cut = len(text) - max(max_chars, 0)
        tail = text[cut:]
        # Drop a partial first line, but not a whole one that starts exactly at the cut.
        if text[cut - 1] != "\n" and "\n" in tail:
            tail = tail.split("\n", 1)[1]
        text = tail
    return text


def samples_from_dialogue(dialogue: Dialogue) -> list[RecSample]:
    """The common CRS protocol: each item mentioned in a recommender turn is a target, its context all earlier
    turns. A dialogue with no roles (a bare item sequence) yields a sample for every item after the first."""
    role_aware = dialogue.has_roles
    return [
        RecSample(dialogue, index, item)
        for index, turn in enumerate(dialogue.turns)
        if (turn.role == "recommender" if role_aware else index > 0)
        for item in turn.items
    ]
