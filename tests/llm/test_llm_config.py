"""Typed configs and requests, the retry policy's arithmetic, and the factory's checks (no model needed)."""

from __future__ import annotations

import email.utils
import random
import time

import pytest
from pydantic import ValidationError

from convrec.llm import (
    ChatRequest,
    LLMConfig,
    LLMRequestError,
    Prices,
    RetriesExhaustedError,
    RetryPolicy,
    TransientLLMError,
    build_llm,
)
from convrec.llm.retry import call_with_retries, parse_retry_after


def test_request_validation():
    request = ChatRequest.from_prompt("hi", system="Be brief.", stop="\n")
    assert [m.role for m in request.messages] == ["system", "user"] and request.stop == ("\n",)
    assert request.seed == 0 and request.temperature == 0.0  # reproducible unless asked otherwise
    with pytest.raises(ValidationError, match="top_logprobs > 0 needs logprobs=True"):
        ChatRequest.from_prompt("hi", top_logprobs=3)
    with pytest.raises(ValidationError):
        ChatRequest(messages=())
    with pytest.raises(ValidationError):
        ChatRequest.from_prompt("hi", max_tokens=0)
    with pytest.raises(ValidationError):
        ChatRequest.from_prompt("hi", temprature=0.5)  # typos are errors, not silently ignored


def test_config_defaults_and_checks():
    config = LLMConfig()
    assert config.backend == "local" and config.model_name == "qwen2.5-coder-1.5b"
    assert config.local.n_threads is None and config.cache_path is None  # None: chosen where it runs
    with pytest.raises(ValidationError, match="needs model"):
        LLMConfig(backend="openai")
    with pytest.raises(ValidationError):
        LLMConfig(backend="anthropic")
    with pytest.raises(ValidationError):
        LLMConfig(api_key="sk-secret")  # keys never live in a config: only the variable's name does
    parsed = LLMConfig.model_validate(
        {
            "backend": "openai",
            "model": "gpt-4o-mini",
            "prices": {"prompt_usd_per_1m": 0.15, "completion_usd_per_1m": 0.6},
        }
    )
    assert parsed.prices.cost_usd(1_000_000, 1_000_000) == pytest.approx(0.75)


def test_build_llm_names_a_missing_key_variable(monkeypatch):
    monkeypatch.delenv("CONVREC_NO_SUCH_KEY", raising=False)
    config = LLMConfig(backend="openai", model="gpt-4o-mini", api_key_env="CONVREC_NO_SUCH_KEY")
    with pytest.raises(LLMRequestError, match="environment variable CONVREC_NO_SUCH_KEY, which is not set"):
        build_llm(config)


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    policy = RetryPolicy(max_retries=10, base_s=0.5, max_s=4.0)
    rng = random.Random(0)
    for retry_number, full in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (8, 4.0)]:
        delays = [policy.delay_s(retry_number, None, rng) for _ in range(200)]
        assert full / 2 <= min(delays) and max(delays) <= full
        assert max(delays) - min(delays) > full / 4  # jittered, not lock-step
    assert policy.delay_s(1, retry_after_s=3.0, rng=rng) == 3.0
    assert RetryPolicy(max_retry_after_s=10).delay_s(1, retry_after_s=3600, rng=rng) == 10


def test_retry_after_headers():
    assert parse_retry_after({"Retry-After": "2"}) == 2.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after({"Retry-After": soon}) <= 31
    assert parse_retry_after({}) is None and parse_retry_after({"Retry-After": "soon"}) is None


def test_retry_loop_is_bounded_and_skips_request_errors():
    waits: list[float] = []
    attempts = []

    def always_busy():
        attempts.append(1)
        raise TransientLLMError("HTTP 503", status_code=503)

    with pytest.raises(RetriesExhaustedError, match="gave up after 4 attempts") as caught:
        call_with_retries(always_busy, RetryPolicy(max_retries=3, base_s=1.0), "test", sleep=waits.append)
    assert len(attempts) == 4 and len(waits) == 3 and caught.value.attempts == 4
    assert waits[0] <= 1.0 <= waits[2]  # the fake sleep records the waits: 0.5-1, 1-2, 2-4 s

    def rejected():
        attempts.append(1)
        raise LLMRequestError("HTTP 400", status_code=400)

    attempts.clear()
    with pytest.raises(LLMRequestError):
        call_with_retries(rejected, RetryPolicy(max_retries=3), "test", sleep=waits.append)
    assert len(attempts) == 1


def test_prices_are_per_million_tokens():
    assert Prices(prompt_usd_per_1m=1.0, completion_usd_per_1m=2.0).cost_usd(500, 250) == pytest.approx(0.001)
