"""Simulated users: dialogue participants with a hidden :class:`~convrec.simulate.goal.Goal`.

A :class:`UserSimulator` is one user in one episode (as in UserSimCRS, the simulator is a participant of the
dialogue, not a scorer): built with the goal, the catalogue's :class:`~convrec.agent.domain.DomainAdapter` and
a seed, it answers each :class:`~convrec.simulate.turns.SystemTurn` with a
:class:`~convrec.simulate.turns.UserTurn`. ``rule`` (:class:`RuleUser`) is the first; an LLM user is a second
subclass (:class:`~convrec.simulate.llm_user.LLMUser`) behind the same interface, given the same goal, with the
rule user's turn as the plan it words, the decision it is compared with, and its fallback. Everything the users know about items comes from the adapter's schema: no simulator
names a domain, a genre or a role.

The ``rule`` user:

- **accepts** when the slate holds the target, or, when ``close_min_shared`` is set, an item that shares at least
  that many categorical and people values with the target (counted apart: the headline success is the exact
  target);
- otherwise **rejects** with a reason read from the metadata: the value most of the slate holds and the target
  does not ("I'm not into horror"), then, since nothing fitted, states one more of its preferences;
- **answers** a question about an attribute truthfully from the target's values (a question it cannot place is
  answered with its next preference), and **informs** (states its next preference) after any other turn.

Preferences are stated one at a time in the goal's order (at most ``max_preferences`` unprompted), each in a
seeded choice of phrasings. A user never
says the target's title: values that hold it are not in the goal, and a composed turn in which the catalogue's
title finder links the target is replaced by a fixed safe one (``UserTurn.guarded``, counted by the runner).
"""

from __future__ import annotations

import copy
import random
import re
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Sequence
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from convrec.agent.domain import DomainAdapter
from convrec.agent.schema import PERSON
from convrec.catalog.vocabulary import article
from convrec.data.model import Turn
from convrec.errors import ConfigError
from convrec.simulate.goal import Goal, Preference, episode_seed, names_title
from convrec.simulate.turns import SystemTurn, UserTurn


class UserOptions(BaseModel):
    """How a simulated user decides (shared by every kind of user, so that their decisions compare)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    close_min_shared: int | None = Field(None, ge=1, description="also accept an item sharing at least this many "
                                         "categorical and people values with the target (reported apart); None: "
                                         "the exact target only")
    prefer_on_reject: bool = Field(True, description="a rejection also states one more preference of the target")
    max_preferences: int | None = Field(None, ge=1, description="state at most this many of the goal's preferences "
                                        "unprompted (then repeat the first); a direct question is still answered. "
                                        "None: all of them")


class Decision(BaseModel):
    """The accept / reject rule's verdict on a slate."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    accept: bool
    item: str | None = None
    close: bool = False


def shared_values(adapter: DomainAdapter, item_a: str, item_b: str) -> int:
    """How many categorical and people values (genre, decade, director, ...) the two items share."""
    return len(_value_set(adapter, item_a) & _value_set(adapter, item_b))


def _value_set(adapter: DomainAdapter, item_id: str) -> set[tuple[str, str]]:
    return {(f.attribute, str(f.value).lower()) for f in adapter.facts(item_id)
            if f.kind in ("categorical", "person") and f.attribute != PERSON}


def judge_slate(goal: Goal, slate: Sequence[str], adapter: DomainAdapter, options: UserOptions) -> Decision:
    """Accept the target if the slate holds it, else (``close_min_shared``) the first item close enough."""
    if goal.target in slate:
        return Decision(accept=True, item=goal.target)
    if options.close_min_shared is not None:
        target = _value_set(adapter, goal.target)
        for item_id in slate:
            if len(target & _value_set(adapter, item_id)) >= options.close_min_shared:
                return Decision(accept=True, item=item_id, close=True)
    return Decision(accept=False)


