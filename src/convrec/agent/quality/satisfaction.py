"""CHARM's satisfaction and engagement dimensions, each learned from ReDial's questionnaire answers and judged on
the test split's answers, which it never saw.

    python -m convrec.agent.quality.satisfaction --dataset redial --out results/runs/satisfaction-redial
    python -m convrec.agent.quality.satisfaction --dimension engagement --out results/runs/engagement-redial

**The signals.** After each ReDial conversation both workers answered, per movie, whether the seeker liked it
and whether they had seen it. A row here is a movie the *recommender* brought into the conversation (first
mentioned in a recommender turn): what a recommendation's quality means.

- *satisfaction*: P(liked). Train: 11,248 liked, 1,134 not; test: 3,378 / 268.
- *engagement*: P(not seen before | liked): a recommendation that pleases *and* is new to the seeker, the one
  that gives them something to watch. Rows: the liked proposals with a seen answer (train 3,266 new, 4,457
  seen; test 1,437 / 1,894).

The answers are labels only: every feature is read from the turns before the proposal (a
:class:`~convrec.data.model.ContextView`) and the item, never from the questionnaire of that conversation.

**Features** (18): the item's popularity over train and its latest fifth, its year, how often train seekers
gave the label's answer for it (its like rate, or for engagement its new-to-the-seeker rate; smoothed toward the
mean; for a training row computed without its own fold of dialogues, so the
model cannot read its own label), how many answers that rate rests on; the agent's state against the item
(wanted values held, unknown, broken; an avoided value held; people asked for); values shared with the items
the seeker named, and the year gap; the dialogue so far (seeker turns, liked and disliked items, constraints).

**Model and judgement.** A LightGBM classifier, its size chosen on the validation split's answers (AUC), then
test read once: ROC AUC with a bootstrap standard error over dialogues, beside single-feature references (the
item's like rate, popularity, shared values) on the same rows. A model at chance is said to be so.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from convrec.agent.quality.features import CandidateFeaturizer, recent_item_counts
from convrec.agent.state import AgentState
from convrec.catalog.items import Catalog
from convrec.data.dataset import CRSDataset, Split
from convrec.data.model import ContextView, Dialogue, ItemFeedback
from convrec.devices import cpu_threads
from convrec.errors import ConfigError, ConvrecError
from convrec.io import atomic_write, write_json
from convrec.retrieval.base import build_recommender, item_counts

NAMES = ("log_count", "recent_log_count", "year", "label_rate", "log_answers",
         "wanted_held", "wanted_unknown", "wanted_broken", "avoided_held", "person_asked",
         "shared_categorical", "shared_person", "shared_keyword", "year_gap",
         "seeker_turns", "liked_items", "disliked_items", "constraints")
PRIOR_WEIGHT = 10.0  # answers' worth of the mean like rate every item starts from
FOLDS = 5
GRID = ({"trees": 100, "leaves": 7}, {"trees": 300, "leaves": 7}, {"trees": 300, "leaves": 15})


@dataclass(frozen=True)
class Dimension:
    """A quality dimension read from one questionnaire answer: ``label`` is 1 / 0, or None where the answer
    says nothing about it (that row is left out)."""

    name: str
    label: Callable[[ItemFeedback], bool | None]
    positive: str  # what label 1 means, for the report
    negative: str
    given: str = ""  # the rows' condition, for the report ("liked": engagement's rows are liked proposals)


def _liked(answer: ItemFeedback) -> bool | None:
    return None if answer.liked is None else bool(answer.liked)


def _new_and_liked(answer: ItemFeedback) -> bool | None:
    if not answer.liked or answer.seen is None:
        return None
    return not answer.seen


DIMENSIONS = {
    "satisfaction": Dimension("satisfaction", _liked, "liked", "not liked"),
    "engagement": Dimension("engagement", _new_and_liked, "new to the seeker", "seen before", "liked"),
}


@dataclass
class Rows:
    """Proposals with an answer: features, labels (1 = liked), each row's dialogue."""

    features: np.ndarray
    labels: np.ndarray
    dialogues: list[str]


