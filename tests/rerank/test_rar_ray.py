"""rar's evaluation with its LLM on Ray workers (a local 2-CPU cluster, the real SmolLM2 in each) gives the
local run's scores bit for bit, from cold and separate response caches, even when a worker is killed while
the cache cannot answer; the samples are re-ranked two at a time, each on one worker."""

from __future__ import annotations

import threading

import numpy as np

from convrec.llm import LLMClient, ResponseCache
from convrec.llm.config import LLMConfig, LocalOptions, RayOptions
from convrec.llm.factory import build_backend
from convrec.rerank.pipeline import RAR, RARConfig
from worlds import FAST_LRUREC

LOCAL = LocalOptions(n_ctx=1024, n_threads=1)


def test_rar_on_ray_scores_exactly_as_the_local_run_despite_a_killed_worker(world, splits, lrurec_run, smollm2,
                                                                           ray_cluster, tmp_path):
    train, _, test = splits
    config = RARConfig(retriever="lrurec", checkpoint=str(lrurec_run), retriever_options=FAST_LRUREC, k=4,
                       fusion_weight=1.0)
    samples = [sample.view() for sample in test.samples[:8]]  # 32 questions: both workers busy, a kill mid-run
    local = RAR(world.catalog, config, llm=LLMClient(smollm2, ResponseCache(tmp_path / "local.sqlite")))
    local.fit(train)
    expected = local.score(samples)

    backend = build_backend(LLMConfig(model="smollm2-135m", timeout_s=60, local=LOCAL,
                                      ray=RayOptions(address="local", workers=2)))
    try:
        client = LLMClient(backend, ResponseCache(tmp_path / "ray.sqlite"))
        distributed = RAR(world.catalog, config, llm=client)
        distributed.fit(train)
        # A failure injected once calls are under way: one worker process dies and Ray restarts it.
        killer = threading.Timer(1.0, lambda: ray_cluster.kill(backend.workers[1], no_restart=False))
        killer.start()
        got = distributed.score(samples)
        killer.join()
        np.testing.assert_array_equal(got, expected)
        # Every answer was the model's (cold cache), not a fallback. Two samples in flight at once may both
        # ask a question that the local run, one sample at a time, found in its cache: more real calls, same bytes.
        assert distributed.stats_.to_json()["fallbacks"] == 0 and distributed.stats_.to_json()["llm_real_calls"] >= \
            local.stats_.to_json()["llm_real_calls"] > 0
        assert client.usage.calls == len(samples) * 4
    finally:
        backend.close()
