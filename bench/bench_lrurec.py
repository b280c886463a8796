"""Benchmark: LRURec training time on ReDial, per-turn inference latency, and scoring cost vs catalogue size.

    python bench/bench_lrurec.py [--out bench/out/bench_lrurec.json] [--threads 2] [--quick]
                                 [--epochs N] [--skip-training] [--cache-dir DIR]
                                 [--turns 500] [--lengths 5 20 50] [--batch 64]
                                 [--variants id text] [--scaling-items 7000 30000 100000 300000]

Part 1, training (``lrurec``: items only, ``text_init`` on, ``train.threads = --threads``) on ReDial:

- the items' MiniLM text embeddings are computed first, in their own process (the one-off encoding
  time, reported separately); the cache lives in the temporary data dir, so this is a cold encode, unless
  ``--cache-dir`` names a persistent cache, which the JSON then reports as warm or cold;
- a fresh process then fits the recommender on train with early stopping on valid Recall@10 (the cache is
  warm by then, so the fit does not encode anything). Per-epoch seconds come from the run's
  ``history.json``, and the validation pass inside each epoch is timed separately. Time to convergence is
  the whole ``fit()``: building the examples and the model, every epoch until early stopping (or the
  ``--epochs`` cap), and loading the best weights back.

Part 2, per-turn inference at the ReDial catalogue size (6,924 items + BOS = 6,925 model items), randomly
initialised model (hidden 64, 2 blocks), ``model.eval()``, ``torch.no_grad()``, batch 1, one timed call per
turn:

- ``step``: ``LRURec.step()`` appends one item to the cached per-block states and scores the catalogue;
- ``scan L``: ``LRURec.score_sequences()`` re-reads the whole history of length L (parallel scan);
- throughput: the same calls on batches of ``--batch`` sequences, turns/s = batch x calls / seconds.

Variants: ``id`` (``nn.Embedding`` items: ``LRURecConfig(n_items=N)``) and ``text`` (the ``lrurec``
recommender's default ``text_init``: E = Linear(384 -> H)(fixed text matrix) + delta, a random text matrix
here), where every scoring call rebuilds E from the text matrix; that rebuild is also timed alone.

Part 3, scoring cost vs catalogue size: synthetic catalogues of ``--scaling-items`` (``id`` variant, random
init), step latency at batch 1, parameter memory and the process's peak RSS, one fresh process per size.

Every measurement runs in a fresh process with ``torch.set_num_threads(--threads)``. ``--quick`` (used by the
smoke test): no training, 30 turns, catalogues up to 30k; its numbers are only a smoke check.
"""

from __future__ import annotations

import argparse
import json
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
DEFAULT_OUT = common.BENCH_DIR / "out" / "bench_lrurec.json"
DATASET = "redial"
REDIAL_ITEMS = 6924
TEXT_DIM = 384  # all-MiniLM-L6-v2
VARIANTS = ("id", "text")
TARGETS = {
    "training_convergence_seconds": 600.0,  # under 10 minutes on 2 cores
    "step_ms_at_redial": 5.0,  # per turn at ~7k items
    "step_ms_at_300k": 30.0,  # per turn at 300k items
}


# ---------------------------------------------------------------- worker side (a fresh process per call)


def _set_threads(threads: int) -> dict[str, int]:
    import torch

    torch.set_num_threads(threads)
    return {"torch_num_threads": torch.get_num_threads(), "torch_num_interop_threads": torch.get_num_interop_threads()}


def _ms_summary(seconds: list[float]) -> dict[str, Any]:
    import numpy as np

    ms = np.asarray(seconds, dtype=np.float64) * 1000.0
    return {
        "n": int(ms.size),
        "p50_ms": float(np.percentile(ms, 50)),
        "p90_ms": float(np.percentile(ms, 90)),
        "p99_ms": float(np.percentile(ms, 99)),
        "mean_ms": float(ms.mean()),
        "min_ms": float(ms.min()),
        "max_ms": float(ms.max()),
    }


def _timed_calls(fn, n_calls: int, warmup: int) -> list[float]:
    """Seconds of each of ``n_calls`` calls of ``fn(i)`` after ``warmup`` untimed ones."""
    for i in range(warmup):
        fn(i)
    out = []
    for i in range(n_calls):
        started = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - started)
    return out


