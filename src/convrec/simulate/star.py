"""Train STAR's value network from simulated conversations on the validation split.

    python -m convrec.simulate.star --dataset redial --out results/runs/star-redial \\
        --set checkpoint=results/runs/lrurec-text-redial

For each of ``episodes`` seeded validation samples (never test) a rule user with the sample's goal talks with the
HARPO agent. At every system turn each move the turn allows (:meth:`AgentDialogue.options
<convrec.agent.search.dialogue.AgentDialogue.options>`: the agent's slate, a varied slate, questions) is played
in a copy of the conversation against a copy of the user, and the conversation after it goes on greedily to the
horizon: one example per move, labelled with whether the user accepted at once (``accept_now``) and whether the
conversation succeeded (``success``). The real conversation then follows the greedy move (or, with probability
``explore``, a random one, so that the states are not only the greedy agent's).

The examples are appended to ``examples.jsonl``, one line per episode, so a killed run resumes where it stopped.
The network (:class:`~convrec.agent.search.value.ValueNetwork`) is fitted on 80% of the episodes and judged on the
rest: log loss, Brier score and AUC of each output against the base rate, and, since every move of a held-out
state was played, what choosing by the network would have gained over the greedy move on those states (paired,
with its standard error) beside the best move in hindsight. Then it is fitted on every episode and saved.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm import tqdm

from convrec.agent.domain import DomainAdapter
from convrec.agent.harpo import HarpoRecommender
from convrec.agent.search.dialogue import AgentDialogue, Move, Options, belief
from convrec.agent.search.value import (
    FEATURES,
    OUTPUTS,
    VALUE,
    ValueNetwork,
    fit_value_network,
    move_features,
)
from convrec.data.dataset import CRSDataset
from convrec.data.model import RecSample
from convrec.errors import ConfigError, OutputPathError
from convrec.evaluate.protocol import Protocol
from convrec.io import atomic_write
from convrec.options import report_main, training_arguments, write_report_files
from convrec.retrieval.base import build_recommender
from convrec.simulate.goal import choose_samples, episode_seed, goal_for
from convrec.simulate.turns import SystemTurn
from convrec.simulate.user import RuleUser, UserOptions, UserSimulator

EXAMPLES_FILE = "examples.jsonl"


class StarTrainingOptions(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    checkpoint: str | None = Field(None, description="the retriever's `convrec train` run dir")
    harpo: dict[str, Any] = Field({}, description="the agent's other options (HarpoOptions)")
    episodes: int = Field(400, ge=10, description="seeded validation samples played")
    horizon: int = Field(5, ge=1, le=20, description="system turns per conversation")
    slate: int = Field(5, ge=1, le=50)
    spread: bool = True
    asks: int = Field(2, ge=0, le=10)
    belief_top: int = Field(200, ge=5)
    explore: float = Field(0.3, ge=0.0, le=1.0, description="chance the conversation follows a random move")
    user: UserOptions = UserOptions()
    discount: float = Field(0.8, gt=0, le=1, description="the return of a success n turns after the move: "
                            "discount ** (n - 1)")
    hidden: int = Field(32, ge=2)
    # 100 chosen on the held-out validation episodes by log loss (300 and 1000 overfit: worse than the base rate)
    epochs: int = Field(100, ge=1)
    learning_rate: float = Field(3e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    held_out: float = Field(0.2, gt=0, lt=1, description="share of episodes the network is judged on")
    seed: int = Field(0, ge=0)


def build_agent(dataset: CRSDataset, options: StarTrainingOptions) -> HarpoRecommender:
    harpo = dict(options.harpo)
    if options.checkpoint is not None:
        harpo["checkpoint"] = options.checkpoint
    recommender = build_recommender("harpo", dataset.catalog, harpo)
    assert isinstance(recommender, HarpoRecommender)
    recommender.fit(dataset.split("train"), dataset.split("valid"))
    return recommender


def play_out(dialogue: AgentDialogue, options: Options, move: Move, user: UserSimulator,
             horizon: int) -> tuple[bool, bool, int | None]:
    """Play ``move`` in a copy, then greedily: (accepted at once, succeeded within the horizon, turns to it)."""
    copy, twin = dialogue.copy(), user.fork()
    reply = copy.play(move, options)
    step = 1
    while True:
        said = twin.respond(copy.turns, SystemTurn(reply.action, reply.text, reply.slate, ask_about=reply.ask_about))
        if said.act == "accept" and said.accepted == twin.goal.target:
            return step == 1, True, step
        if copy.played >= horizon:
            return False, False, None
        copy.hear(said.text)
        following = copy.options(spread=False, asks=0)
        reply = copy.play(following.greedy, following)
        step += 1


def episode_examples(agent: HarpoRecommender, sample: RecSample, adapter: DomainAdapter,
                     options: StarTrainingOptions) -> list[dict[str, Any]]:
    """Every move of every turn of one episode, played out (see the module docstring)."""
    assert agent.agent_ is not None
    goal = goal_for(sample, adapter, options.seed)
    user = RuleUser(goal, adapter, options.user, options.seed)
    dialogue = AgentDialogue.start(agent.agent_, sample.dialogue_id, sample.context, (), options.slate)
    rng = random.Random(episode_seed(options.seed, f"explore:{sample.sample_id}"))
    rows: list[dict[str, Any]] = []
    while dialogue.played < options.horizon:
        turn = dialogue.options(spread=options.spread, asks=options.asks)
        ids, probabilities = belief(dialogue, turn, options.belief_top)
        for move in turn.moves:
            features = move_features(dialogue, turn, move, ids, probabilities, options.horizon)
            now, success, turns = play_out(dialogue, turn, move, user, options.horizon)
            rows.append({"turn": dialogue.played + 1, "move": move.label, "greedy": move == turn.greedy,
                         "features": [round(float(x), 5) for x in features], "accept_now": now,
                         "success": success, "turns": turns})
        follow = turn.greedy if rng.random() >= options.explore else rng.choice(turn.moves)
        reply = dialogue.play(follow, turn)
        said = user.respond(dialogue.turns, SystemTurn(reply.action, reply.text, reply.slate,
                                                       ask_about=reply.ask_about))
        if said.act == "accept":
            break
        dialogue.hear(said.text)
    return rows


def _read_examples(path: Path, header: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The finished episodes of a killed run (a cut last line is dropped); a file of other options is an error."""
    if not path.is_file():
        return {}
    lines = path.read_bytes().splitlines()
    done: dict[str, list[dict[str, Any]]] = {}
    kept: list[bytes] = []
    for number, line in enumerate(lines):
        try:
            value = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines) - 1:
                break  # cut by the kill: played again
            raise ConfigError(f"{path}:{number + 1}: not a JSON line; remove the file to start again") from None
        if number == 0:
            if value != header:
                raise ConfigError(f"{path}: made with other options or data; use another --out or remove it")
        else:
            done[value["episode"]] = value["rows"]
        kept.append(line)
    if len(kept) < len(lines):
        with atomic_write(path, "wb", encoding=None) as handle:
            handle.write(b"".join(line + b"\n" for line in kept))
    return done


