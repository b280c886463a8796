"""Benchmark: the cost of STAR's search per agent turn, against the greedy agent, by stage.

    python bench/bench_star.py --checkpoint results/runs/lrurec-text-redial --value results/runs/star-redial
                               [--dataset redial] [--turns 100] [--rollout-turns 20] [--out bench/out/bench_star.json]

One fresh worker process (the ``harpo`` agent over ``lrurec-text`` from ``--checkpoint``, fitted as ``convrec
simulate`` fits it) answers the first system turn of ``--turns`` seeded test samples (``random.Random(seed).sample``
of the test split) three ways, each on a fresh :class:`~convrec.agent.search.dialogue.AgentDialogue` of the
sample's context:

- **greedy**: ``dialogue.options(spread=False, asks=0)``, the agent's own move (retrieval, the agent's turn);
- **value**: ``StarSearch.choose`` with the value network of ``--value``: the moves (the agent's turn, a second
  one when it asks, the varied slate, the questions), the belief, the features and the network; its stages are
  **moves** (``options``) and **valuing** (the rest);
- **rollout**: ``StarSearch.choose`` with roll-outs (the default ``SearchOptions``: 3 moves x 6 simulated users,
  2 turns deep), on the first ``--rollout-turns`` of the same draw.

Reports median, p90 and max in ms; the **added** cost of search is its total minus greedy's on the same turn
(target: under 250 ms per turn for the value network, without the LLM, on 2 cores). One untimed turn first (the
adapter builds its indexes on first use).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

if str(Path(__file__).resolve().parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as common  # noqa: E402

SCRIPT = Path(__file__).resolve()


def worker(task: dict[str, Any]) -> dict[str, Any]:
    from convrec.agent.search.dialogue import AgentDialogue
    from convrec.agent.search.options import SearchOptions
    from convrec.agent.search.star import StarSearch
    from convrec.data.load import load_dataset
    from convrec.retrieval.base import build_recommender
    from convrec.simulate.rollout import rollout_users

    dataset = load_dataset(task["dataset"], Path(task["data_dir"]) if task.get("data_dir") else None, progress=False)
    harpo = build_recommender("harpo", dataset.catalog, {"checkpoint": task["checkpoint"]})
    started = time.perf_counter()
    harpo.fit(dataset.split("train"), dataset.split("valid"))
    fit_seconds = time.perf_counter() - started
    agent = harpo.agent_
    users = rollout_users(agent.ctx.adapter)
    value = StarSearch.build(SearchOptions(kind="value", value_network=task["value"]))
    rollout = StarSearch.build(SearchOptions(kind="rollout", value_network=task["value"]), users)
    samples = random.Random(task["seed"]).sample(dataset.split("test").samples, task["turns"])

    def fresh(sample):
        return AgentDialogue.start(agent, sample.dialogue_id, sample.context, (), 5)

    fresh(samples[0]).options(spread=False, asks=0)  # untimed: indexes built on first use
    common.reset_peak()
    turns = []
    for number, sample in enumerate(samples):
        timing: dict[str, float] = {}
        t0 = time.perf_counter()
        fresh(sample).options(spread=False, asks=0)
        timing["greedy"] = time.perf_counter() - t0
        dialogue = fresh(sample)
        t0 = time.perf_counter()
        dialogue.options(spread=True, asks=2)
        timing["value:moves"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, chosen, trace = value.choose(fresh(sample))
        timing["value"] = time.perf_counter() - t0
        timing["value:valuing"] = timing["value"] - timing["value:moves"]
        timing["value_added"] = timing["value"] - timing["greedy"]
        row = {k: round(v * 1000, 3) for k, v in timing.items()}
        row["value_overrides"] = trace.chosen != trace.greedy
        if number < task["rollout_turns"]:
            t0 = time.perf_counter()
            rollout.choose(fresh(sample))
            row["rollout"] = round((time.perf_counter() - t0) * 1000, 3)
            row["rollout_added"] = round(row["rollout"] - row["greedy"], 3)
        turns.append(row)
    return {"fit_seconds": round(fit_seconds, 1), "turns": turns, "peak_rss_mib": round(common.peak_rss_mib(), 1)}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if common.is_worker_call(argv):
        return common.worker_main(worker, argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, required=True, help="the lrurec-text run the agent retrieves with")
    parser.add_argument("--value", type=Path, required=True, help="a value network (python -m convrec.simulate.star)")
    parser.add_argument("--dataset", default="redial")
    parser.add_argument("--data-dir", type=Path, default=None, help="where processed datasets live (default ./data)")
    parser.add_argument("--turns", type=int, default=100)
    parser.add_argument("--rollout-turns", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=common.BENCH_DIR / "out" / "bench_star.json")
    args = parser.parse_args(argv)
    if not (args.value / "value_network.pt").is_file():
        parser.error(f"{args.value} holds no value network: train one with `python -m convrec.simulate.star`")
    info = common.machine_info()
    task = {"dataset": args.dataset, "checkpoint": str(args.checkpoint.resolve()), "value": str(args.value.resolve()),
            "seed": args.seed, "turns": args.turns, "rollout_turns": min(args.rollout_turns, args.turns),
            "data_dir": str(args.data_dir.resolve()) if args.data_dir else None}
    measured = common.run_worker(SCRIPT, task)
    report: dict[str, Any] = {"command": common.command_info(SCRIPT, argv), "memory_method": common.MEMORY_METHOD,
                              "measured": measured}
    stages = [k for k in measured["turns"][0] if k != "value_overrides"]
    report["per_stage_ms"] = {k: common.percentiles([t[k] for t in measured["turns"] if k in t]) for k in stages}
    report["value_override_share"] = sum(t["value_overrides"] for t in measured["turns"]) / len(measured["turns"])
    rows = [[k, sum(1 for t in measured["turns"] if k in t), common.fmt(v["median"]), common.fmt(v["p90"]),
             common.fmt(v["max"])] for k, v in report["per_stage_ms"].items()]
    common.print_table(f"STAR per agent turn ({args.dataset} test, first turns), ms", ["stage", "turns", "median",
                                                                                       "p90", "max"], rows)
    report["machine"] = common.finish_machine_info(info)
    common.write_report(args.out, common.rounded(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