def _build_model(n_items: int, variant: str, hidden: int, n_blocks: int, seed: int):
    import torch

    from convrec.retrieval.lrurec.model import LRURec, LRURecConfig

    torch.manual_seed(seed)
    if variant == "id":
        return LRURec(LRURecConfig(n_items=n_items, hidden=hidden, n_blocks=n_blocks)).eval()
    text = torch.nn.functional.normalize(torch.randn(n_items + 1, TEXT_DIM), dim=1)  # like MiniLM: unit rows
    text[0] = 0.0
    return LRURec(LRURecConfig(n_items=n_items, hidden=hidden, n_blocks=n_blocks, text_dim=TEXT_DIM), text).eval()


def _tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def _latency_worker(task: dict[str, Any]) -> dict[str, Any]:
    """Per-turn latency (and, unless ``step_only``, full scans and batched throughput) of one random model."""
    threads = _set_threads(task["threads"])
    import torch

    import convrec.retrieval.lrurec.model  # noqa: F401  (imports outside the build phase's memory)

    n_items, turns, warmup = task["n_items"], task["turns"], task["warmup"]
    with common.Phase() as build:
        model = _build_model(n_items, task["variant"], task["hidden"], task["n_blocks"], task["seed"])
    generator = torch.Generator().manual_seed(task["seed"] + 1)

    def random_ids(*shape: int) -> torch.Tensor:
        return torch.randint(1, n_items + 1, shape, generator=generator)

    history = task["history"]  # items already in the states before the timed turns
    result: dict[str, Any] = {
        "variant": task["variant"],
        "n_items": n_items,
        "model_items_note": "LRURecConfig.n_items (catalogue + BOS for ReDial); scores have n_items + 1 columns",
        "hidden": task["hidden"],
        "n_blocks": task["n_blocks"],
        "threads": threads,
        "parameters": sum(p.numel() for p in model.parameters()),
        "parameter_mib": _tensor_bytes(model.parameters()) / 2**20,
        "buffer_mib": _tensor_bytes(model.buffers()) / 2**20,
        "build": build.to_json(),
    }
    with common.Phase() as measure, torch.no_grad():
        # (a) recurrent step, batch 1: one item appended to the cached states, the whole catalogue scored.
        items = random_ids(warmup + turns, 1)
        states = model.encode(random_ids(1, history))[0]

        def step(i: int) -> None:
            nonlocal states
            states, scores = model.step(states, items[i])
            assert scores.shape == (1, n_items + 1)

        result["step"] = _ms_summary(_timed_calls(step, turns, warmup))
        if task["variant"] == "text":  # the part of every scoring call that rebuilds E from the text matrix
            result["item_embeddings_rebuild"] = _ms_summary(
                _timed_calls(lambda i: model.item_embeddings(), turns, warmup))
        if not task["step_only"]:
            # (b) full scan over the history of length L, batch 1.
            scans = {}
            for length in task["lengths"]:
                sequences = random_ids(warmup + turns, length)
                scans[str(length)] = _ms_summary(
                    _timed_calls(lambda i, s=sequences: model.score_sequences(s[i : i + 1]), turns, warmup))
            result["scan"] = scans
            # Throughput with batches of `batch` sequences.
            batch, calls = task["batch"], task["batch_calls"]
            throughput: dict[str, Any] = {"batch": batch, "calls": calls}
            batch_items = random_ids(warmup + calls, batch)
            batch_states = model.encode(random_ids(batch, history))[0]

            def batch_step(i: int) -> None:
                nonlocal batch_states
                batch_states, _ = model.step(batch_states, batch_items[i])

            seconds = _timed_calls(batch_step, calls, warmup)
            throughput["step"] = {**_ms_summary(seconds), "turns_per_second": batch * calls / sum(seconds)}
            for length in task["lengths"]:
                sequences = random_ids(warmup + calls, batch, length)
                seconds = _timed_calls(lambda i, s=sequences: model.score_sequences(s[i]), calls, warmup)
                throughput[f"scan {length}"] = {**_ms_summary(seconds),
                                                "turns_per_second": batch * calls / sum(seconds)}
            result["throughput"] = throughput
    result["measure"] = measure.to_json()
    # The whole process's peak: the phases' peaks (resetting the high-water mark also resets ru_maxrss on
    # Linux, so _common's default ``process_peak_rss_mib`` would only cover the last phase).
    result["process_peak_rss_mib"] = round(max(build.peak, measure.peak, common.peak_rss_mib()), 1)
    return result


