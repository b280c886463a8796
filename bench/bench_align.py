"""Benchmark: one round of RAR's online alignment (``convrec align``) on ReDial: wall time and LLM calls per
round, the response-cache hit rate, and how a round's cost grows with the contexts per round and the set size K.

    python bench/bench_align.py [--model qwen2.5-coder-1.5b] [--threads 1] [--contexts 8 16 32] [--ks 5 10 20]
                                [--group-size 4] [--method grpo] [--checkpoint results/runs/lrurec-text-redial]
                                [--config configs/align.toml] [--train-tiny] [--quick]
                                [--out bench/out/bench_align.json]

Settings: ``configs/align.toml`` (what the alignment runs of docs/results/alignment.md use: temperature, reward_k, batch size, lr,
valid_samples ...), then ``rounds = 1``, ``contexts_per_round = C``, ``k = K``, ``group_size``, ``method``,
``seed``, ``threads`` and the LLM (``--model``, llama.cpp ``n_threads = --threads``, the response cache in a
scratch dir) on top. Torch and llama.cpp both get ``--threads``.

For each (C in ``--contexts``, K in ``--ks``), two fresh worker processes run the same round:

- **cold**: an empty LLM response cache (a new SQLite file) and a fresh run dir. The worker loads ReDial (not
  timed), builds the LLM client (**llm load s**: llama.cpp loads the GGUF), then the
  ``convrec.align.trainer.Aligner`` (**setup s**: policy and reference retrievers from the checkpoint, the
  validation subset), then times ``Aligner.run()`` with ``rounds = 1``: round 0's validation and checkpoint
  (the SFT retriever, no LLM), round 1, and its checkpoint, history and curves. The **round** is
  ``RoundStats.seconds`` of round 1 with its phases (``phase_seconds``): **sampling** (catalogue scores of the
  round's contexts, Gumbel top-K sets, log-probabilities), **llm feedback** (rewards: the pointwise re-ranker
  scores every (context, item) of the sets that contain the target, each once), **update** (the DPO / GRPO
  steps) and **validation** (the retriever alone on ``valid_samples``); the rest of ``run()`` is reported as
  ``run_overhead_seconds``. The round's ``FeedbackCounts``: sets, sets with the target (only those need the
  LLM), item scores, memo hits (scored before in this run), LLM requests, cache hits and model calls, prompt
  tokens and those llama.cpp reused from its prompt-prefix cache.
- **warm**: the same round again in a new process with the now-filled cache and a fresh run dir. The
  checkpoint and the seed are the same, so the round samples the same sets and asks the same questions:
  every reply comes from the SQLite cache (``llm_calls`` 0, ``cache hits`` = the cold round's requests).

Per (C, K): cold and warm round seconds and phases, **s / LLM call** (cold llm-feedback seconds / model
calls), **warm hit rate** (cache hits / LLM requests), **speed-up** (cold / warm round seconds), seconds
per context, and each worker's llm load, setup and peak RSS. Every (C, K) starts from the same checkpoint
and seed, so larger C takes the smaller C's contexts plus more; the sets differ with K.

``--checkpoint`` is a supervised (``convrec train``) lrurec or lrurec-text run on ReDial; ``results/`` is not
in git, so ``--train-tiny`` first trains a tiny ``lrurec`` (items only, hidden 16, one block, one epoch) in
its own worker, timed, and aligns that instead. ``--quick`` (used by the smoke test): smollm2-135m,
C = 2, K = 3, group size 2, 20 validation samples, ``--train-tiny``, and a seed with which the tiny
checkpoint's sets contain a target (so the LLM is asked something); its numbers are only a smoke check.
Run the full benchmark on an otherwise idle machine: llama.cpp threads on busy cores slow down many-fold.
"""

from __future__ import annotations

import argparse
import shutil
import sqlite3
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

