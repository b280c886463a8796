"""Alignment with its LLM feedback collected on Ray workers (a local 2-CPU cluster, SmolLM2 in each): every
round's contexts are asked at once, one per worker, and the run ends with the local run's rewards, counts and
weights, from cold and separate response caches."""

from __future__ import annotations

import torch
from test_trainer import settings, weights

from convrec.align.trainer import Aligner
from convrec.llm import LLMClient, ResponseCache
from convrec.llm.config import LLMConfig, LocalOptions, RayOptions
from convrec.llm.factory import build_backend


def test_feedback_on_ray_gives_the_local_run(movie_world, sft_run, smollm2, ray_cluster, tmp_path):
    local_client = LLMClient(smollm2, ResponseCache(tmp_path / "local.sqlite"))
    local = Aligner(movie_world, settings(sft_run, rounds=1), tmp_path / "local", llm=local_client)
    local_history = local.run()
    backend = build_backend(LLMConfig(model="smollm2-135m", timeout_s=60, local=LocalOptions(n_ctx=1024, n_threads=1),
                                      ray=RayOptions(address="local", workers=2)))
    try:
        client = LLMClient(backend, ResponseCache(tmp_path / "ray.sqlite"))
        assert client.parallel_contexts == 2
        distributed = Aligner(movie_world, settings(sft_run, rounds=1), tmp_path / "ray", llm=client)
        prefetch, started = distributed.feedback.prefetch, []

        def recording_prefetch(work):
            prefetch(work)
            started.append(len(distributed.feedback._pending))

        distributed.feedback.prefetch = recording_prefetch
        history = distributed.run()
    finally:
        backend.close()
    assert started and all(started)  # the round asked its contexts at once
    assert [h.reward for h in history] == [h.reward for h in local_history]
    assert distributed.feedback.counts == local.feedback.counts
    assert local.feedback.counts.llm_calls > 0
    for name, tensor in weights(tmp_path / "local").items():
        torch.testing.assert_close(weights(tmp_path / "ray")[name], tensor, rtol=0, atol=0)
