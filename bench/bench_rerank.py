"""Benchmark: LLM re-ranking latency per dialogue turn vs number of candidates, pointwise and listwise, with
and without llama.cpp's prompt-prefix cache, and from the SQLite response cache; peak memory.

    python bench/bench_rerank.py [--model qwen2.5-coder-1.5b] [--threads 1] [--candidates 4 5 10 20]
                                 [--strategies pointwise listwise] [--dialogues 3] [--quick]
                                 [--plot-chars 0] [--people 0] [--out bench/out/bench_rerank.json]

Turns: seeded ReDial test samples (dialogues with speaker roles and some text); for each, the candidates are
the ``itemknn`` retriever's top K (fit on train; items already mentioned left out), i.e. what ``convrec chat``
and ``rar`` hand the LLM. Every (K, dialogue) pair uses a different dialogue, so no turn starts with its
dialogue already in the prompt cache.

One fresh worker process per (strategy, prompt-prefix cache on/off) loads the model (timed, with its
memory), answers one untimed warm-up request, then for each K and each of ``--dialogues`` turns:

- **cold** (worker with ``cache_prompt`` off): ``reranker.rerank()`` with an empty response cache; llama.cpp
  reads every prompt in full;
- **prefix** (worker with ``cache_prompt`` on, the default everywhere in convrec): the same, but llama.cpp
  keeps the KV cache of the previous request, so after the turn's first pointwise request each candidate
  reads only its own tokens (listwise: one request per turn, little to share);
- **cache hit**: the same turn again right after, answered by the SQLite response cache (no model call).

Reported per turn: seconds (median, min, max over the dialogues), LLM calls, prompt tokens and how many
of them came from the prefix cache, generated tokens, fallbacks; per worker the model load time and peak
RSS. Candidates are described as ``convrec chat`` describes them (title, year, genres: ``--plot-chars 0
--people 0``); ``--plot-chars 100 --people 3`` measures ``rar``'s evaluation prompt. ``--quick`` (used by the smoke test): smollm2-135m, K = 3 and 5, one dialogue each; only a smoke check.
Run the full benchmark on an otherwise idle machine: llama.cpp threads on busy cores slow down many-fold.
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

SCRIPT = Path(__file__).resolve()
DEFAULT_OUT = common.BENCH_DIR / "out" / "bench_rerank.json"
DATASET = "redial"
STRATEGIES = ("pointwise", "listwise")
TARGET_TURN_SECONDS = 10.0  # a chat turn with the local 1.5B model, pointwise, prefix cache on
TARGET_K = 4  # convrec chat's default
TARGET_MODEL = "qwen2.5-coder-1.5b"


# ---------------------------------------------------------------- worker side (a fresh process per call)


def _turns(dataset, k: int, n: int, seed: int) -> list[tuple[Any, list[str], list[float]]]:
    """``n`` (sample, top-k candidate ids, their retriever scores) from seeded test samples."""
    import numpy as np

    from convrec.retrieval import build_recommender
    from convrec.retrieval.base import top_indices

    retriever = build_recommender("itemknn", dataset.catalog)
    retriever.fit(dataset.split("train"))
    pool = [s for s in dataset.split("test").samples if s.dialogue.has_roles and len(s.context_text()) >= 40]
    by_dialogue = {s.dialogue_id: s for s in pool}  # one turn per dialogue: no prefix shared between turns
    samples = random.Random(seed).sample(sorted(by_dialogue.values(), key=lambda s: s.sample_id), n)
    scores = retriever.score(samples)
    turns, ids = [], dataset.catalog.ids
    for row, sample in enumerate(samples):
        top = top_indices(scores[row], k, dataset.catalog.indices(set(sample.context_items)))
        turns.append((sample, [ids[i] for i in top], np.asarray(scores[row, top]).tolist()))
    return turns


def _rerank_worker(task: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from convrec.data.load import load_dataset
    from convrec.llm import ChatRequest, LLMClient, LocalOptions, ResponseCache, resolve_local_model
    from convrec.llm.local import LocalLLM
    from convrec.rerank import (
        ListwiseOptions,
        ListwiseReranker,
        PointwiseOptions,
        PointwiseReranker,
        PromptOptions,
    )

    ks, per_k = task["candidates"], task["dialogues"]
    dataset = load_dataset(task["dataset"], Path(task["data_dir"]), Path(task["mirror"]) if task["mirror"] else None)
    turns = _turns(dataset, max(ks), len(ks) * per_k, task["seed"])
    model = resolve_local_model(task["model"])
    options = LocalOptions(n_threads=task["threads"], cache_prompt=task["prefix_cache"], n_ctx=task["n_ctx"])
    with common.Phase() as load:
        backend = LocalLLM(model, options, timeout_s=1800)
    client = LLMClient(backend, ResponseCache(Path(task["cache_file"])), max_concurrency=1)
    client.complete(ChatRequest.from_prompt("Hello", max_tokens=1))  # warm-up, untimed
    prompt = PromptOptions(plot_chars=task["plot_chars"], max_people=task["people"])
    if task["strategy"] == "pointwise":
        reranker = PointwiseReranker(client, dataset.catalog, PointwiseOptions(prompt=prompt))
    else:
        reranker = ListwiseReranker(client, dataset.catalog, ListwiseOptions(prompt=prompt))
    runs = []
    with common.Phase() as measure:
        for index, k in enumerate(ks):
            for sample, candidates, scores in turns[index * per_k : (index + 1) * per_k]:
                record: dict[str, Any] = {"k": k, "sample_id": sample.sample_id,
                                          "context_chars": len(sample.context_text())}
                for condition in ("first", "cache_hit"):
                    started = time.perf_counter()
                    ranking = reranker.rerank(sample, candidates[:k], np.asarray(scores[:k]))
                    seconds = time.perf_counter() - started
                    d = ranking.diagnostics
                    record[condition] = {"seconds": seconds, "llm_calls": d.llm_calls, "cache_hits": d.cache_hits,
                                         "prompt_tokens": d.prompt_tokens,
                                         "prompt_tokens_from_prefix_cache": d.cached_prompt_tokens,
                                         "completion_tokens": d.completion_tokens, "fallback": d.fallback}
                runs.append(record)
                print(f"    {task['strategy']} prefix_cache={task['prefix_cache']} K={k}: "
                      f"{record['first']['seconds']:.2f} s, hit {record['cache_hit']['seconds'] * 1000:.1f} ms",
                      file=sys.stderr, flush=True)
    client.close()
    return {
        "strategy": task["strategy"],
        "prefix_cache": task["prefix_cache"],
        "model": model.name,
        "model_identity": model.identity,
        "model_file_mib": model.path.stat().st_size / 2**20,
        "threads": task["threads"],
        "n_ctx": task["n_ctx"],
        "load": load.to_json(),
        "measure": measure.to_json(),
        "turns": runs,
        "process_peak_rss_mib": round(max(load.peak, measure.peak, common.peak_rss_mib()), 1),
    }


def _worker(task: dict[str, Any]) -> dict[str, Any]:
    return _rerank_worker(task)


# ---------------------------------------------------------------- driver


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from convrec.serve.build import CHAT_PROMPT

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument("--model", default=None,
                        help="local model name or GGUF path (default qwen2.5-coder-1.5b; quick smollm2-135m)")
    parser.add_argument("--threads", type=int, default=1,
                        help="llama.cpp threads (default 1: on 2 cores one thread is the robust choice)")
    parser.add_argument("--candidates", nargs="+", type=int, default=None, metavar="K",
                        help="candidates per turn (default 5 10 20; quick 3 5)")
    parser.add_argument("--strategies", nargs="+", choices=STRATEGIES, default=list(STRATEGIES))
    parser.add_argument("--dialogues", type=int, default=None, help="turns per K (default 3; quick 1)")
    parser.add_argument("--plot-chars", type=int, default=CHAT_PROMPT.plot_chars,
                        help=f"plot characters per candidate in the prompt (default {CHAT_PROMPT.plot_chars}, as "
                        "`convrec chat`; `rar` uses 100)")
    parser.add_argument("--people", type=int, default=CHAT_PROMPT.max_people,
                        help=f"director and cast names per candidate (default {CHAT_PROMPT.max_people}, as `convrec "
                        "chat`; `rar` uses 3)")
    parser.add_argument("--n-ctx", type=int, default=4096, help="llama.cpp context per slot (default 4096)")
    parser.add_argument("--skip-cold", action="store_true", help="only the workers with the prefix cache on")
    parser.add_argument("--quick", action="store_true", help="smoke settings: smollm2-135m, K = 3 5, 1 dialogue")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default=DATASET, help=f"dialogues and catalogue (default {DATASET})")
    parser.add_argument("--mirror", type=Path, default=None,
                        help="raw data mirror (default $CONVREC_DATA_MIRROR or ../shared/data)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data dir holding (or to receive) the dataset; default: a fresh temporary dir")
    args = parser.parse_args(argv)
    defaults = {"model": (TARGET_MODEL, "smollm2-135m"), "candidates": ([4, 5, 10, 20], [3, 5]),
                "dialogues": (3, 1)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def _summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (strategy, K): median seconds per turn of each condition, tokens, speed-ups."""
    rows = []
    strategies = list(dict.fromkeys(run["strategy"] for run in runs))
    for strategy in strategies:
        by_cache = {run["prefix_cache"]: run for run in runs if run["strategy"] == strategy}
        ks = list(dict.fromkeys(turn["k"] for run in by_cache.values() for turn in run["turns"]))
        for k in ks:
            row: dict[str, Any] = {"strategy": strategy, "k": k}
            for prefix_cache, name in ((False, "cold"), (True, "prefix")):
                run = by_cache.get(prefix_cache)
                turns = [t for t in run["turns"] if t["k"] == k] if run else []
                if not turns:
                    continue
                first = [t["first"] for t in turns]
                row[name] = {**common.summary([f["seconds"] for f in first]),
                             "llm_calls": statistics.median(f["llm_calls"] for f in first),
                             "prompt_tokens": statistics.median(f["prompt_tokens"] for f in first),
                             "prompt_tokens_from_prefix_cache": statistics.median(
                                 f["prompt_tokens_from_prefix_cache"] for f in first),
                             "completion_tokens": statistics.median(f["completion_tokens"] for f in first),
                             "fallbacks": sum(f["fallback"] is not None for f in first),
                             "peak_rss_mib": run["process_peak_rss_mib"]}
                hits = [t["cache_hit"] for t in turns]
                row.setdefault("cache_hit", {**common.summary([h["seconds"] for h in hits]),
                                             "all_hits": all(h["cache_hits"] == h["llm_calls"] for h in hits)})
            base = row.get("prefix") or row.get("cold")
            if "cold" in row and "prefix" in row:
                row["prefix_speedup"] = row["cold"]["median"] / max(row["prefix"]["median"], 1e-9)
            if base is not None:
                row["cache_hit_speedup"] = base["median"] / max(row["cache_hit"]["median"], 1e-9)
                row["seconds_per_candidate"] = base["median"] / k
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    machine = common.machine_info()
    from convrec.data.load import load_dataset

    mirror = common.optional_mirror(args.mirror, args.data_dir)
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="convrec-bench-rerank-")) if temporary else args.data_dir.resolve()
    runs = []
    try:
        load_dataset(args.dataset, data_dir, mirror)  # fetch + convert once, outside the measurements
        base = {"mode": "rerank", "dataset": args.dataset, "data_dir": str(data_dir),
                "mirror": str(mirror) if mirror else None, "model": args.model, "threads": args.threads,
                "candidates": args.candidates, "dialogues": args.dialogues, "plot_chars": args.plot_chars,
                "people": args.people, "n_ctx": args.n_ctx, "seed": args.seed}
        for strategy in args.strategies:
            for prefix_cache in ([True] if args.skip_cold else [False, True]):
                cache_file = Path(tempfile.mkdtemp(prefix="rerank-cache-", dir=data_dir)) / "responses.sqlite"
                print(f"  {strategy}, prompt-prefix cache {'on' if prefix_cache else 'off'} ...", file=sys.stderr)
                runs.append(common.run_worker(SCRIPT, {**base, "strategy": strategy, "prefix_cache": prefix_cache,
                                                       "cache_file": str(cache_file)}, timeout=6 * 3600))
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    summary = _summary(runs)
    targets = {}
    for row in summary:  # the target is the default model's; other models are only tried out here
        if args.model == TARGET_MODEL and row["strategy"] == "pointwise" and row["k"] == TARGET_K and "prefix" in row:
            targets[f"pointwise_k{TARGET_K}_turn_under_{TARGET_TURN_SECONDS:g}s"] = (
                row["prefix"]["median"] < TARGET_TURN_SECONDS)
    report = common.rounded({
        "benchmark": "rerank",
        "description": "LLM re-ranking latency per dialogue turn vs candidates K, pointwise and listwise, with "
        "llama.cpp's prompt-prefix cache off (cold) and on (prefix), and answered from the SQLite response "
        "cache (cache hit); model load time and peak RSS; fresh process per (strategy, prefix cache)",
        "command": common.command_info(SCRIPT, argv),
        "machine": common.finish_machine_info(machine),
        "settings": {
            "quick": args.quick, "model": args.model, "threads": args.threads, "candidates": args.candidates,
            "strategies": args.strategies, "dialogues_per_k": args.dialogues, "plot_chars": args.plot_chars,
            "people": args.people,
            "n_ctx": args.n_ctx, "dataset": args.dataset, "seed": args.seed, "skip_cold": args.skip_cold,
            "retriever": "itemknn (fit on train), top K, mentioned items left out",
            "target": f"{TARGET_MODEL}, pointwise, K={TARGET_K}, prefix cache on: a turn under "
            f"{TARGET_TURN_SECONDS:g} s (as `convrec chat` runs it; judged with --threads 2 on 2 idle cores)",
            "definitions": {
                "cold": "reranker.rerank() of a turn with llama.cpp cache_prompt off and an empty response cache",
                "prefix": "the same with cache_prompt on (convrec's default): a pointwise request after the "
                "turn's first reads only the tokens after the shared prefix (system message, dialogue, question)",
                "cache_hit": "the same turn again, every request answered by the SQLite response cache",
                "seconds_per_candidate": "median turn seconds (prefix, else cold) / K",
                "prompt_tokens_from_prefix_cache": "llama.cpp usage.prompt_tokens_details.cached_tokens, summed "
                "over the turn's requests",
                "median/min/max": "over the turns (one dialogue each) of that K",
            },
        },
        "memory_method": common.MEMORY_METHOD,
        "runs": runs,
        "summary": summary,
        "targets": targets,
        "total_seconds": time.perf_counter() - started,
    })
    print_tables(report)
    common.write_report(args.out, report)
    return report