SCRIPT = Path(__file__).resolve()
DEFAULT_OUT = common.BENCH_DIR / "out" / "bench_align.json"
DEFAULT_CHECKPOINT = common.PROJECT_ROOT / "results" / "runs" / "lrurec-text-redial"
DEFAULT_CONFIG = common.PROJECT_ROOT / "configs" / "align.toml"
DATASET = "redial"
TARGET_MODEL = "qwen2.5-coder-1.5b"
QUICK_MODEL = "smollm2-135m"
QUICK_SEED = 5  # with it, one of the tiny checkpoint's 4 quick sets holds its target (by a wide Gumbel margin)
# The tiny supervised checkpoint of --train-tiny / --quick: items only (no MiniLM), one epoch (~15 s on ReDial
# with one thread); valid Recall@10 ~0.07, about popularity.
TINY_SFT = {"hidden": 16, "n_blocks": 1, "dropout": 0.0, "text_init": False,
            "train": {"epochs": 1, "batch_size": 256, "lr": 0.01, "patience": 1}}


# ---------------------------------------------------------------- worker side (a fresh process per call)


def _set_threads(threads: int) -> dict[str, int]:
    import torch

    torch.set_num_threads(threads)
    return {"torch_num_threads": torch.get_num_threads(), "torch_num_interop_threads": torch.get_num_interop_threads()}


def _dataset(task: dict[str, Any]):
    from convrec.data.load import load_dataset

    return load_dataset(task["dataset"], Path(task["data_dir"]), Path(task["mirror"]) if task["mirror"] else None)


def _train_worker(task: dict[str, Any]) -> dict[str, Any]:
    """The tiny supervised lrurec checkpoint that the alignment starts from (``--train-tiny``)."""
    threads = _set_threads(task["threads"])
    from convrec.retrieval import build_recommender

    dataset = _dataset(task)
    options = {**TINY_SFT, "train": {**TINY_SFT["train"], "threads": task["threads"]}, "run_dir": task["run_dir"]}
    recommender = build_recommender("lrurec", dataset.catalog, options)
    with common.Phase() as fit:
        recommender.fit(dataset.split("train"), dataset.split("valid"))
    return {"recommender": "lrurec", "options": options, "threads": threads, "run_dir": task["run_dir"],
            "summary": recommender.summary, "fit": fit.to_json(),
            "process_peak_rss_mib": round(max(fit.peak, common.peak_rss_mib()), 1)}


def _round_worker(task: dict[str, Any]) -> dict[str, Any]:
    """One alignment round (``rounds = 1``) with the given response cache, into a fresh run dir."""
    threads = _set_threads(task["threads"])
    from convrec.align.config import AlignConfig
    from convrec.align.trainer import Aligner
    from convrec.llm import build_llm

    dataset = _dataset(task)
    config = AlignConfig(**task["settings"])
    run_dir = Path(task["run_dir"])
    with common.Phase() as llm_load:
        client = build_llm(config.llm)  # what Aligner builds itself when given no LLM (cache_path is set)
    try:
        with common.Phase() as setup:
            aligner = Aligner(dataset, config, run_dir, llm=client)
        with common.Phase() as run:
            history = aligner.run()
        aligner.close()
    finally:
        client.close()
    import torch

    torch_threads = torch.get_num_threads()  # what Aligner set (config.threads)
    round0, stats = history[0], history[-1]
    assert stats.round == 1, [h.round for h in history]
    backend = client.backend
    model_path = getattr(getattr(backend, "model", None), "path", None)
    return {
        "cache": task["cache"],
        "contexts": config.contexts_per_round,
        "k": config.k,
        "group_size": config.group_size,
        "method": config.method,
        "model": config.llm.model_name,
        "model_identity": backend.identity,
        "model_file_mib": model_path.stat().st_size / 2**20 if model_path is not None else None,
        "threads": {**threads, "torch_num_threads_in_aligner": torch_threads,
                    "llama_cpp_n_threads": config.llm.local.n_threads},
        "settings": config.model_dump(mode="json"),
        "llm_load": llm_load.to_json(),
        "setup": setup.to_json(),
        "run": run.to_json(),
        "round_seconds": stats.seconds,
        "phase_seconds": stats.phase_seconds,
        "run_overhead_seconds": run.seconds - stats.seconds,
        "llm": stats.llm.model_dump(),
        "reward": stats.reward,
        "set_hit_rate": stats.set_hit_rate,
        "greedy_hit_rate": stats.greedy_hit_rate,
        "informative_contexts": stats.informative_contexts,
        "valid_recall_at_10": {"before": round0.valid_recall_at_10, "after": stats.valid_recall_at_10},
        "process_peak_rss_mib": round(max(llm_load.peak, setup.peak, run.peak, common.peak_rss_mib()), 1),
    }