def _prepare_dataset(task: dict[str, Any]):
    from convrec.data.load import load_dataset

    return load_dataset(task["dataset"], Path(task["data_dir"]), Path(task["mirror"]))


def _text_worker(task: dict[str, Any]) -> dict[str, Any]:
    """The one-off encoding of the catalogue's item texts into the embedding cache the recommender reads."""
    threads = _set_threads(task["threads"])
    import numpy as np

    from convrec.text.encoder import EncoderConfig, TextEncoder, item_cache_file

    dataset = _prepare_dataset(task)
    encoder = TextEncoder(EncoderConfig())  # the lrurec recommender's default encoder
    cache_file = item_cache_file(Path(task["cache_dir"]), encoder, dataset.catalog)
    cached_before = 0
    if cache_file.exists():
        with np.load(cache_file) as stored:
            cached_before = int(stored["keys"].shape[0])
    texts = dataset.catalog.texts()
    model_load_seconds = None
    if not cache_file.exists():  # cold: load MiniLM separately, so the encoding rate excludes it
        started = time.perf_counter()
        _ = encoder.dim
        model_load_seconds = time.perf_counter() - started
    with common.Phase() as phase:
        vectors = encoder.encode_cached(texts, cache_file, progress=False)
    with np.load(cache_file) as stored:
        cached_after = int(stored["keys"].shape[0])
    encoded = cached_after - cached_before
    return {
        "cache_file": str(cache_file),
        "cache_state_before": "cold (no cache file)" if model_load_seconds is not None
        else ("warm" if encoded == 0 else "partial"),
        "texts": len(texts),
        "unique_texts_encoded_now": encoded,
        "dim": int(vectors.shape[1]),
        "model_load_seconds": model_load_seconds,
        "encode": phase.to_json(),
        "texts_per_second": encoded / phase.seconds if encoded and phase.seconds else None,
        "one_off_seconds": (model_load_seconds or 0.0) + phase.seconds,
        "threads": threads,
    }


def _train_worker(task: dict[str, Any]) -> dict[str, Any]:
    threads = _set_threads(task["threads"])
    from convrec.retrieval import build_recommender
    from convrec.retrieval.lrurec import recommender as lrurec_module

    dataset = _prepare_dataset(task)
    train, valid = dataset.split("train"), dataset.split("valid")
    validation_seconds: list[float] = []
    evaluate_samples = lrurec_module.evaluate_samples

    def timed_validation(*args, **kwargs):  # the per-epoch validation pass, timed (this process only)
        started = time.perf_counter()
        try:
            return evaluate_samples(*args, **kwargs)
        finally:
            validation_seconds.append(time.perf_counter() - started)

    lrurec_module.evaluate_samples = timed_validation
    run_dir = Path(task["run_dir"])
    train_options: dict[str, Any] = {"threads": task["threads"]}
    if task.get("epochs") is not None:
        train_options["epochs"] = task["epochs"]
    options = {"text_init": True, "dialogue_text": False, "cache_dir": task["cache_dir"], "run_dir": str(run_dir),
               "train": train_options}
    recommender = build_recommender("lrurec", dataset.catalog, options)
    with common.Phase() as fit:
        recommender.fit(train, valid)
    history = json.loads((run_dir / "history.json").read_text())
    config = recommender.config
    epoch_seconds = [h["seconds"] for h in history]
    best_epoch = recommender.summary.get("best_epoch") or 0
    early_stopped = len(history) - best_epoch >= config.train.patience
    epochs = []
    for index, h in enumerate(history):
        valid_s = validation_seconds[index] if index < len(validation_seconds) else None
        epochs.append({"epoch": h["epoch"], "phase": h["phase"], "seconds": h["seconds"],
                       "validation_seconds": valid_s,
                       "train_seconds": None if valid_s is None else h["seconds"] - valid_s,
                       "loss": h["loss"], "valid_recall@10": h["valid_recall_at_10"],
                       "valid_ndcg@10": h["valid_ndcg_at_10"]})
    import statistics

    return {
        "dataset": dataset.name,
        "recommender": "lrurec",
        "options": options,
        "train_options": config.train.model_dump(),
        "threads": threads,
        "n_items": len(dataset.catalog),
        "n_train_dialogues": len(train.dialogues),
        "n_valid_samples": len(valid.samples),
        "summary": recommender.summary,
        "fit": fit.to_json(),
        "time_to_convergence_seconds": fit.seconds,
        "epochs_run": len(history),
        "epoch_cap": config.train.epochs,
        "best_epoch": best_epoch,
        "early_stopped": early_stopped,
        "seconds_to_best_epoch": sum(epoch_seconds[:best_epoch]),
        "epoch_seconds": {"median": statistics.median(epoch_seconds), "mean": statistics.fmean(epoch_seconds),
                          "min": min(epoch_seconds), "max": max(epoch_seconds)} if epoch_seconds else None,
        "validation_seconds_median": statistics.median(validation_seconds) if validation_seconds else None,
        "epochs": epochs,
    }