def collect(dataset: CRSDataset, out: Path, options: StarTrainingOptions,
            agent: HarpoRecommender | None = None) -> dict[str, list[dict[str, Any]]]:
    """The examples of every episode, played now or read back from a killed run."""
    samples = choose_samples(dataset.split("valid").samples, options.episodes, options.seed, Protocol.STANDARD)
    header = {"dataset": dataset.name, "n_items": len(dataset.catalog), "features": list(FEATURES),
              "options": options.model_dump(mode="json", exclude={"hidden", "epochs", "learning_rate",
                                                                  "weight_decay", "held_out", "discount"})}
    path = out / EXAMPLES_FILE
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise OutputPathError(f"--out {out}: cannot be created ({err.strerror})") from None
    done = _read_examples(path, header)
    todo = [s for s in samples if s.sample_id not in done]
    if todo:
        agent = agent or build_agent(dataset, options)
        assert agent.agent_ is not None
        adapter = agent.agent_.ctx.adapter
        with path.open("ab") as handle:
            if not done and handle.tell() == 0:
                handle.write((json.dumps(header) + "\n").encode())
            for sample in tqdm(todo, desc="playing validation episodes", unit="episode", disable=None):
                rows = episode_examples(agent, sample, adapter, options)
                handle.write((json.dumps({"episode": sample.sample_id, "rows": rows}) + "\n").encode())
                handle.flush()
                done[sample.sample_id] = rows
    return {s.sample_id: done[s.sample_id] for s in samples}


