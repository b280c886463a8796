"""Which requests belong together: a context key that a distributed backend routes on.

A local model keeps the prompt prefix of the last request in its cache, so the requests of one dialogue (the
pointwise re-ranker asks once per candidate, each prompt starting with the same dialogue) are cheapest when
one worker answers them all, one after another. Callers that work on several dialogues at once wrap each
dialogue's work in ``with affinity(key):``; :class:`~convrec.llm.ray_backend.RayBackend` sends every request
made inside it to the same worker. A context variable, so threads started with a copy of the context (as
:meth:`LLMClient.complete_many` starts them) carry it; a backend in one process ignores it.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar("convrec_llm_affinity", default=None)


@contextlib.contextmanager
def affinity(key: str) -> Iterator[None]:
    token = _KEY.set(key)
    try:
        yield
    finally:
        _KEY.reset(token)


def current_affinity() -> str | None:
    return _KEY.get()
