"""Aligning the retriever to a frozen LLM (RAR): the policy maths and the DPO / GRPO losses.

Importing the package loads only these pure-tensor modules; the trainer, the LLM feedback and the config
(:mod:`convrec.align.trainer`, :mod:`convrec.align.feedback`, :mod:`convrec.align.config`) are imported by
name where needed, so they do not pull datasets or LLM code into ``import convrec.align``.
"""

from convrec.align.losses import dpo_loss, group_advantages, grpo_loss, preference_pairs
from convrec.align.policy import greedy_top_k, gumbel_top_k, plackett_luce_log_prob

__all__ = [
    "dpo_loss",
    "greedy_top_k",
    "group_advantages",
    "grpo_loss",
    "gumbel_top_k",
    "plackett_luce_log_prob",
    "preference_pairs",
]
