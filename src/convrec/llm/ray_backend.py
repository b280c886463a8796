"""LLM calls on a Ray cluster: each worker a Ray actor holding a backend (a local model, or a client to an
OpenAI-compatible endpoint such as a vLLM server), the response cache kept by the driver.

``llm.ray = {address = "auto", workers = 4}`` (or ``--ray-address auto`` on ``convrec align``, ``eval`` and
``simulate``) puts this backend under the usual :class:`~convrec.llm.client.LLMClient`: the client answers
what its SQLite cache knows and sends only the rest here, and the actors never open the cache (SQLite refuses
network file systems, and a worker that dies holds nothing that is lost). The backend name and model identity
are the workers' own, so a request has the same cache key whether a local run or a Ray run asked it: the two
share a cache and give the same numbers.

Routing: requests made under :func:`~convrec.llm.affinity.affinity` go to one worker per key (a dialogue's
requests share its prompt prefix, which that worker's llama.cpp keeps); others go round-robin. Failures: the
actors are created with ``max_restarts=-1`` and ``max_task_retries=-1``, so a worker that dies is restarted by
Ray and its calls re-run there; a call Ray gives up on becomes a transient error that the client retries.

Without ``llm.ray`` nothing here is imported and no Ray is started. ``address = "local"`` starts a private
single-node cluster in this process (``cpus`` CPUs), for trying it on one machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import threading
from typing import Any

from convrec.errors import ConfigError
from convrec.llm.affinity import current_affinity
from convrec.llm.config import LLMConfig, RayOptions
from convrec.llm.errors import LLMConnectionError, LLMRequestError, LLMUnavailableError
from convrec.llm.types import ChatRequest, ChatResponse


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("llm.ray needs Ray: pip install 'convrec[ray]'") from None
    return ray


def connect(options: RayOptions) -> bool:
    """Join (or start) the cluster; True when this call started it (and so should shut it down)."""
    ray = _ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if options.address == "local":
            ray.init(num_cpus=options.cpus, **kwargs)
        else:
            ray.init(address=options.address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise LLMUnavailableError(f"could not reach the Ray cluster at {options.address!r}: {exc}",
                                  hint="start one with `ray start --head`, or check --ray-address") from exc
    return True


class _Worker:
    """The actor: builds the backend from the config in its own process (a model loads where it runs)."""

    def __init__(self, config: dict[str, Any]):
        from convrec.llm.factory import build_backend

        self.backend = build_backend(LLMConfig.model_validate(config))

    def describe(self) -> tuple[str, str]:
        return self.backend.backend, self.backend.identity

    def complete(self, request: dict[str, Any]) -> dict[str, Any]:
        return self.backend.complete(ChatRequest.model_validate(request)).model_dump(mode="json")

    def complete_batch(self, requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A context's requests in order (the backend's own batch where it has one); a refused request comes
        back as ``{"refused": message}`` in its place."""
        parsed = [ChatRequest.model_validate(r) for r in requests]
        batch = getattr(self.backend, "complete_batch", None)
        if batch is not None:
            answers = batch(parsed)
        else:
            answers = []
            for request in parsed:
                try:
                    answers.append(self.backend.complete(request))
                except LLMRequestError as exc:
                    answers.append(exc)
        return [{"refused": str(a)} if isinstance(a, Exception) else a.model_dump(mode="json") for a in answers]

    def pid(self) -> int:
        import os

        return os.getpid()


class RayBackend:
    """A :class:`~convrec.llm.types.Backend` whose calls run on Ray actors."""

    def __init__(self, config: LLMConfig, options: RayOptions):
        ray = _ray()
        self.ray = ray
        self.options = options
        self.started_cluster = connect(options)
        worker_config = config.model_copy(update={"ray": None, "cache_path": None}).model_dump(mode="json")
        actor = ray.remote(max_restarts=-1, max_task_retries=-1)(_Worker)
        self.workers = [actor.options(num_cpus=options.cpus_per_worker).remote(worker_config)
                        for _ in range(options.workers)]
        try:
            described = ray.get([w.describe.remote() for w in self.workers])
        except Exception as exc:
            self.close()
            raise LLMUnavailableError(f"the Ray LLM workers could not start: {exc}") from exc
        if len(set(described)) != 1:
            self.close()
            raise ConfigError(f"the Ray LLM workers answer with different models: {sorted(set(described))}")
        self.backend, self._identity = described[0]
        self._next = itertools.count()
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        return self._identity

    @property
    def parallel_contexts(self) -> int:
        """How many dialogues are worth working on at once: one per worker."""
        return len(self.workers)

    def worker_for(self, key: str | None) -> int:
        if key is None:
            with self._lock:
                return next(self._next) % len(self.workers)
        # blake2b, not crc32: a CRC is linear, so keys that differ in one character ("d1", "d2") often agree mod 2
        return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") % len(self.workers)

    def complete(self, request: ChatRequest) -> ChatResponse:
        worker = self.workers[self.worker_for(current_affinity())]
        try:
            reply = self.ray.get(worker.complete.remote(request.model_dump(mode="json")))
        except self.ray.exceptions.RayError as exc:
            # Ray has already restarted the actor and retried; one more try is the client's retry policy's.
            raise LLMConnectionError(f"Ray LLM worker failed: {type(exc).__name__}: {exc}") from exc
        return ChatResponse.model_validate(reply)

    def complete_batch(self, requests: list[ChatRequest]) -> list[ChatResponse | LLMRequestError]:
        """One context's requests as one task on one worker (its affinity key's, else the next): a worker that
        dies mid-batch has the whole batch re-run by Ray on its restarted self, so the answers are those of
        an undisturbed run (see :meth:`LocalLLM.complete_batch`)."""
        worker = self.workers[self.worker_for(current_affinity())]
        try:
            replies = self.ray.get(worker.complete_batch.remote([r.model_dump(mode="json") for r in requests]))
        except self.ray.exceptions.RayError as exc:
            raise LLMConnectionError(f"Ray LLM worker failed: {type(exc).__name__}: {exc}") from exc
        return [LLMRequestError(r["refused"]) if "refused" in r else ChatResponse.model_validate(r) for r in replies]

    def close(self) -> None:
        for worker in getattr(self, "workers", []):
            with contextlib.suppress(Exception):  # a worker already gone needs no killing
                self.ray.kill(worker)
        self.workers = []
        if self.started_cluster and self.ray.is_initialized():
            self.ray.shutdown()