def proposals(dialogue: Dialogue, dimension: Dimension = DIMENSIONS["satisfaction"]) -> list[tuple[int, str, bool]]:
    """(turn index, item, label) of every item the recommender brought in whose answer gives ``dimension``'s
    label (satisfaction: liked)."""
    first: dict[str, tuple[int, str]] = {}
    for index, turn in enumerate(dialogue.turns):
        for item in turn.items:
            first.setdefault(item, (index, turn.role))
    out = []
    for item, (index, role) in first.items():
        answer = dialogue.feedback.get(item)
        label = None if answer is None else dimension.label(answer)
        if role == "recommender" and label is not None:
            out.append((index, item, label))
    return out


def answer_counts(dialogues: Sequence[Dialogue], catalog_index: dict[str, int], n_items: int,
                  dimension: Dimension = DIMENSIONS["satisfaction"]) -> tuple[np.ndarray, np.ndarray]:
    """(positive answers, all answers with a label) per item over ``dialogues``' questionnaires, whoever
    mentioned the item."""
    liked, total = np.zeros(n_items), np.zeros(n_items)
    for dialogue in dialogues:
        for item, answer in dialogue.feedback.items():
            label = dimension.label(answer)
            if label is not None and item in catalog_index:
                total[catalog_index[item]] += 1
                liked[catalog_index[item]] += label
    return liked, total


def fold_of(dialogue_id: str, folds: int = FOLDS) -> int:
    return int(hashlib.sha256(dialogue_id.encode()).hexdigest()[:8], 16) % folds


class SatisfactionFeatures:
    """Builds one dimension's rows from a dataset's train split (popularity, label rates, the agent's reader)."""

    def __init__(self, catalog: Catalog, train: Split, dataset_name: str | None,
                 dimension: Dimension = DIMENSIONS["satisfaction"]):
        self.dimension = dimension
        self.catalog = catalog
        popularity = build_recommender("popularity", self.catalog)
        popularity.fit(train)
        self.featurizer = CandidateFeaturizer(self.catalog, {"popularity": popularity}, item_counts(train), 10,
                                              dataset_name, recent_item_counts(train))
        self.train_dialogues = [d for d in train.dialogues if d.feedback]
        n = len(self.catalog)
        self.liked, self.total = answer_counts(self.train_dialogues, self.catalog.index_of, n, dimension)
        self.mean_rate = float(self.liked.sum() / max(self.total.sum(), 1))
        # per fold, the answers of the other folds: a training row's like rate never counts its own answer
        self.fold_counts = []
        for fold in range(FOLDS):
            others = [d for d in self.train_dialogues if fold_of(d.dialogue_id) != fold]
            self.fold_counts.append(answer_counts(others, self.catalog.index_of, n, dimension))

    @classmethod
    def of(cls, dataset: CRSDataset, dimension: Dimension = DIMENSIONS["satisfaction"]) -> SatisfactionFeatures:
        return cls(dataset.catalog, dataset.split("train"), dataset.name, dimension)

    def rate(self, liked: np.ndarray, total: np.ndarray) -> np.ndarray:
        return (liked + PRIOR_WEIGHT * self.mean_rate) / (total + PRIOR_WEIGHT)

    def rows_of(self, view: ContextView, items: Sequence[str], held_out_fold: int | None = None,
                state: AgentState | None = None) -> np.ndarray:
        """Feature rows of ``items`` proposed after ``view``; ``held_out_fold``: a training dialogue's fold;
        ``state``: the agent's reading of ``view`` when it has one already (else read here)."""
        positions = np.asarray(self.catalog.indices(items))
        liked, total = (self.liked, self.total) if held_out_fold is None else self.fold_counts[held_out_fold]
        f = self.featurizer
        state = state if state is not None else f.state_of(view)
        columns = [f.log_counts[positions], f.recent_log_counts[positions], f.years[positions],
                   self.rate(liked, total)[positions], np.log1p(total[positions])]
        state_columns = f.state_columns(state, positions)
        columns += state_columns[3:]  # liked / disliked / seen of a not yet mentioned item are always 0
        columns += f.attribute_columns(state, positions)
        n = len(positions)
        columns += [np.full(n, float(state.seeker_turns)), np.full(n, float(len(state.liked))),
                    np.full(n, float(len(state.disliked))), np.full(n, float(len(state.constraints.constraints)))]
        return np.column_stack(columns).astype(np.float32)

    def rows(self, split: Split, training: bool) -> Rows:
        features, labels, dialogues = [], [], []
        for dialogue in split.dialogues:
            if not dialogue.has_roles:
                continue
            by_turn: dict[int, list[tuple[str, bool]]] = {}
            for index, item, liked in proposals(dialogue, self.dimension):
                if item in self.catalog.index_of:
                    by_turn.setdefault(index, []).append((item, liked))
            for index, pairs in by_turn.items():
                view = ContextView(dialogue.dialogue_id, tuple(dialogue.turns[:index]))
                fold = fold_of(dialogue.dialogue_id) if training else None
                features.append(self.rows_of(view, [i for i, _ in pairs], fold))
                labels += [float(liked) for _, liked in pairs]
                dialogues += [dialogue.dialogue_id] * len(pairs)
        if not labels:
            raise ConfigError(f"split '{split.name}' has no recommender proposals with a "
                              f"{self.dimension.positive} / {self.dimension.negative} answer")
        return Rows(np.concatenate(features), np.asarray(labels), dialogues)


