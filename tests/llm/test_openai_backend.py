"""The ``openai`` backend through the official SDK against a real OpenAI-compatible server on loopback.

The server is llama.cpp's own HTTP server (embedded by xllamacpp) serving SmolLM2: the session's model
listens on 127.0.0.1 on a free port, behind a random API key.
"""

from __future__ import annotations

import json

import pytest

from convrec.llm import ChatRequest, LLMClient, LLMConfig, LLMRequestError, RetryPolicy, build_llm
from convrec.llm.openai_backend import OpenAICompatibleLLM

pytestmark = pytest.mark.slow

MOVIE_QUESTION = "Name one good science-fiction movie."


@pytest.fixture
def over_http(smollm2):
    backend = OpenAICompatibleLLM("smollm2-135m", smollm2.http_base_url, smollm2.http_api_key, timeout_s=60)
    assert smollm2.http_base_url.startswith("http://127.0.0.1:")
    yield backend
    backend.close()


def test_text_matches_the_in_process_backend(over_http, smollm2):
    request = ChatRequest.from_prompt(MOVIE_QUESTION, max_tokens=12)
    response = over_http.complete(request)
    assert response.backend == "openai" and response.text.strip()
    assert response.prompt_tokens > 5 and response.completion_tokens == 12
    assert response.text == smollm2.complete(request).text  # same model, greedy: same words


def test_logprobs_come_back_through_the_sdk(over_http):
    response = over_http.complete(
        ChatRequest.from_prompt(MOVIE_QUESTION, max_tokens=4, logprobs=True, top_logprobs=3)
    )
    assert len(response.top_logprobs) == 4
    assert all(1 <= len(position) <= 3 and max(position.values()) <= 0 for position in response.top_logprobs)
    assert "".join(max(position, key=position.get) for position in response.top_logprobs) == response.text


def test_json_schema_as_response_format(over_http, movie_schema, check_movie):
    request = ChatRequest.from_prompt(
        MOVIE_QUESTION + " Answer in JSON.", max_tokens=60, json_schema=movie_schema
    )
    response = over_http.complete(request)
    check_movie(json.loads(response.text))


def test_wrong_api_key_is_a_request_error_and_not_retried(smollm2):
    backend = OpenAICompatibleLLM("smollm2-135m", smollm2.http_base_url, "not-the-key", timeout_s=30)
    client = LLMClient(backend, retry=RetryPolicy(max_retries=3, base_s=0.01))
    with pytest.raises(LLMRequestError, match="HTTP 401"):
        client.complete(ChatRequest.from_prompt("Say hello.", max_tokens=2))
    assert client.usage.backend_calls == 1
    client.close()


def test_build_llm_reads_the_key_from_the_named_environment_variable(smollm2, tmp_path, monkeypatch):
    monkeypatch.setenv("CONVREC_TEST_LLM_KEY", smollm2.http_api_key)
    config = LLMConfig(
        backend="openai",
        model="smollm2-135m",
        base_url=smollm2.http_base_url,
        api_key_env="CONVREC_TEST_LLM_KEY",
        cache_path=tmp_path / "cache.sqlite",
        timeout_s=60,
    )
    assert smollm2.http_api_key not in config.model_dump_json()  # the config names the variable only
    with build_llm(config) as llm:
        request = ChatRequest.from_prompt("Say hello.", max_tokens=4)
        first, second = llm.complete(request), llm.complete(request)
    assert not first.cached and second.cached and second.text == first.text
    assert llm.usage.backend_calls == 1
