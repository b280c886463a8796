"""The ``llm`` user: the rule user's goal and rules, in an LLM's words, with the LLM's own accept / reject.

Each turn, the rule user (:class:`~convrec.simulate.user.RuleUser`, same goal, same seed) first decides what it
would say: accept or reject the slate, which reason to give, which preference to state. Then the LLM, in two
calls:

1. on a turn that recommends, **decides**: given the target's title and the slate's titles, is the target in
   it? It answers ``{"in_list": "yes" | "no"}``, constrained where the backend allows (a grammar for llama.cpp,
   ``response_format`` for OpenAI-compatible servers). Only this call knows the title;
2. **writes** the user's message, given what the user may say about its target (its statable attributes, the
   items it liked before), the system's latest turn, and what the message must say: the decision, with the
   rule user's reason and next preference. This call never sees the title, so it cannot give it away.

What the LLM brings is the language (the system must understand free phrasings, not a template) and its own
decision, which is kept: an LLM that accepts a slate without the target ends the episode without success, one
that rejects the target loses it (a ranking system never shows a rejected item again). How often it agrees
with the rule user's decision, on the turns where both calls gave a usable answer, is measured on every turn
(``LLMTurn.rule_decision``).

**Checks, counted on the raw replies before any filter.** A decision that does not parse, a message that is
empty, cut off or too long, or a failed call falls back to the rule user's turn, counted:
a run whose fallback share passes ``max_fallback_share`` (10%) is reported as failed. A reply that names the
target's title (the catalogue's title finder, or every word of a title of two words or more) while the system
has not shown the target is a leak, counted, and its text is replaced by a safe one before the system reads it
(``guarded``). Every call goes through :mod:`convrec.llm` (cache, retries), at temperature 0 by default with a
seed per episode and turn: a simulation is deterministic for a seed and free to rerun from the cache. A dead
endpoint (:class:`~convrec.llm.errors.LLMUnavailableError`) stops the run instead of falling back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from convrec.agent.domain import DomainAdapter
from convrec.data.model import Turn
from convrec.llm.config import LLMConfig
from convrec.llm.errors import LLMError, LLMUnavailableError
from convrec.llm.types import LLM, ChatMessage, ChatRequest, ChatResponse
from convrec.simulate.goal import Goal, Preference, episode_seed, names_title
from convrec.simulate.turns import LLMTurn, SystemTurn, UserTurn
from convrec.simulate.user import SAFE, USERS, RuleUser, UserOptions, UserSimulator


class LLMUserOptions(UserOptions):
    """The rule user's options (its decisions are the hints and the fallback) and the LLM's."""

    llm: LLMConfig = Field(LLMConfig(), description="the user's LLM; default local qwen2.5-coder-1.5b (e.g. "
                           "llm.model=smollm2-135m, or llm.backend=openai llm.model=... llm.base_url=...)")
    llm_cache: bool = Field(True, description="cache replies in $CONVREC_CACHE_DIR/llm/responses.sqlite when "
                            "llm.cache_path is not set")
    temperature: float = Field(0.0, ge=0.0, le=2.0, description="sampling temperature (0: greedy)")
    max_tokens: int = Field(60, ge=8, le=1024, description="tokens per message at most (a reply cut off there "
                            "falls back)")
    max_said_chars: int = Field(400, ge=40, description="characters of the system's latest turn the LLM reads")
    max_fallback_share: float = Field(0.10, ge=0.0, le=1.0, description="a run whose share of turns that fell "
                                      "back to the rule user passes this is reported as failed")


# Two calls, so that the words never see the secret: given the title while writing, Qwen 2.5 1.5B named it in 6
# of 10 raw turns, and deciding inside the same reply it agreed with the rule decision on 1 of 9 slates
# (ReDial test, 8 episodes, itemknn). Only the decision call reads the title; the writing call reads what the
# user may say about its target and the decision already taken. The decision is JSON under a grammar: on 24
# slates of 5 (half holding the target) Qwen 2.5 1.5B was right on 23 this way, on 12 answering a plain yes / no
# (it said yes to all), on 22 naming the title's number; the message is plain text (a grammar made it 2-7 times
# slower on CPU, llama.cpp).
DECISION_SYSTEM = "You check whether a list of {plural} contains one given {noun}. Answer with JSON only."
DECISION_PROMPT = """Wanted {noun}: {title}
List:
{slate}
Is the wanted {noun} in the list? Answer as JSON: {{"in_list": "yes" or "no"}}"""
DECISION_SCHEMA: dict[str, Any] = {
    "type": "object", "properties": {"in_list": {"type": "string", "enum": ["yes", "no"]}}, "required": ["in_list"],
}

# The role first and one worked example (both the same for every call, a prefix the backend may keep cached):
# without the example the 1.5B model answered as the recommender ("I'm sorry, but I can't recommend that").
REPLY_SYSTEM = ("You role-play a person who asks a recommender system for {a_noun}. You are the person, never the "
                "recommender: you turn suggestions down or accept them, and say what you want. Write only the "
                "person's next message: one or two short casual sentences, no lists.")
EXAMPLE_PROMPT = """The person wants: a comedy {noun}; {a_noun} from the 1990s.
Recommender: How about Alien (1979)? It is a horror and sci-fi {noun}.
The message must politely turn the suggestions down (not into horror), and say that the person wants a comedy {noun}.
Person:"""
EXAMPLE_REPLY = "Hmm, not for me, horror is too scary. Do you have something funny instead, like a good comedy?"
REPLY_PROMPT = """The person wants: {preferences}.
{history}Recommender: {said}
The message must {hint}.
Person:"""
MAX_REPLY_CHARS = 300
LABELS = re.compile(r"^\s*(?:fan|you|seeker|user|person|me)\s*:\s*", re.IGNORECASE)


class LLMUser(UserSimulator):
    """The ``llm`` user (see the module docstring). ``llm``: any :class:`~convrec.llm.types.LLM` (the
    simulation passes its cached client)."""

    name = "llm"
    options_class: ClassVar[type[UserOptions]] = LLMUserOptions
    options: LLMUserOptions

    def __init__(self, goal: Goal, adapter: DomainAdapter, options: UserOptions | None = None, seed: int = 0, *,
                 llm: LLM):
        options = options if isinstance(options, LLMUserOptions) else LLMUserOptions(
            **(options.model_dump() if options is not None else {}))
        super().__init__(goal, adapter, options, seed)
        self.llm = llm
        self.rule = RuleUser(goal, adapter, options, seed)  # the plan of each turn, and the fallback
        self._seed = seed
        self._turns = 0

    def respond(self, dialogue: Sequence[Turn], system: SystemTurn) -> UserTurn:
        self._turns += 1
        plan = self.rule.respond(dialogue, system)
        recommends = system.action == "recommend" and bool(system.slate)
        rule_decision = ("accept" if plan.act == "accept" else "reject") if recommends else None
        audit: dict[str, Any] = {"rule_decision": rule_decision}
        decision: str | None = None
        if recommends:
            response = self._ask(self.decision_request(system.slate), audit)
            if response is not None:
                audit["raw_decision"] = response.text.strip()
                decision = parse_decision(response.text)
            if decision is None:  # no usable decision: the rule user's whole turn stands
                return plan.model_copy(update={"llm": LLMTurn(**audit)})
            audit["decision"] = decision
        hint = self._hint(plan, decision, system)
        response = self._ask(self.reply_request(dialogue, hint.text), audit)
        reply = parse_reply(response.text, response.finish_reason) if response is not None else None
        if response is not None:
            audit["raw"] = response.text.strip()
        if reply is None:
            if decision is not None and decision != rule_decision:
                audit["decision"] = None  # its decision has no words of its own: the rule user's turn stands
            return plan.model_copy(update={"llm": LLMTurn(**audit)})
        names_target = self.says_title(reply)
        leaked = names_target and self.goal.target not in system.slate
        audit.update(parsed=True, names_target=names_target, leaked=leaked,
                     mentions_preference=(any(names_title(reply, p.value) for p in hint.stated)
                                          if hint.stated else None))
        text, guarded = (SAFE, True) if leaked else (reply, False)
        llm_turn = LLMTurn(**audit)
        if decision is None:  # not a recommending turn: the plan's act (answer / inform)
            return plan.model_copy(update={"text": text, "guarded": guarded, "llm": llm_turn})
        if decision == "accept":
            accepted = plan.accepted if plan.act == "accept" else None  # None: a slate without the target
            return UserTurn(text=text, act="accept", accepted=accepted, close=plan.close and accepted is not None,
                            guarded=guarded, llm=llm_turn)
        return UserTurn(text=text, act="reject", stated=hint.stated, reason=hint.reason, guarded=guarded,
                        llm=llm_turn)

    # ---- the calls -------------------------------------------------------------------------------------

    def _ask(self, request: ChatRequest, audit: dict[str, Any]) -> ChatResponse | None:
        try:
            response = self.llm.complete(request)
        except LLMUnavailableError:
            raise  # a dead endpoint stops the run: no rule turns under the LLM's name
        except LLMError as err:
            audit["error"] = str(err)[:300]
            return None
        audit["cached"] = audit.get("cached", True) and response.cached
        audit["prompt_tokens"] = audit.get("prompt_tokens", 0) + response.prompt_tokens
        audit["completion_tokens"] = audit.get("completion_tokens", 0) + response.completion_tokens
        return response

    def _request(self, system: str, prompt: str, max_tokens: int, part: str, **options: Any) -> ChatRequest:
        seed = episode_seed(self._seed, f"llm-user:{self.goal.episode_id}:{self._turns}:{part}") % 2**31
        return ChatRequest(messages=(ChatMessage(role="system", content=system),
                                     ChatMessage(role="user", content=prompt)),
                           max_tokens=max_tokens, temperature=self.options.temperature, seed=seed, **options)

    def decision_request(self, slate: Sequence[str]) -> ChatRequest:
        """Is the target in ``slate``? (the only prompt with the target's title)"""
        vocabulary = self.adapter.vocabulary
        listed = "\n".join(f"{n}. {self.adapter.catalog.get(i).display_title}" for n, i in enumerate(slate, start=1))
        prompt = DECISION_PROMPT.format(noun=vocabulary.noun, slate=listed,
                                        title=self.adapter.catalog.get(self.goal.target).display_title)
        return self._request(DECISION_SYSTEM.format(noun=vocabulary.noun, plural=vocabulary.plural), prompt, 12,
                             "decision", json_schema=DECISION_SCHEMA)

    def reply_request(self, dialogue: Sequence[Turn], hint: str) -> ChatRequest:
        """The user's next message, worded by the LLM (no title of the target anywhere in it): it reads the
        system's latest turn (the real context and its own earlier turns are the rule user's plan already)."""
        vocabulary = self.adapter.vocabulary
        said = dialogue[-1].text if dialogue else ""
        prompt = REPLY_PROMPT.format(preferences=self._preferences(), history=self._history(),
                                     said=said[: self.options.max_said_chars], hint=hint)
        seed = episode_seed(self._seed, f"llm-user:{self.goal.episode_id}:{self._turns}:reply") % 2**31
        return ChatRequest(messages=(
            ChatMessage(role="system", content=REPLY_SYSTEM.format(a_noun=vocabulary.a_noun)),
            ChatMessage(role="user", content=EXAMPLE_PROMPT.format(noun=vocabulary.noun, a_noun=vocabulary.a_noun)),
            ChatMessage(role="assistant", content=EXAMPLE_REPLY),
            ChatMessage(role="user", content=prompt)),
            max_tokens=self.options.max_tokens, temperature=self.options.temperature, seed=seed, stop=("\n",))

    def _preferences(self) -> str:
        phrases = [self.rule.phrase(p) for p in self.goal.preferences[: self.options.max_preferences]]
        return "; ".join(phrases) if phrases else "nothing in particular"

    def _history(self) -> str:
        liked = [self.adapter.catalog.get(i).display_title for i in self.goal.history[:5]]
        return f"{self.adapter.vocabulary.plural.capitalize()} the person liked before: {', '.join(liked)}.\n" if liked else ""

    def _hint(self, plan: UserTurn, decision: str | None, system: SystemTurn) -> _Hint:
        """What the next message must say: the LLM's decision, worded with the rule user's reason and preference
        (a rejection the rule user would not have made has no reason of its own, only the first preference)."""
        if decision == "accept":
            shown = plan.accepted if plan.accepted in system.slate else None
            title = f" {self.adapter.catalog.get(shown).display_title}" if shown else " one of their suggestions"
            return _Hint(f"say yes: the person will take{title}, and thank the recommender")
        if decision == "reject":
            stated = plan.stated if plan.act == "reject" else self.goal.preferences[:1]
            reason = plan.reason if plan.act == "reject" else None
            text = "politely turn the suggestions down"
            text += f" (not into {reason})" if reason else ""
            text += f", and say that the person wants {self.rule.phrase(stated[0])}" if stated else ""
            return _Hint(text, stated, reason)
        if plan.stated:
            return _Hint(f"answer, and say that the person wants {self.rule.phrase(plan.stated[0])}", plan.stated)
        return _Hint("answer that the person does not mind, and ask for another suggestion")


@dataclass(frozen=True)
class _Hint:
    text: str
    stated: tuple[Preference, ...] = ()
    reason: str | None = None


def parse_decision(raw: str) -> str | None:
    """accept / reject from a decision reply ({"in_list": "yes" | "no"}; the first ``{...}`` of the text is tried
    for servers that wrap it in prose or a code fence); None when it does not parse."""
    start, end = raw.find("{"), raw.rfind("}")
    try:
        value = json.loads(raw[start : end + 1]) if 0 <= start < end else None
    except ValueError:
        value = None
    answer = value.get("in_list") if isinstance(value, dict) else None
    answer = answer.strip().lower() if isinstance(answer, str) else ""
    return {"yes": "accept", "no": "reject"}.get(answer)


def parse_reply(raw: str, finish_reason: str | None = None) -> str | None:
    """The message of a reply, without a speaker label or wrapping quotes; None when it does not parse: empty, cut
    off at the token limit, or longer than ``MAX_REPLY_CHARS``."""
    if finish_reason == "length":
        return None
    text = LABELS.sub("", raw.strip()).strip().strip('"').strip()
    return text if text and len(text) <= MAX_REPLY_CHARS else None


USERS[LLMUser.name] = LLMUser
