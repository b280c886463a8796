"""Benchmark: latency of one HARPO agent turn on ReDial, end to end and by stage, without and with the LLM.

    python bench/bench_agent.py [--turns 200] [--llm-turns 20] [--llm qwen2.5-coder-1.5b] [--threads 1]
                                [--retriever itemknn | --checkpoint RUN] [--skip-llm] [--quick]
                                [--quality JSON] [--out bench/out/bench_agent.json]

``--quality``: CHARM's quality options as JSON (``HarpoOptions.quality``, e.g.
``'{"weights": {"relevance": 1, "diversity": 0.3, "satisfaction": 0.1}, "satisfaction_run": "RUN"}'``): the
weighted quality order runs inside ``rank_options``, whose own time is shown beside **search and ranking**
(of which it is a part).

Turns: ``--turns`` seeded ReDial test samples (``random.Random(seed).sample`` of the test split), one agent turn
each (``HarpoAgent.respond`` on the sample's context-only view); the LLM worker answers the first
``--llm-turns`` of the same draw, so both measure the same contexts. The agent works on the whole catalogue
(6,916 items on ReDial) over the first-stage retriever: ``itemknn`` fit on train (default), or ``lrurec-text``
from a ``convrec train`` run (``--checkpoint RUN``), built as ``convrec eval`` builds it.

One fresh worker process per condition: **template** (``HarpoOptions(explainer="template")``: no LLM) and, unless
``--skip-llm``, **llm** (``explainer="llm"``: the Explainer's template rewritten by ``--llm``, a local llama.cpp
model, client from ``Resources.llm`` as the ``harpo`` recommender and ``convrec.evaluate.reply_quality`` get
theirs; the response cache is off, so every polish is a real model call). ``ask_first`` is off, as in
``reply_quality``: every turn runs the whole pipeline to a slate and a reply. Each worker loads ReDial and fits
the retriever (timed, not part of a turn), answers one untimed turn (the adapter builds its indexes on first
use; the LLM worker also loads the model there), then times each turn:

- **retrieval**: ``retriever.score([view])``, the whole catalogue, timed here before ``respond``, whose
  ``scores=`` it is (so the agent does not score again);
- **respond**: ``HarpoAgent.respond(view, scores=...)``, split by the turn's VTO trace (``VTOCall.seconds``):
  **state tracking** = the Recommender's calls of ``track_history``, ``analyze_sentiment``,
  ``extract_entities``, ``identify_constraints``, ``update_beliefs``, ``model_user_state``; **search and
  ranking** = the Recommender's other calls; **critique** = the Critic's calls;
- **explanation** = the wall time of ``ExplainerAgent.reply`` (a timing wrapper installed in the worker only):
  the template's ``explain_choice`` / ``query_knowledge`` calls, and with the LLM the polish request (which is
  not a VTO, so the trace alone would miss it) and the grounding check of the rewrite;
- **other** = respond minus the four stages above: untraced work, mostly ``RecommenderAgent.read``'s calls
  for the earlier turns of the dialogue (run without a trace; ``read_seconds``, the wall time of ``read()``,
  also timed by a wrapper, is in the JSON per turn) and building the turn's pydantic models;
- **total** = retrieval + respond.

Reported per stage and for the total: median, p90 and max in ms; per worker the peak RSS (the turns' own phase
and the whole process), the load and fit times; with the LLM also LLM calls, tokens, and the share of polishes
kept (the rewrite passed the ReplyWriter's check and the agent's grounding) with the refusal reasons. Targets:
a turn without the LLM under 100 ms (median total), with the LLM under 10 s (goal; judge it on an idle machine).
``--quick`` (the smoke test): 20 turns, 2 LLM turns with smollm2-135m. Run the full benchmark on an otherwise
idle machine: llama.cpp threads on busy cores slow down many-fold.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

SCRIPT = Path(__file__).resolve()
DEFAULT_OUT = common.BENCH_DIR / "out" / "bench_agent.json"
DATASET = "redial"
DEFAULT_LLM = "qwen2.5-coder-1.5b"
QUICK_LLM = "smollm2-135m"
TARGET_TURN_MS = 100.0  # a turn without the LLM (the target), median total
TARGET_LLM_TURN_S = 10.0  # goal for a turn with the LLM Explainer, median total
# the Recommender's calls inside read() (and model_user_state, which decides ask vs recommend from that state)
STATE_TRACKING = frozenset({"track_history", "analyze_sentiment", "extract_entities", "identify_constraints",
                            "update_beliefs", "model_user_state"})
STAGES = ("retrieval", "state_tracking", "search_ranking", "rank_options", "critique", "explanation", "other",
          "total")


# ---------------------------------------------------------------- worker side (a fresh process per call)


def _retriever(task: dict[str, Any], dataset):
    from convrec.resources import Resources
    from convrec.retrieval.base import build_recommender

    if task["checkpoint"] is not None:
        retriever = build_recommender("lrurec-text", dataset.catalog, {"checkpoint": task["checkpoint"]},
                                      resources=Resources.from_env())
    else:
        retriever = build_recommender(task["retriever"], dataset.catalog, {})
    retriever.fit(dataset.split("train"), dataset.split("valid"))
    return retriever


def _stages(turn, retrieval_s: float, respond_s: float, explanation_s: float) -> dict[str, float]:
    """One turn's seconds by stage (see the module docstring)."""
    state = search = critique = rank = 0.0
    for call in turn.trace:
        if call.operation == "rank_options":
            rank += call.seconds  # part of search and ranking: CHARM's weighted quality order runs in it
        if call.agent == "critic":
            critique += call.seconds
        elif call.agent == "recommender":
            if call.operation in STATE_TRACKING:
                state += call.seconds
            else:
                search += call.seconds
    # the explainer's own VTO calls are inside the timed ExplainerAgent.reply, so they are not added again
    other = max(respond_s - state - search - critique - explanation_s, 0.0)
    return {"retrieval": retrieval_s, "state_tracking": state, "search_ranking": search, "rank_options": rank,
            "critique": critique, "explanation": explanation_s, "other": other, "total": retrieval_s + respond_s}


