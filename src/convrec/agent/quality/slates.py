"""The weight network's training material (:mod:`convrec.agent.quality.weights`): per validation sample, the
agent's candidates ranked by relevance, their four dimensions, and the chosen and rejected probe slates."""

from __future__ import annotations

from typing import Any

import numpy as np
from tqdm import tqdm

from convrec.agent.config import HarpoOptions
from convrec.agent.harpo import HarpoRecommender
from convrec.agent.maven import RecommenderAgent
from convrec.agent.quality.charm import QualityScorer, greedy_order
from convrec.agent.quality.dimensions import QualityOptions
from convrec.agent.quality.weights import PROBE_WEIGHTS, SlatePairs, context_features, slate_quality
from convrec.data.dataset import CRSDataset
from convrec.errors import ConfigError


def collect_pairs(dataset: CRSDataset, retriever: str, checkpoint: str | None, satisfaction_run: str | None,
                  engagement_run: str | None, limit: int | None, seed: int, split: str = "valid",
                  progress: bool = True) -> SlatePairs:
    options: dict[str, Any] = {"retriever": retriever, "checkpoint": checkpoint,
                               "quality": QualityOptions(satisfaction_run=satisfaction_run,
                                                         engagement_run=engagement_run)}
    config = HarpoOptions.model_validate(options)
    harpo = HarpoRecommender(dataset.catalog, config)
    train = dataset.split("train")
    harpo.fit(train, dataset.split("valid"))
    assert harpo.agent_ is not None and harpo.retriever_ is not None
    ctx = harpo.agent_.ctx
    scorer = QualityScorer.build(config.quality, ctx.adapter, train, dataset.name, every_model=True)
    assert scorer is not None
    samples = list(dataset.split(split).samples)
    if limit is not None and limit < len(samples):
        picked = np.random.default_rng(seed).choice(len(samples), size=limit, replace=False)
        samples = [samples[k] for k in sorted(picked)]
    recommender = RecommenderAgent(ctx)
    contexts, chosen, rejected, dialogues = [], [], [], []
    batch = 64
    for start in tqdm(range(0, len(samples), batch), desc=f"probe slates ({split})", disable=not progress,
                      unit_scale=batch):
        part = samples[start:start + batch]
        views = [s.view() for s in part]
        scores = np.asarray(harpo.retriever_.score(views), dtype=np.float64)
        for row, (sample, view) in enumerate(zip(part, views, strict=True)):
            state = recommender.read(view.context)
            proposal = recommender.propose(view, state, scores[row])
            known = set(proposal.state.known)
            items = [i for i in proposal.ranked.item_ids if i not in known]
            if len(items) < config.slate + 1 or sample.target not in items:
                continue
            relevance = np.arange(len(items), 0, -1, dtype=np.float64)  # in rank_options' order
            quality = scorer.score(view, proposal.state, items, relevance)
            target = items.index(sample.target)
            good, bad = [], []
            for probe in PROBE_WEIGHTS:
                order, _, _ = greedy_order(quality, probe)
                slate = order[:config.slate]
                q = slate_quality(quality.percentiles, quality.distances, slate)
                (good if target in slate else bad).append(q)
            if good and bad:
                contexts.append(context_features(proposal.state, view))
                chosen.append(np.asarray(good))
                rejected.append(np.asarray(bad))
                dialogues.append(sample.dialogue.dialogue_id)
    if not contexts:
        raise ConfigError(f"no {split} sample tells the probe slates apart (the target in some but not all)")
    return SlatePairs(np.asarray(contexts), chosen, rejected, dialogues)
