"""The interactive metrics, each with its standard error, computed from the episode records alone (so a
resumed run and a fresh one report the same numbers from the same transcripts).

Per episode (mean over episodes, standard error over episodes):

- ``success@t``: the user accepted the target within ``t`` system turns, t = 1..T; ``success`` is ``success@T``;
- ``close_success``: the user accepted a close-enough item instead (only with ``close_min_shared``; apart from
  the headline success);
- ``wrong_accept``: an LLM user accepted a slate without its target (the episode ends there, no success);
- ``turns_to_success``: the system turn of the acceptance, over the successful episodes;
- ``recall@1``, ``recall@10``: the target in the system's top 1 / 10 at some turn of the episode (the best of
  its turns: iEvaLM's conversation-level Recall@k);
- ``first_turn_recall@10``: Recall@10 of the first system turn, on the logged context alone: for a ranking
  recommender, exactly its offline Recall@10 on the same samples.

Per turn, pooled over the turns of every episode (ratio estimates; the standard error treats episodes as the
independent units, since the turns of one episode are not independent):

- ``turn_recall@1``, ``turn_recall@10``: Recall@k of each system turn that recommends;
- ``rejection_rate``: share of recommending turns the user turned down;
- ``ask_share``, ``recommend_share``: share of system turns that ask, that recommend;
- ``guarded_share``: share of user turns whose text named the target and was replaced (the rule user: 0
  expected; the llm user: its leaks);
- ``search_override_share``: of the system turns STAR's search chose, the share where it chose another move
  than the greedy agent would have (NaN without search).

With the llm user, over its turns that went through the LLM: ``llm_fallback_share`` (no usable reply: the rule
user's turn stood), ``llm_leak_share`` (the raw reply named the target before the system showed it),
``llm_title_share`` (it named the target at all, accepting turns included), ``llm_agreement`` (its accept /
reject equals the rule user's, over the recommending turns whose reply parsed), ``llm_false_accept_share`` (it
accepted where the rule user rejected, same turns), ``llm_preference_mentioned`` (the reply names the value it
was asked to state).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from convrec.evaluate.runner import summarise
from convrec.simulate.episode import RECALL_CUTOFFS, EpisodeRecord
from convrec.simulate.turns import LLMTurn


def per_episode(records: Sequence[EpisodeRecord], turns: int) -> dict[str, np.ndarray]:
    """Each per-episode metric's value for every record, in the records' order (NaN where undefined)."""
    never = turns + 1
    success_turn = np.array([r.success_turn or never for r in records], dtype=np.float64)
    values = {f"success@{t}": (success_turn <= t).astype(np.float64) for t in range(1, turns + 1)}
    values["success"] = values[f"success@{turns}"]
    values["close_success"] = np.array([r.close_turn is not None for r in records], dtype=np.float64)
    values["wrong_accept"] = np.array([r.wrong_accept_turn is not None for r in records], dtype=np.float64)
    values["turns_to_success"] = np.where(success_turn <= turns, success_turn, np.nan)
    for k in RECALL_CUTOFFS:
        name = f"recall@{k}"
        values[name] = np.array([max((t.recall[name] for t in r.system_turns if t.recall), default=0.0)
                                 for r in records])
    values["first_turn_recall@10"] = np.array(
        [r.system_turns[0].recall.get("recall@10", np.nan) if r.system_turns and r.system_turns[0].recall
         else np.nan for r in records])
    return values


def pooled_ratios(records: Sequence[EpisodeRecord]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per ratio metric: (numerator, denominator) per episode."""
    def pair(numerator, denominator) -> tuple[np.ndarray, np.ndarray]:
        return (np.array([numerator(r) for r in records], dtype=np.float64),
                np.array([denominator(r) for r in records], dtype=np.float64))

    def recommending(r: EpisodeRecord) -> list:
        return [t for t in r.system_turns if t.action == "recommend"]

    pooled = {f"turn_recall@{k}": pair(lambda r, k=k: sum(t.recall[f"recall@{k}"] for t in recommending(r)),
                                       lambda r: len(recommending(r))) for k in RECALL_CUTOFFS}
    pooled["rejection_rate"] = pair(lambda r: sum(u.act == "reject" for u in r.user_turns),
                                    lambda r: len(recommending(r)))
    pooled["ask_share"] = pair(lambda r: sum(t.action == "ask" for t in r.system_turns),
                               lambda r: len(r.system_turns))
    pooled["recommend_share"] = pair(lambda r: len(recommending(r)), lambda r: len(r.system_turns))
    pooled["guarded_share"] = pair(lambda r: r.guarded, lambda r: len(r.user_turns))
    pooled["search_override_share"] = pair(
        lambda r: sum(t.search is not None and t.search["chosen"] != t.search["greedy"] for t in r.system_turns),
        lambda r: sum(t.search is not None for t in r.system_turns))
    if any(u.llm is not None for r in records for u in r.user_turns):
        pooled.update(_llm_user_pooled(records, pair))
    return pooled


