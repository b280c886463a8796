"""The online alignment loop: the retriever learns to fetch candidate sets the frozen LLM ranks well.

One round (RAR, online and on-policy):

1. take the round's training contexts (seeded order over the train split's dialogue samples);
2. score the catalogue with the current retriever, ``pi(i|x) = softmax(s_i / T)``; sample ``group_size``
   candidate sets of ``k`` items per context (Gumbel top-k, Plackett-Luce log-probabilities);
3. reward each set by the LLM's ranking of it (NDCG of the target; :mod:`convrec.align.feedback`);
4. update the retriever: ``L = L_rl + lambda * L_nll`` (DPO or GRPO, :mod:`convrec.align.losses`), the
   reference being the SFT retriever (or, with ``refresh_reference``, the policy at the round's start);
5. score the validation subset with the retriever alone, log, and checkpoint atomically.

The network runs in eval mode throughout (no dropout), so the log-probabilities of the update are those the
sets were sampled with. A run directory holds ``model.safetensors`` + ``config.json`` (loadable as any
``checkpoint=``), ``state.pt`` (optimiser, RNG, round counter, reference), ``history.json`` and ``curves.png``;
the same command resumes after an interruption, and the LLM's replies persist in its SQLite cache.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel
from tqdm import tqdm

from convrec.align.config import (
    LLM_RESUMABLE_CHANGES,
    LOCAL_RESUMABLE_CHANGES,
    RESUMABLE_CHANGES,
    AlignConfig,
)
from convrec.align.feedback import FeedbackCounts, LLMFeedback, SetReward
from convrec.align.losses import dpo_loss, group_advantages, grpo_loss, preference_pairs
from convrec.align.policy import gumbel_top_k, plackett_luce_log_prob
from convrec.data.dataset import CRSDataset
from convrec.data.model import RecSample
from convrec.devices import cpu_threads
from convrec.evaluate.metrics import recall_and_ndcg_at
from convrec.io import DataError, atomic_write, write_json
from convrec.llm import LLM, build_llm
from convrec.rerank.fusion import ndcg_at
from convrec.rerank.pipeline import with_default_cache
from convrec.rerank.pointwise import PointwiseReranker
from convrec.retrieval import build_recommender
from convrec.retrieval.lrurec.recommender import LRURecRecommender, run_options

log = logging.getLogger(__name__)


class RoundStats(BaseModel):
    """One round of the log. Round 0 is the SFT retriever before any update (validation only)."""

    round: int
    contexts: int = 0
    reward: float = 0.0  # mean over every sampled set
    set_hit_rate: float = 0.0  # share of sampled sets that contain the target
    greedy_hit_rate: float = 0.0  # share of contexts whose greedy top-k contains the target
    informative_contexts: int = 0  # groups whose rewards are not all equal (the only ones with an RL signal)
    # On the sets holding the target: mean reward from the LLM's ranking vs the NDCG@reward_k the retriever's
    # own order of the same set would earn, and how often the LLM puts the target above / below the
    # retriever's place for it. An LLM that ranks worse than the retriever gives feedback whose only reliable
    # part is whether the set holds the target.
    hit_set_reward: float = 0.0
    hit_set_retriever_reward: float = 0.0
    llm_ranks_target_higher: float = 0.0
    llm_ranks_target_lower: float = 0.0
    rl_loss: float = 0.0
    nll_loss: float = 0.0
    kl_to_reference: float = 0.0  # exact KL(pi || pi_ref) over the catalogue, mean over the round's contexts
    method_stats: dict[str, float] = {}
    valid_recall_at_10: float = 0.0
    valid_ndcg_at_10: float = 0.0
    valid_recall_at_50: float = 0.0
    llm: FeedbackCounts = FeedbackCounts()
    seconds: float = 0.0
    phase_seconds: dict[str, float] = {}  # sampling, llm_feedback, update, validation


def validation_metrics(scores: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """Recall@10, NDCG@10 and Recall@50 of (B, N) scores, as reported: ties broken at random in expectation."""
    scores_np, targets_np = scores.numpy(), targets.numpy()
    recall, ndcg = recall_and_ndcg_at(scores_np, targets_np, 10)
    recall_50, _ = recall_and_ndcg_at(scores_np, targets_np, 50)
    return {"valid_recall_at_10": float(recall.mean()), "valid_ndcg_at_10": float(ndcg.mean()),
            "valid_recall_at_50": float(recall_50.mean())}


def exact_kl(logits: torch.Tensor, reference_logits: torch.Tensor) -> torch.Tensor:
    """(B,) KL(softmax(logits) || softmax(reference_logits)); -inf columns (excluded items) are skipped."""
    logp = torch.log_softmax(logits, dim=-1)
    logq = torch.log_softmax(reference_logits, dim=-1)
    p = logp.exp()
    terms = torch.where(p > 0, p * (logp - logq), torch.zeros_like(p))
    return terms.sum(dim=-1)


class Aligner:
    """Runs :class:`AlignConfig` on a dataset into ``run_dir`` (see the module docstring)."""

    def __init__(self, dataset: CRSDataset, config: AlignConfig, run_dir: Path, llm: LLM | None = None):
        self.dataset = dataset
        self.config = config
        self.run_dir = Path(run_dir)
        self.catalog = dataset.catalog
        torch.set_num_threads(cpu_threads(config.threads))
        train, valid = dataset.split("train"), dataset.split("valid")
        self.policy = self._load_retriever(train, valid)
        # The reference is a frozen copy of the network (the retriever's text encoder is shared, not copied).
        self.reference = copy.deepcopy(self._network(self.policy))
        for parameter in self.reference.parameters():
            parameter.requires_grad_(False)
        self.contexts = [s for s in train.selection_samples if s.target in self.catalog]
        if not self.contexts:
            raise DataError(f"{dataset.name}: the train split has no dialogue samples to align on")
        valid_pool = [s for s in valid.selection_samples if s.target in self.catalog]
        self.valid = (random.Random(config.seed).sample(valid_pool, config.valid_samples)
                      if len(valid_pool) > config.valid_samples else list(valid_pool))
        # The nll control asks the LLM nothing, so it does not load one.
        self._owns_llm = llm is None and config.method != "nll"
        self.llm = (llm if llm is not None or config.method == "nll"
                    else build_llm(with_default_cache(self.config.llm, self.config.llm_cache)))
        reranker = PointwiseReranker(self.llm, self.catalog, config.pointwise)
        self.feedback = LLMFeedback(reranker, config.reward_k, config.reward_weight)
        self.optimizer = torch.optim.Adam(self._network(self.policy).parameters(), lr=config.lr)
        self.generator = torch.Generator().manual_seed(config.seed)
        self.rng = random.Random(config.seed)
        self.order: list[int] = []
        self.round = 0
        self.history: list[RoundStats] = []
        self._valid_inputs: tuple[torch.Tensor, torch.Tensor | None] | None = None

    # -- set-up ----------------------------------------------------------------------------------------------
    def _load_retriever(self, train, valid) -> LRURecRecommender:
        """The checkpoint, built with the options it was trained with (its config.json)."""
        trained_as, options = run_options(self.config.checkpoint)
        options["train"] = {**options.get("train", {}), "threads": self.config.threads}
        name = self.config.retriever or trained_as
        retriever = build_recommender(name, self.catalog, options)
        if not isinstance(retriever, LRURecRecommender):
            raise DataError(f"{self.config.checkpoint}: alignment needs an lrurec or lrurec-text run, not {name!r}")
        retriever.fit(train, valid)  # loads the checkpoint (checks it was trained on this catalogue)
        self._network(retriever).eval()
        return retriever

    @staticmethod
    def _network(retriever: LRURecRecommender) -> torch.nn.Module:
        assert retriever.network is not None
        return retriever.network

    def close(self) -> None:
        if self._owns_llm and self.llm is not None:
            self.llm.close()

    # -- the loop --------------------------------------------------------------------------------------------
    def run(self) -> list[RoundStats]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self._resume():
            self.history = [RoundStats(round=0, **self._validate())]
            log.info("round 0 (SFT): valid R@10 %.4f N@10 %.4f R@50 %.4f", self.history[0].valid_recall_at_10,
                     self.history[0].valid_ndcg_at_10, self.history[0].valid_recall_at_50)
            self._save()
        while self.round < self.config.rounds:
            stats = self._round(self.round + 1)
            self.round += 1
            self.history.append(stats)
            feedback = ("no LLM (control)" if self.config.method == "nll" else
                        f"reward there: LLM {stats.hit_set_reward:.3f} vs retriever order "
                        f"{stats.hit_set_retriever_reward:.3f}")
            log.info("round %d: reward %.4f, sets with target %.3f (%s), "
                     "informative %d/%d, rl %.4f, nll %.4f, KL %.4f, "
                     "valid R@10 %.4f N@10 %.4f R@50 %.4f, LLM calls %d (cache %d, memo %d), %.0f s", stats.round,
                     stats.reward, stats.set_hit_rate, feedback, stats.informative_contexts, stats.contexts,
                     stats.rl_loss,
                     stats.nll_loss, stats.kl_to_reference, stats.valid_recall_at_10, stats.valid_ndcg_at_10,
                     stats.valid_recall_at_50, stats.llm.llm_calls, stats.llm.cache_hits, stats.llm.memo_hits,
                     stats.seconds)
            self._save()
        return self.history

    def _round_contexts(self) -> list[RecSample]:
        """The next ``contexts_per_round`` contexts of a seeded walk over the pool (reshuffled when used up)."""
        picked = []
        while len(picked) < self.config.contexts_per_round:
            if not self.order:
                self.order = list(range(len(self.contexts)))
                self.rng.shuffle(self.order)
            picked.append(self.contexts[self.order.pop()])
        return picked

    def _exclusion(self, samples: Sequence[RecSample]) -> torch.Tensor | None:
        if not self.config.exclude_mentioned:
            return None
        mask = torch.zeros(len(samples), len(self.catalog), dtype=torch.bool)
        for row, sample in enumerate(samples):
            mask[row, self.catalog.indices(set(sample.context_items))] = True
        return mask

    def _round(self, number: int) -> RoundStats:
        started = time.monotonic()
        config = self.config
        if config.refresh_reference:
            self.reference.load_state_dict(self._network(self.policy).state_dict())
        samples = self._round_contexts()
        tokens, queries = self.policy.inputs(samples)
        targets = torch.as_tensor(self.catalog.indices(s.target for s in samples))
        exclude = self._exclusion(samples)
        groups, k = config.group_size, config.k

        with torch.no_grad():
            logits = self._policy_logits(self.policy, tokens, queries, exclude)
            reference_logits = self._masked(self.reference.catalogue_scores(tokens, queries), exclude)
            repeated = logits.repeat_interleave(groups, dim=0)
            sets = gumbel_top_k(repeated, k, self.generator)
            old_logp = plackett_luce_log_prob(repeated, sets).view(len(samples), groups)
            reference_logp = plackett_luce_log_prob(reference_logits.repeat_interleave(groups, dim=0),
                                                    sets).view(len(samples), groups)
            greedy = logits.topk(k, dim=-1).indices
            greedy_hits = (greedy == targets[:, None]).any(dim=1).float().mean().item()
        sets = sets.view(len(samples), groups, k)

        sampled_at = time.monotonic()
        counts_before = self.feedback.counts.model_copy()
        rewards = torch.zeros(len(samples), groups)
        hit_sets: list[SetReward] = []
        ids = self.catalog.ids
        asked = 0 if config.method == "nll" else len(samples)  # the control asks nothing; rewards stay 0
        progress = tqdm(range(asked), desc=f"round {number}/{config.rounds}: LLM feedback", unit="context",
                        leave=False, disable=None if config.progress and asked else True)
        item_sets = [[[ids[j] for j in sets[row, g].tolist()] for g in range(groups)] for row in range(asked)]
        self.feedback.prefetch([(samples[row], item_sets[row]) for row in range(asked)])  # Ray: all at once
        for row in progress:
            set_scores = [logits[row, sets[row, g]].numpy() for g in range(groups)]
            for g, result in enumerate(self.feedback.rewards(samples[row], item_sets[row], set_scores)):
                rewards[row, g] = result.reward
                if result.target_rank is not None:
                    hit_sets.append(result)

        feedback_done = time.monotonic()
        totals = self._update(tokens, queries, exclude, targets, sets, old_logp, reference_logp, rewards)
        with torch.no_grad():
            logits_after = self._policy_logits(self.policy, tokens, queries, exclude)
            kl = exact_kl(logits_after, reference_logits).mean().item()
        updated = time.monotonic()
        hit = (sets == targets[:, None, None]).any(dim=2).float().mean().item()
        informative = int((rewards.max(dim=1).values > rewards.min(dim=1).values).sum())
        validated_from = time.monotonic()
        validation = self._validate()
        done = time.monotonic()
        phases = {"sampling": sampled_at - started, "llm_feedback": feedback_done - sampled_at,
                  "update": updated - feedback_done, "validation": done - validated_from}
        return RoundStats(round=number, contexts=len(samples), reward=float(rewards.mean()), set_hit_rate=hit,
                          greedy_hit_rate=greedy_hits, informative_contexts=informative,
                          **self._agreement(hit_sets), kl_to_reference=kl,
                          **totals, **validation, llm=self.feedback.counts.minus(counts_before),
                          seconds=done - started, phase_seconds=phases)

    def _agreement(self, hit_sets: Sequence[SetReward]) -> dict[str, float]:
        """The LLM's ranking of the sets holding the target against the retriever's own order of them."""
        if not hit_sets:
            return {}
        k = self.config.reward_k
        llm_ranks = np.array([s.target_rank for s in hit_sets])
        retriever_ranks = np.array([s.retriever_rank for s in hit_sets])
        return {"hit_set_reward": float(np.mean([s.reward for s in hit_sets])),
                "hit_set_retriever_reward": float(np.mean([ndcg_at(int(r), k) for r in retriever_ranks])),
                "llm_ranks_target_higher": float(np.mean(llm_ranks < retriever_ranks)),
                "llm_ranks_target_lower": float(np.mean(llm_ranks > retriever_ranks))}

    def _policy_logits(self, retriever: LRURecRecommender, tokens: torch.Tensor, queries: torch.Tensor | None,
                       exclude: torch.Tensor | None) -> torch.Tensor:
        return self._masked(retriever.catalogue_logits(tokens, queries), exclude)

    def _masked(self, scores: torch.Tensor, exclude: torch.Tensor | None) -> torch.Tensor:
        """pi's logits: a retriever's scores / temperature, excluded items at -inf."""
        logits = scores / self.config.temperature
        return logits if exclude is None else logits.masked_fill(exclude, float("-inf"))

    def _update(self, tokens, queries, exclude, targets, sets, old_logp, reference_logp,
                rewards) -> dict[str, Any]:
        config = self.config
        n, groups, k = sets.shape
        sums: dict[str, float] = {}
        steps = 0
        rl_total = nll_total = 0.0
        for _ in range(config.updates_per_round):
            permutation = torch.randperm(n, generator=self.generator)
            for start in range(0, n, config.batch_size):
                rows = permutation[start : start + config.batch_size]
                batch_queries = None if queries is None else queries[rows]
                scores = self.policy.catalogue_logits(tokens[rows], batch_queries)
                logits = scores / config.temperature
                if exclude is not None:
                    logits = logits.masked_fill(exclude[rows], float("-inf"))
                logp = plackett_luce_log_prob(logits.repeat_interleave(groups, dim=0),
                                              sets[rows].reshape(-1, k)).view(len(rows), groups)
                if config.method == "nll":
                    rl, stats = torch.zeros(()), {}
                elif config.method == "dpo":
                    chosen, rejected, valid = preference_pairs(rewards[rows])
                    rl, stats = dpo_loss(logp.gather(1, chosen[:, None]).squeeze(1),
                                         logp.gather(1, rejected[:, None]).squeeze(1),
                                         reference_logp[rows].gather(1, chosen[:, None]).squeeze(1),
                                         reference_logp[rows].gather(1, rejected[:, None]).squeeze(1),
                                         config.beta, valid)
                else:
                    rl, stats = grpo_loss(logp, old_logp[rows], reference_logp[rows],
                                          group_advantages(rewards[rows]), config.clip_eps, config.kl_coef)
                nll = F.cross_entropy(scores, targets[rows])  # the retriever's own next-item loss
                loss = rl + config.nll_weight * nll
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(self._network(self.policy).parameters(), config.max_grad_norm)
                self.optimizer.step()
                steps += 1
                rl_total += rl.item()
                nll_total += nll.item()
                for key, value in stats.items():
                    sums[key] = sums.get(key, 0.0) + float(value)
        return {"rl_loss": rl_total / max(steps, 1), "nll_loss": nll_total / max(steps, 1),
                "method_stats": {key: value / max(steps, 1) for key, value in sums.items()}}

    def _validate(self) -> dict[str, float]:
        if self._valid_inputs is None:
            self._valid_inputs = self.policy.inputs(self.valid)
        targets = torch.as_tensor(self.catalog.indices(s.target for s in self.valid))
        with torch.no_grad():
            scores = self.policy.catalogue_logits(*self._valid_inputs)
        return validation_metrics(scores, targets)

    # -- persistence -----------------------------------------------------------------------------------------
    def _identity(self) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one."""
        settings = self.config.model_dump(mode="json", exclude=set(RESUMABLE_CHANGES))
        settings["llm"] = {k: v for k, v in settings["llm"].items() if k not in LLM_RESUMABLE_CHANGES}
        if "local" in settings["llm"]:
            settings["llm"]["local"] = {k: v for k, v in settings["llm"]["local"].items()
                                        if k not in LOCAL_RESUMABLE_CHANGES}
        return {"settings": settings, "dataset": self.dataset.name, "data_hash": self.dataset.fingerprint}

    def _save(self) -> None:
        summary = {"aligned": {"method": self.config.method, "rounds_done": self.round, "from": self.config.checkpoint,
                               "settings": self.config.model_dump(mode="json"),
                               "llm_model": getattr(getattr(self.llm, "backend", None), "identity", None)}}
        self.policy.save_checkpoint(self.run_dir, summary)
        state = {"identity": self._identity(), "round": self.round, "order": self.order,
                 "policy": self._network(self.policy).state_dict(), "optimizer": self.optimizer.state_dict(),
                 "reference": self.reference.state_dict() if self.config.refresh_reference else None,
                 "generator": self.generator.get_state(), "rng": self.rng.getstate(),
                 "counts": self.feedback.counts.model_dump(), "history": [h.model_dump() for h in self.history]}
        with atomic_write(self.run_dir / "state.pt", "wb") as handle:
            torch.save(state, handle)
        write_json(self.run_dir / "history.json", [h.model_dump() for h in self.history])
        plot_alignment(self.history, self.run_dir / "curves.png", self.config.method)

    def _resume(self) -> bool:
        path = self.run_dir / "state.pt"
        if not path.exists():
            return False
        state = torch.load(path, weights_only=False)
        if state["identity"] != self._identity():
            raise DataError(f"{self.run_dir} holds an alignment run with other settings or data; resume it with "
                            f"the same settings (only {', '.join(sorted(RESUMABLE_CHANGES))} may change), or "
                            f"align into a new --out")
        self._network(self.policy).load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        if state["reference"] is not None:
            self.reference.load_state_dict(state["reference"])
        self.generator.set_state(state["generator"])
        self.rng.setstate(state["rng"])
        self.round, self.order = state["round"], list(state["order"])
        self.feedback.counts = FeedbackCounts(**state["counts"])
        self.history = [RoundStats(**h) for h in state["history"]]
        log.info("resumed %s after round %d", self.run_dir, self.round)
        return True


