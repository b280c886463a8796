"""``convrec align``: RAR's online alignment of a trained retriever to a frozen LLM (DPO or GRPO)."""

from __future__ import annotations

import argparse
import logging
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from convrec.cli.common import (
    add_data_options,
    add_ray_options,
    check_output_dir,
    data_dir,
    mirror,
    parse_options,
    ray_settings,
)
from convrec.data.load import load_dataset
from convrec.errors import ConfigError

console = Console(stderr=True)

DESCRIPTION = """\
Align a trained retriever (a `convrec train` run) to a frozen LLM, as RAR does: each round samples candidate
sets from the retriever for training dialogues, lets the LLM rank them (pointwise P(Yes)), rewards each set by
NDCG of the target in the LLM's ranking, and updates the retriever with DPO or GRPO plus its own next-item
loss (L = L_rl + lambda * L_nll). Only sets that contain the target cost LLM calls; every reply is cached.

  convrec align --dataset redial --checkpoint results/runs/lrurec-text-redial --method grpo \\
      --out results/runs/lrurec-text-redial-grpo
  convrec align ... --set rounds=4 --set contexts_per_round=32 --set llm.model=smollm2-135m   # a quick try
  convrec align ... --config configs/align.toml       # settings from a TOML table (--set wins)
  convrec align ... --method nll --out results/runs/lrurec-text-redial-nll   # the control: L_nll alone, no LLM

The run dir is a checkpoint like any other (convrec eval --recommender lrurec-text --checkpoint OUT; rar's
checkpoint= option), with history.json and curves.png; the same command resumes an interrupted run.
"""


def add_parser(commands) -> None:
    align = commands.add_parser("align", help="align a trained retriever to the LLM by online DPO or GRPO",
                                description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    align.add_argument("--dataset", required=True, help="redial, inspired, or an imported dataset")
    align.add_argument("--checkpoint", type=Path, required=True,
                       help="the supervised retriever's run dir (convrec train --out ...)")
    align.add_argument("--method", choices=["dpo", "grpo", "nll"], default=None,
                       help="default grpo; nll: the control run (L_nll alone, no LLM) that tells what the RL "
                       "term adds")
    align.add_argument("--retriever", choices=["lrurec", "lrurec-text"], default=None,
                       help="the checkpoint's architecture (default: read from its config.json)")
    align.add_argument("--out", type=Path, required=True, help="run directory (created; resumed if it exists)")
    align.add_argument("--config", type=Path, default=None, help="TOML file whose keys are align settings")
    align.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE",
                       help="a setting, e.g. --set rounds=8 --set k=10 --set beta=0.1 --set llm.local.n_threads=2 "
                       "(all of them: convrec align --list-settings)")
    align.add_argument("--list-settings", action="store_true", help="print every setting with its default")
    align.add_argument("-q", "--quiet", action="store_true", help="no per-round log or progress bar")
    add_ray_options(align, "the feedback collection")
    add_data_options(align)
    align.set_defaults(handler=run_align)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {}
    if args.config is not None:
        try:
            settings = tomllib.loads(args.config.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError(f"--config {args.config}: cannot be read ({exc.strerror or exc})") from None
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"--config {args.config}: not valid TOML ({exc})") from None
    _merge(settings, parse_options([*(args.options or []), *ray_settings(args)]))
    settings["checkpoint"] = str(args.checkpoint)
    for key in ("method", "retriever"):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    if args.quiet:
        settings["progress"] = False
    return settings


def _merge(base: dict[str, Any], update: dict[str, Any]) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _list_settings() -> None:
    from convrec.align.config import AlignConfig

    for name, field in AlignConfig.model_fields.items():
        default = "(required)" if field.is_required() else repr(field.default)
        console.print(f"[bold]{name}[/bold] = {default}: {field.description or ''}", highlight=False)


def run_align(args: argparse.Namespace) -> int:
    if args.list_settings:
        _list_settings()
        return 0
    from convrec.align.config import AlignConfig
    from convrec.align.trainer import Aligner
    from convrec.rerank.pipeline import with_default_cache
    from convrec.resources import Resources
    from convrec.retrieval.lrurec.recommender import run_options

    if not args.quiet:
        logging.getLogger("convrec").setLevel(logging.INFO)
    try:
        config = AlignConfig(**_settings(args))
    except ValidationError as exc:
        problem = exc.errors()[0]
        field = ".".join(str(part) for part in problem["loc"])
        raise ConfigError(f"align setting '{field}'{' in ' + str(args.config) if args.config else ''}: "
                          f"{problem['msg']} (all settings: convrec align --list-settings)") from None
    run_options(args.checkpoint)  # a CheckpointError now, not after the dataset is loaded, if it is no run
    check_output_dir(args.out, "--out")
    dataset = load_dataset(args.dataset, data_dir(args), mirror(args), progress=True)
    with Resources.from_env(data_dir=data_dir(args)) as resources:
        # The LLM from the shared resources, which close it; the nll control asks no LLM, so loads none.
        llm = (None if config.method == "nll"
               else resources.llm(with_default_cache(config.llm, config.llm_cache, resources)))
        aligner = Aligner(dataset, config, args.out, llm=llm)
        try:
            history = aligner.run()
        finally:
            aligner.close()
    first, last = history[0], history[-1]
    counts = aligner.feedback.counts  # cumulative, also over an interrupted and resumed run
    console.print(f"[green]done[/green]: {config.method}, {last.round} rounds; validation (retriever alone) "
                  f"R@10 {first.valid_recall_at_10:.4f} -> {last.valid_recall_at_10:.4f}, N@10 "
                  f"{first.valid_ndcg_at_10:.4f} -> {last.valid_ndcg_at_10:.4f}, R@50 {first.valid_recall_at_50:.4f} "
                  f"-> {last.valid_recall_at_50:.4f}")
    console.print(f"LLM: {counts.llm_calls} model calls, {counts.cache_hits} answered by the response cache, "
                  f"{counts.memo_hits} scores reused within the run; curves in {args.out / 'curves.png'}")
    console.print(f"evaluate with: convrec eval --dataset {args.dataset} --recommender {aligner.policy.name} "
                  f"--checkpoint {args.out} --protocol both")
    return 0