class UserSimulator(ABC):
    """One simulated user in one episode (see the module docstring)."""

    name: ClassVar[str]
    options_class: ClassVar[type[UserOptions]] = UserOptions  # what --user-set configures

    def __init__(self, goal: Goal, adapter: DomainAdapter, options: UserOptions | None = None, seed: int = 0):
        self.goal = goal
        self.adapter = adapter
        self.options = options or UserOptions()
        self.rng = random.Random(episode_seed(seed, f"{self.name}:{goal.episode_id}"))

    @abstractmethod
    def respond(self, dialogue: Sequence[Turn], system: SystemTurn) -> UserTurn:
        """The user's answer to ``system``, the latest turn of ``dialogue`` (the whole conversation so far)."""

    def decide(self, slate: Sequence[str]) -> Decision:
        return judge_slate(self.goal, slate, self.adapter, self.options)

    def fork(self) -> UserSimulator:
        """A copy that answers on from here without changing this user (its random state and its lists of what
        it has said are its own; the goal and the adapter are shared): to play a move ahead and look."""
        twin = copy.copy(self)
        twin.rng = random.Random()
        twin.rng.setstate(self.rng.getstate())
        for name, value in vars(self).items():
            if isinstance(value, list | set | dict):
                setattr(twin, name, copy.copy(value))
        return twin

    def says_title(self, text: str) -> bool:
        """Whether ``text`` names the target: the catalogue's title finder links it, or (a title of two words
        or more) its words are there. One-word titles ("It", "Up") are ordinary words: only the finder counts."""
        title = self.adapter.catalog.get(self.goal.target).title
        if any(m.item_id == self.goal.target for m in self.adapter.find_titles(text)):
            return True
        return len(title.split()) > 1 and names_title(text, title)


# Phrasings: {phrase} is a preference as words ("a comedy movie", "a movie directed by Walter Hill"). Each was
# checked with the agent's rule sentiment reader, which reads acceptances as liked and rejections as disliked
# (a preference after a rejection avoids "like": the reader would count it for the rejected item).
ACCEPT = ("Yes, that one sounds perfect, thank you!", "Oh, I'd love to try that one. Thanks!",
          "Perfect, that is exactly what I was looking for!", "Great pick, I'll go with that one.")
PREFER = ("I'm looking for {phrase}.", "Could you suggest {phrase}?", "I'm in the mood for {phrase}.",
          "Ideally {phrase}.", "What I want is {phrase}.")
REJECT_VALUE = ("No thanks, I'm not into {value}.", "Hmm, I don't like {value}.",
                "Not for me, I don't really like {value}.")
REJECT_PHRASE = ("No thanks, I'd rather not have {phrase}.", "No, I don't want {phrase}.")
REJECT_PLAIN = ("No thanks, none of those is what I'm looking for.", "No, those are not for me.")
DONT_MIND = ("I don't really mind about that.", "No preference there.")
SAFE = "Hmm, not quite. Can you suggest something else?"


