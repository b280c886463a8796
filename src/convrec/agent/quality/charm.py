"""CHARM in the agent: each candidate's four quality dimensions, and the ranking their weighted sum chooses.

The Recommender's ``rank_options`` orders the candidates by *relevance* (the retriever's rank, plus the
wanted values and graph links the agent weighs). With quality weights beyond relevance
(:class:`QualityOptions`, ``[quality]`` in a harpo config) the :class:`QualityScorer` re-orders them greedily:
at each place it takes the candidate with the best

    w_relevance * relevance + w_satisfaction * satisfaction + w_engagement * engagement
    + w_diversity * diversity(item | the items placed above it)

- **relevance**: the candidate's place in ``rank_options``' order as a percentile among the candidates (1 =
  first). Percentiles, not raw scores, so that every retriever's scale means the same.
- **satisfaction**: P(liked), the questionnaire model of :mod:`convrec.agent.quality.satisfaction`
  (``satisfaction_run``), as a percentile among the candidates (its probability is shown in ``/why``).
- **engagement**: P(new to the seeker | liked), the same module's second model (``engagement_run``).
- **diversity**: the mean distance of the candidate to the items placed above it, 1 - Jaccard over their
  main attribute values (genres, people; :class:`ItemDistances`), so the greedy order maximises the weighted
  sum of the dimensions with the slate's intra-list distance as diversity's share.

Every dimension is a model trained on its own signal (relevance: the retriever's targets; satisfaction and
engagement: questionnaire answers of the train split; diversity: the catalogue's metadata), and none of them
is the judge of the agent's lists: the evaluation uses the test split's targets and answers.

With relevance alone (the default) the scorer is not built and the agent is exactly HARPO part 1; with
``below_slate = "agent"`` it is built for relevance alone, the control that isolates what the weights add. The
Critic may use the same models (``critic_min_distance``, ``critic_min_satisfaction``; off by default):
:meth:`convrec.agent.maven.CriticAgent.review`. Per-turn weights from the context come from the network of
:mod:`convrec.agent.quality.weights` (``weights_run``, or ``run``'s ``weights/``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from convrec.agent.domain import DomainAdapter
from convrec.agent.quality.dimensions import QUALITY_DIMENSIONS, ItemQuality, QualityOptions
from convrec.agent.quality.satisfaction import DIMENSIONS as ANSWER_DIMENSIONS
from convrec.agent.quality.satisfaction import NAMES as ANSWER_FEATURES
from convrec.agent.quality.satisfaction import SatisfactionFeatures
from convrec.agent.state import AgentState
from convrec.catalog.items import Catalog
from convrec.data.dataset import Split
from convrec.data.model import ContextView
from convrec.errors import ConfigError

MODEL_DIMENSIONS = ("satisfaction", "engagement")  # learned from questionnaire answers, loaded from a run dir
UNKNOWN_DISTANCE = 0.5  # between two items when either has no main attribute value: neither alike nor apart


class AnswerModel:
    """A trained satisfaction or engagement model (a LightGBM booster) over its feature builder."""

    def __init__(self, dimension: str, booster, features: SatisfactionFeatures):
        self.dimension = dimension
        self.booster = booster
        self.features = features

    @classmethod
    def load(cls, run_dir: str | Path, dimension: str, catalog: Catalog, train: Split,
             dataset_name: str | None) -> AnswerModel:
        """The model in ``run_dir`` (``{dimension}.txt`` and ``report.json``), checked against the catalogue."""
        run = Path(run_dir)
        model_path, report_path = run / f"{dimension}.txt", run / "report.json"
        command = ("python -m convrec.agent.quality.satisfaction --dataset DATASET "
                   f"--dimension {dimension} --out {run}")
        if not model_path.is_file() or not report_path.is_file():
            raise ConfigError(f"no {dimension} model in {run} (expected {model_path.name} and report.json): "
                              f"train it with `{command}`")
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"{report_path}: not a readable report ({err})") from None
        if report.get("dimension", "satisfaction") != dimension:
            raise ConfigError(f"{run} holds a {report.get('dimension')} model, not a {dimension} model")
        if report.get("features") != list(ANSWER_FEATURES):
            raise ConfigError(f"{run}: the model was trained on other features than this version builds: "
                              f"retrain it with `{command}`")
        n_items = report.get("n_items")
        if n_items is not None and n_items != len(catalog):
            raise ConfigError(f"{run}: the model was trained on a catalogue of {n_items:,} items, this one has "
                              f"{len(catalog):,} (dataset {report.get('dataset')!r}, not {dataset_name!r}?)")
        try:
            import lightgbm
        except ImportError:
            raise ConfigError(f"the {dimension} model needs LightGBM: pip install 'convrec[ranker]'") from None
        booster = lightgbm.Booster(model_file=str(model_path))
        return cls(dimension, booster, SatisfactionFeatures(catalog, train, dataset_name, ANSWER_DIMENSIONS[dimension]))

    def predict(self, view: ContextView, state: AgentState | None, item_ids: Sequence[str]) -> np.ndarray:
        if not item_ids:
            return np.zeros(0)
        rows = self.features.rows_of(view, item_ids, state=state)
        return np.asarray(self.booster.predict(rows), dtype=np.float64)


class ItemDistances:
    """Diversity's distance between two items: per kind of main attribute (categorical ones such as genres;
    people: director, cast, writer, author), 1 - Jaccard of the two items' values, averaged over the kinds both
    items have values of; :data:`UNKNOWN_DISTANCE` where they share no such kind. Kinds, not one pool of values:
    in one pool a cast of five outweighs a genre, and two films of one genre with other casts read as far
    apart as a comedy and a war film."""

    KINDS = ("categorical", "person")

    def __init__(self, adapter: DomainAdapter):
        from scipy import sparse

        self.catalog = adapter.catalog
        self.values = []
        self.sizes = []
        for kind in self.KINDS:
            attributes = [a.name for a in adapter.attributes if a.kind == kind and not a.derived]
            columns: dict[tuple[str, str], int] = {}
            rows, cols = [], []
            for row, item_id in enumerate(adapter.catalog.ids):
                for attribute in attributes:
                    for value in adapter.values(item_id, attribute):
                        rows.append(row)
                        cols.append(columns.setdefault((attribute, value.casefold()), len(columns)))
            matrix = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)),
                                       shape=(len(adapter.catalog), max(len(columns), 1)))
            matrix.data[:] = 1.0  # a value listed twice counts once
            self.values.append(matrix)
            self.sizes.append(np.asarray(matrix.sum(axis=1)).ravel())

    def matrix(self, item_ids: Sequence[str]) -> np.ndarray:
        """Pairwise distances of ``item_ids``, (n, n), 0 on the diagonal."""
        positions = self.catalog.indices(list(item_ids))
        n = len(positions)
        total, counted = np.zeros((n, n)), np.zeros((n, n))
        for values, all_sizes in zip(self.values, self.sizes, strict=True):
            sub = values[positions]
            shared = np.asarray((sub @ sub.T).todense(), dtype=np.float64)
            sizes = all_sizes[positions]
            both = (sizes[:, None] > 0) & (sizes[None, :] > 0)
            union = sizes[:, None] + sizes[None, :] - shared
            with np.errstate(invalid="ignore", divide="ignore"):
                distance = np.where(both, 1.0 - shared / np.maximum(union, 1.0), 0.0)
            total += distance
            counted += both
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(counted > 0, total / np.maximum(counted, 1.0), UNKNOWN_DISTANCE)
        np.fill_diagonal(out, 0.0)
        return out

    def intra_list(self, item_ids: Sequence[str]) -> float | None:
        """Mean pairwise distance of a list (None under two items)."""
        if len(item_ids) < 2:
            return None
        d = self.matrix(item_ids)
        n = len(item_ids)
        return float(d.sum() / (n * (n - 1)))


def percentiles(values: np.ndarray) -> np.ndarray:
    """Each value's place among ``values`` as a percentile in [0, 1] (1 = the highest; ties share the mean
    place), so that dimensions on different scales weigh alike."""
    from scipy.stats import rankdata

    n = len(values)
    if n <= 1:
        return np.ones(n)
    return (rankdata(values, method="average") - 1.0) / (n - 1)


@dataclass
class QualityOrder:
    """The candidates re-ordered (indices into the given list) and each one's quality, in that order."""

    order: list[int]
    quality: list[ItemQuality]