def _worker(task: dict[str, Any]) -> dict[str, Any]:
    return {"latency": _latency_worker, "text": _text_worker, "train": _train_worker}[task["mode"]](task)


# ---------------------------------------------------------------- driver


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument("--threads", type=int, default=2, help="torch threads in every worker (default 2)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke settings: no training, 30 turns, catalogues 7k and 30k")
    parser.add_argument("--skip-training", action="store_true", help="skip part 1 (no data mirror needed)")
    parser.add_argument("--dataset", default=DATASET,
                        help=f"dataset of part 1 (default {DATASET}; the 10-minute target is ReDial's, another "
                        "dataset only for trying the script out)")
    parser.add_argument("--epochs", type=int, default=None,
                        help="cap on training epochs (default: the recommender's, 60; early stopping decides)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="embedding cache for the item texts (default: a temporary one, so the encoding "
                        "is measured cold); a given dir is used and kept, and may already be warm")
    parser.add_argument("--turns", type=int, default=None, help="timed turns per latency (default 500; quick 30)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed calls first (default 20; quick 3)")
    parser.add_argument("--lengths", nargs="+", type=int, default=[5, 20, 50], metavar="L",
                        help="history lengths of the full scan (default 5 20 50)")
    parser.add_argument("--history", type=int, default=10,
                        help="items in the cached states before the timed steps (default 10)")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the throughput runs (default 64)")
    parser.add_argument("--batch-calls", type=int, default=None,
                        help="timed calls per throughput run (default 100; quick 5)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=VARIANTS,
                        help="item embeddings in part 2 (default id text; none: skip part 2)")
    parser.add_argument("--scaling-items", nargs="*", type=int, default=None, metavar="N",
                        help="catalogue sizes of part 3 (default 7000 30000 100000 300000; quick 7000 30000; "
                        "none: skip part 3)")
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--n-blocks", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mirror", type=Path, default=None,
                        help="raw data mirror (default $CONVREC_DATA_MIRROR or ../shared/data)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data dir holding (or to receive) ReDial and the training run; default: a fresh "
                        "temporary dir, removed afterwards")
    args = parser.parse_args(argv)
    if args.quick:
        args.skip_training = True
    defaults = {"turns": (500, 30), "warmup": (20, 3), "batch_calls": (100, 5),
                "scaling_items": ([7000, 30000, 100000, 300000], [7000, 30000])}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def _training(args: argparse.Namespace) -> dict[str, Any]:
    from convrec.data.load import load_dataset

    mirror = common.find_mirror(args.mirror)
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="convrec-bench-lrurec-")) if temporary else args.data_dir.resolve()
    try:
        started = time.perf_counter()
        load_dataset(args.dataset, data_dir, mirror)  # fetch + convert once, outside the measurements
        prepare_seconds = time.perf_counter() - started
        cache_dir = args.cache_dir.resolve() if args.cache_dir is not None else data_dir / "embedding-cache"
        base = {"dataset": args.dataset, "data_dir": str(data_dir), "mirror": str(mirror), "cache_dir": str(cache_dir),
                "threads": args.threads}
        text = common.run_worker(SCRIPT, {**base, "mode": "text"})
        print(f"  item texts ({text['cache_state_before']}): {text['encode']['seconds']:.1f}s", file=sys.stderr)
        data_dir.mkdir(parents=True, exist_ok=True)
        run_dir = Path(tempfile.mkdtemp(prefix="bench-lrurec-run-", dir=data_dir))  # fresh: never resumes
        run = common.run_worker(SCRIPT, {**base, "mode": "train", "run_dir": str(run_dir), "epochs": args.epochs},
                                timeout=6 * 3600)
        print(f"  training: {run['epochs_run']} epochs, {run['time_to_convergence_seconds']:.1f}s", file=sys.stderr)
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    seconds = run["time_to_convergence_seconds"]
    return {
        "dataset": args.dataset,
        "mirror": str(mirror),
        "data_dir": "temporary (removed afterwards)" if temporary else str(data_dir),
        "cache_dir": "temporary (removed afterwards)" if args.cache_dir is None else str(cache_dir),
        "prepare_seconds (fetch + convert, not measured)": prepare_seconds,
        "text_embeddings": {**text, "note": "one-off: computed before training, in its own process; the fit "
                            "reads them from the cache (warm by then) and its time excludes this encoding"},
        "run": run,
        "target": {"convergence_seconds_max": TARGETS["training_convergence_seconds"],
                   "converged (early-stopped, not capped)": run["early_stopped"],
                   "met": run["early_stopped"] and seconds < TARGETS["training_convergence_seconds"]},
    }


