"""Errors of the LLM layer, split by what the caller should do about them.

The retry loop in :mod:`convrec.llm.client` only looks at the class: a :class:`TransientLLMError` (rate
limit, server error, timeout, dropped connection, garbled reply) may succeed if tried again; a
:class:`LLMRequestError` (bad request, unknown model, wrong key) will fail the same way every time, so
retrying it only wastes money and time.
"""

from __future__ import annotations

from convrec.errors import ConvrecError


class LLMError(ConvrecError, RuntimeError):
    """Base class: anything that went wrong while asking an LLM (an expected failure: the CLI prints it)."""


class LLMRequestError(LLMError):
    """The backend rejected the request (HTTP 4xx, invalid schema, prompt longer than the context).

    Not retried: the same request would be rejected again.
    """

    def __init__(self, message: str, status_code: int | None = None, hint: str | None = None):
        super().__init__(message, hint)
        self.status_code = status_code


class TransientLLMError(LLMError):
    """A failure that may not happen again: HTTP 429 or 5xx, a dropped connection, a garbled reply.

    ``retry_after_s`` is the delay the server asked for (``Retry-After``), when it said one.
    """

    def __init__(self, message: str, status_code: int | None = None, retry_after_s: float | None = None):
        super().__init__(message)
        self.status_code = status_code
        self.retry_after_s = retry_after_s


class LLMTimeoutError(TransientLLMError):
    """One call took longer than its ``timeout_s``."""


class LLMConnectionError(TransientLLMError):
    """The server could not be reached: connection refused, unknown host, connection dropped."""


class LLMResponseError(TransientLLMError):
    """The backend answered, but not with a usable chat completion (malformed JSON, no choices)."""


class RetriesExhaustedError(LLMError):
    """Every allowed attempt failed with a transient error; ``last_error`` is the final one."""

    def __init__(self, message: str, attempts: int, last_error: BaseException):
        super().__init__(message)
        self.attempts = attempts
        self.last_error = last_error


class LLMUnavailableError(LLMError):
    """The LLM cannot serve this run, so the run stops instead of quietly keeping the retriever's order.

    Raised when the endpoint fails the first request the response cache cannot answer (unreachable, refuses
    the key, does not know the model), or when more of a run's calls got no reply than its threshold allows
    (``rar``'s ``max_transport_failure_share``). Re-rankers never fall back on it: they let it through.
    """


class ModelNotAvailableError(LLMError):
    """A local model file is missing or cannot be assembled; the message says how to install it."""


class CacheError(LLMError):
    """The response cache cannot be used (corrupt file, locked for too long, unwritable directory)."""