class RuleUser(UserSimulator):
    """The ``rule`` user (see the module docstring)."""

    name = "rule"

    def __init__(self, goal: Goal, adapter: DomainAdapter, options: UserOptions | None = None, seed: int = 0):
        super().__init__(goal, adapter, options, seed)
        # not stated yet, in the order they will be
        self._pending = list(goal.preferences[: self.options.max_preferences])
        self._reasons: set[str] = set()  # values rejections named already: a new one is preferred

    def respond(self, dialogue: Sequence[Turn], system: SystemTurn) -> UserTurn:
        if system.action == "recommend" and system.slate:
            decision = self.decide(system.slate)
            if decision.accept:
                return self._checked(UserTurn(text=self.rng.choice(ACCEPT), act="accept", accepted=decision.item,
                                              close=decision.close))
            return self._checked(self._reject(system.slate))
        asked = system.ask_about or (self._asked_attribute(system.text) if system.action == "ask" else None)
        if asked is not None:
            return self._checked(self._answer(asked))
        stated = self._take()
        return self._checked(UserTurn(text=self._prefer(stated), act="inform", stated=stated))

    # ---- the acts --------------------------------------------------------------------------------------

    def _reject(self, slate: Sequence[str]) -> UserTurn:
        reason = self._rejection_value(slate)
        if reason is None:
            text = self.rng.choice(REJECT_PLAIN)
        elif self._is_adjective(reason):
            text = self.rng.choice(REJECT_VALUE).format(value=reason.value)
        else:
            text = self.rng.choice(REJECT_PHRASE).format(phrase=self.phrase(reason))
        stated = self._take() if self.options.prefer_on_reject else ()
        if stated:
            text = f"{text} {self._prefer(stated)}"
        return UserTurn(text=text, act="reject", stated=stated, reason=None if reason is None else reason.value)

    def _answer(self, attribute: str) -> UserTurn:
        fields = set(self.adapter.schema.people_fields) if attribute == PERSON else {attribute}
        own = [p for p in self.goal.preferences if p.attribute in fields]
        if not own:
            stated = self._take()
            text = self.rng.choice(DONT_MIND) + (f" {self._prefer(stated)}" if stated else "")
            return UserTurn(text=text, act="answer", stated=stated)
        # the attribute's first value not stated yet (all stated: its first again)
        choice = next((p for p in self._pending if p.attribute in fields), own[0])
        if choice in self._pending:
            self._pending.remove(choice)
        return UserTurn(text=self._prefer((choice,)), act="answer", stated=(choice,))

    # ---- preferences -----------------------------------------------------------------------------------

    def _take(self) -> tuple[Preference, ...]:
        """The next preference to state (none left: the first again, so a long episode keeps its goal)."""
        if self._pending:
            return (self._pending.pop(0),)
        return self.goal.preferences[:1]

    def _prefer(self, stated: Sequence[Preference]) -> str:
        if not stated:
            return "Can you suggest something else?"
        return self.rng.choice(PREFER).format(phrase=self.phrase(stated[0]))

    def phrase(self, preference: Preference) -> str:
        """A preference as words, from the schema's label: "a comedy movie" (a value that describes the item
        by itself), "a movie directed by Walter Hill", "a movie from the 1980s"."""
        noun = self.adapter.vocabulary.noun
        if self._is_adjective(preference):
            return f"{article(preference.value)} {preference.value} {noun}"
        label = self.adapter.attribute(preference.attribute).label
        return f"{article(noun)} {noun} {label} {preference.value}"

    def _is_adjective(self, preference: Preference) -> bool:
        """A categorical value whose attribute has no phrase of its own ("genre": "a comedy movie")."""
        attribute = self.adapter.attribute(preference.attribute)
        return attribute.kind == "categorical" and attribute.label == attribute.name

    def _rejection_value(self, slate: Sequence[str]) -> Preference | None:
        """The categorical or people value most of the slate holds and the target does not (of an attribute
        the target has a value of, so the reason is true of the goal), one not given before if there is one;
        ties in schema order."""
        target = self.goal.target
        title = self.adapter.catalog.get(target).title
        order = {a.name: i for i, a in enumerate(self.adapter.attributes)}
        held = {(f.attribute, str(f.value).lower()) for f in self.adapter.facts(target)}
        target_attributes = {attribute for attribute, _ in held}
        counts: Counter[tuple[str, str, str]] = Counter()
        for item_id in slate:
            for fact in {(f.attribute, str(f.value), f.kind) for f in self.adapter.facts(item_id)
                         if f.kind in ("categorical", "person")}:
                attribute, value, _ = fact
                if (attribute in target_attributes and (attribute, value.lower()) not in held
                        and not names_title(value, title)):
                    counts[fact] += 1
        if not counts:
            return None
        (attribute, value, kind), _ = min(counts.items(), key=lambda c: (c[0][1] in self._reasons, -c[1],
                                                                          order.get(c[0][0], 99), c[0][1]))
        self._reasons.add(value)
        return Preference(attribute=attribute, value=value, kind=kind)  # type: ignore[arg-type]

    def _asked_attribute(self, text: str) -> str | None:
        """The attribute a question names by its schema name ("Which genre do you like?")."""
        words = set(re.findall(r"[a-z]+", text.lower()))
        return next((a.name for a in self.adapter.attributes if a.name in words), None)

    def _checked(self, turn: UserTurn) -> UserTurn:
        if self.says_title(turn.text):
            return turn.model_copy(update={"text": SAFE, "stated": (), "guarded": True})
        return turn


USERS: dict[str, type[UserSimulator]] = {RuleUser.name: RuleUser}  # the llm user registers itself (llm_user)


def user_class(name: str) -> type[UserSimulator]:
    try:
        return USERS[name]
    except KeyError:
        raise ConfigError(f"unknown user simulator {name!r}; choose one of: {', '.join(sorted(USERS))}") from None
