"""Settings of an alignment run (``convrec align``), validated; every one is recorded in the run directory.

RAR leaves these open (set size, sets per context, DPO beta, GRPO clip/KL, learning rate); the defaults here
are our choices, sized so that a round costs minutes of a 1.5B local model on 2 CPU cores. What each costs:
the LLM is asked only about sets that contain the target (a set without it has reward 0 whatever the LLM
says), each (context, item) once per run, and once ever thanks to the response cache.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from convrec.llm import LLMConfig
from convrec.rerank.pointwise import PointwiseOptions
from convrec.rerank.prompts import PromptOptions

# Title, year and genres: ~1.6 s per candidate with Qwen2.5-Coder-1.5B on 2 cores (plot and cast: ~3.9 s).
SHORT_PROMPT = PromptOptions(plot_chars=0, max_people=0)

# Changing these does not change what a resumed run computes, only how long or where it runs.
RESUMABLE_CHANGES = frozenset({"rounds", "threads", "progress"})
# ... nor these of the LLM client: where its cache lives, how it runs (the replies are the same).
LLM_RESUMABLE_CHANGES = frozenset({"cache_path", "max_concurrency", "timeout_s", "max_retries", "backoff_base_s",
                                   "backoff_max_s", "max_retry_after_s", "prices", "api_key_env"})
LOCAL_RESUMABLE_CHANGES = frozenset({"n_threads", "models_dir", "http_host", "http_port", "log_verbosity"})


class AlignConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Literal["dpo", "grpo", "nll"] = Field("grpo", description="dpo: best vs worst set of each group "
                                                  "against the reference; grpo: group-relative advantages, "
                                                  "clipped ratios, KL; nll: the control, the same loop with "
                                                  "L_nll alone and no LLM (what more supervised steps on "
                                                  "train contexts do by themselves)")
    retriever: Literal["lrurec", "lrurec-text"] | None = Field(None, description="the policy's architecture "
                                                                 "(default: the checkpoint's)")
    checkpoint: str = Field(..., description="the supervised (SFT) run dir the policy and reference start from")
    rounds: int = Field(8, ge=1, description="sample -> LLM feedback -> update, this many times")
    contexts_per_round: int = Field(64, ge=1, description="training dialogues (context + target) per round")
    group_size: int = Field(4, ge=2, description="candidate sets sampled per context")
    k: int = Field(10, ge=1, description="candidate set size: the items the LLM re-ranks")
    temperature: float = Field(1.0, gt=0, description="pi(i|x) = softmax(score_i / temperature): sampling "
                               "and log-probabilities (higher: more varied sets)")
    reward_k: int = Field(10, ge=1, description="the reward is NDCG@reward_k of the target in the LLM's ranking")
    reward_weight: float = Field(1.0, ge=0, le=1, description="sets are ranked by w * LLM + (1 - w) * retriever "
                                 "rank; 1: by the LLM alone (RAR's reward), ties in retriever order")
    beta: float = Field(0.1, gt=0, description="DPO temperature")
    clip_eps: float = Field(0.2, gt=0, lt=1, description="GRPO ratio clipping")
    kl_coef: float = Field(0.04, ge=0, description="GRPO weight of the KL estimate to the reference")
    nll_weight: float = Field(1.0, ge=0, description="lambda in L = L_rl + lambda * L_nll (next-item "
                              "cross-entropy on the same contexts)")
    lr: float = Field(1e-4, gt=0, description="Adam learning rate")
    batch_size: int = Field(16, ge=1, description="contexts per gradient step")
    updates_per_round: int = Field(1, ge=1, description="passes over a round's sets (GRPO's clipping acts from "
                                   "the second step on)")
    max_grad_norm: float = Field(1.0, gt=0)
    refresh_reference: bool = Field(False, description="reference := the current policy at each round's start "
                                    "(otherwise the SFT retriever throughout)")
    exclude_mentioned: bool = Field(False, description="never sample items already mentioned in the dialogue")
    valid_samples: int = Field(500, ge=1, description="seeded validation subset scored by the retriever alone "
                               "after every round (no LLM)")
    seed: int = 0
    threads: int | None = Field(None, ge=1, description="torch threads (default: all cores; use 1 beside "
                                "another CPU job)")
    llm: LLMConfig = Field(LLMConfig(), description="the frozen generator (default local qwen2.5-coder-1.5b)")
    llm_cache: bool = Field(True, description="cache replies in $CONVREC_CACHE_DIR/llm/responses.sqlite when "
                            "llm.cache_path is not set")
    pointwise: PointwiseOptions = PointwiseOptions(prompt=SHORT_PROMPT)
    progress: bool = Field(True, description="progress bar over a round's contexts")
