"""Benchmark: the learned second stage (``learned-ranker``): its training, and its cost per turn by stage.

    python bench/bench_learned_ranker.py --run results/runs/learned-ranker-redial [--dataset redial]
                                         [--turns 200] [--skip-train] [--out bench/out/bench_learned_ranker.json]

Two fresh worker processes:

- **train**: ``LearnedRanker.fit`` with the options of ``--run`` (its first retriever loads its own
  checkpoint) into a temporary run directory, so the validation features are computed anew: the whole cost of
  training (fitting EASE / item-kNN, the dense retriever's encodings, scoring validation, the agent's reading of
  each validation turn, cross-validation, the final model), wall time and peak RSS. Text encodings cached by
  earlier runs in ``$CONVREC_CACHE_DIR`` are reused (as a second training on the same machine would); a cold
  cache adds the MiniLM encoding of the validation dialogues (~30 texts/s on 2 cores).
- **turns**: the trained ``--run`` loaded, then ``--turns`` seeded test samples of ``--dataset``, one context at a
  time as a chat turn asks: **retrieval** (each first-stage retriever's ``score([view])``, the whole catalogue),
  **features** (``CandidateFeaturizer.rows_of``: candidates, and the agent's reading of the dialogue), **model**
  (LightGBM's prediction over the candidates), **cross_encoder** when the run has one (its scores of the
  model's top ``cross_encoder_top`` candidates, and the blend; target: under 1 s for 20), and the **second
  stage** = features + model (+ cross-encoder), the cost the learned ranker adds to its retrievers (target:
  under 50 ms per turn for about 100 candidates without the cross-encoder, on 2 cores).

Reports median, p90 and max in ms per stage, candidates per turn, and peak RSS; the JSON holds every turn.
"""

from __future__ import annotations

import argparse
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


def _load(task: dict[str, Any]):
    from convrec.data.load import load_dataset

    dataset = load_dataset(task["dataset"], Path(task["data_dir"]) if task.get("data_dir") else None, progress=False)
    return dataset


def worker(task: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from convrec.agent.quality.relevance import blend_cross, top_candidates
    from convrec.retrieval.base import build_recommender

    dataset = _load(task)
    train, valid, test = dataset.split("train"), dataset.split("valid"), dataset.split("test")
    saved = json.loads((Path(task["run"]) / "config.json").read_text(encoding="utf-8"))
    if task["kind"] == "train":
        out = Path(tempfile.mkdtemp(prefix="bench-learned-ranker-"))
        try:
            options = {**saved["options"], "run_dir": str(out)}
            common.reset_peak()
            started = time.perf_counter()
            ranker = build_recommender("learned-ranker", dataset.catalog, options)
            ranker.fit(train, valid)
            seconds = time.perf_counter() - started
            return {"train_seconds": round(seconds, 1), "train_peak_rss_mib": round(common.peak_rss_mib(), 1),
                    "stages": ranker.summary.get("seconds", {}),
                    "validation_turns": ranker.summary.get("validation_turns")}
        finally:
            shutil.rmtree(out, ignore_errors=True)
    ranker = build_recommender("learned-ranker", dataset.catalog, {"checkpoint": task["run"]})
    started = time.perf_counter()
    ranker.fit(train, valid)
    load_seconds = time.perf_counter() - started
    featurizer = ranker.featurizer
    samples = random.Random(task["seed"]).sample(test.samples, min(task["turns"], len(test.samples)))
    views = [s.view() for s in samples]
    # one untimed turn: the adapter builds its indexes, LightGBM and the encoders warm up
    ranker.score(views[:1])
    common.reset_peak()
    turns = []
    for view in views:
        timing: dict[str, float] = {}
        scores = {}
        for name, retriever in featurizer.retrievers.items():
            t0 = time.perf_counter()
            scores[name] = np.nan_to_num(np.asarray(retriever.score([view]), dtype=np.float64)[0], nan=-np.inf)
            timing[f"retrieval:{name}"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        rows = featurizer.rows_of(view, scores)
        timing["features"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        predicted = ranker._predict(rows.features[:, ranker.columns])
        timing["model"] = time.perf_counter() - t0
        if ranker.cross is not None and ranker.cross_weight_ > 0:
            t0 = time.perf_counter()
            top = top_candidates(predicted, ranker.config.cross_encoder_top)
            blend_cross(predicted, top, ranker._cross_scores([view.context_text()], [rows.positions[top]])[0],
                        ranker.cross_weight_)
            timing["cross_encoder"] = time.perf_counter() - t0
        timing["retrieval"] = sum(v for k, v in timing.items() if k.startswith("retrieval:"))
        timing["second_stage"] = timing["features"] + timing["model"] + timing.get("cross_encoder", 0.0)
        timing["total"] = timing["retrieval"] + timing["second_stage"]
        turns.append({"candidates": len(rows.positions), **{k: round(v * 1000, 3) for k, v in timing.items()}})
    return {"load_seconds": round(load_seconds, 1), "turns": turns, "turns_peak_rss_mib": round(common.peak_rss_mib(), 1)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if common.is_worker_call(argv):
        return common.worker_main(worker, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a learned-ranker run (convrec train ... --out RUN)")
    parser.add_argument("--dataset", default=None, help="default: the run's dataset")
    parser.add_argument("--data-dir", type=Path, default=None, help="where processed datasets live (default ./data)")
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-train", action="store_true", help="only the per-turn cost")
    parser.add_argument("--out", type=Path, default=common.BENCH_DIR / "out" / "bench_learned_ranker.json")
    args = parser.parse_args(argv)
    config = args.run / "config.json"
    if not config.is_file():
        parser.error(f"{args.run} is not a learned-ranker run (no config.json): train one with "
                     "`convrec train --recommender learned-ranker --out RUN`")
    dataset = args.dataset or json.loads(config.read_text(encoding="utf-8")).get("dataset")
    info = common.machine_info()
    task = {"dataset": dataset, "run": str(args.run.resolve()), "seed": args.seed, "turns": args.turns,
            "data_dir": str(args.data_dir.resolve()) if args.data_dir else None}
    report: dict[str, Any] = {"command": common.command_info(SCRIPT, argv), "memory_method": common.MEMORY_METHOD}
    if not args.skip_train:
        trained = common.run_worker(SCRIPT, {**task, "kind": "train"})
        report["train"] = trained
        common.print_table("learned-ranker training", ["dataset", "seconds", "peak RSS MiB", "validation turns"],
                           [[dataset, trained["train_seconds"], trained["train_peak_rss_mib"],
                             trained["validation_turns"]]])
    measured = common.run_worker(SCRIPT, {**task, "kind": "turns"})
    stages = [k for k in measured["turns"][0] if k != "candidates"]
    report["turns"] = measured
    report["per_stage_ms"] = {k: common.percentiles([t[k] for t in measured["turns"]]) for k in stages}
    report["candidates"] = common.percentiles([t["candidates"] for t in measured["turns"]])
    rows = [[k, common.fmt(v["median"]), common.fmt(v["p90"]), common.fmt(v["max"])]
            for k, v in report["per_stage_ms"].items()]
    common.print_table(f"per turn ({len(measured['turns'])} {dataset} test contexts, "
                       f"{report['candidates']['median']:.0f} candidates median), ms",
                       ["stage", "median", "p90", "max"], rows)
    report["machine"] = common.finish_machine_info(info)
    common.write_report(args.out, common.rounded(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