@dataclass
class CandidateQuality:
    """The candidates' dimensions: ``percentiles`` per item-level dimension (relevance, and satisfaction and
    engagement where a model scores them), the models' ``probabilities``, the pairwise ``distances`` (None
    without diversity)."""

    percentiles: dict[str, np.ndarray]
    probabilities: dict[str, np.ndarray]
    distances: np.ndarray | None


def greedy_order(quality: CandidateQuality, weights: dict[str, float]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The greedy order of the weighted quality (module docstring): the order, each item's diversity gain and
    its total at the place it took."""
    n = len(quality.percentiles["relevance"])
    base = np.zeros(n)
    for dimension, values in quality.percentiles.items():
        base = base + weights.get(dimension, 0.0) * values
    w_div = weights.get("diversity", 0.0)
    distances = quality.distances if w_div > 0 else None
    placed: list[int] = []
    gains, totals, summed = np.zeros(n), np.zeros(n), np.zeros(n)
    free = np.ones(n, dtype=bool)
    for step in range(n):
        diversity = summed / step if (distances is not None and step) else np.zeros(n)
        total = np.where(free, base + w_div * diversity, -np.inf)
        k = int(np.argmax(total))  # ties: the more relevant (the candidates come in relevance order)
        placed.append(k)
        gains[k], totals[k] = diversity[k], total[k]
        free[k] = False
        if distances is not None:
            summed += distances[k]
    return placed, gains, totals


class QualityScorer:
    """Scores candidates on the four dimensions and orders them by the weighted sum (module docstring); with a
    weight network (``weights_run``) the weights are the network's for each turn's context."""

    def __init__(self, options: QualityOptions, distances: ItemDistances | None,
                 models: dict[str, AnswerModel], network=None):
        self.options = options
        self.distances = distances
        self.models = models
        self.network = network

    @classmethod
    def build(cls, options: QualityOptions, adapter: DomainAdapter, train: Split | None,
              dataset_name: str | None, every_model: bool = False) -> QualityScorer | None:
        """None with relevance alone; else the distances and the models the weights need (a missing run dir
        is a :class:`ConfigError` that says how to train it). ``every_model``: load every model whose run is
        set, and the distances, whatever the weights (to score all four dimensions, as the weight network's
        training does)."""
        if options.run is not None and not any((Path(options.run) / d).is_dir() for d in (*MODEL_DIMENSIONS, "weights")):
            raise ConfigError(f"quality.run: {options.run} holds no satisfaction/, engagement/ or weights/ folder: "
                              "train it with `convrec train --recommender harpo --out RUN`")
        network = None
        network_run = options.run_of("weights")
        if network_run is not None:
            from convrec.agent.quality.weights import WeightNetwork

            network = WeightNetwork.load(network_run)
        critic_only = options.critic_min_distance > 0 or options.critic_min_satisfaction > 0
        agent_order = options.below_slate == "agent"
        if options.relevance_only and network is None and not every_model and not critic_only and not agent_order:
            return None
        models = {}
        for dimension in MODEL_DIMENSIONS:
            run = options.run_of(dimension)
            # a network needs the models it was trained with (its report names their runs), and only those
            trained_with = network is not None and network.meta.get(f"{dimension}_run") is not None
            wanted = (options.weight(dimension) > 0 or trained_with
                      or (dimension == "satisfaction" and options.critic_min_satisfaction > 0))
            if not wanted and not (every_model and run is not None):
                continue
            if run is None:
                why = (f"the weight network in {network_run} was trained with a {dimension} model" if trained_with
                       else f"quality.weights gives {dimension} a weight" if options.weight(dimension) > 0
                       else "quality.critic_min_satisfaction is set")
                raise ConfigError(f"{why} but quality.{dimension}_run is not set: train the model with "
                                  f"`python -m convrec.agent.quality.satisfaction --dimension {dimension} "
                                  f"--out RUN_DIR` and set quality.{dimension}_run")
            if train is None:
                raise ConfigError(f"the {dimension} model reads the train split's answers: fit the agent on one")
            models[dimension] = AnswerModel.load(run, dimension, adapter.catalog, train, dataset_name)
        wants_distances = (options.weight("diversity") > 0 or network is not None or every_model
                           or options.critic_min_distance > 0)
        distances = ItemDistances(adapter) if wants_distances else None
        return cls(options, distances, models, network)

    def score(self, view: ContextView, state: AgentState | None, item_ids: Sequence[str],
              relevance: np.ndarray) -> CandidateQuality:
        """Every dimension this scorer has, for ``item_ids`` (``relevance``: their relevance, higher first)."""
        percentile = {"relevance": percentiles(np.asarray(relevance, dtype=np.float64))}
        probabilities = {}
        for dimension, model in self.models.items():
            probabilities[dimension] = model.predict(view, state, item_ids)
            percentile[dimension] = percentiles(probabilities[dimension])
        distances = self.distances.matrix(item_ids) if self.distances is not None else None
        return CandidateQuality(percentile, probabilities, distances)

    def weights_for(self, view: ContextView, state: AgentState | None) -> dict[str, float]:
        """The fixed weights, or the network's for this context."""
        if self.network is None or state is None:
            return {d: self.options.weight(d) for d in QUALITY_DIMENSIONS}
        from convrec.agent.quality.weights import context_features

        learned = self.network.weights(context_features(state, view))[0]
        return {d: float(learned[k]) for k, d in enumerate(QUALITY_DIMENSIONS)}

    def order(self, view: ContextView, state: AgentState | None, item_ids: Sequence[str],
              relevance: np.ndarray) -> QualityOrder:
        """Greedy order of ``item_ids`` (``relevance``: their relevance scores, higher first)."""
        if not len(item_ids):
            return QualityOrder([], [])
        quality = self.score(view, state, item_ids, relevance)
        placed, gains, totals = greedy_order(quality, self.weights_for(view, state))
        has_diversity = quality.distances is not None
        scored = [ItemQuality(item_id=item_ids[k], relevance=float(quality.percentiles["relevance"][k]),
                              diversity=float(gains[k]) if has_diversity else None,
                              satisfaction=_at(quality.probabilities.get("satisfaction"), k),
                              engagement=_at(quality.probabilities.get("engagement"), k), score=float(totals[k]))
                  for k in placed]
        return QualityOrder(placed, scored)


def _at(values: np.ndarray | None, k: int) -> float | None:
    return None if values is None else float(values[k])