def print_tables(report: dict[str, Any]) -> None:
    fmt = common.fmt
    rows = []
    for row in report["summary"]:
        cold, prefix, hit = row.get("cold"), row.get("prefix"), row["cache_hit"]
        tokens = prefix or cold
        rows.append([row["strategy"], fmt(row["k"]), fmt(cold["median"]) if cold else "-",
                     fmt(prefix["median"]) if prefix else "-", fmt(hit["median"] * 1000, 1),
                     fmt(row.get("prefix_speedup"), 1) if "prefix_speedup" in row else "-",
                     fmt(row["cache_hit_speedup"], 0), fmt(row["seconds_per_candidate"]),
                     f"{fmt(int(tokens['prompt_tokens']))} / {fmt(int(tokens['prompt_tokens_from_prefix_cache']))}",
                     fmt(int(tokens["completion_tokens"])), fmt(tokens["peak_rss_mib"], 0)])
    settings = report["settings"]
    common.print_table(
        f"re-ranking one turn with {settings['model']} ({settings['threads']} thread(s)), median of "
        f"{settings['dialogues_per_k']} turn(s) per K: seconds, cache hit in ms",
        ["strategy", "K", "cold s", "prefix s", "cache hit ms", "prefix speed-up", "hit speed-up", "s/candidate",
         "prompt tok / from prefix", "gen tok", "peak MiB"],
        rows,
    )
    load_rows = [[run["strategy"], "on" if run["prefix_cache"] else "off", fmt(run["load"]["seconds"]),
                  fmt(run["load"]["peak_delta_mib"], 0), fmt(run["process_peak_rss_mib"], 0)]
                 for run in report["runs"]]
    common.print_table("model load per worker (MiB: RSS added by loading, process peak)",
                       ["strategy", "prefix cache", "load s", "load +MiB", "process peak MiB"], load_rows)


if __name__ == "__main__":
    if common.is_worker_call(sys.argv[1:]):
        sys.exit(common.worker_main(_worker, sys.argv[1:]))
    main()