def plot_alignment(history: Sequence[RoundStats], path: Path, method: str) -> None:
    """Reward and hit rate, losses and KL, validation metrics, per round (one PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [h.round for h in history]
    trained = [h for h in history if h.round > 0]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot([h.round for h in trained], [h.reward for h in trained], marker=".", label="mean reward (NDCG)")
    axes[0].plot([h.round for h in trained], [h.set_hit_rate for h in trained], marker=".",
                 label="sets with the target")
    axes[0].plot([h.round for h in trained], [h.hit_set_reward for h in trained], marker=".",
                 label="reward on those (LLM's order)")
    axes[0].plot([h.round for h in trained], [h.hit_set_retriever_reward for h in trained], marker=".",
                 linestyle="--", label="same sets, retriever's order")
    axes[0].set_title(f"{method}: LLM feedback")
    axes[1].plot([h.round for h in trained], [h.rl_loss for h in trained], marker=".", label="L_rl")
    axes[1].plot([h.round for h in trained], [h.nll_loss for h in trained], marker=".", label="L_nll")
    axes[1].plot([h.round for h in trained], [h.kl_to_reference for h in trained], marker=".",
                 label="KL(pi || ref)")
    axes[1].set_title("losses")
    for key, label in (("valid_recall_at_10", "Recall@10"), ("valid_ndcg_at_10", "NDCG@10"),
                       ("valid_recall_at_50", "Recall@50")):
        axes[2].plot(rounds, [getattr(h, key) for h in history], marker=".", label=label)
    axes[2].set_title("validation, retriever alone (round 0 = SFT)")
    for ax in axes:
        ax.set_xlabel("round")
        ax.legend(fontsize=7)
        if not math.isfinite(ax.get_ylim()[0]):
            ax.set_ylim(0, 1)
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    plt.close(fig)