def _arrays(episodes: dict[str, list[dict[str, Any]]], ids: list[str], discount: float
            ) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for e in ids for r in episodes[e]]
    x = np.asarray([r["features"] for r in rows], dtype=np.float32).reshape(-1, len(FEATURES))
    y = np.asarray([[r["accept_now"], r["success"], discount ** (r["turns"] - 1) if r["success"] else 0.0]
                    for r in rows], dtype=np.float32).reshape(-1, len(OUTPUTS))
    return x, y


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from scipy.stats import rankdata

    positives = y == 1
    n_pos, n_neg = int(positives.sum()), int((~positives).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[positives].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def judge(model: ValueNetwork, episodes: dict[str, list[dict[str, Any]]], ids: list[str],
          base_rate: np.ndarray, discount: float) -> dict[str, Any]:
    """Held-out errors of each output, and the choices the network would make on the held-out states."""
    x, y = _arrays(episodes, ids, discount)
    p = model.predict(x)
    errors: dict[str, Any] = {}
    for k, name in enumerate(OUTPUTS):
        q = np.clip(p[:, k], 1e-6, 1 - 1e-6)
        r = np.clip(np.full_like(q, base_rate[k]), 1e-6, 1 - 1e-6)
        errors[name] = {
            "mean": round(float(y[:, k].mean()), 4),
            "log_loss": round(float(-(y[:, k] * np.log(q) + (1 - y[:, k]) * np.log(1 - q)).mean()), 4),
            "log_loss_base_rate": round(float(-(y[:, k] * np.log(r) + (1 - y[:, k]) * np.log(1 - r)).mean()), 4),
            "brier": round(float(((q - y[:, k]) ** 2).mean()), 4),
            "auc": round(_auc((y[:, k] > 0).astype(np.float64), q), 4)}  # return: success vs not
    # per state (an episode's turn): the network's move, the greedy move, and the best move in hindsight, each
    # judged by what happened when it was played out
    flat = [r for e in ids for r in episodes[e]]
    chosen_minus_greedy, best_minus_greedy, overrides = [], [], 0
    start = 0
    for episode in ids:
        rows = episodes[episode]
        by_turn: dict[int, list[int]] = {}
        for offset, row in enumerate(rows):
            by_turn.setdefault(row["turn"], []).append(start + offset)
        for places in by_turn.values():
            greedy = next(i for i in places if flat[i]["greedy"])
            chosen = max(places, key=lambda i: (p[i, VALUE], i == greedy))
            overrides += chosen != greedy
            chosen_minus_greedy.append(y[chosen] - y[greedy])
            best_minus_greedy.append(y[places].max(axis=0) - y[greedy])
        start += len(rows)
    gain, top = np.asarray(chosen_minus_greedy), np.asarray(best_minus_greedy)
    n = len(gain)
    choice = {"states": n, "overrides": int(overrides),
              "gain_over_greedy": {name: round(float(gain[:, k].mean()), 4) for k, name in enumerate(OUTPUTS)},
              "gain_stderr": {name: round(float(gain[:, k].std(ddof=1) / np.sqrt(n)), 4) if n > 1 else 0.0
                              for k, name in enumerate(OUTPUTS)},
              "best_move_gain": {name: round(float(top[:, k].mean()), 4) for k, name in enumerate(OUTPUTS)}}
    return {"rows": len(y), "episodes": len(ids), "errors": errors, "choice": choice}


def train(dataset: CRSDataset, out: Path, options: StarTrainingOptions) -> dict[str, Any]:
    started = time.perf_counter()
    episodes = collect(dataset, out, options)
    played = time.perf_counter() - started
    ids = sorted(episodes)
    rng = random.Random(options.seed)
    rng.shuffle(ids)
    cut = max(1, int(round(len(ids) * options.held_out)))
    held, fitted = sorted(ids[:cut]), sorted(ids[cut:])
    fit = {"hidden": options.hidden, "epochs": options.epochs, "learning_rate": options.learning_rate,
           "weight_decay": options.weight_decay, "seed": options.seed}
    x, y = _arrays(episodes, fitted, options.discount)
    if len(x) == 0:
        raise ConfigError(f"{dataset.name}: no examples to learn from (every episode ended before a move)")
    model = fit_value_network(x, y, **fit)
    held_out = judge(model, episodes, held, y.mean(0), options.discount)
    x_all, y_all = _arrays(episodes, ids, options.discount)
    final = fit_value_network(x_all, y_all, **fit)
    moves: dict[str, dict[str, float]] = {}
    for row in (r for e in ids for r in episodes[e]):
        entry = moves.setdefault(row["move"].split(" ")[0], {"n": 0, "success": 0, "accept_now": 0})
        entry["n"] += 1
        entry["success"] += row["success"]
        entry["accept_now"] += row["accept_now"]
    report = {"dataset": dataset.name, "episodes": len(ids), "examples": int(len(x_all)),
              "moves": {k: {"n": v["n"], "success": round(v["success"] / v["n"], 4),
                            "accept_now": round(v["accept_now"] / v["n"], 4)} for k, v in moves.items()},
              "held_out": held_out,
              "seconds": {"playing_this_run": round(played, 1),
                          "fitting": round(time.perf_counter() - started - played, 1)}}
    final.save(out, {"options": options.model_dump(mode="json"), "report": report})
    write_report_files(out / "report.json", report, out / "report.md", render(report), "--out")
    return report


def render(report: dict[str, Any]) -> str:
    held = report["held_out"]
    lines = [f"STAR value network on {report['dataset']}: {report['examples']:,} examples (a move played out) from "
             f"{report['episodes']} validation episodes; judged on {held['episodes']} held-out episodes "
             f"({held['rows']:,} examples).", "",
             "| output | mean | log loss | base-rate log loss | Brier | AUC (success or not) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, e in held["errors"].items():
        lines.append(f"| {name} | {e['mean']:.3f} | {e['log_loss']:.4f} | {e['log_loss_base_rate']:.4f} "
                     f"| {e['brier']:.4f} | {e['auc']:.3f} |")
    c = held["choice"]
    lines += ["", f"Choosing by the network's return on the {c['states']} held-out states (every move played "
              f"out): it leaves the greedy move {c['overrides']} times.", "",
              "| chosen minus greedy | accepted at once | success | return |", "|---|---:|---:|---:|",
              "| the network's move | " + " | ".join(f"{c['gain_over_greedy'][k]:+.4f} ± {c['gain_stderr'][k]:.4f}"
                                                    for k in OUTPUTS) + " |",
              "| the best move in hindsight | " + " | ".join(f"{c['best_move_gain'][k]:+.4f}" for k in OUTPUTS)
              + " |", "",
              "| move | examples | success | accepted at once |", "|---|---:|---:|---:|"]
    for name, m in report["moves"].items():
        lines.append(f"| {name} | {m['n']:,} | {m['success']:.3f} | {m['accept_now']:.3f} |")
    lines += ["", "Seconds: " + ", ".join(f"{k} {v:,.0f}" for k, v in report["seconds"].items())]
    return "\n".join(lines) + "\n"


def run(argv: list[str] | None = None) -> dict[str, Any]:
    args, options = training_arguments(
        "python -m convrec.simulate.star", __doc__, StarTrainingOptions,
        "an option (repeatable): checkpoint, episodes, horizon, explore, asks, spread, discount, harpo.retriever, "
        "user.prefer_on_reject, hidden, epochs, ...", argv, "run directory for the examples and the network")
    from convrec.data.load import load_dataset

    dataset = load_dataset(args.dataset, args.data_dir, progress=False)
    return train(dataset, args.out, options)


def main(argv: list[str] | None = None) -> int:
    return report_main("python -m convrec.simulate.star", run, render, argv)


if __name__ == "__main__":
    sys.exit(main())
