"""CHARM's relevance dimension, learned: a second-stage ranker over several retrievers' candidates.

``learned-ranker`` in the registry. Its first stage is a set of fitted retrievers (lrurec-text, EASE, item-kNN
and dense text by default); the union of their top ``per_retriever`` items are its candidates, each described
by the features of :mod:`convrec.agent.quality.features`; a LightGBM LambdaMART model orders them. The score
matrix puts the candidates, in the model's order, above every other item, which keeps the first retriever's
order.

**What it learns from.** A second stage must see the retrievers' scores as they are on dialogues they were
not fitted on: on their own training dialogues those scores are too good (lrurec-text all but memorises its
targets). So the ranker is trained on the **validation** split, whose dialogues the retrievers never fit
(ReDial's validation split is its latest tenth of conversations, closest in time to test), with every
retriever fitted on train. Its options are chosen by cross-validation over validation dialogues (folds by
dialogue, :func:`cross_validate`), and test is read once. The cost is fewer training contexts (ReDial 3,497
samples) than train would give; cross-fitted retrievers on train folds would give more, at the price of
retraining lrurec-text per fold.

**The last stage** (``cross_encoder``, optional): a cross-encoder fine-tuned on train dialogues
(:mod:`convrec.agent.quality.cross`) reads the dialogue and each of the model's top ``cross_encoder_top``
candidates together, and those candidates are re-ordered by z(model) + w * z(cross-encoder). The weight w is
chosen on validation, where the model's scores are out of fold (the cross-validation's) and the
cross-encoder never saw the dialogues.

Training writes ``ranker.txt`` (the LightGBM model), ``config.json`` (options, feature names, catalogue) and
``cv.json`` (the cross-validation report) into ``run_dir``; features are cached there (``features.npz``, or in
``features_dir``), so a second run after a kill skips the slow part, and a finished run with the same options
is loaded rather than trained again. ``checkpoint`` loads a finished run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from convrec.agent.quality.features import (
    FEATURE_GROUPS,
    CandidateFeaturizer,
    CandidateRows,
    recent_item_counts,
)
from convrec.catalog.items import Catalog
from convrec.data.dataset import Split
from convrec.data.model import ContextView, RecSample
from convrec.devices import cpu_threads
from convrec.errors import ConfigError
from convrec.io import atomic_write, write_json
from convrec.resources import Resources
from convrec.retrieval.base import Recommender, RecommenderConfig, build_recommender, item_counts, register
from convrec.text.cross_encoder import CrossEncoder

log = logging.getLogger("convrec.agent.quality")

NOT_FIRST_STAGE = ("harpo", "rar", "learned-ranker")
RUN_FORMAT = 2
FEATURE_OPTIONS = ("retrievers", "retriever_checkpoint", "per_retriever")  # what the cached features depend on
CROSS_CACHE_PAIRS = 200_000  # (context, item) scores kept in memory
CROSS_OPTIONS = ("cross_encoder", "cross_encoder_top", "cross_encoder_weights")
RUN_OPTIONS = (*FEATURE_OPTIONS, "groups", *CROSS_OPTIONS)  # what a trained model depends on


class LearnedRankerConfig(RecommenderConfig):
    retrievers: dict[str, dict[str, Any]] = Field(
        {"lrurec-text": {}, "ease": {}, "itemknn": {}, "dense-text": {},
         "dense-text@seeker": {"seeker_only": True, "context_chars": 300}},
        description="first-stage retrievers and their options (the first also orders the non-candidates); "
        "NAME@LABEL uses a retriever twice, e.g. \"dense-text@seeker\" = {seeker_only = true}")
    retriever_checkpoint: str | None = Field(None, description="a `convrec train` run dir the first retriever "
                                             "loads (its own options may say so instead)")
    also_train_on: tuple[str, ...] = Field((), description="feature dirs of other datasets' learned-ranker runs "
                                           "(the same retrievers and features) whose validation turns join the "
                                           "training data: a small dataset learns from a large one")
    per_retriever: int = Field(50, ge=10, le=1000, description="each retriever's top-N joins the candidates")
    groups: tuple[str, ...] = Field(FEATURE_GROUPS, description="feature groups used (ablations drop some): "
                                    + ", ".join(FEATURE_GROUPS))
    # 100 trees of 7 leaves: the best of the learner grid cross-validated on ReDial's validation split (Recall@10
    # 0.270 against 0.265 for 300 x 15 and 0.250 for 600 x 31: bigger models overfit ~2,600 turns)
    trees: int = Field(100, ge=1, le=5000, description="boosting rounds")
    learning_rate: float = Field(0.05, gt=0, le=1)
    leaves: int = Field(7, ge=2, le=1024, description="leaves per tree")
    min_leaf: int = Field(50, ge=1, description="least training rows in a leaf")
    feature_fraction: float = Field(0.8, gt=0, le=1)
    seed: int = 0
    folds: int = Field(5, ge=2, le=20, description="cross-validation folds over validation dialogues")
    run_dir: str | None = Field(None, description="where training writes the model and its report; a finished "
                                "run there with the same options is loaded, not retrained")
    features_dir: str | None = Field(None, description="where validation features are cached (default run_dir): "
                                     "runs that differ only in groups or learner options can share them")
    checkpoint: str | None = Field(None, description="a finished run dir to load instead of training")
    cross_encoder: str | None = Field(None, description="a fine-tuned cross-encoder's run dir (python -m "
                                      "convrec.agent.quality.cross): it re-orders the model's top "
                                      "cross_encoder_top candidates; None: no last stage")
    cross_encoder_top: int = Field(20, ge=2, le=200, description="candidates the cross-encoder re-orders")
    cross_encoder_weights: tuple[float, ...] = Field(
        (0.0, 0.25, 0.5, 1.0, 2.0, 4.0), min_length=1,
        description="the cross-encoder's weight beside the model's score (both z-scored over the re-ordered "
        "candidates) is chosen from these on validation, where the model's scores are out of fold")

    @field_validator("retrievers")
    @classmethod
    def _first_stage_only(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if not value:
            raise ValueError("at least one retriever")
        for key in value:
            if retriever_name(key) in NOT_FIRST_STAGE:
                raise ValueError(f"{retriever_name(key)!r} is not a first-stage retriever")
        return value

    @field_validator("groups")
    @classmethod
    def _known_groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(FEATURE_GROUPS))
        if unknown:
            raise ValueError(f"unknown feature group(s) {', '.join(unknown)}; known: {', '.join(FEATURE_GROUPS)}")
        return value

    def learner_params(self) -> dict[str, Any]:
        return {"objective": "lambdarank", "n_estimators": self.trees, "learning_rate": self.learning_rate,
                "num_leaves": self.leaves, "min_child_samples": self.min_leaf,
                "colsample_bytree": self.feature_fraction, "random_state": self.seed, "n_jobs": cpu_threads(2),
                "lambdarank_truncation_level": 20, "verbose": -1}


def validation_hash(valid: Split) -> str:
    """Which validation samples a run learned from: a new data version (other dialogues, other links) must
    not reuse cached features or a finished model."""
    digest = hashlib.sha256("\n".join(s.sample_id for s in valid.selection_samples).encode())
    return f"{len(valid.selection_samples)}:{digest.hexdigest()[:16]}"


def first_stage_hash(checkpoint: str | None) -> str | None:
    """Which trained first retriever a run's features came from (its run's config.json, which records the best
    epoch): a retrained lrurec-text must not be served old features or an old model."""
    if checkpoint is None:
        return None
    config = Path(checkpoint) / "config.json"
    return hashlib.sha256(config.read_bytes()).hexdigest()[:16] if config.is_file() else None


def retriever_name(key: str) -> str:
    """``dense-text@seeker`` -> ``dense-text``: a retriever may be used twice with other options, under a label."""
    return key.partition("@")[0]


def _lightgbm():
    try:
        import lightgbm
    except ImportError:
        raise ConfigError("the learned ranker needs LightGBM: pip install 'convrec[ranker]'") from None
    return lightgbm


def turn_groups(samples: Sequence[RecSample]) -> list[tuple[ContextView, list[str], list[int]]]:
    """Samples of one recommender turn share their context: (view, its targets, the samples' indices) per turn,
    in order of first appearance. A turn that names three items is one ranking with three right answers."""
    groups: dict[tuple[str, int], tuple[ContextView, list[str], list[int]]] = {}
    for index, sample in enumerate(samples):
        key = (sample.dialogue_id, sample.turn_index)
        if key not in groups:
            groups[key] = (sample.view(), [], [])
        groups[key][1].append(sample.target)
        groups[key][2].append(index)
    return list(groups.values())


class TrainingSet:
    """The features of every validation turn, their candidates' labels (1: a target), the dialogue of each turn
    (cross-validation folds are by dialogue) and, per target, the first retriever's rank of it. ``extra``: other
    datasets' validation turns (``also_train_on``), always on the training side of a fold."""

    def __init__(self, rows: list[CandidateRows], labels: list[np.ndarray], dialogues: list[str],
                 first_ranks: list[np.ndarray]):
        self.rows, self.labels, self.dialogues = rows, labels, dialogues
        self.first_ranks = first_ranks  # per turn and target: (items the first retriever scores higher, tied)
        self.extra: list[TrainingSet] = []

    @classmethod
    def build(cls, rows: list[CandidateRows], targets: list[list[str]], dialogues: list[str], catalog: Catalog,
              first_ranks: list[np.ndarray]) -> TrainingSet:
        labels = []
        for row, wanted in zip(rows, targets, strict=True):
            positions = set(catalog.indices([t for t in wanted if t in catalog.index_of]))
            labels.append(np.asarray([1.0 if p in positions else 0.0 for p in row.positions]))
        return cls(rows, labels, dialogues, first_ranks)

    def matrix(self, turns: Sequence[int]) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """Features, labels and group sizes of ``turns`` that hold at least one target among their candidates,
        and of every such turn of the ``extra`` sets."""
        parts = [(self, [t for t in turns if self.labels[t].any()])]
        parts += [(other, [t for t in range(len(other.rows)) if other.labels[t].any()]) for other in self.extra]
        if not any(kept for _, kept in parts):
            raise ConfigError("no validation turn has its target among the candidates: nothing to learn from")
        features = np.concatenate([s.rows[t].features for s, kept in parts for t in kept])
        labels = np.concatenate([s.labels[t] for s, kept in parts for t in kept]).astype(np.int32)
        return features, labels, [len(s.labels[t]) for s, kept in parts for t in kept]

    def save(self, path: Path) -> None:
        with atomic_write(path, "wb", encoding=None) as handle:
            np.savez_compressed(
                handle, sizes=np.asarray([len(r.positions) for r in self.rows]),
                positions=np.concatenate([r.positions for r in self.rows]),
                features=np.concatenate([r.features for r in self.rows]),
                labels=np.concatenate(self.labels), dialogues=np.asarray(json.dumps(self.dialogues)),
                first_ranks=np.asarray(json.dumps([r.tolist() for r in self.first_ranks])))

    @classmethod
    def load(cls, path: Path) -> TrainingSet:
        with np.load(path) as data:
            bounds = np.cumsum(np.concatenate([[0], data["sizes"]]))
            # an NpzFile reads an array again at every access: once each
            positions, features, labels = data["positions"], data["features"], data["labels"]
            pairs = list(zip(bounds[:-1], bounds[1:], strict=True))
            rows = [CandidateRows(positions[a:b], features[a:b]) for a, b in pairs]
            dialogues = json.loads(str(data["dialogues"]))
            first = [np.asarray(r, dtype=np.int64).reshape(-1, 2) for r in json.loads(str(data["first_ranks"]))]
        return cls(rows, [labels[a:b] for a, b in pairs], dialogues, first)


def ranking_metrics(candidate_scores: np.ndarray, labels: np.ndarray, n_targets: int) -> dict[str, np.ndarray]:
    """Per target of one turn: Recall@1/10 and NDCG@10 when the candidates are ordered by ``candidate_scores``
    above every other item (ties count in expectation). A target outside the candidates scores 0: the
    candidates number at least ``per_retriever`` >= 10, so it is never in the top 10."""
    found = np.flatnonzero(labels > 0)
    out = {"recall@1": np.zeros(n_targets), "recall@10": np.zeros(n_targets), "ndcg@10": np.zeros(n_targets)}
    for k, index in enumerate(found):
        score = candidate_scores[index]
        greater = int((candidate_scores > score).sum())
        ties = int((candidate_scores == score).sum()) - 1
        out["recall@1"][k], out["recall@10"][k], out["ndcg@10"][k] = _expected(greater, ties)
    return out


def _expected(greater: int, ties: int) -> tuple[float, float, float]:
    """Recall@1, Recall@10, NDCG@10 of a target below ``greater`` items and tied with ``ties`` others, in
    expectation over the order of the ties (as the evaluation harness counts them)."""
    positions = greater + np.arange(ties + 1)
    recall1 = float(np.mean(positions < 1))
    recall10 = float(np.mean(positions < 10))
    ndcg = float(np.mean(np.where(positions < 10, 1.0 / np.log2(positions + 2.0), 0.0)))
    return recall1, recall10, ndcg


def out_of_fold(training: TrainingSet, config: LearnedRankerConfig, columns: np.ndarray | None = None
                ) -> list[np.ndarray]:
    """Each validation turn's candidate scores from a model trained on the folds without its dialogue."""
    lightgbm = _lightgbm()
    dialogues = sorted(set(training.dialogues))
    rng = np.random.default_rng(config.seed)
    fold_of = dict(zip(dialogues, rng.permutation(len(dialogues)) % config.folds, strict=True))
    scores: list[np.ndarray] = [np.zeros(0)] * len(training.rows)
    for fold in range(config.folds):
        train_turns = [t for t, d in enumerate(training.dialogues) if fold_of[d] != fold]
        test_turns = [t for t, d in enumerate(training.dialogues) if fold_of[d] == fold]
        features, labels, groups = training.matrix(train_turns)
        if columns is not None:
            features = features[:, columns]
        model = lightgbm.LGBMRanker(**config.learner_params())
        model.fit(features, labels, group=groups)
        for turn in test_turns:
            rows = training.rows[turn].features if columns is None else training.rows[turn].features[:, columns]
            scores[turn] = model.predict(rows) if len(rows) else np.zeros(0)
    return scores


def per_target_metrics(training: TrainingSet, scores: Sequence[np.ndarray]) -> dict[str, dict[str, np.ndarray]]:
    """Recall@1/10 and NDCG@10 per validation target: of ``scores`` (per turn) and of the first retriever alone."""
    ours: dict[str, list[float]] = {"recall@1": [], "recall@10": [], "ndcg@10": []}
    first: dict[str, list[float]] = {"recall@1": [], "recall@10": [], "ndcg@10": []}
    for turn, turn_scores in enumerate(scores):
        values = ranking_metrics(turn_scores, training.labels[turn], len(training.first_ranks[turn]))
        for name in ours:
            ours[name] += values[name].tolist()
        for greater, ties in training.first_ranks[turn]:
            for name, value in zip(first, _expected(int(greater), int(ties)), strict=True):
                first[name].append(value)
    return {"ranker": {k: np.asarray(v) for k, v in ours.items()},
            "first_retriever": {k: np.asarray(v) for k, v in first.items()}}


def paired(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    diff = ours - theirs
    se = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else 0.0
    return {"difference": float(diff.mean()), "difference_se": se}


def cross_validate(training: TrainingSet, config: LearnedRankerConfig, columns: np.ndarray | None = None,
                   scores: Sequence[np.ndarray] | None = None) -> dict[str, Any]:
    """Folds over validation dialogues: train on the others, score the held-out turns. Per-target values of the
    ranker and of the first retriever alone on the same targets, and their paired difference (mean and SE).
    ``scores``: the out-of-fold scores when the caller has them already."""
    values = per_target_metrics(training, out_of_fold(training, config, columns) if scores is None else scores)
    report: dict[str, Any] = {"folds": config.folds, "targets": len(values["ranker"]["recall@10"])}
    for name, ours in values["ranker"].items():
        theirs = values["first_retriever"][name]
        report[name] = {"ranker": float(ours.mean()) if len(ours) else 0.0,
                        "first_retriever": float(theirs.mean()) if len(theirs) else 0.0, **paired(ours, theirs)}
    return report


def blend_cross(predicted: np.ndarray, top: np.ndarray, cross: np.ndarray, weight: float) -> np.ndarray:
    """``predicted`` with its ``top`` candidates re-ordered by z(model) + weight * z(cross-encoder), still above
    every other candidate."""
    if weight == 0 or len(top) < 2:
        return predicted
    def z(values: np.ndarray) -> np.ndarray:
        return (values - values.mean()) / (values.std() + 1e-9)
    blended = z(predicted[top]) + weight * z(np.asarray(cross, dtype=np.float64))
    out = predicted.astype(np.float64).copy()
    spread = blended.max() - blended.min()
    out[top] = predicted.max() + 1.0 + (blended - blended.min()) / (spread if spread > 0 else 1.0)
    return out


def top_candidates(predicted: np.ndarray, k: int) -> np.ndarray:
    return np.argsort(-predicted, kind="stable")[:k]


@register
class LearnedRanker(Recommender):
    """A LambdaMART model over several retrievers' candidates (see the module docstring)."""

    name = "learned-ranker"
    config_class = LearnedRankerConfig
    config: LearnedRankerConfig
    uses_resources = True

    def __init__(self, catalog: Catalog, config: LearnedRankerConfig | None = None, *,
                 resources: Resources | None = None):
        super().__init__(catalog, config)
        self.resources = resources or Resources.from_env()
        self.featurizer: CandidateFeaturizer | None = None
        self.columns = np.zeros(0, dtype=np.int64)
        self.features_dir: Path | None = None
        self.validation_: str | None = None
        self.first_stage_: str | None = None
        self.model: Any = None
        self.summary: dict[str, Any] = {}
        self.cross: CrossEncoder | None = None
        self.cross_weight_ = 0.0
        self._item_texts: list[str] | None = None
        self._cross_cache: dict[tuple[str, int], float] = {}
        if self.config.checkpoint:
            # the run's own first stage and features (a model is only valid with them), whatever was set here
            saved = self._check_checkpoint(Path(self.config.checkpoint))["options"]
            self.config = LearnedRankerConfig(**{**self.config.model_dump(),
                                                **{k: saved[k] for k in RUN_OPTIONS if k in saved}})

    # ---- fit --------------------------------------------------------------------------------------------

    def fit(self, train: Split, valid: Split | None = None) -> None:
        _lightgbm()  # a missing package is said before minutes of fitting
        seconds: dict[str, float] = {}
        started = time.perf_counter()
        retrievers = {}
        for position, (key, options) in enumerate(self.config.retrievers.items()):
            if position == 0 and self.config.retriever_checkpoint:
                options = {**options, "checkpoint": self.config.retriever_checkpoint}
            retriever = build_recommender(retriever_name(key), self.catalog, options, resources=self.resources)
            log.info("fitting the retriever %s", key)
            retriever.fit(train, valid)
            retrievers[key] = retriever
        self.featurizer = CandidateFeaturizer(self.catalog, retrievers, item_counts(train), self.config.per_retriever,
                                              train.dataset or None, recent_item_counts(train))
        self.columns = self.featurizer.columns(self.config.groups)
        self.dataset_name = train.dataset
        if self.config.cross_encoder:
            self.cross = self._load_cross(Path(self.config.cross_encoder))
        seconds["fit_retrievers"] = time.perf_counter() - started
        if self.config.checkpoint:
            self._load(Path(self.config.checkpoint))
            return
        if valid is None or not valid.selection_samples:
            raise ConfigError("learned-ranker trains on the validation split: this dataset has none")
        run_dir = Path(self.config.run_dir) if self.config.run_dir else None
        self.validation_ = validation_hash(valid)
        self.first_stage_ = first_stage_hash(self.config.retriever_checkpoint)
        if run_dir is not None and self._finished_here(run_dir):
            log.info("learned-ranker: the finished run in %s has these options: loaded", run_dir)
            self._load(run_dir)
            return
        started = time.perf_counter()
        features_dir = Path(self.config.features_dir) if self.config.features_dir else run_dir
        self.features_dir = features_dir
        training = self._training_set(valid, features_dir)
        # this run's own features are not added twice (one config row may name every dataset's run)
        own = features_dir.resolve() if features_dir is not None else None
        training.extra = [self._other_training_set(Path(d)) for d in self.config.also_train_on
                          if Path(d).resolve() != own]
        seconds["validation_features"] = time.perf_counter() - started
        started = time.perf_counter()
        oof = out_of_fold(training, self.config, self.columns)
        report = cross_validate(training, self.config, self.columns, oof)
        seconds["cross_validation"] = time.perf_counter() - started
        cross_report = None
        if self.cross is not None:
            started = time.perf_counter()
            cross_report = self._choose_cross_weight(training, oof, valid)
            seconds["cross_encoder_validation"] = time.perf_counter() - started
        started = time.perf_counter()
        features, labels, groups = training.matrix(range(len(training.rows)))
        self.model = _lightgbm().LGBMRanker(**self.config.learner_params())
        self.model.fit(features[:, self.columns], labels, group=groups)
        seconds["final_model"] = time.perf_counter() - started
        covered = float(np.mean([lab.any() for lab in training.labels]))
        self.summary = {"validation_turns": len(training.rows), "turns_with_target_in_candidates": round(covered, 4),
                        "mean_candidates": round(float(np.mean([len(r.positions) for r in training.rows])), 1),
                        "cross_validation": report, "seconds": {k: round(v, 1) for k, v in seconds.items()}}
        if cross_report is not None:
            self.summary["cross_encoder"] = cross_report
        log.info("learned-ranker: cross-validated Recall@10 %.4f vs %.4f for %s alone",
                 report["recall@10"]["ranker"], report["recall@10"]["first_retriever"], next(iter(retrievers)))
        if run_dir is not None:
            self._save(run_dir)

    def _load_cross(self, run_dir: Path) -> CrossEncoder:
        model, saved = CrossEncoder.load(run_dir)
        trained_on = saved.get("run", {})
        if trained_on.get("n_items") != len(self.catalog):
            raise ConfigError(f"cross_encoder: {run_dir} was trained on {trained_on.get('dataset')!r} "
                              f"({trained_on.get('n_items')} items), not this catalogue ({len(self.catalog)} items)")
        return model

    def item_texts(self) -> list[str]:
        if self._item_texts is None:
            self._item_texts = [CrossEncoder.item_text(item) for item in self.catalog.items]
        return self._item_texts

    def _cross_scores(self, texts: Sequence[str], candidates: Sequence[np.ndarray]) -> list[np.ndarray]:
        """The cross-encoder's scores of each context's ``candidates`` (catalogue positions), in one pass."""
        assert self.cross is not None
        items = self.item_texts()
        pairs = [(text, int(p)) for text, chosen in zip(texts, candidates, strict=True) for p in chosen]
        # a context scored again (the same samples under a second protocol) costs nothing the second time
        todo = list(dict.fromkeys(pair for pair in pairs if pair not in self._cross_cache))
        if len(self._cross_cache) + len(todo) > CROSS_CACHE_PAIRS:
            self._cross_cache.clear()
        if todo:
            scored = self.cross.score([text for text, _ in todo], [items[p] for _, p in todo])
            self._cross_cache.update(zip(todo, scored.tolist(), strict=True))
        flat = np.asarray([self._cross_cache[pair] for pair in pairs], dtype=np.float64)
        bounds = np.cumsum([0, *(len(c) for c in candidates)])
        return [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]

    def _choose_cross_weight(self, training: TrainingSet, oof: list[np.ndarray], valid: Split) -> dict[str, Any]:
        """The cross-encoder's weight, from ``cross_encoder_weights``, by validation Recall@10 (then NDCG@10, then
        the smaller weight) over the out-of-fold scores; only turns with a target among the re-ordered
        candidates can change, so only those are scored."""
        views = [view for view, _, _ in turn_groups(valid.selection_samples)]
        if len(views) != len(training.rows):
            raise ConfigError("the cached validation features do not match the validation turns: remove "
                              "features.npz and train again")
        k = self.config.cross_encoder_top
        todo = [t for t, scores in enumerate(oof) if len(scores) and training.labels[t][top_candidates(scores, k)].any()]
        tops = [top_candidates(oof[t], k) for t in todo]
        log.info("learned-ranker: the cross-encoder scores %d validation turns' top %d", len(todo), k)
        cross = self._cross_scores([views[t].context_text() for t in todo],
                                   [training.rows[t].positions[top] for t, top in zip(todo, tops, strict=True)])
        base = per_target_metrics(training, oof)["ranker"]
        by_weight: dict[str, Any] = {}
        for weight in self.config.cross_encoder_weights:
            scores = list(oof)
            for t, top, values in zip(todo, tops, cross, strict=True):
                scores[t] = blend_cross(oof[t], top, values, weight)
            values_of = per_target_metrics(training, scores)["ranker"]
            by_weight[str(weight)] = {name: {"mean": float(v.mean()), **paired(v, base[name])}
                                      for name, v in values_of.items()}
        chosen = max(self.config.cross_encoder_weights,
                     key=lambda w: (by_weight[str(w)]["recall@10"]["mean"], by_weight[str(w)]["ndcg@10"]["mean"], -w))
        self.cross_weight_ = float(chosen)
        return {"run": self.config.cross_encoder, "top": k, "turns_scored": len(todo), "chosen_weight": chosen,
                "by_weight": by_weight}

    def _other_training_set(self, features_dir: Path) -> TrainingSet:
        assert self.featurizer is not None
        key_path, cache = features_dir / "features.json", features_dir / "features.npz"
        if not key_path.is_file() or not cache.is_file():
            raise ConfigError(f"also_train_on: {features_dir} holds no cached learned-ranker features "
                              "(features.json, features.npz): train that run first")
        saved = json.loads(key_path.read_text(encoding="utf-8"))
        if saved.get("features") != self.featurizer.names or saved.get("format") != RUN_FORMAT:
            raise ConfigError(f"also_train_on: {features_dir} has other features than this run (its retrievers "
                              "and feature groups must be the same)")
        return TrainingSet.load(cache)

    def _finished_here(self, run_dir: Path) -> bool:
        config_path = run_dir / "config.json"
        if not (run_dir / "ranker.txt").is_file() or not config_path.is_file():
            return False
        try:
            saved = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            return False  # a damaged run is trained again, over it
        return (saved.get("options") == self._run_options() and saved.get("n_items") == len(self.catalog)
                and saved.get("validation") == self.validation_ and saved.get("first_stage") == self.first_stage_)

    def _run_options(self) -> dict[str, Any]:
        # without a cross-encoder its options change nothing: runs trained before it existed stay valid
        unused = set(CROSS_OPTIONS) if self.config.cross_encoder is None else set()
        return self.config.model_dump(mode="json", exclude={"run_dir", "checkpoint", "features_dir", *unused})

    def _training_set(self, valid: Split, features_dir: Path | None) -> TrainingSet:
        """The validation turns' features, from the cache in ``features_dir`` when it holds these ones."""
        assert self.featurizer is not None
        cache = features_dir / "features.npz" if features_dir else None
        key = {"format": RUN_FORMAT, "options": self._feature_options(), "samples": self.validation_,
               "first_stage": self.first_stage_,
               "features": self.featurizer.names}
        if (cache is not None and cache.exists() and (features_dir / "features.json").exists()
                and json.loads((features_dir / "features.json").read_text()) == key):
            log.info("learned-ranker: features from %s", cache)
            return TrainingSet.load(cache)
        groups = turn_groups(valid.selection_samples)
        views = [view for view, _, _ in groups]
        log.info("learned-ranker: features of %d validation turns", len(views))
        scores = self.featurizer.scores(views)
        first = next(iter(self.featurizer.retrievers))
        rows, first_ranks = [], []
        for row, (view, targets, _) in enumerate(groups):
            rows.append(self.featurizer.rows_of(view, {n: block[row] for n, block in scores.items()}))
            first_row = scores[first][row]
            first_ranks.append(np.asarray([((first_row > first_row[p]).sum(), (first_row == first_row[p]).sum() - 1)
                                           for p in self.catalog.indices(targets)], dtype=np.int64).reshape(-1, 2))
        training = TrainingSet.build(rows, [t for _, t, _ in groups], [v.dialogue_id for v in views], self.catalog,
                                     first_ranks)
        if cache is not None:
            training.save(cache)
            write_json(features_dir / "features.json", key)
        return training

    def _feature_options(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json", include=set(FEATURE_OPTIONS))

    # ---- runs -------------------------------------------------------------------------------------------

    def _save(self, run_dir: Path) -> None:
        with atomic_write(run_dir / "ranker.txt") as handle:
            handle.write(self.model.booster_.model_to_string())
        assert self.featurizer is not None
        options = self._run_options()
        write_json(run_dir / "cv.json", self.summary)
        write_json(run_dir / "config.json", {"format": RUN_FORMAT, "recommender": self.name, "options": options,
                                             "dataset": self.dataset_name,
                                             "features_dir": str(self.features_dir or run_dir),
                                             "validation": self.validation_, "first_stage": self.first_stage_,
                                             "features": [self.featurizer.names[c] for c in self.columns], "catalog": self.catalog.name,
                                             "n_items": len(self.catalog), "summary": self.summary})

    def _check_checkpoint(self, run_dir: Path) -> dict[str, Any]:
        config_path = run_dir / "config.json"
        if not (run_dir / "ranker.txt").is_file() or not config_path.is_file():
            raise ConfigError(f"{run_dir} is not a finished learned-ranker run (no ranker.txt / config.json): "
                              f"train one with `convrec train --recommender learned-ranker --out {run_dir}`")
        try:
            saved = json.loads(config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ConfigError(f"{config_path}: not valid JSON ({err.msg}, line {err.lineno})") from None
        if saved.get("recommender") != self.name:
            raise ConfigError(f"{run_dir} is a {saved.get('recommender')!r} run, not a learned-ranker run")
        if saved.get("n_items") != len(self.catalog) or saved.get("catalog") != self.catalog.name:
            raise ConfigError(f"{run_dir} was trained on catalogue {saved.get('catalog')!r} ({saved.get('n_items')} "
                              f"items), not {self.catalog.name!r} ({len(self.catalog)} items)")
        return saved

    def _load(self, run_dir: Path) -> None:
        saved = self._check_checkpoint(run_dir)
        assert self.featurizer is not None
        if saved.get("features") != [self.featurizer.names[c] for c in self.columns]:
            raise ConfigError(f"{run_dir} was trained with other features ({len(saved.get('features') or [])}) than "
                              f"these options give ({len(self.featurizer.names)}): use the run's own options")
        self.model = _lightgbm().Booster(model_str=(run_dir / "ranker.txt").read_text(encoding="utf-8"))
        self.summary = {"checkpoint": str(run_dir), **saved.get("summary", {})}
        if self.cross is not None:
            self.cross_weight_ = float(self.summary.get("cross_encoder", {}).get("chosen_weight", 0.0))

    # ---- score ------------------------------------------------------------------------------------------

    def _predict(self, features: np.ndarray) -> np.ndarray:
        if not len(features):
            return np.zeros(0)
        model = self.model.booster_ if hasattr(self.model, "booster_") else self.model
        return np.asarray(model.predict(features), dtype=np.float64)

    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        if self.featurizer is None or self.model is None:
            raise RuntimeError("learned-ranker: call fit() before score()")
        scores = self.featurizer.scores(samples)
        first = scores[next(iter(self.featurizer.retrievers))]
        candidates = []
        for row, view in enumerate(samples):
            rows = self.featurizer.rows_of(view, {n: block[row] for n, block in scores.items()})
            candidates.append((rows.positions, self._predict(rows.features[:, self.columns])))
        if self.cross is not None and self.cross_weight_ > 0:
            tops = [top_candidates(predicted, self.config.cross_encoder_top) for _, predicted in candidates]
            cross = self._cross_scores([view.context_text() for view in samples],
                                       [positions[top] for (positions, _), top in zip(candidates, tops, strict=True)])
            candidates = [(positions, blend_cross(predicted, top, values, self.cross_weight_))
                          for (positions, predicted), top, values in zip(candidates, tops, cross, strict=True)]
        out = np.empty((len(samples), len(self.catalog)), dtype=np.float32)
        for row, (positions, predicted) in enumerate(candidates):
            out[row] = self.final_scores(first[row], positions, predicted)
        return out

    @staticmethod
    def final_scores(first: np.ndarray, positions: np.ndarray, predicted: np.ndarray) -> np.ndarray:
        """The candidates in the model's order above every other item, which keep the first retriever's order:
        the first retriever squeezed into [0, 1), the candidates into [2, 3]."""
        finite = np.isfinite(first)
        low, high = (first[finite].min(), first[finite].max()) if finite.any() else (0.0, 1.0)
        final = np.where(finite, (first - low) / (high - low + 1e-12), 0.0) * 0.999
        if len(positions):
            spread = predicted.max() - predicted.min()
            final[positions] = 2.0 + (predicted - predicted.min()) / (spread if spread > 0 else 1.0)
        return final

    def describe(self) -> dict[str, Any]:
        described = super().describe()
        described["summary"] = self.summary
        if self.featurizer is not None:
            described["retrievers"] = {n: r.describe() for n, r in self.featurizer.retrievers.items()}
            described["features"] = [self.featurizer.names[c] for c in self.columns]
        return described
