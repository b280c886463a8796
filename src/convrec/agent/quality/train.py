"""``convrec train --recommender harpo``: CHARM's learned parts in one resumable command, into one run dir.

    convrec train --dataset redial --recommender harpo --out results/runs/harpo-redial \\
        --set checkpoint=results/runs/lrurec-text-redial

In order, each in its own folder of ``--out`` and skipped when a finished one is there (its model and report
are written atomically, last), so running the command again resumes after the last finished step:

1. ``satisfaction/``: P(liked) from the train split's questionnaire answers
   (:mod:`convrec.agent.quality.satisfaction`);
2. ``engagement/``: P(new to the seeker | liked), the same module;
3. ``weights/``: the context-dependent weight network over the agent's probe slates on validation
   (:mod:`convrec.agent.quality.weights`), with the models of 1 and 2.

A dataset without questionnaire answers (INSPIRED's and OpenDialKG's train splits have none) skips 1 and 2 and
says so; the network then weighs relevance and diversity. A harpo config uses the run with
``quality = { run = "results/runs/harpo-redial" }``: the models and the network of its folders.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from convrec.agent.harpo import NOT_RETRIEVERS
from convrec.agent.quality.charm import MODEL_DIMENSIONS
from convrec.agent.quality.satisfaction import train_and_judge
from convrec.agent.quality.weights import MODEL_FILE
from convrec.agent.quality.weights import train as train_weights
from convrec.data.dataset import CRSDataset
from convrec.errors import ConfigError
from convrec.retrieval.base import recommender_class


class HarpoTrainOptions(BaseModel):
    """The ``--set`` options of ``convrec train --recommender harpo``."""

    model_config = ConfigDict(extra="forbid")

    retriever: str = Field("lrurec-text", description="the agent's retriever")
    checkpoint: str | None = Field(None, description="a `convrec train` run dir for that retriever")
    limit: int | None = Field(None, ge=1, description="validation samples the weight network reads (a seeded "
                              "subset; default all)")
    seed: int = Field(0, ge=0, description="seed of that subset and of the network")
    run_dir: str | None = None  # set by `convrec train` (the --out folder), not an option of its own

    @classmethod
    def parse(cls, options: dict[str, Any]) -> HarpoTrainOptions:
        """Validated options, or a :class:`ConfigError` that names each bad one and what was expected."""
        unknown = sorted(set(options) - set(cls.model_fields))
        if unknown:
            known = "; ".join(f"{k}: {f.description}" for k, f in cls.model_fields.items() if f.description)
            raise ConfigError(f"harpo training: unknown option(s) {', '.join(unknown)}; known: {known}")
        try:
            parsed = cls.model_validate(options)
        except ValidationError as err:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
            raise ConfigError(f"harpo training: {problems}") from None
        if parsed.retriever in NOT_RETRIEVERS:
            raise ConfigError(f"harpo training: retriever {parsed.retriever!r} is not a first-stage retriever")
        recommender_class(parsed.retriever)  # an unknown name fails here, before any model is trained
        return parsed


def finished(folder: Path, model: str) -> bool:
    return (folder / model).is_file() and (folder / "report.json").is_file()


def train_quality(dataset: CRSDataset, out: Path, options: dict[str, Any], say=print) -> dict[str, Any]:
    """Run the steps of the module docstring into ``out``; returns what each step did."""
    settings = HarpoTrainOptions.parse(options)
    steps: dict[str, str] = {}
    runs: dict[str, str | None] = {}
    for dimension in MODEL_DIMENSIONS:
        folder = out / dimension
        if finished(folder, f"{dimension}.txt"):
            steps[dimension], runs[dimension] = "finished before: kept", str(folder)
            continue
        say(f"training the {dimension} model ...")
        try:
            report = train_and_judge(dataset, folder, dimension)
        except ConfigError as err:
            if "has no recommender proposals" not in str(err):
                raise
            steps[dimension], runs[dimension] = f"skipped: {err}", None
            say(f"  skipped: {err}")
            continue
        steps[dimension], runs[dimension] = f"trained: test AUC {report['test_auc']:.3f}", str(folder)
        say(f"  test AUC {report['test_auc']:.3f} ± {report['test_auc_se']:.3f}")
    folder = out / "weights"
    if finished(folder, MODEL_FILE):
        steps["weights"] = "finished before: kept"
    else:
        say("training the weight network on the validation split's probe slates ...")
        args = argparse.Namespace(dataset=dataset.name, retriever=settings.retriever,
                                  checkpoint=settings.checkpoint, satisfaction_run=runs["satisfaction"],
                                  engagement_run=runs["engagement"], limit=settings.limit, seed=settings.seed,
                                  epochs=300, margin=0.1, scale=10.0, out=folder, data_dir=None)
        report = train_weights(args, dataset)
        learned = report["held_out_accuracy"]["learned, per context"]
        steps["weights"] = f"trained: held-out pairs ordered right {learned:.3f}"
    return {"steps": steps, "quality": {"run": str(out)}}
