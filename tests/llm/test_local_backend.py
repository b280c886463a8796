"""The ``local`` backend with the real SmolLM2 model: text, determinism, logprobs, JSON, timeouts, cache."""

from __future__ import annotations

import json
import math
import time

import pytest

from convrec.llm import ChatRequest, LLMClient, LLMRequestError, LLMTimeoutError, ResponseCache, RetryPolicy

pytestmark = pytest.mark.slow

MOVIE_QUESTION = "Name one good science-fiction movie."


def test_chat_completion_returns_text(smollm2):
    response = smollm2.complete(ChatRequest.from_prompt(MOVIE_QUESTION, max_tokens=12))
    assert response.text.strip()
    assert response.backend == "local" and response.model == "smollm2-135m"
    assert response.prompt_tokens > 5 and 1 <= response.completion_tokens <= 12
    assert response.finish_reason in {"length", "stop"}
    assert not response.cached and response.latency_s > 0


def test_temperature_zero_is_deterministic(smollm2):
    request = ChatRequest.from_prompt(MOVIE_QUESTION, max_tokens=12, logprobs=True, top_logprobs=2)
    first = smollm2.complete(request)
    smollm2.complete(ChatRequest.from_prompt("Say hello.", max_tokens=4))  # other work in between
    second = smollm2.complete(request)
    assert second.text == first.text
    for a, b in zip(first.top_logprobs, second.top_logprobs, strict=True):
        assert a.keys() == b.keys()
        assert all(math.isclose(a[token], b[token], abs_tol=1e-3) for token in a)


def test_seeded_sampling_repeats_and_the_seed_matters(smollm2):
    def sample(seed: int) -> str:
        request = ChatRequest.from_prompt(
            "Write a sentence about cats.", max_tokens=16, temperature=1.0, seed=seed
        )
        return smollm2.complete(request).text

    assert sample(7) == sample(7)
    assert len({sample(seed) for seed in (1, 2, 3)}) > 1


def test_logprobs_and_top_logprobs(smollm2):
    response = smollm2.complete(
        ChatRequest.from_prompt(MOVIE_QUESTION, max_tokens=5, logprobs=True, top_logprobs=4)
    )
    assert len(response.top_logprobs) == response.completion_tokens == 5
    for position in response.top_logprobs:
        assert 1 <= len(position) <= 4
        assert all(logprob <= 0 for logprob in position.values())
        assert sum(math.exp(logprob) for logprob in position.values()) <= 1 + 1e-4
    # Greedy decoding picks the most likely token at every position.
    assert "".join(max(position, key=position.get) for position in response.top_logprobs) == response.text


def test_json_schema_constrains_the_reply(smollm2, movie_schema, check_movie):
    response = smollm2.complete(
        ChatRequest.from_prompt(MOVIE_QUESTION + " Answer in JSON.", max_tokens=60, json_schema=movie_schema)
    )
    assert response.finish_reason == "stop", response.text
    check_movie(json.loads(response.text))


def test_prompt_longer_than_the_context_is_a_request_error_not_retried(smollm2):
    client = LLMClient(smollm2, retry=RetryPolicy(max_retries=3, base_s=0.01))
    with pytest.raises(LLMRequestError, match="context"):
        client.complete(ChatRequest.from_prompt("word " * 1500, max_tokens=4))
    assert client.usage.backend_calls == 1 and client.usage.failures == 1


def test_timeout_stops_generation_and_frees_the_slot(smollm2, monkeypatch):
    monkeypatch.setattr(smollm2, "timeout_s", 0.3)
    started = time.monotonic()
    with pytest.raises(LLMTimeoutError, match="timeout_s=0.3"):
        smollm2.complete(
            ChatRequest.from_prompt("Tell me a very long story about a dragon.", max_tokens=1000)
        )
    assert time.monotonic() - started < 10  # stopped, not run to 1000 tokens
    monkeypatch.setattr(smollm2, "timeout_s", 60)
    assert smollm2.complete(ChatRequest.from_prompt("Say hello.", max_tokens=3)).text


def test_cache_hit_is_fast_and_survives_reopening(smollm2, tmp_path):
    db = tmp_path / "llm-cache.sqlite"
    request = ChatRequest.from_prompt(MOVIE_QUESTION, max_tokens=16, logprobs=True, top_logprobs=2)
    cache = ResponseCache(db)
    client = LLMClient(smollm2, cache)
    generated = client.complete(request)
    hit = client.complete(request)
    assert not generated.cached and hit.cached
    assert hit.text == generated.text and hit.top_logprobs == generated.top_logprobs
    assert hit.latency_s < generated.latency_s / 10
    assert client.usage.calls == 2 and client.usage.cache_hits == 1 and client.usage.backend_calls == 1
    assert client.usage.completion_tokens == generated.completion_tokens  # hits cost nothing
    cache.close()

    reopened = LLMClient(smollm2, ResponseCache(db))
    again = reopened.complete(request)
    assert again.cached and again.text == generated.text
    assert reopened.usage.backend_calls == 0
    reopened.cache.close()


def test_complete_many_keeps_order_and_asks_duplicates_once(smollm2):
    client = LLMClient(smollm2, max_concurrency=2)
    prompts = ["Say hello.", "Say goodbye.", "Say hello."]
    responses = client.complete_many(
        [ChatRequest.from_prompt(p, max_tokens=6) for p in prompts], max_workers=3
    )
    assert responses[0].text == responses[2].text
    assert client.usage.calls == 3 and client.usage.backend_calls == 2


def test_prompt_prefix_cache_is_reported(smollm2):
    """A second question sharing a long prefix reads only its own tokens; the response says how many were reused."""
    prefix = "Here is a long shared context about films. " * 8
    first = smollm2.complete(ChatRequest.from_prompt(prefix + "Is Alien a horror film?", max_tokens=1))
    second = smollm2.complete(ChatRequest.from_prompt(prefix + "Is Up an animated film?", max_tokens=1))
    assert first.prompt_tokens > 60 and second.prompt_tokens > 60
    assert second.cached_prompt_tokens >= 60 and second.cached_prompt_tokens < second.prompt_tokens