def _agent_worker(task: dict[str, Any]) -> dict[str, Any]:
    import numpy as np

    from convrec.agent import maven
    from convrec.agent.config import HarpoOptions
    from convrec.agent.harpo import HarpoAgent
    from convrec.data.load import load_dataset
    from convrec.llm import LLMClient, LLMConfig, LocalOptions
    from convrec.resources import Resources

    mirror = Path(task["mirror"]) if task["mirror"] else None
    with common.Phase() as load:
        dataset = load_dataset(task["dataset"], Path(task["data_dir"]), mirror)
    with common.Phase() as fit:
        retriever = _retriever(task, dataset)
    samples = random.Random(task["seed"]).sample(dataset.split("test").samples, task["turns"])

    llm, llm_config, resources = None, None, None
    options = HarpoOptions.model_validate({"retriever": retriever.name, "ask_first": False,
                                           **({"quality": task["quality"]} if task.get("quality") else {})})
    with common.Phase() as llm_load:
        if task["llm"] is not None:
            # no response cache (cache_path None): every polish is a real model call
            llm_config = LLMConfig(model=task["llm"], max_concurrency=1,
                                   local=LocalOptions(n_threads=task["threads"]))
            options = options.model_copy(update={"explainer": "llm", "llm": llm_config})
            resources = Resources.from_env()
            llm = resources.llm(llm_config)  # as the harpo recommender and reply_quality build theirs
    agent = HarpoAgent.build(dataset.catalog, retriever, options, dataset.name, llm, train=dataset.split("train"))

    # wall-time wrappers, in this worker only: ExplainerAgent.reply (the polish is not a VTO call) and
    # RecommenderAgent.read (whose calls for earlier turns run untraced: read_seconds shows what they add)
    explain_seconds: list[float] = []
    read_seconds: list[float] = []

    def timed(method, sink: list[float]):
        def wrapper(self, *args: Any, **kwargs: Any):
            started = time.perf_counter()
            try:
                return method(self, *args, **kwargs)
            finally:
                sink.append(time.perf_counter() - started)
        return wrapper

    maven.ExplainerAgent.reply = timed(maven.ExplainerAgent.reply, explain_seconds)  # type: ignore[method-assign]
    maven.RecommenderAgent.read = timed(maven.RecommenderAgent.read, read_seconds)  # type: ignore[method-assign]

    def one_turn(sample) -> dict[str, Any]:
        view = sample.view()
        usage_before = llm.usage if isinstance(llm, LLMClient) else None
        explain_seconds.clear()
        read_seconds.clear()
        started = time.perf_counter()
        scores = np.asarray(retriever.score([view]), dtype=np.float64)[0]
        retrieved = time.perf_counter()
        turn = agent.respond(view, scores=scores)
        finished = time.perf_counter()
        record: dict[str, Any] = {
            "sample_id": sample.sample_id, "context_turns": len(view.context), "action": turn.action.action,
            "slate": len(turn.slate), "vto_calls": len(turn.trace),
            "seconds": _stages(turn, retrieved - started, finished - retrieved, sum(explain_seconds)),
            "explainer_vto_seconds": sum(c.seconds for c in turn.trace if c.agent == "explainer"),
            "read_seconds": sum(read_seconds),
        }
        if task["llm"] is not None:
            record.update(explainer_source=turn.explainer_source, asked_llm=turn.explainer_draft is not None,
                          refusal=turn.explainer_refusal)
            if usage_before is not None:
                usage = llm.usage
                record.update(llm_calls=usage.calls - usage_before.calls,
                              prompt_tokens=usage.prompt_tokens - usage_before.prompt_tokens,
                              completion_tokens=usage.completion_tokens - usage_before.completion_tokens)
        return record

    with common.Phase() as warmup:  # untimed turn: adapter indexes, the model's first request
        one_turn(dataset.split("valid").samples[0])
    turns = []
    with common.Phase() as measure:
        for index, sample in enumerate(samples):
            turns.append(one_turn(sample))
            if task["llm"] is not None:
                print(f"    llm turn {index + 1}/{len(samples)}: {turns[-1]['seconds']['total']:.2f} s",
                      file=sys.stderr, flush=True)
    if resources is not None:
        resources.close()
    return {
        "condition": "llm" if task["llm"] is not None else "template",
        "llm": task["llm"], "threads": task["threads"] if task["llm"] is not None else None,
        "retriever": retriever.name, "checkpoint": task["checkpoint"], "items": len(dataset.catalog),
        "load": load.to_json(), "fit": fit.to_json(), "llm_load": llm_load.to_json(), "warmup": warmup.to_json(),
        "measure": measure.to_json(), "turns": turns,
        "process_peak_rss_mib": round(common.process_peak_mib(), 1),
    }


