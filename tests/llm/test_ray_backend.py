"""LLM workers as Ray actors on a local 2-CPU cluster, each holding the real SmolLM2: their answers are the
in-process model's, byte for byte (same weights, same thread count), a request has the same cache key either
way, and a worker killed in the middle of calls is restarted by Ray with nothing lost or changed."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from convrec.llm import LLMClient
from convrec.llm.affinity import affinity, current_affinity
from convrec.llm.config import LLMConfig, LocalOptions, RayOptions
from convrec.llm.factory import build_backend
from convrec.llm.types import ChatRequest

CONFIG = LLMConfig(backend="local", model="smollm2-135m", timeout_s=60,
                   local=LocalOptions(n_ctx=1024, n_threads=1), ray=RayOptions(address="local", workers=2))
TOPICS = ("ghosts", "a heist", "space", "dogs", "pirates", "a wedding", "robots", "a storm")


def requests() -> list[ChatRequest]:
    return [ChatRequest.from_prompt(f"Name one movie about {topic}.", max_tokens=16, logprobs=True, top_logprobs=2)
            for topic in TOPICS]


@pytest.fixture(scope="module")
def ray_backend(ray_cluster):
    backend = build_backend(CONFIG)
    yield backend
    backend.close()


def test_workers_answer_as_the_local_model_under_the_same_cache_key(ray_backend, smollm2):
    assert (ray_backend.backend, ray_backend.identity) == (smollm2.backend, smollm2.identity)
    assert ray_backend.parallel_contexts == 2 and LLMClient(ray_backend).parallel_contexts == 2
    # One context's requests: a batch (the first read afresh, the rest reusing its prefix), here and there.
    local = smollm2.complete_batch(requests())
    remote = LLMClient(ray_backend).complete_many(requests(), max_workers=4)
    assert [r.text for r in remote] == [r.text for r in local]
    assert [r.top_logprobs for r in remote] == [r.top_logprobs for r in local]


def test_one_affinity_key_is_one_worker_and_threads_of_complete_many_keep_it(ray_backend):
    assert {ray_backend.worker_for("dialogue-7") for _ in range(5)} == {ray_backend.worker_for("dialogue-7")}
    assert {ray_backend.worker_for(f"d{i}") for i in range(20)} == {0, 1}
    seen = []

    class Recording:
        backend, identity = "local", "recording"

        def complete(self, request):
            seen.append(current_affinity())
            return LLMClient(ray_backend).complete(request)

    with affinity("dialogue-7"):
        LLMClient(Recording()).complete_many(requests()[:3], max_workers=3)
    assert seen == ["dialogue-7"] * 3


def test_a_worker_killed_during_calls_is_restarted_and_the_answers_do_not_change(ray_backend, smollm2, ray_cluster):
    local = [answer.text for answer in smollm2.complete_batch(requests()[:4])]
    local += [answer.text for answer in smollm2.complete_batch(requests()[4:])]
    victim = ray_backend.workers[0]
    pid = ray_cluster.get(victim.pid.remote())
    client = LLMClient(ray_backend)
    answers: list = []

    keys = {ray_backend.worker_for(f"context-{n}"): f"context-{n}" for n in range(20)}  # one key per worker

    def call() -> None:  # two contexts at once, one per worker
        def context(part):
            with affinity(keys[part]):
                return client.complete_many(requests()[part * 4 : part * 4 + 4])

        with ThreadPoolExecutor(2) as pool:
            for batch in pool.map(context, (0, 1)):
                answers.extend(batch)

    calling = threading.Thread(target=call)
    calling.start()
    time.sleep(0.5)  # calls are in flight on both workers (each answer takes ~0.3-1 s)
    ray_cluster.kill(victim, no_restart=False)  # a failure injected: the worker process dies
    calling.join(timeout=120)
    assert [a.text for a in answers] == local
    assert ray_cluster.get(victim.pid.remote()) != pid  # Ray restarted it; the retried calls ran there