def _llm_user_pooled(records: Sequence[EpisodeRecord], pair) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The llm user's own checks (its turns that went through the LLM)."""
    def audits(r: EpisodeRecord) -> list[LLMTurn]:
        return [u.llm for u in r.user_turns if u.llm is not None]

    def parsed_decisions(r: EpisodeRecord) -> list[LLMTurn]:
        return [t for t in audits(r) if t.parsed and t.rule_decision is not None]

    return {
        "llm_fallback_share": pair(lambda r: sum(not t.parsed for t in audits(r)), lambda r: len(audits(r))),
        "llm_leak_share": pair(lambda r: sum(t.leaked for t in audits(r)), lambda r: len(audits(r))),
        "llm_title_share": pair(lambda r: sum(t.names_target for t in audits(r)), lambda r: len(audits(r))),
        "llm_agreement": pair(lambda r: sum(t.decision == t.rule_decision for t in parsed_decisions(r)),
                              lambda r: len(parsed_decisions(r))),
        "llm_false_accept_share": pair(
            lambda r: sum(t.decision == "accept" and t.rule_decision == "reject" for t in parsed_decisions(r)),
            lambda r: len(parsed_decisions(r))),
        "llm_preference_mentioned": pair(lambda r: sum(t.mentions_preference is True for t in audits(r)),
                                         lambda r: sum(t.mentions_preference is not None for t in audits(r))),
    }


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> tuple[float, float]:
    """sum(numerator) / sum(denominator) and its standard error with the episodes as clusters (the delta
    method: sqrt(sum((x_i - m n_i)^2) * N / (N - 1)) / sum(n_i))."""
    total = denominator.sum()
    if total == 0:
        return float("nan"), float("nan")
    mean = numerator.sum() / total
    n = len(numerator)
    if n < 2:
        return float(mean), 0.0
    residual = numerator - mean * denominator
    return float(mean), float(np.sqrt((residual ** 2).sum() * n / (n - 1)) / total)


def interactive_metrics(records: Sequence[EpisodeRecord], turns: int
                        ) -> tuple[dict[str, float], dict[str, float], dict[str, np.ndarray]]:
    """(metrics, standard errors, per-episode values) of the records (see the module docstring)."""
    values = per_episode(records, turns)
    means, errors = summarise(values, set())
    for name, (numerator, denominator) in pooled_ratios(records).items():
        means[name], errors[name] = ratio(numerator, denominator)
    return means, errors, values


def rank_agreement(results: Sequence[dict], interactive: str = "success",
                   offline: str = "first_turn_recall@10") -> dict[str, dict[str, float | int]]:
    """Per dataset and protocol ("redial/standard"), how the simulated results of several systems rank them
    against their offline Recall@10 on the same episodes (``first_turn_recall@10`` is exactly that for a ranking
    system): Kendall's tau-b and Spearman's rho over the rows, with the number of rows. Does interactive
    evaluation tell the systems apart in the order the offline protocol does? With a handful of systems these
    are coarse numbers (4 rows: tau moves in steps of 1/3); datasets with fewer than 3 rows are left out."""
    from scipy.stats import kendalltau, spearmanr  # scipy is a core dependency; loaded only when asked

    groups: dict[str, list[tuple[float, float]]] = {}
    for result in results:
        metrics = result.get("metrics", {})
        pair = (metrics.get(offline), metrics.get(interactive))
        if all(isinstance(v, float | int) and v == v for v in pair):
            groups.setdefault(f"{result['dataset']}/{result['protocol']}", []).append(pair)
    agreement: dict[str, dict[str, float | int]] = {}
    for key, pairs in groups.items():
        if len(pairs) < 3:
            continue
        x, y = zip(*pairs, strict=True)
        agreement[key] = {"kendall_tau": float(kendalltau(x, y).statistic),
                          "spearman_rho": float(spearmanr(x, y).statistic), "rows": len(pairs)}
    return agreement