def _worker(task: dict[str, Any]) -> dict[str, Any]:
    return _agent_worker(task)


# ---------------------------------------------------------------- driver


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"JSON report (default {DEFAULT_OUT})")
    parser.add_argument("--turns", type=int, default=None, help="turns without the LLM (default 200; quick 20)")
    parser.add_argument("--llm-turns", type=int, default=None, help="turns with the LLM (default 20; quick 2)")
    parser.add_argument("--llm", default=None,
                        help=f"the Explainer's local model, a name or GGUF path (default {DEFAULT_LLM}; quick "
                        f"{QUICK_LLM})")
    parser.add_argument("--skip-llm", action="store_true", help="only the worker without the LLM")
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads (default 1)")
    parser.add_argument("--retriever", default="itemknn", help="first-stage retriever (default itemknn)")
    parser.add_argument("--checkpoint", default=None, metavar="RUN",
                        help="a `convrec train` run dir: lrurec-text from it as the retriever (overrides --retriever)")
    parser.add_argument("--quick", action="store_true", help=f"smoke settings: 20 turns, 2 LLM turns, {QUICK_LLM}")
    parser.add_argument("--quality", type=json.loads, default=None, metavar="JSON",
                        help="CHARM's quality options as JSON (HarpoOptions.quality; default relevance alone)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dataset", default=DATASET, help=f"dialogues and catalogue (default {DATASET})")
    parser.add_argument("--mirror", type=Path, default=None,
                        help="raw data mirror (default $CONVREC_DATA_MIRROR or ../shared/data)")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="data dir holding (or to receive) the dataset; default: a fresh temporary dir")
    args = parser.parse_args(argv)
    defaults = {"turns": (200, 20), "llm_turns": (20, 2), "llm": (DEFAULT_LLM, QUICK_LLM)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    for name in ("turns", "llm_turns", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.checkpoint is not None and not Path(args.checkpoint).is_dir():
        parser.error(f"--checkpoint {args.checkpoint}: no such run dir")
    if args.retriever in ("harpo", "rar"):
        parser.error(f"--retriever {args.retriever}: not a first-stage retriever")
    return args


def _percentiles(values: list[float]) -> dict[str, float]:
    import numpy as np

    ms = np.asarray(values) * 1000
    return {"median_ms": float(np.percentile(ms, 50)), "p90_ms": float(np.percentile(ms, 90)),
            "max_ms": float(ms.max())}


def _summary(run: dict[str, Any]) -> dict[str, Any]:
    turns = run["turns"]
    row: dict[str, Any] = {
        "condition": run["condition"], "turns": len(turns), "items": run["items"],
        "stages": {stage: _percentiles([t["seconds"][stage] for t in turns]) for stage in STAGES},
        "read_wall": _percentiles([t["read_seconds"] for t in turns]),
        "actions": dict(Counter(t["action"] for t in turns)),
        "turn_peak_rss_mib": run["measure"]["peak_rss_mib"], "turn_peak_delta_mib": run["measure"]["peak_delta_mib"],
        "process_peak_rss_mib": run["process_peak_rss_mib"],
    }
    if run["condition"] == "llm":
        asked = [t for t in turns if t["asked_llm"]]
        kept = sum(t["explainer_source"] == "llm" for t in asked)
        row.update(polishes_asked=len(asked), polishes_kept=kept,
                   polish_kept_share=kept / len(asked) if asked else None,
                   refusals=dict(Counter((t["refusal"] or "")[:60] for t in asked if t["explainer_source"] != "llm")),
                   llm_calls=sum(t.get("llm_calls", 0) for t in turns),
                   completion_tokens=sum(t.get("completion_tokens", 0) for t in turns))
    return row


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    started = time.perf_counter()
    machine = common.machine_info()
    from convrec.data.load import load_dataset

    mirror = common.optional_mirror(args.mirror, args.data_dir)
    temporary = args.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="convrec-bench-agent-")) if temporary else args.data_dir.resolve()
    retriever = "lrurec-text" if args.checkpoint else args.retriever
    checkpoint = str(Path(args.checkpoint).resolve()) if args.checkpoint else None
    runs = []
    try:
        load_dataset(args.dataset, data_dir, mirror)  # fetch + convert once, outside the measurements
        base = {"dataset": args.dataset, "data_dir": str(data_dir), "mirror": str(mirror) if mirror else None,
                "retriever": retriever, "checkpoint": checkpoint, "seed": args.seed, "threads": args.threads,
                "quality": args.quality}
        print(f"  {args.turns} turns without the LLM ...", file=sys.stderr)
        runs.append(common.run_worker(SCRIPT, {**base, "turns": args.turns, "llm": None}))
        if not args.skip_llm:
            print(f"  {args.llm_turns} turns with {args.llm} ...", file=sys.stderr)
            runs.append(common.run_worker(SCRIPT, {**base, "turns": args.llm_turns, "llm": args.llm},
                                          timeout=6 * 3600))
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)
    summary = [_summary(run) for run in runs]
    targets = {}
    for row in summary:
        total = row["stages"]["total"]["median_ms"]
        if row["condition"] == "template":
            targets[f"turn_without_llm_under_{TARGET_TURN_MS:g}ms"] = total < TARGET_TURN_MS
        elif args.llm == DEFAULT_LLM:  # the goal is the default model's; others are only tried out here
            targets[f"turn_with_llm_under_{TARGET_LLM_TURN_S:g}s"] = total < TARGET_LLM_TURN_S * 1000
    report = common.rounded({
        "benchmark": "agent",
        "description": "HARPO agent latency per turn on ReDial test contexts, end to end and by stage (retrieval, "
        "state tracking, search and ranking, critique, explanation), with the template Explainer and with the LLM "
        "Explainer; peak RSS; a fresh process per condition",
        "command": common.command_info(SCRIPT, argv),
        "machine": common.finish_machine_info(machine),
        "settings": {
            "quick": args.quick, "dataset": args.dataset, "turns": args.turns, "llm_turns": args.llm_turns,
            "llm": None if args.skip_llm else args.llm, "threads": args.threads, "retriever": retriever,
            "checkpoint": checkpoint, "seed": args.seed, "quality": args.quality,
            "agent": "HarpoOptions defaults but ask_first=False (every turn recommends); explainer template or llm "
            "(no response cache)",
            "targets": f"median total under {TARGET_TURN_MS:g} ms without the LLM; under {TARGET_LLM_TURN_S:g} s "
            f"with {DEFAULT_LLM} (goal)",
            "definitions": {
                "retrieval": "retriever.score([view]) over the whole catalogue, before respond (passed as scores=)",
                "state_tracking": "VTO seconds of the recommender's " + ", ".join(sorted(STATE_TRACKING)),
                "search_ranking": "VTO seconds of the recommender's other operations",
                "rank_options": "of search_ranking, the rank_options call (with --quality: CHARM's scoring and "
                "weighted order)",
                "critique": "VTO seconds of the critic's operations",
                "explanation": "wall time of ExplainerAgent.reply (template, and the LLM polish and its grounding "
                "check), timed by a wrapper in the worker: the polish is not a VTO call",
                "other": "respond's wall time minus the four stages above: untraced work (read()'s calls for "
                "earlier turns, the turn's models)",
                "read_seconds": "per turn: wall time of RecommenderAgent.read (traced and untraced calls)",
                "total": "retrieval + respond's wall time",
                "polish_kept_share": "turns whose LLM rewrite was kept / turns that asked the LLM",
                "turn_peak_rss_mib": "peak RSS during the timed turns (the whole process at that peak)",
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
    settings = report["settings"]
    for row in report["summary"]:
        label = "no LLM (template)" if row["condition"] == "template" else f"LLM Explainer ({settings['llm']})"
        rows = [[stage.replace("_", " "), fmt(row["stages"][stage]["median_ms"], 1),
                 fmt(row["stages"][stage]["p90_ms"], 1), fmt(row["stages"][stage]["max_ms"], 1)] for stage in STAGES]
        read = row["read_wall"]  # state tracking's wall time, untraced calls included (part of it is in "other")
        rows.append(["(read() wall)", fmt(read["median_ms"], 1), fmt(read["p90_ms"], 1), fmt(read["max_ms"], 1)])
        target = (f"target < {TARGET_TURN_MS:g} ms" if row["condition"] == "template"
                  else f"goal < {TARGET_LLM_TURN_S:g} s")
        extra = ""
        if row["condition"] == "llm":
            share = row["polish_kept_share"]
            extra = (f"; polishes kept {row['polishes_kept']}/{row['polishes_asked']}"
                     + (f" ({share:.0%})" if share is not None else ""))
        common.print_table(f"HARPO turn, {label}", ["stage", "median ms", "p90 ms", "max ms"], rows)
        print(f"{row['turns']} {settings['dataset']} test turns, {fmt(row['items'])} items, {settings['retriever']}; "
              f"total {target}; peak RSS {fmt(row['process_peak_rss_mib'], 0)} MiB (during the turns "
              f"{fmt(row['turn_peak_rss_mib'], 0)}, +{fmt(row['turn_peak_delta_mib'], 0)}){extra}")
    for name, met in report["targets"].items():
        print(f"{name}: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    if common.is_worker_call(sys.argv[1:]):
        sys.exit(common.worker_main(_worker, sys.argv[1:]))
    main()