def _latency_task(args: argparse.Namespace, n_items: int, variant: str, step_only: bool) -> dict[str, Any]:
    return {"mode": "latency", "n_items": n_items, "variant": variant, "hidden": args.hidden,
            "n_blocks": args.n_blocks, "turns": args.turns, "warmup": args.warmup, "history": args.history,
            "lengths": args.lengths, "batch": args.batch, "batch_calls": args.batch_calls, "threads": args.threads,
            "seed": args.seed, "step_only": step_only}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    machine = common.machine_info()

    training: dict[str, Any] = {"skipped": True, "reason": "--quick" if args.quick else "--skip-training"}
    if not args.skip_training:
        training = _training(args)

    latency = []
    for variant in args.variants:
        run = common.run_worker(SCRIPT, _latency_task(args, REDIAL_ITEMS + 1, variant, step_only=False))
        latency.append(run)
        print(f"  latency {variant}: step p50 {run['step']['p50_ms']:.2f} ms", file=sys.stderr)

    scaling = []
    for n_items in args.scaling_items:
        run = common.run_worker(SCRIPT, _latency_task(args, n_items, "id", step_only=True))
        scaling.append(run)
        print(f"  scaling {n_items:,}: step p50 {run['step']['p50_ms']:.2f} ms", file=sys.stderr)

    report = common.rounded({
        "benchmark": "lrurec",
        "description": "LRURec: training time to convergence on ReDial (lrurec, text_init), per-turn inference "
        "latency at the ReDial catalogue size (recurrent step vs full scan, batch 1) and batched throughput, "
        "and step latency and memory vs catalogue size on synthetic catalogues; fresh process per measurement",
        "command": common.command_info(SCRIPT, argv),
        "machine": common.finish_machine_info(machine),
        "settings": {
            "quick": args.quick,
            "threads": args.threads,
            "turns": args.turns,
            "warmup_calls": args.warmup,
            "history_before_steps": args.history,
            "scan_lengths": args.lengths,
            "throughput_batch": args.batch,
            "throughput_calls": args.batch_calls,
            "variants": args.variants,
            "scaling_items": args.scaling_items,
            "hidden": args.hidden,
            "n_blocks": args.n_blocks,
            "seed": args.seed,
            "epochs_cap": args.epochs,
            "targets": TARGETS,
            "definitions": {
                "step": "one LRURec.step() call, batch 1: append one item to the cached per-block states and "
                "score the whole catalogue (n_items + 1 columns); model.eval(), torch.no_grad()",
                "scan L": "one LRURec.score_sequences() call on a (1, L) history (parallel scan, then scoring)",
                "turns_per_second": "batch x calls / total seconds of the timed calls",
                "item_embeddings_rebuild": "text variant only: LRURec.item_embeddings() alone, which every "
                "scoring call recomputes (Linear(384 -> H) over the whole text matrix, plus delta)",
                "time_to_convergence_seconds": "recommender.fit(train, valid): examples, model build (item "
                "texts read from the warm cache), every epoch (training + validation) until early stopping or "
                "the cap, loading the best weights and writing curve.png",
                "epoch seconds": "history.json 'seconds': one epoch's training plus its validation pass",
                "p50/p90/p99": "percentiles over the timed calls (numpy linear interpolation)",
            },
        },
        "memory_method": common.MEMORY_METHOD,
        "training": training,
        "latency": latency,
        "scaling": scaling,
        "targets": _targets(training, latency, scaling),
        "total_seconds": time.perf_counter() - started,
    })
    common.write_report(args.out, report)
    _print(report)
    return report