def _worker(task: dict[str, Any]) -> dict[str, Any]:
    return {"train": _train_worker, "round": _round_worker}[task["mode"]](task)


# ---------------------------------------------------------------- driver


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument("--model", default=None,
                        help=f"local model name or GGUF path (default {TARGET_MODEL}; quick {QUICK_MODEL})")
    parser.add_argument("--threads", type=int, default=1,
                        help="llama.cpp and torch threads (default 1: on 2 shared cores one thread is robust)")
    parser.add_argument("--contexts", nargs="+", type=int, default=None, metavar="C",
                        help="contexts per round (default 8 16 32; quick 2)")
    parser.add_argument("--ks", nargs="+", type=int, default=None, metavar="K",
                        help="candidate set sizes (default 5 10 20; quick 3)")
    parser.add_argument("--group-size", type=int, default=None, help="sets per context (default 4; quick 2)")
    parser.add_argument("--method", choices=["dpo", "grpo"], default="grpo", help="default grpo")
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT,
                        help="supervised lrurec / lrurec-text run on the dataset (default "
                        "results/runs/lrurec-text-redial; ignored with --train-tiny)")
    parser.add_argument("--train-tiny", action="store_true",
                        help="train a tiny lrurec checkpoint first (timed, own worker) and align that")
    parser.add_argument("--config", default=str(DEFAULT_CONFIG),
                        help="TOML of align settings the round starts from (default configs/align.toml; "
                        "'none': AlignConfig's defaults)")
    parser.add_argument("--valid-samples", type=int, default=None,
                        help="validation subset after the round (default: the config's, 500; quick 20)")
    parser.add_argument("--seed", type=int, default=None, help=f"AlignConfig.seed (default 0; quick {QUICK_SEED})")
    parser.add_argument("--quick", action="store_true",
                        help=f"smoke settings: {QUICK_MODEL}, C = 2, K = 3, group size 2, --train-tiny")
    parser.add_argument("--dataset", default=DATASET,
                        help=f"dialogues and catalogue (default {DATASET}; the checkpoint must match it)")
    parser.add_argument("--mirror", type=Path, default=None,
                        help="raw data mirror (default $CONVREC_DATA_MIRROR or ../shared/data)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data dir holding (or to receive) the dataset; default: a fresh temporary dir")
    args = parser.parse_args(argv)
    defaults = {"model": (TARGET_MODEL, QUICK_MODEL), "contexts": ([8, 16, 32], [2]), "ks": ([5, 10, 20], [3]),
                "group_size": (4, 2), "seed": (0, QUICK_SEED)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.quick:
        args.train_tiny = True
        if args.valid_samples is None:
            args.valid_samples = 20
    return args


def _base_settings(args: argparse.Namespace) -> dict[str, Any]:
    """configs/align.toml (or nothing), as ``convrec align --config`` reads it."""
    if args.config.lower() == "none":
        return {}
    path = Path(args.config)
    try:
        return tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SystemExit(f"--config {path}: {exc}") from exc


def _settings(base: dict[str, Any], args: argparse.Namespace, checkpoint: Path, contexts: int, k: int,
              cache_file: Path) -> dict[str, Any]:
    llm = dict(base.get("llm", {}))
    llm.update({"model": args.model, "cache_path": str(cache_file),
                "local": {**llm.get("local", {}), "n_threads": args.threads}})
    settings = {**base, "checkpoint": str(checkpoint), "method": args.method, "rounds": 1,
                "contexts_per_round": contexts, "k": k, "group_size": args.group_size, "seed": args.seed,
                "threads": args.threads, "progress": False, "llm": llm}
    if args.valid_samples is not None:
        settings["valid_samples"] = args.valid_samples
    return settings


def _cache_entries(path: Path) -> int | None:
    if not path.exists():
        return None
    with sqlite3.connect(path) as connection:
        return int(connection.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return numerator / denominator


def _summary(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (C, K): the cold round, the warm round, and what the cache saved."""
    rows = []
    cold_runs = [run for run in runs if run["cache"] == "cold"]
    for cold in cold_runs:
        warm = next((run for run in runs if run["cache"] == "warm" and run["contexts"] == cold["contexts"]
                     and run["k"] == cold["k"]), None)
        c_llm = cold["llm"]
        row: dict[str, Any] = {
            "contexts": cold["contexts"], "k": cold["k"], "group_size": cold["group_size"],
            "cold": {
                "round_seconds": cold["round_seconds"], "phase_seconds": cold["phase_seconds"], "llm": c_llm,
                "cache_hit_rate": _ratio(c_llm["cache_hits"], c_llm["llm_requests"]),
                "seconds_per_llm_call": _ratio(cold["phase_seconds"].get("llm_feedback"), c_llm["llm_calls"]),
                "llm_load_seconds": cold["llm_load"]["seconds"], "setup_seconds": cold["setup"]["seconds"],
                "run_seconds": cold["run"]["seconds"], "peak_rss_mib": cold["process_peak_rss_mib"],
                "reward": cold["reward"], "set_hit_rate": cold["set_hit_rate"],
                "informative_contexts": cold["informative_contexts"],
            },
            "seconds_per_context": cold["round_seconds"] / cold["contexts"],
            "llm_calls_per_context": c_llm["llm_calls"] / cold["contexts"],
        }
        if warm is not None:
            w_llm = warm["llm"]
            row["warm"] = {
                "round_seconds": warm["round_seconds"], "phase_seconds": warm["phase_seconds"], "llm": w_llm,
                "cache_hit_rate": _ratio(w_llm["cache_hits"], w_llm["llm_requests"]),
                "llm_load_seconds": warm["llm_load"]["seconds"], "setup_seconds": warm["setup"]["seconds"],
                "run_seconds": warm["run"]["seconds"], "peak_rss_mib": warm["process_peak_rss_mib"],
            }
            row["speedup"] = _ratio(cold["round_seconds"], warm["round_seconds"])
            row["llm_feedback_speedup"] = _ratio(cold["phase_seconds"].get("llm_feedback"),
                                                 warm["phase_seconds"].get("llm_feedback"))
            row["warm_all_from_cache"] = w_llm["llm_calls"] == 0 and w_llm["cache_hits"] == c_llm["llm_requests"]
            row["warm_same_sets"] = all(w_llm[key] == c_llm[key] for key in ("sets", "sets_with_target",
                                                                               "item_scores", "llm_requests"))
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    machine = common.machine_info()
    from convrec.data.load import load_dataset

    base_settings = _base_settings(args)
    mirror = common.optional_mirror(args.mirror, args.data_dir)
    scratch = Path(tempfile.mkdtemp(prefix="convrec-bench-align-"))  # checkpoints, caches, run dirs
    data_dir = scratch / "data" if args.data_dir is None else args.data_dir.resolve()
    runs: list[dict[str, Any]] = []
    training = None
    try:
        prepare_started = time.perf_counter()
        load_dataset(args.dataset, data_dir, mirror)  # fetch + convert once, outside the measurements
        prepare_seconds = time.perf_counter() - prepare_started
        base = {"dataset": args.dataset, "data_dir": str(data_dir), "mirror": str(mirror) if mirror else None,
                "threads": args.threads}
        if args.train_tiny:
            print("  training a tiny lrurec checkpoint ...", file=sys.stderr)
            training = common.run_worker(SCRIPT, {**base, "mode": "train", "run_dir": str(scratch / "sft")})
            checkpoint = Path(training["run_dir"])
            print(f"  tiny checkpoint: {training['fit']['seconds']:.1f} s, valid R@10 "
                  f"{training['summary'].get('best_valid_recall@10')}", file=sys.stderr)
        else:
            checkpoint = args.checkpoint.resolve()
            if not (checkpoint / "model.safetensors").is_file():
                raise SystemExit(f"{checkpoint}: no model.safetensors; train one with `convrec train --dataset "
                                 f"{args.dataset} --recommender lrurec-text --out {checkpoint}`, or pass --train-tiny")
        for contexts in args.contexts:
            for k in args.ks:
                cache_file = scratch / f"llm-c{contexts}-k{k}" / "responses.sqlite"
                settings = _settings(base_settings, args, checkpoint, contexts, k, cache_file)
                for cache in ("cold", "warm"):
                    print(f"  C={contexts} K={k}: {cache} round ...", file=sys.stderr)
                    run_dir = scratch / f"run-c{contexts}-k{k}-{cache}"
                    run = common.run_worker(SCRIPT, {**base, "mode": "round", "cache": cache, "settings": settings,
                                                     "run_dir": str(run_dir)}, timeout=6 * 3600)
                    run["cache_entries_after"] = _cache_entries(cache_file)
                    runs.append(run)
                    print(f"    round {run['round_seconds']:.1f} s, LLM {run['llm']['llm_calls']} calls, "
                          f"{run['llm']['cache_hits']} cache hits", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = _summary(runs)
    report = common.rounded({
        "benchmark": "align",
        "description": "one round of RAR's online alignment (convrec.align.trainer.Aligner, rounds = 1) on "
        f"{args.dataset} per (contexts per round C, set size K): wall time and its phases, LLM calls, memo and "
        "response-cache hits, cold (empty response cache) and warm (the same round again, every reply cached); "
        "LLM load and Aligner set-up apart; peak RSS; a fresh process per round",
        "command": common.command_info(SCRIPT, argv),
        "machine": common.finish_machine_info(machine),
        "settings": {
            "quick": args.quick, "model": args.model, "threads": args.threads, "contexts": args.contexts,
            "ks": args.ks, "group_size": args.group_size, "method": args.method, "seed": args.seed,
            "valid_samples": args.valid_samples if args.valid_samples is not None
            else base_settings.get("valid_samples"),
            "dataset": args.dataset, "config": args.config, "config_settings": base_settings,
            "checkpoint": "tiny lrurec trained here (see 'training')" if args.train_tiny else str(args.checkpoint),
            "prepare_seconds (fetch + convert, not measured)": prepare_seconds,
            "definitions": {
                "round_seconds": "RoundStats.seconds of round 1: sampling + llm_feedback + update + validation "
                "(+ the KL to the reference, untimed apart)",
                "phase_seconds": "RoundStats.phase_seconds: sampling (scores, Gumbel top-K sets, log-probs), "
                "llm_feedback (the rewards: pointwise LLM scores of the sets that contain the target), update "
                "(DPO/GRPO steps), validation (retriever alone on valid_samples)",
                "run_overhead_seconds": "Aligner.run() minus the round: round 0's validation, checkpoints, "
                "history.json and curves.png",
                "llm_load": "build_llm(config.llm): llama.cpp loads the GGUF; the SQLite cache is opened",
                "setup": "Aligner(...): policy and reference from the checkpoint, contexts, validation subset",
                "llm": "the round's FeedbackCounts: sets, sets_with_target, item_scores = memo_hits + "
                "llm_requests, llm_requests = cache_hits + llm_calls (model calls), failed, neutral, prompt "
                "tokens and those reused from llama.cpp's prompt-prefix cache",
                "cold": "an empty response cache and a fresh run dir",
                "warm": "the same round again (same checkpoint and seed, so the same sets) in a new process "
                "with the cold round's cache and a fresh run dir",
                "cache_hit_rate": "cache_hits / llm_requests (null when no request)",
                "seconds_per_llm_call": "cold llm_feedback seconds / llm_calls (null when no call)",
                "speedup": "cold round_seconds / warm round_seconds",
                "seconds_per_context": "cold round_seconds / C",
            },
        },
        "memory_method": common.MEMORY_METHOD,
        "training": training,
        "runs": runs,
        "summary": summary,
        "total_seconds": time.perf_counter() - started,
    })
    print_tables(report)
    common.write_report(args.out, report)
    return report


def print_tables(report: dict[str, Any]) -> None:
    fmt = common.fmt
    training = report["training"]
    if training is not None:
        common.print_table(
            "tiny supervised checkpoint (lrurec, items only): fit() on train with valid",
            ["recommender", "fit s", "epochs", "valid R@10", "peak MiB"],
            [["lrurec", fmt(training["fit"]["seconds"]), fmt(training["summary"].get("epochs_run")),
              fmt(training["summary"].get("best_valid_recall@10"), 4), fmt(training["process_peak_rss_mib"], 0)]],
        )
    rows = []
    for row in report["summary"]:
        cold, warm = row["cold"], row.get("warm")
        llm, phases = cold["llm"], cold["phase_seconds"]
        rows.append([
            fmt(row["contexts"]), fmt(row["k"]), f"{fmt(llm['sets_with_target'])} / {fmt(llm['sets'])}",
            fmt(llm["llm_requests"]), fmt(llm["llm_calls"]), fmt(llm["memo_hits"]),
            fmt(cold["round_seconds"]), fmt(phases.get("sampling")), fmt(phases.get("llm_feedback")),
            fmt(phases.get("update")), fmt(phases.get("validation")), fmt(cold["seconds_per_llm_call"]),
            fmt(warm["round_seconds"]) if warm else "-",
            fmt(warm["cache_hit_rate"]) if warm and warm["cache_hit_rate"] is not None else "-",
            fmt(row.get("speedup"), 1) if row.get("speedup") is not None else "-",
            fmt(cold["peak_rss_mib"], 0),
        ])
    settings = report["settings"]
    common.print_table(
        f"one alignment round ({settings['method']}, group size {settings['group_size']}) with {settings['model']} "
        f"({settings['threads']} thread(s)): cold = empty response cache, warm = the same round again",
        ["C", "K", "sets w/ target", "LLM requests", "model calls", "memo hits", "cold s", "sampling s",
         "LLM feedback s", "update s", "valid s", "s / call", "warm s", "warm hit rate", "speed-up", "peak MiB"],
        rows,
    )
    setup_rows = [[fmt(run["contexts"]), fmt(run["k"]), run["cache"], fmt(run["llm_load"]["seconds"]),
                   fmt(run["llm_load"]["peak_delta_mib"], 0), fmt(run["setup"]["seconds"]),
                   fmt(run["run"]["seconds"]), fmt(run["run_overhead_seconds"]),
                   fmt(run["process_peak_rss_mib"], 0)] for run in report["runs"]]
    common.print_table(
        "per worker: LLM load, Aligner set-up, the whole run() (round 0 validation, round, checkpoints)",
        ["C", "K", "cache", "llm load s", "llm load +MiB", "setup s", "run s", "of which not the round s",
         "process peak MiB"],
        setup_rows,
    )


if __name__ == "__main__":
    if common.is_worker_call(sys.argv[1:]):
        sys.exit(common.worker_main(_worker, sys.argv[1:]))
    main()
