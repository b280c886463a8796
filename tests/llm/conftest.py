"""Fixtures of the LLM tests. The real SmolLM2 model (``smollm2``) lives in ``tests/conftest.py``: the
re-ranker tests share the same loaded instance. It also serves loopback HTTP, which the ``openai`` backend
tests use as a real OpenAI-compatible server.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

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
