"""``convrec train``: train a retriever into a run directory (resumable), then evaluate it."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from rich.console import Console

from convrec.cli.common import add_data_options, check_output_dir, data_dir, mirror, parse_options
from convrec.data.load import load_dataset
from convrec.devices import torch_device
from convrec.errors import ConfigError
from convrec.io import write_json
from convrec.resources import Resources
from convrec.retrieval import build_recommender
from convrec.retrieval.lrurec.recommender import TRAINABLE

# LRURec's networks, the learned second stage over several retrievers (trained on the validation split), and
# the HARPO agent's CHARM models (convrec.agent.quality.train), and BRIDGE's shared encoder
TRAINED_HERE = (*TRAINABLE, "learned-ranker", "harpo", "bridge")

console = Console(stderr=True)


def add_parser(commands) -> None:
    train = commands.add_parser(
        "train", help="train LRURec (items only, or with the dialogue text), or the learned ranker, on a dataset",
        description="Train a retriever on the train split with early stopping on validation Recall@10. "
        "Checkpoints (safetensors + config.json) are written atomically into --out after every epoch; "
        "running the same command again resumes an interrupted run. learned-ranker fits its retrievers on "
        "train and learns to order their candidates on the validation split (cross-validated over its "
        "dialogues; give the first retriever's run with --set retriever_checkpoint=RUN); its features are kept "
        "in --out, so a second run skips them. harpo trains the agent's quality models (satisfaction and "
        "engagement from the questionnaire answers, then the context-dependent weight network on validation; "
        "give the retriever's run with --set checkpoint=RUN), each step skipped when finished before. Evaluate "
        "the result with `convrec eval --recommender NAME --checkpoint OUT` (harpo: --set quality.run=OUT).",
    )
    train.add_argument("--dataset", required=True, help="redial, inspired, or an imported dataset")
    train.add_argument("--recommender", default="lrurec-text", choices=TRAINED_HERE,
                       help="lrurec: items only; lrurec-text: items + dialogue text (default); learned-ranker: "
                       "LambdaMART over several retrievers' candidates; harpo: the agent's quality models; bridge: an encoder "
                       "shared across domains (--set also='[\"redial\"]')")
    train.add_argument("--out", type=Path, required=True, help="run directory (created; resumed if it exists)")
    train.add_argument("--pretrain", action="append", default=None, metavar="DATASET",
                       help="pre-train on another dataset's train sequences linked to the catalogue by IMDb id "
                       "(movielens, or redial for inspired; repeatable); sets the option pretrain_datasets")
    train.add_argument("--set", dest="options", action="append", metavar="KEY=VALUE",
                       help="an option, e.g. --set hidden=128 --set train.epochs=40 (see `convrec recommenders`)")
    train.add_argument("--device", default=None, metavar="DEVICE",
                       help="lrurec and lrurec-text: where to train and encode text, 'cpu' (default), 'cuda', "
                       "'cuda:N' or 'auto' (a GPU if torch sees one); the trained model is saved, evaluated "
                       "and served on the CPU. Sets train.device and encoder.device")
    train.add_argument("-q", "--quiet", action="store_true", help="no per-epoch log")
    add_data_options(train)
    train.set_defaults(handler=run_train)


def run_train(args: argparse.Namespace) -> int:
    check_output_dir(args.out, "--out")
    if args.device is not None:
        torch_device(args.device, "--device")  # an absent GPU is refused before the data is read
    if not args.quiet:
        logging.getLogger("convrec").setLevel(logging.INFO)
    dataset = load_dataset(args.dataset, data_dir(args), mirror(args), progress=True)
    options = parse_options(args.options)
    options["run_dir"] = str(args.out)
    if args.device is not None:
        if args.recommender not in ("lrurec", "lrurec-text"):
            raise ConfigError(f"--device: only lrurec and lrurec-text train with torch here, not {args.recommender}",
                              hint="leave --device out; the other models train on the CPU in minutes")
        options.setdefault("train", {})["device"] = args.device
        options.setdefault("encoder", {})["device"] = args.device
    if args.pretrain:
        options["pretrain_datasets"] = args.pretrain
        if not options.get("train", {}).get("pretrain_epochs"):
            console.print("[yellow]note[/yellow]: set --set train.pretrain_epochs=N to use them (default 0)")
    if args.recommender == "harpo":
        return _train_harpo(args, dataset, options)
    with Resources.from_env(data_dir=data_dir(args)) as resources:  # --data-dir is where --pretrain loads from
        recommender = build_recommender(args.recommender, dataset.catalog, options, resources=resources)
        recommender.fit(dataset.split("train"), dataset.split("valid"))
    write_json(args.out / "summary.json", {"dataset": args.dataset, "data_hash": dataset.fingerprint,
                                           **recommender.describe()})
    console.print(f"[green]done[/green]: {recommender.summary}")
    console.print(f"evaluate with: convrec eval --dataset {args.dataset} --recommender {args.recommender} "
                  f"--checkpoint {args.out} --protocol both")
    return 0


def _train_harpo(args: argparse.Namespace, dataset, options: dict) -> int:
    from convrec.agent.quality.train import train_quality

    summary = train_quality(dataset, args.out, options, say=lambda text: console.print(text))
    write_json(args.out / "summary.json", {"dataset": args.dataset, "data_hash": dataset.fingerprint, **summary})
    for step, what in summary["steps"].items():
        console.print(f"  {step}: {what}")
    console.print(f"[green]done[/green]: evaluate with: convrec eval --dataset {args.dataset} --recommender harpo "
                  f"--set quality.run={args.out}" + (f" --set checkpoint={options['checkpoint']}"
                                                     if options.get("checkpoint") else ""))
    return 0