def auc_with_se(labels: np.ndarray, scores: np.ndarray, dialogues: Sequence[str], resamples: int = 200,
                seed: int = 0) -> tuple[float, float]:
    """ROC AUC and its bootstrap standard error, resampling whole dialogues (rows of one dialogue correlate)."""
    from sklearn.metrics import roc_auc_score

    auc = float(roc_auc_score(labels, scores))
    groups: dict[str, list[int]] = {}
    for row, dialogue in enumerate(dialogues):
        groups.setdefault(dialogue, []).append(row)
    blocks = list(groups.values())
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        rows = np.concatenate([blocks[k] for k in rng.integers(0, len(blocks), len(blocks))])
        if 0 < labels[rows].sum() < len(rows):
            values.append(roc_auc_score(labels[rows], scores[rows]))
    return auc, float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def train_and_judge(dataset: CRSDataset, out: Path, dimension: str = "satisfaction") -> dict[str, Any]:
    """Train on train, choose the size on validation AUC, read test once; write the model (``{dimension}.txt``)
    and the report."""
    try:
        import lightgbm
    except ImportError:
        raise ConfigError(f"the {dimension} model needs LightGBM: pip install 'convrec[ranker]'") from None
    if dimension not in DIMENSIONS:
        raise ConfigError(f"unknown quality dimension {dimension!r}: expected one of {', '.join(DIMENSIONS)}")
    builder = SatisfactionFeatures.of(dataset, DIMENSIONS[dimension])
    train = builder.rows(dataset.split("train"), training=True)
    valid = builder.rows(dataset.split("valid"), training=False)
    choices = []
    for options in GRID:
        model = lightgbm.LGBMClassifier(n_estimators=options["trees"], num_leaves=options["leaves"],
                                        learning_rate=0.05, min_child_samples=50, colsample_bytree=0.8,
                                        random_state=0, n_jobs=cpu_threads(2), verbose=-1)
        model.fit(train.features, train.labels)
        auc, se = auc_with_se(valid.labels, model.predict_proba(valid.features)[:, 1], valid.dialogues)
        choices.append({"options": options, "valid_auc": round(auc, 4), "valid_auc_se": round(se, 4),
                        "model": model})
    best = max(choices, key=lambda c: c["valid_auc"])
    test = builder.rows(dataset.split("test"), training=False)
    scored = best["model"].predict_proba(test.features)[:, 1]
    auc, se = auc_with_se(test.labels, scored, test.dialogues)
    references = {}
    for name in ("label_rate", "log_count", "recent_log_count", "shared_categorical", "shared_person"):
        column = test.features[:, NAMES.index(name)]
        references[name] = [round(v, 4) for v in auc_with_se(test.labels, np.nan_to_num(column), test.dialogues)]
    report = {
        "dataset": dataset.name, "n_items": len(dataset.catalog), "dimension": dimension, "positive": builder.dimension.positive,
        "negative": builder.dimension.negative, "given": builder.dimension.given, "features": list(NAMES),
        "rows": {"train": [int(train.labels.sum()), int(len(train.labels) - train.labels.sum())],
                 "valid": [int(valid.labels.sum()), int(len(valid.labels) - valid.labels.sum())],
                 "test": [int(test.labels.sum()), int(len(test.labels) - test.labels.sum())]},
        "validation": [{k: v for k, v in c.items() if k != "model"} for c in choices],
        "chosen": best["options"], "test_auc": round(auc, 4), "test_auc_se": round(se, 4),
        "test_references_auc": references,
        "importance": dict(sorted(zip(NAMES, best["model"].booster_.feature_importance("gain").round(1).tolist(),
                                      strict=True), key=lambda kv: -kv[1])),
    }
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot create the run directory {out}: {err.strerror}") from None
    with atomic_write(out / f"{dimension}.txt") as handle:
        handle.write(best["model"].booster_.model_to_string())
    write_json(out / "report.json", report)
    with atomic_write(out / "report.md") as handle:
        handle.write(render(report))
    return report


