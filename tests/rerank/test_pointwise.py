"""Pointwise Yes/No scoring: reading P(Yes) from logprobs (by hand), then with the real SmolLM2."""

from __future__ import annotations

import math

import numpy as np
import pytest

from convrec.llm import ChatResponse, LLMClient, ResponseCache
from convrec.rerank.pointwise import PointwiseReranker, answer_word, yes_probability

CANDIDATES = ["insidious", "toystory", "notebook", "alien"]
SCORES = np.array([4.0, 3.0, 2.0, 1.0])


def reply(first_token: dict[str, float] | None = None, text: str = "") -> ChatResponse:
    return ChatResponse(text=text, top_logprobs=[first_token] if first_token else [], model="m", backend="b")


@pytest.mark.parametrize("token", ["Yes", " yes", "YES", "Yes.", "▁Yes", "\nyes"])
def test_every_spelling_of_yes_counts(token):
    assert answer_word(token) == "yes"


def test_yes_probability_sums_spellings_and_ignores_other_tokens():
    probability = yes_probability(reply({"Yes": math.log(0.3), " yes": math.log(0.1), "No": math.log(0.2),
                                         "The": math.log(0.4)}))
    assert probability == pytest.approx(0.4 / 0.6)


def test_no_yes_or_no_is_unknown_and_text_decides_without_logprobs():
    assert yes_probability(reply({"The": -0.1, "Maybe": -2.0})) is None
    assert yes_probability(reply(text="Yes, definitely")) == 1.0
    assert yes_probability(reply(text="no.")) == 0.0
    assert yes_probability(reply(text="")) is None


def test_a_failing_llm_keeps_the_retriever_order_and_says_so(catalog, horror_sample, failing_llm):
    ranking = PointwiseReranker(failing_llm, catalog).rerank(horror_sample, CANDIDATES, SCORES)
    assert ranking.item_ids == tuple(CANDIDATES) and failing_llm.calls == len(CANDIDATES)
    assert ranking.diagnostics.failed_calls == 4 and ranking.diagnostics.llm_calls == 0
    assert ranking.diagnostics.fallback.startswith("every LLM call failed (LLMRequestError")


def test_answers_without_yes_or_no_are_neutral_and_counted(catalog, horror_sample, garbage_llm):
    ranking = PointwiseReranker(garbage_llm, catalog).rerank(horror_sample, CANDIDATES, SCORES)
    assert ranking.item_ids == tuple(CANDIDATES)
    assert ranking.diagnostics.neutral_scores == 4 and ranking.diagnostics.fallback is not None
    assert np.all(ranking.llm_scores == 0.5)


def test_requests_put_dialogue_and_question_before_the_candidate(catalog, horror_sample):
    requests = PointwiseReranker(None, catalog).requests(horror_sample, CANDIDATES)  # type: ignore[arg-type]
    users = [request.messages[-1].content for request in requests]
    shared = users[0][: next(i for i, chars in enumerate(zip(*users, strict=False)) if len(set(chars)) > 1)]
    assert "The Conjuring" in shared and "Answer Yes or No" in shared  # dialogue and question come first
    assert len({request.messages[:-1] for request in requests}) == 1  # the same system message
    for item_id, user in zip(CANDIDATES, users, strict=True):
        tail = user[len(shared) :]
        assert catalog.get(item_id).title[1:] in tail and len(tail) < 400  # only the candidate differs
    assert all(r.max_tokens == 1 and r.temperature == 0 and r.logprobs and r.top_logprobs >= 5 for r in requests)


@pytest.mark.slow
def test_smollm2_scores_are_p_yes_and_cached_the_second_time(smollm2, catalog, horror_sample, tmp_path):
    client = LLMClient(smollm2, ResponseCache(tmp_path / "llm.sqlite"))
    reranker = PointwiseReranker(client, catalog, fusion_weight=1.0)
    first = reranker.rerank(horror_sample, CANDIDATES, SCORES)
    # each score is P(Yes) / (P(Yes) + P(No)) of the model's first token, read here from its raw replies (the
    # cache's: the same requests), and with weight 1 the candidates come in that order
    expected = {}
    for item_id, request in zip(CANDIDATES, reranker.requests(horror_sample, CANDIDATES), strict=True):
        words = {"yes": 0.0, "no": 0.0}
        for token, logprob in client.complete(request).top_logprobs[0].items():
            word = token.strip(" \t\n.▁Ġ").lower()
            if word in words:
                words[word] += math.exp(logprob)
        expected[item_id] = words["yes"] / (words["yes"] + words["no"])
    assert dict(zip(first.item_ids, first.llm_scores, strict=True)) == pytest.approx(expected)
    assert list(first.item_ids) == sorted(CANDIDATES, key=lambda item_id: -expected[item_id])
    # the model disagrees with the retriever here, so a re-ranker that kept the retriever's order fails above
    assert list(first.item_ids) != CANDIDATES
    assert first.diagnostics.llm_calls == 4 and first.diagnostics.cache_hits == 0
    assert first.diagnostics.prompt_tokens > 4 * 50 and first.diagnostics.completion_tokens == 4
    assert first.diagnostics.neutral_scores < 4 and first.diagnostics.fallback is None

    again = reranker.rerank(horror_sample, CANDIDATES, SCORES)
    assert again.item_ids == first.item_ids and np.allclose(again.llm_scores, first.llm_scores)
    assert again.diagnostics.cache_hits == again.diagnostics.llm_calls == 4
    assert again.diagnostics.prompt_tokens == 0
    client.cache.close()
