"""``convrec simulate`` with the llm user's calls on Ray workers (a local 2-CPU cluster, the real SmolLM2 in
each): two episodes at once, each episode's calls on one worker (its affinity key), give the transcripts of
the local run one episode at a time, from cold and separate response caches, even when a worker is killed
while calls are under way. llama.cpp's prompt-prefix reuse is off on both sides: it makes a near-tied greedy
token depend on what the slot served before, which differs between one process and two workers."""

from __future__ import annotations

import json
import threading

import pytest

from convrec.llm import LLMClient, ResponseCache
from convrec.llm.config import LLMConfig, LocalOptions, RayOptions
from convrec.llm.factory import build_backend
from convrec.llm.local import LocalLLM
from convrec.llm.models import resolve_local_model
from convrec.retrieval.base import build_recommender
from convrec.simulate.runner import SimulationConfig, simulate
from convrec.simulate.system import RankingSystem

LOCAL = LocalOptions(n_ctx=1024, n_threads=1, cache_prompt=False)
CONFIG = SimulationConfig(dataset="redial", recommender="itemknn", user="llm", episodes=2, turns=2)


def records(path) -> list[dict]:
    """The episode records, without what may differ between two runs that said the same: timings, cache hits."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        record = {k: v for k, v in json.loads(line).items() if k not in ("system_seconds", "user_seconds")}
        record["turns"] = [{k: v for k, v in t.items() if k != "seconds"} for t in record["turns"]]
        for turn in record["turns"]:
            if turn.get("llm"):
                turn["llm"] = {k: v for k, v in turn["llm"].items() if k != "cached"}
        out.append(record)
    return out


@pytest.fixture(scope="module")
def system(redial) -> RankingSystem:
    recommender = build_recommender("itemknn", redial.catalog)
    recommender.fit(redial.split("train"))
    return RankingSystem(recommender, 5, "redial")


def test_llm_user_episodes_on_ray_say_what_the_local_run_says_despite_a_killed_worker(redial, system, ray_cluster,
                                                                                       tmp_path):
    with LocalLLM(resolve_local_model("smollm2-135m"), LOCAL, timeout_s=120) as local_llm:
        local_client = LLMClient(local_llm, ResponseCache(tmp_path / "local.sqlite"))
        local = simulate(CONFIG, redial, system, transcripts=tmp_path / "local.jsonl", progress=False,
                         user_llm=local_client)
    backend = build_backend(LLMConfig(model="smollm2-135m", timeout_s=120, local=LOCAL,
                                      ray=RayOptions(address="local", workers=2)))
    try:
        client = LLMClient(backend, ResponseCache(tmp_path / "ray.sqlite"))
        # A failure injected once calls are under way: one worker process dies and Ray restarts it.
        killer = threading.Timer(1.0, lambda: ray_cluster.kill(backend.workers[1], no_restart=False))
        killer.start()
        distributed = simulate(CONFIG, redial, system, transcripts=tmp_path / "ray.jsonl", workers=2,
                               progress=False, user_llm=client)
        killer.join()
    finally:
        backend.close()
    assert distributed["n_episodes"] == local["n_episodes"] == 2 and distributed["run"]["workers"] == 2
    got, expected = records(tmp_path / "ray.jsonl"), records(tmp_path / "local.jsonl")
    assert got == expected
    users = [t for r in expected for t in r["turns"] if t["role"] == "user"]
    assert users and any(t["llm"]["parsed"] for t in users)  # the model's own answers (SmolLM2 fails some)
    assert client.usage.calls == local_client.usage.calls >= 2 * len(users)  # all real calls: cold caches