def render(report: dict[str, Any]) -> str:
    rows = report["rows"]
    dimension = report.get("dimension", "satisfaction")
    positive, negative = report.get("positive", "liked"), report.get("negative", "not liked")
    given = f" | {report['given']}" if report.get("given") else ""
    lines = [f"{dimension.capitalize()} on {report['dataset']}: P({positive}{given}) of the items the recommender "
             f"proposed, from the questionnaire answers ({positive} / {negative}: train {rows['train'][0]:,} / "
             f"{rows['train'][1]:,}, valid "
             f"{rows['valid'][0]:,} / {rows['valid'][1]:,}, test {rows['test'][0]:,} / {rows['test'][1]:,}).", "",
             "| on test (chosen on validation) | ROC AUC |", "|---|---:|",
             f"| the model ({report['chosen']['trees']} trees x {report['chosen']['leaves']} leaves) | "
             f"{report['test_auc']:.3f} ± {report['test_auc_se']:.3f} |"]
    for name, (auc, se) in report["test_references_auc"].items():
        lines.append(f"| {name} alone | {auc:.3f} ± {se:.3f} |")
    lines += ["", "Validation AUC per size: " + "; ".join(
        f"{c['options']['trees']} x {c['options']['leaves']}: {c['valid_auc']:.3f}" for c in report["validation"]),
        "", "Standard errors: bootstrap over dialogues (200 resamples). 0.5 is chance."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m convrec.agent.quality.satisfaction", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="redial", help="a dataset with liked / seen answers (redial)")
    parser.add_argument("--dimension", choices=sorted(DIMENSIONS), default="satisfaction",
                        help="satisfaction: P(liked); engagement: P(new to the seeker | liked)")
    parser.add_argument("--out", type=Path, required=True, help="run directory for the model and the report")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    from convrec.data.load import load_dataset

    try:
        dataset = load_dataset(args.dataset, args.data_dir, progress=False)
        report = train_and_judge(dataset, args.out, args.dimension)
    except ConvrecError as err:  # bad input (a dataset, a run dir, an option): one line, no traceback
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(render(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
