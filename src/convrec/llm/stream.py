"""Stream the text a model writes for the person, piece by piece, to whoever is showing it.

Two parties decide together, so that neither has to thread a callback through every layer between them:

- the **consumer** (the HTTP API's streamed message endpoint) says where text goes, for everything run in its
  context: ``with stream_text_to(on_text, on_reset): engine.turn(...)``;
- the **producer** says which model call writes text for the person (the reply, not a re-ranker's JSON):
  ``with text_for_the_person(): llm.complete(request)``.

Only a call inside both streams. A backend that can stream (``local``; ``openai`` with ``stream=True``) hands
each piece to :func:`active_sink` as it arrives; the :class:`~convrec.llm.client.LLMClient` sends a reply that
did not stream (a cache hit, a request another thread was already making) whole, once. A retried attempt
calls ``on_reset`` first: what was streamed before is void. Context variables are per thread and per asyncio
task, so concurrent turns never see each other's sink.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar


class TextSink:
    """Where one context's text goes; counts what it was given since the last reset."""

    def __init__(self, on_text: Callable[[str], None], on_reset: Callable[[], None] | None = None):
        self._on_text = on_text
        self._on_reset = on_reset
        self.characters = 0

    def __call__(self, piece: str) -> None:
        if piece:
            self.characters += len(piece)
            self._on_text(piece)

    def reset(self) -> None:
        """What was sent is void (a failed attempt's partial text); the next piece starts again."""
        if self.characters and self._on_reset is not None:
            self._on_reset()
        self.characters = 0


_CONSUMER: ContextVar[TextSink | None] = ContextVar("convrec_text_sink", default=None)
_FOR_THE_PERSON: ContextVar[bool] = ContextVar("convrec_text_for_the_person", default=False)


@contextmanager
def stream_text_to(on_text: Callable[[str], None],
                   on_reset: Callable[[], None] | None = None) -> Iterator[TextSink]:
    """Text written for the person by model calls in this context goes to ``on_text`` as it is written."""
    sink = TextSink(on_text, on_reset)
    token = _CONSUMER.set(sink)
    try:
        yield sink
    finally:
        _CONSUMER.reset(token)


@contextmanager
def text_for_the_person() -> Iterator[None]:
    """The model calls in this block write text the person reads (streamed if a consumer asked for it)."""
    token = _FOR_THE_PERSON.set(True)
    try:
        yield
    finally:
        _FOR_THE_PERSON.reset(token)


def active_sink() -> TextSink | None:
    """The sink of the model call being made now, or None when its text is not to be streamed."""
    return _CONSUMER.get() if _FOR_THE_PERSON.get() else None
