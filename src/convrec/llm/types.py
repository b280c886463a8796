"""The request and response of one chat completion, shared by every backend, and the :class:`LLM` protocol.

Requests are frozen pydantic models so that a request is a value: the response cache keys on its full
content (every sampling parameter included), and two equal requests are interchangeable.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Role = Literal["system", "user", "assistant"]


class ChatMessage(BaseModel):
    """One turn of the conversation sent to the model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    role: Role
    content: str


class ChatRequest(BaseModel):
    """Everything that decides what the model generates; backends translate it, never extend it.

    ``seed`` defaults to 0 so that local sampling is reproducible unless asked otherwise; with
    ``temperature`` 0 decoding is greedy. ``json_schema`` constrains the reply to JSON matching it (a
    grammar for llama.cpp, ``response_format`` for OpenAI-compatible servers). ``top_logprobs`` > 0 asks
    for that many alternatives per generated token and implies ``logprobs``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    messages: tuple[ChatMessage, ...] = Field(min_length=1)
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    seed: int | None = 0
    json_schema: dict[str, Any] | None = None
    logprobs: bool = False
    top_logprobs: int = Field(default=0, ge=0, le=20)
    stop: tuple[str, ...] = ()

    @field_validator("stop", mode="before")
    @classmethod
    def _one_stop_string(cls, value: Any) -> Any:
        return (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _top_logprobs_need_logprobs(self) -> ChatRequest:
        if self.top_logprobs > 0 and not self.logprobs:
            raise ValueError("top_logprobs > 0 needs logprobs=True (alternatives come with the logprobs)")
        return self

    @classmethod
    def from_prompt(cls, prompt: str, system: str | None = None, **options: Any) -> ChatRequest:
        """A single-turn request: an optional system message, then ``prompt`` as the user turn."""
        messages = [ChatMessage(role="system", content=system)] if system else []
        messages.append(ChatMessage(role="user", content=prompt))
        return cls(messages=tuple(messages), **options)

    def openai_messages(self) -> list[dict[str, str]]:
        return [{"role": message.role, "content": message.content} for message in self.messages]


class ChatResponse(BaseModel):
    """What came back, with the bookkeeping needed for cost accounting and debugging.

    ``top_logprobs[i]`` maps each alternative token string to its natural-log probability at generated
    position ``i`` (empty unless the request asked for logprobs). ``latency_s`` is the wall time of the call
    that produced this object: for a cache hit, the lookup. ``cached`` says whether it came from the cache.
``cached_prompt_tokens`` is how many of ``prompt_tokens`` the backend did not have to read again because
its prompt-prefix cache held them (llama.cpp's ``cache_prompt``; 0 where a backend does not say).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    top_logprobs: list[dict[str, float]] = Field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0  # of prompt_tokens, reused from the backend's prompt-prefix cache
    completion_tokens: int = 0
    cached: bool = False
    latency_s: float = 0.0
    model: str
    backend: str


@runtime_checkable
class LLM(Protocol):
    """Anything that turns a :class:`ChatRequest` into a :class:`ChatResponse` (backends and the client)."""

    def complete(self, request: ChatRequest) -> ChatResponse: ...


@runtime_checkable
class Backend(LLM, Protocol):
    """One model behind one transport, one attempt per call (``local``, ``openai``).

    ``identity`` names the exact model (weights file or endpoint and model name) for cache keys.
    """

    backend: str

    @property
    def identity(self) -> str: ...

    def close(self) -> None: ...


def top_logprobs_from_openai(content: list[Any] | None) -> list[dict[str, float]]:
    """Turn OpenAI-style ``logprobs.content`` (dicts or SDK objects) into one ``{token: logprob}`` per token.

    Two alternatives can decode to the same string (different token ids); the more likely one is kept.
    """
    positions: list[dict[str, float]] = []
    for entry in content or []:
        alternatives = _field(entry, "top_logprobs") or []
        table: dict[str, float] = {}
        for alternative in alternatives:
            token, logprob = _field(alternative, "token"), _field(alternative, "logprob")
            if token is not None and logprob is not None and logprob > table.get(token, float("-inf")):
                table[token] = float(logprob)
        if not table and _field(entry, "token") is not None:
            table[_field(entry, "token")] = float(_field(entry, "logprob"))
        positions.append(table)
    return positions


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