def _targets(training: dict[str, Any], latency: list[dict], scaling: list[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if not training.get("skipped"):
        out["training_under_10_min"] = training["target"]["met"]
    for run in latency:
        limit = TARGETS["step_ms_at_redial"]
        out[f"step_{run['variant']}_redial_p50_under_{limit:g}ms"] = run["step"]["p50_ms"] < limit
        out[f"step_{run['variant']}_redial_p99_under_{limit:g}ms"] = run["step"]["p99_ms"] < limit
    for run in scaling:
        if run["n_items"] >= 300_000:
            limit = TARGETS["step_ms_at_300k"]
            out[f"step_{run['n_items']}_p50_under_{limit:g}ms"] = run["step"]["p50_ms"] < limit
            out[f"step_{run['n_items']}_p99_under_{limit:g}ms"] = run["step"]["p99_ms"] < limit
    return out


def _mib(phase: dict[str, Any]) -> str:
    return f"{phase['peak_rss_mib']:,.0f} (+{phase['peak_delta_mib']:,.0f})"


def _print(report: dict[str, Any]) -> None:
    fmt = common.fmt
    training = report["training"]
    if not training.get("skipped"):
        text, run = training["text_embeddings"], training["run"]
        common.print_table(
            f"training lrurec on {training['dataset']} ({run['threads']['torch_num_threads']} threads): one-off "
            "item-text encoding, then fit() to early stopping; peak RSS MiB (+ over the process before the phase)",
            ["phase", "seconds", "epochs (best)", "epoch s median", "of which valid s", "peak MiB", "detail"],
            [
                ["item-text embeddings", fmt(text["encode"]["seconds"]), "-", "-", "-", _mib(text["encode"]),
                 f"{text['cache_state_before']}; {fmt(text['unique_texts_encoded_now'])} texts encoded"
                 + (f", model load {text['model_load_seconds']:.1f}s" if text["model_load_seconds"] else "")],
                ["fit (to convergence)", fmt(run["time_to_convergence_seconds"]),
                 f"{run['epochs_run']} ({run['best_epoch']})", fmt(run["epoch_seconds"]["median"]),
                 fmt(run["validation_seconds_median"]), _mib(run["fit"]),
                 f"early stopped: {run['early_stopped']}; best valid R@10 "
                 f"{run['summary'].get('best_valid_recall@10')}; target < 600 s met: {training['target']['met']}"],
            ],
        )
    rows = []
    for run in report["latency"]:
        entries = [("step", run["step"])] + [(f"scan L={length}", s) for length, s in run["scan"].items()]
        if "item_embeddings_rebuild" in run:
            entries.append(("(E rebuild alone)", run["item_embeddings_rebuild"]))
        for index, (name, s) in enumerate(entries):
            key = "step" if name == "step" else f"scan {name.split('=')[-1]}" if name.startswith("scan") else None
            tp = run["throughput"].get(key) if key else None
            rows.append([run["variant"] if index == 0 else "", name, fmt(s["p50_ms"], 3), fmt(s["p90_ms"], 3),
                         fmt(s["p99_ms"], 3), fmt(s["n"]),
                         fmt(tp["p50_ms"], 2) if tp else "-", fmt(tp["turns_per_second"], 0) if tp else "-"])
    if rows:
        first = report["latency"][0]
        common.print_table(
            f"per-turn latency at {first['n_items']:,} model items (ReDial + BOS), hidden {first['hidden']}, "
            f"{first['n_blocks']} blocks, {first['threads']['torch_num_threads']} threads: batch 1 ms, and batch "
            f"{first['throughput']['batch']} throughput",
            ["variant", "call", "p50 ms", "p90 ms", "p99 ms", "turns", f"batch {first['throughput']['batch']} "
             "p50 ms", "turns/s"],
            rows,
        )
    rows = [[fmt(run["n_items"]), fmt(run["step"]["p50_ms"], 3), fmt(run["step"]["p99_ms"], 3),
             fmt(run["parameters"]), fmt(run["parameter_mib"], 1), _mib(run["build"]), _mib(run["measure"]),
             fmt(run["process_peak_rss_mib"], 0)] for run in report["scaling"]]
    if rows:
        common.print_table(
            "recurrent step vs catalogue size (synthetic, id embeddings, batch 1); memory in MiB",
            ["items", "step p50 ms", "step p99 ms", "parameters", "param MiB", "build peak", "measure peak",
             "process peak"],
            rows,
        )


if __name__ == "__main__":
    if common.is_worker_call(sys.argv[1:]):
        sys.exit(common.worker_main(_worker, sys.argv[1:]))
    main()
