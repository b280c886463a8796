"""The LLM path of ``analyze_sentiment``: the real SmolLM2 model on a real ReDial dialogue, strict parsing of
its answer, and fallbacks to the rule label that are counted by reason."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

import worlds
from convrec.agent.sentiment import (
    ANSWER_SCHEMA,
    LLMAnswer,
    LLMOptions,
    LLMSentiment,
    RuleSentiment,
    SentimentAnalyzer,
    parse_answer,
)
from convrec.catalog.vocabulary import BOOKS, MOVIES
from convrec.data.dataset import CRSDataset
from convrec.data.model import Turn
from convrec.llm.errors import LLMRequestError, LLMUnavailableError
from convrec.llm.types import ChatRequest, ChatResponse

TURNS = [
    Turn("seeker", "I liked The Farmhouse but hated The Lighthouse.", ("horror0", "horror1")),
    Turn("recommender", "Have you seen The Motel?", ("horror5",)),
    Turn("seeker", "Nope, never seen it."),
]


@pytest.fixture(scope="module")
def rules() -> RuleSentiment:
    return RuleSentiment(worlds.catalog(), MOVIES)


@dataclass
class UnparsableLLM:
    """A failure-injecting fake: answers every request in prose, never in the JSON asked for."""

    text: str = 'Sure! The Seeker liked it. {"liked": "yes"}'
    calls: int = 0

    def complete(self, request: ChatRequest) -> ChatResponse:
        self.calls += 1
        return ChatResponse(text=self.text, model="unparsable", backend="fake")


@dataclass
class ScriptedLLM:
    """A fake that gives one fixed, well-formed answer and keeps the requests it was sent."""

    text: str
    requests: list[ChatRequest]

    def complete(self, request: ChatRequest) -> ChatResponse:
        self.requests.append(request)
        return ChatResponse(text=self.text, model="scripted", backend="fake")


class RaisingLLM:
    def __init__(self, error: Exception):
        self.error = error

    def complete(self, request: ChatRequest) -> ChatResponse:
        raise self.error


@pytest.mark.parametrize(("text", "expected"), [
    ('{"liked": "yes", "seen": "no"}', LLMAnswer(liked="yes", seen="no")),
    ('  {"seen": "unsure", "liked": "no"}\n', LLMAnswer(liked="no", seen="unsure")),
    ('{"liked": "yes"}', None),  # a field missing
    ('{"liked": "yes", "seen": "no", "why": "x"}', None),  # a field too many
    ('{"liked": "maybe", "seen": "no"}', None),  # a value outside the three
    ('{"liked": true, "seen": "no"}', None),
    ('{"liked": "yes", "seen": "no"} because', None),  # text after the object
    ('["yes", "no"]', None),
    ("", None),
    ("Yes, they liked it.", None),
])
def test_only_the_exact_answer_format_parses(text: str, expected: LLMAnswer | None):
    assert parse_answer(text) == expected


def test_unparsable_answers_fall_back_to_the_rule_labels_and_are_counted(rules: RuleSentiment):
    fake = UnparsableLLM()
    result = LLMSentiment(fake, rules).analyze(TURNS)
    ruled = rules.analyze(TURNS)
    assert fake.calls == result.llm_calls == 3
    assert result.fallbacks == {"unparsable": 3}
    for fallen, rule in zip(result.items, ruled.items, strict=True):
        assert fallen.decided_by == "rule-fallback" and fallen.fallback_reason == "unparsable"
        assert (fallen.label, fallen.seen, fallen.evidence) == (rule.label, rule.seen, rule.evidence)
    assert [i.label for i in result.items] == ["liked", "disliked", "neutral"]


def test_failed_calls_fall_back_too_but_an_unavailable_backend_is_raised(rules: RuleSentiment):
    result = LLMSentiment(RaisingLLM(LLMRequestError("injected: prompt too long")), rules).analyze(TURNS)
    assert result.fallbacks == {"llm-error": 3}
    assert all(i.fallback_reason == "llm-error: LLMRequestError" for i in result.items)
    with pytest.raises(LLMUnavailableError):
        LLMSentiment(RaisingLLM(LLMUnavailableError("no server")), rules).analyze(TURNS)


def test_a_parsed_answer_decides_and_the_prompt_holds_the_item_and_the_domain_verb(rules: RuleSentiment):
    fake = ScriptedLLM('{"liked": "no", "seen": "yes"}', [])
    result = LLMSentiment(fake, rules).analyze(TURNS, only=["horror5"])
    motel = result.get("horror5")
    assert motel is not None and (motel.label, motel.seen, motel.decided_by) == ("disliked", "yes", "llm")
    # the items not asked about keep their rule labels
    assert result.get("horror0").decided_by == "rule" and result.get("horror0").label == "liked"
    assert result.llm_calls == 1 and result.fallbacks == {}
    request = fake.requests[0]
    assert request.json_schema == ANSWER_SCHEMA and request.temperature == 0.0
    prompt = request.messages[-1].content
    assert "The Motel (2005)" in prompt and "Nope, never seen it." in prompt and "seen it?" in prompt
    # the turns that do not name the item are left out of its window
    assert "Farmhouse" not in prompt
    books = RuleSentiment(worlds.catalog(), BOOKS)
    book_request = LLMSentiment(fake, books).request(TURNS, "horror5")
    assert "book" in book_request.messages[-1].content and "read it?" in book_request.messages[-1].content
    unconstrained = LLMSentiment(fake, rules, LLMOptions(constrained=False)).request(TURNS, "horror5")
    assert unconstrained.json_schema is None


def test_smollm2_answers_about_every_item_of_a_real_redial_dialogue(smollm2, redial: CRSDataset):
    """The real 135M model with the JSON grammar: every answer parses (no fallback), one call per item."""
    dialogue = next(d for d in redial.dialogues if d.dialogue_id == "2248")
    turns = dialogue.turns[:7]  # Baywatch, Bad Moms, The House: three items, three calls
    analyzer = SentimentAnalyzer(redial.catalog, MOVIES, llm=smollm2)
    result = analyzer.analyze(turns)
    assert [i.item_id for i in result.items] == ["114341", "138962", "188779"]
    assert result.llm_calls == 3 and result.fallbacks == {}
    assert all(i.decided_by == "llm" for i in result.items)
    assert all(i.label in ("liked", "disliked", "neutral") and i.seen in ("yes", "no", "unknown")
               for i in result.items)
