"""Benchmark: how the LLM-bound work scales on this machine, and what that projects to for N workers and RAR's
337k-movie corpus.

    python bench/bench_ray.py [--model qwen2.5-coder-1.5b] [--samples 8] [--k 4] [--concurrency 1 2 4]
                              [--setups local ray-1x2 ray-2x1] [--quick] [--out bench/out/bench_ray.json]

The work: ``rar``'s evaluation stage and alignment's feedback stage are the same LLM job, the pointwise
re-ranker asking P(Yes) for K candidates of one dialogue context (rar: the retriever's top K; alignment: the
items of the sampled sets that hold the target). Both are measured on the same ``--samples`` seeded ReDial
test contexts, K candidates each, with the ``itemknn`` retriever (fit on train in under a second: the LLM
stage is what is measured), every run from a cold response cache of its own:

- **rar**: ``RAR.score(samples)`` with the fusion weight fixed (no validation pass), the samples re-ranked
  as many at a time as the backend has workers (``rerank_in_order``);
- **feedback**: ``LLMFeedback.prefetch`` of every context, then ``rewards`` in order, as an alignment round
  does it; the candidate set is the K items with the target put in place of the last one.

Setups, on this machine's 2 cores, each in a fresh process:

- **local**: no Ray, the in-process llama.cpp with 2 threads (what ``convrec eval`` runs by default);
- **ray-1x2**: a local Ray cluster (2 CPUs), 1 worker actor, llama.cpp with 2 threads;
- **ray-2x1**: the same cluster, 2 worker actors with 1 thread each;
- **server-cN** (``--concurrency``): llama.cpp's own OpenAI-compatible HTTP server on loopback (the
  xllamacpp server convrec's local backend starts, 2 threads, 4 slots), reached through the ``openai``
  backend with at most N requests in flight (``LLMClient(max_concurrency=N)``); rar only.

Reported per run: the stage's seconds, LLM calls, seconds per call, per sample; the start-up (cluster start
and model loads) apart; whether the scores equal the ``local`` run's bit for bit (expected for ray-1x2, same
thread count; ray-2x1 runs llama.cpp with another thread count, which may change the last bits). From these,
``projection`` writes the per-stage cost model (see bench/README.md: a projection, not a measurement).
``--quick`` (the smoke test): smollm2-135m, 2 samples, K = 2, setups local and server-c2.
Run the full benchmark on an otherwise idle machine: llama.cpp threads on busy cores slow down many-fold.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

SCRIPT = Path(__file__).resolve()
DEFAULT_OUT = common.BENCH_DIR / "out" / "bench_ray.json"
DATASET = "redial"
SETUPS = {  # name: (ray workers or None, llama.cpp threads per worker)
    "local": (None, 2),
    "ray-1x2": (1, 2),
    "ray-2x1": (2, 1),
}
RAR_CORPUS = 337_000  # RAR's movie corpus
# Retrieval per query comes from bench_ann's report (exact scoring and the default index: IVF over the item part,
# the best 200 re-scored, nprobe 64), on real-looking item vectors, one query at a time on 2 cores.
ANN_REPORT = common.BENCH_DIR / "results" / "bench_ann-2cpu.json"
DEFAULT_INDEX = ("rescore", "ivf nprobe=64")
# docs/results/alignment.md: the ReDial DPO run, 6 rounds of 32 contexts, 1,466 LLM calls, 47 minutes.
ALIGN_RUN = {"rounds": 6, "contexts_per_round": 32, "llm_calls": 1466, "minutes": 47}


# ---------------------------------------------------------------- worker side (a fresh process per run)


def _contexts(dataset, k: int, n: int, seed: int):
    """``n`` seeded test samples, one per dialogue, with at least a sentence of text."""
    pool = [s for s in dataset.split("test").samples if s.dialogue.has_roles and len(s.context_text()) >= 40]
    by_dialogue = {s.dialogue_id: s for s in pool}
    return random.Random(seed).sample(sorted(by_dialogue.values(), key=lambda s: s.sample_id), n)


def _backend(task: dict[str, Any]):
    from convrec.llm.config import LLMConfig, LocalOptions, RayOptions
    from convrec.llm.factory import build_backend
    from convrec.llm.local import LocalLLM
    from convrec.llm.models import resolve_local_model

    workers, threads = task["workers"], task["threads"]
    if task["setup"].startswith("server"):
        from convrec.llm.openai_backend import OpenAICompatibleLLM

        server = LocalLLM(resolve_local_model(task["model"]),
                          LocalOptions(n_ctx=task["n_ctx"], n_threads=2, n_parallel=4), timeout_s=1800)
        client = OpenAICompatibleLLM(server.model.name, server.http_base_url, server.http_api_key, timeout_s=1800)
        return client, server
    local = LocalOptions(n_ctx=task["n_ctx"], n_threads=threads)
    ray = RayOptions(address="local", workers=workers, cpus_per_worker=2 / workers, cpus=2) if workers else None
    return build_backend(LLMConfig(model=task["model"], timeout_s=1800, local=local, ray=ray)), None


def _worker(task: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from convrec.align.feedback import LLMFeedback
    from convrec.data.load import load_dataset
    from convrec.llm import LLMClient, ResponseCache
    from convrec.rerank.pipeline import RAR, RARConfig

    dataset = load_dataset(DATASET, Path(task["data_dir"]), Path(task["mirror"]) if task["mirror"] else None)
    samples = _contexts(dataset, task["k"], task["samples"], task["seed"])
    with common.Phase() as start:
        backend, server = _backend(task)
    concurrency = task.get("concurrency") or 4
    client = LLMClient(backend, ResponseCache(Path(task["cache_dir"]) / "responses.sqlite"),
                       max_concurrency=concurrency)
    config = RARConfig(retriever="itemknn", k=task["k"], fusion_weight=1.0, max_samples=None, seed=task["seed"])
    rar = RAR(dataset.catalog, config, llm=client)
    rar.fit(dataset.split("train"))
    views = [s.view() for s in samples]
    out: dict[str, Any] = {"setup": task["setup"], "workers": task["workers"], "threads": task["threads"],
                           "concurrency": task.get("concurrency"), "samples": len(samples), "k": task["k"],
                           "start_seconds": start.to_json()["seconds"]}
    calls_before = client.usage.calls
    with common.Phase() as stage:
        scores = rar.score(views)
    calls = client.usage.calls - calls_before
    if task.get("encode_texts"):  # the one-off stage of a new corpus: its item texts through lrurec-text's encoder
        from convrec.text.encoder import TextEncoder

        encoder = TextEncoder()
        texts = dataset.catalog.texts()[: task["encode_texts"]]
        encoder.encode(texts[:8])  # loads the model, untimed
        with common.Phase() as encoding:
            encoder.encode(texts)
        out["encode"] = {"texts": len(texts), "seconds": encoding.to_json()["seconds"],
                         "texts_per_second": len(texts) / encoding.to_json()["seconds"]}
    out["rar"] = {"seconds": stage.to_json()["seconds"], "llm_calls": calls,
                  "seconds_per_call": stage.to_json()["seconds"] / max(calls, 1),
                  "seconds_per_sample": stage.to_json()["seconds"] / len(samples),
                  "fallbacks": rar.stats_.to_json()["fallbacks"],
                  "scores_sha256": hashlib.sha256(np.ascontiguousarray(scores).tobytes()).hexdigest()}
    if task["feedback"]:
        # alignment's feedback stage on the same contexts, a fresh cache so nothing is answered from rar's
        client = LLMClient(backend, ResponseCache(Path(task["cache_dir"]) / "feedback.sqlite"),
                           max_concurrency=concurrency)
        reranker = copy.copy(rar.reranker_)  # rar's prompts, asked through the fresh cache
        reranker.llm = client
        feedback = LLMFeedback(reranker)
        candidates = rar.retriever_.retrieve(views, task["k"], [list(s.context_items) for s in samples])
        work = []
        for sample, found in zip(samples, candidates, strict=True):
            items = list(found.item_ids[: task["k"]])
            if sample.target not in items:
                items[-1] = sample.target  # only sets holding the target need the LLM
            work.append((sample, [items]))
        with common.Phase() as stage:
            feedback.prefetch(work)
            rewards = [feedback.rewards(sample, sets, [np.arange(len(sets[0]), 0, -1, dtype=float)])
                       for sample, sets in work]
        calls = feedback.counts.llm_calls
        out["feedback"] = {"seconds": stage.to_json()["seconds"], "llm_calls": calls,
                           "seconds_per_call": stage.to_json()["seconds"] / max(calls, 1),
                           "seconds_per_context": stage.to_json()["seconds"] / len(samples),
                           "mean_reward": float(np.mean([r[0].reward for r in rewards]))}
    backend.close()
    if server is not None:
        server.close()
    return out


# ---------------------------------------------------------------- driver


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument("--model", default=None, help="local model (default qwen2.5-coder-1.5b; quick smollm2-135m)")
    parser.add_argument("--samples", type=int, default=None, help="dialogue contexts (default 8; quick 2)")
    parser.add_argument("--k", type=int, default=None, help="candidates per context (default 4; quick 2)")
    parser.add_argument("--setups", nargs="+", choices=list(SETUPS), default=None,
                        help="local and Ray setups (default all; quick local)")
    parser.add_argument("--concurrency", nargs="*", type=int, default=None,
                        help="requests in flight to the loopback server (default 1 2 4; quick 2; none: skip)")
    parser.add_argument("--n-ctx", type=int, default=2048, help="tokens per llama.cpp slot")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encode-texts", type=int, default=None,
                        help="item texts encoded to time the encoder (default 1024; quick 64)")
    parser.add_argument("--quick", action="store_true", help="a smoke check: smollm2, 2 samples, K = 2")
    parser.add_argument("--mirror", type=Path, default=None, help="the data mirror (default $CONVREC_DATA_MIRROR)")
    parser.add_argument("--data-dir", type=Path, default=None, help="converted datasets (default a scratch dir)")
    args = parser.parse_args(argv)
    quick = args.quick
    args.model = args.model or ("smollm2-135m" if quick else "qwen2.5-coder-1.5b")
    args.samples = args.samples or (2 if quick else 8)
    args.k = args.k or (2 if quick else 4)
    args.setups = args.setups or (["local"] if quick else list(SETUPS))
    args.encode_texts = args.encode_texts or (64 if quick else 1024)
    args.concurrency = args.concurrency if args.concurrency is not None else ([2] if quick else [1, 2, 4])
    return args


def ann_latencies(path: Path = ANN_REPORT) -> dict[str, dict[str, float]]:
    """Milliseconds per query by catalogue size from bench_ann's report: exact scoring, the default index."""
    if not path.exists():
        return {}
    report = json.loads(path.read_text())
    out = {}
    for run in report["runs"]:
        if run["kind"] != "jitter":
            continue
        index = next((m for m in run["methods"] if (m["mode"], m["method"]) == DEFAULT_INDEX), None)
        out[str(run["size"])] = {"exact": run["exact_ms"]["median"], "index": index["ms"]["median"] if index else None,
                            "index_recall_at_50": index["recall_at_50"] if index else None}
    return out


def projection(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The per-stage cost model (see bench/README.md): measured unit costs, projected to N workers and to RAR's
    337k corpus. A projection, not a measurement."""
    by_setup = {r["setup"]: r for r in runs}
    local = by_setup.get("local")
    if local is None:
        return {}
    call = local["rar"]["seconds_per_call"]  # one worker's seconds per pointwise call (2 cores)
    k = local["k"]
    ann = ann_latencies()
    largest = max(ann, key=int) if ann else None
    retrieval = {}
    if largest:  # exact scoring grows with the catalogue; scaled linearly from the largest size measured
        retrieval["337k exact"] = ann[largest]["exact"] * RAR_CORPUS / int(largest) / 1000
        retrieval["337k index"] = ann[largest]["index"] / 1000
    model: dict[str, Any] = {
        "seconds_per_call_one_worker": call,
        "ann_ms_per_query_measured": ann,
        "assumptions": [
            "each worker has its own cores (N machines, or N GPUs behind a server): a call costs what it costs "
            "one local worker here, and contexts spread evenly over workers (one context per worker at a time)",
            "the driver's work (retrieval, the response cache, sampling and updates) is not parallelised",
            f"retrieval per query at 337k items: exact scoring scaled linearly from bench_ann's {largest} items, "
            "the default index as measured there (its latency barely grows with the catalogue)",
            "the LLM work does not grow with the catalogue: K candidates per context whatever the corpus",
        ],
    }
    if "encode" in local:
        model["encode_337k_item_texts_minutes_once"] = RAR_CORPUS / local["encode"]["texts_per_second"] / 60
    rar = {}
    for workers in (1, 2, 4, 8, 16, 32):
        for corpus, seconds in retrieval.items():
            per_sample = seconds + k * call / workers
            rar[f"{workers} workers, {corpus}"] = {"seconds_per_sample": per_sample,
                                                   "llm_share": k * call / workers / per_sample,
                                                   "hours_for_5000_samples": 5000 * per_sample / 3600}
    model["rar_eval"] = rar
    calls_per_context = ALIGN_RUN["llm_calls"] / (ALIGN_RUN["rounds"] * ALIGN_RUN["contexts_per_round"])
    model["align"] = {
        "measured_redial_dpo_run": ALIGN_RUN,
        "llm_calls_per_context": calls_per_context,
        **{f"{workers} workers, 1000 contexts a round": {"minutes_per_round": 1000 * calls_per_context * call
                                                        / workers / 60}
           for workers in (1, 8, 32)},
    }
    for setup, run in by_setup.items():
        if setup != "local":
            model.setdefault("measured_speedup_vs_local", {})[setup] = local["rar"]["seconds"] / run["rar"]["seconds"]
    return model


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    machine = common.machine_info()
    from convrec.data.load import load_dataset

    mirror = common.optional_mirror(args.mirror, args.data_dir)
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="convrec-bench-ray-")) if temporary else args.data_dir.resolve()
    runs = []
    try:
        load_dataset(DATASET, data_dir, mirror)  # convert once, outside the measurements
        base = {"data_dir": str(data_dir), "mirror": str(mirror) if mirror else None, "model": args.model,
                "samples": args.samples, "k": args.k, "n_ctx": args.n_ctx, "seed": args.seed}
        plan = [{"setup": s, "workers": SETUPS[s][0], "threads": SETUPS[s][1], "feedback": True,
                 "encode_texts": args.encode_texts if s == "local" else 0} for s in args.setups]
        plan += [{"setup": f"server-c{c}", "workers": None, "threads": 2, "concurrency": c, "feedback": False}
                 for c in args.concurrency]
        for step in plan:
            cache_dir = Path(tempfile.mkdtemp(prefix="cache-", dir=data_dir))  # cold, one per run
            print(f"  {step['setup']} ...", file=sys.stderr, flush=True)
            run = common.run_worker(SCRIPT, {**base, **step, "cache_dir": str(cache_dir)}, timeout=3 * 3600)
            print(f"    rar {run['rar']['seconds']:.1f} s for {run['rar']['llm_calls']} calls", file=sys.stderr)
            runs.append(run)
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    local = next((r for r in runs if r["setup"] == "local"), None)
    for run in runs:
        run["rar"]["scores_equal_local"] = (None if local is None
                                            else run["rar"]["scores_sha256"] == local["rar"]["scores_sha256"])
    report = common.rounded({
        "benchmark": "ray",
        "description": "rar evaluation and alignment feedback (the pointwise LLM stage) on seeded ReDial test "
        "contexts: in-process llama.cpp, Ray with 1 worker x 2 threads and 2 workers x 1 thread on a local "
        "2-CPU cluster, and llama.cpp's OpenAI-compatible loopback server at several concurrencies; cold "
        "response caches; start-up apart; plus the per-stage cost model projected to N workers and 337k items",
        "command": common.command_info(SCRIPT, argv),
        "machine": common.finish_machine_info(machine),
        "settings": {"quick": args.quick, "model": args.model, "samples": args.samples, "k": args.k,
                     "setups": args.setups, "concurrency": args.concurrency, "n_ctx": args.n_ctx, "seed": args.seed,
                     "dataset": DATASET, "retriever": "itemknn (fit on train)"},
        "runs": runs,
        "projection": projection(runs),
        "total_seconds": time.perf_counter() - started,
    })
    print_tables(report)
    common.write_report(args.out, report)
    return report


def print_tables(report: dict[str, Any]) -> None:
    fmt = common.fmt
    rows = []
    for run in report["runs"]:
        feedback = run.get("feedback") or {}
        rows.append([run["setup"], fmt(run["start_seconds"], 1), fmt(run["rar"]["seconds"], 1),
                     fmt(int(run["rar"]["llm_calls"])), fmt(run["rar"]["seconds_per_call"]),
                     fmt(feedback.get("seconds"), 1) if feedback else "-",
                     fmt(int(feedback["llm_calls"])) if feedback else "-",
                     {True: "yes", False: "no", None: "-"}[run["rar"]["scores_equal_local"]]])
    settings = report["settings"]
    common.print_table(f"{settings['model']}: {settings['samples']} contexts x K={settings['k']} (seconds; start-up "
                       "apart)", ["setup", "start s", "rar s", "calls", "s/call", "feedback s", "calls",
                                  "= local"], rows)


if __name__ == "__main__":
    if common.is_worker_call(sys.argv[1:]):
        sys.exit(common.worker_main(_worker, sys.argv[1:]))
    main()
