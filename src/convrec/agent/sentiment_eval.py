"""How well ``analyze_sentiment`` (:mod:`convrec.agent.sentiment`) reads the seeker, against real labels.

ReDial's questionnaires (``Dialogue.feedback``: liked and seen per movie, filled in *after* the conversation)
are the labels, and only the labels: the analyzer reads the dialogue's turns, never the feedback. Two binary
tasks per labelled item that the dialogue mentions: liked vs not, seen vs not. ``neutral`` and ``unknown``
have to become a yes or a no to be scored; how (:class:`BinaryRule`), like the rule path's thresholds, is
chosen on the validation split and applied unchanged to the split being measured. INSPIRED's labels are
acceptances (valid and test only, a single rejection): its run reports the share of accepted
recommendations read as liked.

Every number says its split and size; accuracy and macro-F1 come with a standard error from a bootstrap over
dialogues (the items of one dialogue are not independent). The majority class of the tuning split is the
baseline. The LLM path runs on a seeded subset of items (``--llm NAME --limit N --seed S``), next to the rule
path on the same items.

    python -m convrec.agent.sentiment_eval --dataset redial --split test --out /tmp/sentiment_redial_test
    python -m convrec.agent.sentiment_eval --dataset redial --split test --llm smollm2-135m --limit 100 \
        --seed 0 --out /tmp/sentiment_smollm2

writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from convrec.agent.sentiment import (
    ItemSentiment,
    LLMOptions,
    LLMSentiment,
    Mentioner,
    RuleOptions,
    RuleSentiment,
)
from convrec.catalog.vocabulary import VOCABULARIES, Vocabulary, domain_for
from convrec.data.dataset import CRSDataset
from convrec.data.fetch import default_data_dir, default_mirror
from convrec.data.load import load_dataset
from convrec.data.model import Dialogue, ItemFeedback
from convrec.errors import ConfigError, OutputPathError
from convrec.llm.types import LLM
from convrec.options import report_main, write_report_files

BOOTSTRAP = 1000
# The grid searched on the tuning split (a few values each: the point is the protocol, not the last 0.1%).
DISLIKE_THRESHOLDS = (0.5, 1.0, 1.5, 2.0)
JUDGED_SEEN = (0.0, 0.5, 1.0)
MENTIONERS: tuple[Mentioner, ...] = ("seeker", "recommender", "unknown")


class BinaryRule(BaseModel):
    """How the three-way labels become yes / no answers: ``neutral`` counts as liked or not, and an
    ``unknown`` seen takes a default that depends on who named the item first (the seeker names what they
    know; a proposal may or may not be new to them)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    neutral_is_liked: bool = True
    unknown_seen: dict[str, bool] = Field(default_factory=lambda: {m: True for m in MENTIONERS})

    def liked(self, item: ItemSentiment) -> bool:
        return item.label == "liked" or (item.label == "neutral" and self.neutral_is_liked)

    def seen(self, item: ItemSentiment) -> bool:
        if item.seen == "unknown":
            return self.unknown_seen.get(item.first_mentioned_by, True)
        return item.seen == "yes"


@dataclass(frozen=True)
class LabelledItem:
    """One item of one dialogue: what the questionnaire says, and what the analyzer read from the turns."""

    dialogue_id: str
    truth: ItemFeedback
    predicted: ItemSentiment


class BinaryScores(BaseModel):
    """Accuracy and macro-F1 of one yes/no task on ``n`` items (``positives`` of them yes), with standard
    errors over ``bootstrap`` resamples of the dialogues."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n: int
    positives: int
    accuracy: float
    accuracy_se: float
    macro_f1: float
    macro_f1_se: float
    f1_yes: float
    f1_no: float
    confusion: dict[str, int]  # tp, fp, fn, tn with "yes" as the positive class
    bootstrap: int


def labelled_items(dialogues: Sequence[Dialogue], analyze: Callable[[Dialogue], list[ItemSentiment]]
                   ) -> list[LabelledItem]:
    """Every item a dialogue with speaker roles mentions and its questionnaire covers. ``analyze`` sees the
    dialogue's turns only: the feedback is read here, after, to score it."""
    rows = []
    for dialogue in dialogues:
        if not dialogue.has_roles or not dialogue.feedback:
            continue
        for predicted in analyze(dialogue):
            truth = dialogue.feedback.get(predicted.item_id)
            if truth is not None:
                rows.append(LabelledItem(dialogue.dialogue_id, truth, predicted))
    return rows


def rule_analyze(rules: RuleSentiment) -> Callable[[Dialogue], list[ItemSentiment]]:
    return lambda dialogue: list(rules.analyze(dialogue.turns).items)


def _f1(tp: np.ndarray, fp: np.ndarray, fn: np.ndarray) -> np.ndarray:
    denominator = 2 * tp + fp + fn
    return np.divide(2 * tp, denominator, out=np.zeros_like(denominator, dtype=float), where=denominator > 0)


def binary_scores(groups: Sequence[str], truth: Sequence[bool], predicted: Sequence[bool],
                  bootstrap: int = BOOTSTRAP, seed: int = 0) -> BinaryScores:
    """Accuracy and macro-F1 (the mean of the F1 of "yes" and of "no"), with standard errors from resampling
    the ``groups`` (dialogues) with replacement."""
    if not truth:
        raise ValueError("no labelled items to score")
    names = sorted(set(groups))
    index = {name: i for i, name in enumerate(names)}
    counts = np.zeros((len(names), 4))  # tp, fp, fn, tn per dialogue
    for group, yes, said_yes in zip(groups, truth, predicted, strict=True):
        counts[index[group], (0 if yes else 1) if said_yes else (2 if yes else 3)] += 1

    def scores(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        tp, fp, fn, tn = table[..., 0], table[..., 1], table[..., 2], table[..., 3]
        accuracy = (tp + tn) / table.sum(axis=-1)
        return accuracy, (_f1(tp, fp, fn) + _f1(tn, fn, fp)) / 2

    total = counts.sum(axis=0)
    accuracy, macro = scores(total)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(bootstrap, len(names)))
    weights = np.stack([np.bincount(row, minlength=len(names)) for row in draws])
    boot_accuracy, boot_macro = scores(weights @ counts)
    tp, fp, fn, tn = (int(v) for v in total)
    return BinaryScores(
        n=len(truth), positives=int(sum(truth)), accuracy=round(float(accuracy), 4),
        accuracy_se=round(float(boot_accuracy.std(ddof=1)), 4), macro_f1=round(float(macro), 4),
        macro_f1_se=round(float(boot_macro.std(ddof=1)), 4),
        f1_yes=round(float(_f1(np.array(tp), np.array(fp), np.array(fn))), 4),
        f1_no=round(float(_f1(np.array(tn), np.array(fn), np.array(fp))), 4),
        confusion={"tp": tp, "fp": fp, "fn": fn, "tn": tn}, bootstrap=bootstrap,
    )


def score_liked(rows: Sequence[LabelledItem], decide: Callable[[ItemSentiment], bool], seed: int = 0
                ) -> BinaryScores | None:
    kept = [row for row in rows if row.truth.liked is not None]
    if not kept:
        return None
    return binary_scores([r.dialogue_id for r in kept], [bool(r.truth.liked) for r in kept],
                         [decide(r.predicted) for r in kept], seed=seed)


def score_seen(rows: Sequence[LabelledItem], decide: Callable[[ItemSentiment], bool], seed: int = 0
               ) -> BinaryScores | None:
    kept = [row for row in rows if row.truth.seen is not None]
    if not kept:
        return None
    return binary_scores([r.dialogue_id for r in kept], [bool(r.truth.seen) for r in kept],
                         [decide(r.predicted) for r in kept], seed=seed)


def _macro(scores: BinaryScores | None) -> float:
    return -1.0 if scores is None else scores.macro_f1


# -------------------------------------------------------------------------------------------------- tuning
class Tuning(BaseModel):
    """What was chosen on the tuning split, and how each choice scored there."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    split: str
    items: int
    rule_options: RuleOptions
    binary_rule: BinaryRule
    majority_liked: bool
    majority_seen: bool
    grid: list[dict[str, Any]]
    note: str = ""


ALL_SEEN = {mentioner: True for mentioner in MENTIONERS}


def _liked_at(threshold: float, neutral_is_liked: bool) -> Callable[[ItemSentiment], bool]:
    """Liked or not as the rule path would say with ``dislike_threshold`` = ``threshold``, read off the score."""
    like = RuleOptions().like_threshold
    return (lambda item: item.score > -threshold) if neutral_is_liked else (lambda item: item.score >= like)


def tune(dataset: CRSDataset, vocabulary: Vocabulary, split: str = "valid") -> Tuning:
    """Thresholds, the seen weight of opinions and the mapping of neutral / unknown, by macro-F1 on ``split``.

    Liked and seen are tuned apart (no parameter moves both). A split without liked or seen labels leaves
    the defaults in place, and says so.
    """
    dialogues = dataset.split(split).dialogues
    grid: list[dict[str, Any]] = []
    best_liked: tuple[float, float, bool] | None = None  # macro-F1, dislike threshold, neutral_is_liked
    best_seen: tuple[float, float, dict[str, bool]] | None = None
    rows: list[LabelledItem] = []
    for judged in JUDGED_SEEN:
        rows = labelled_items(dialogues, rule_analyze(RuleSentiment(dataset.catalog, vocabulary,
                                                                    RuleOptions(judged_seen=judged))))
        if judged == JUDGED_SEEN[0]:  # liked does not depend on judged_seen: one pass is enough
            for threshold in DISLIKE_THRESHOLDS:
                for neutral_is_liked in (True, False):
                    macro = _macro(score_liked(rows, _liked_at(threshold, neutral_is_liked)))
                    grid.append({"task": "liked", "dislike_threshold": threshold,
                                 "neutral_is_liked": neutral_is_liked, "macro_f1": macro})
                    if macro >= 0 and (best_liked is None or macro > best_liked[0]):
                        best_liked = (macro, threshold, neutral_is_liked)
        # the default of an unknown seen, per first mentioner: the better of yes / no for each on its own
        defaults: dict[str, bool] = {}
        for mentioner in MENTIONERS:
            scored = [(_macro(score_seen(rows, BinaryRule(unknown_seen={**ALL_SEEN, mentioner: default}).seen)),
                       default) for default in (True, False)]
            defaults[mentioner] = max(scored)[1]
        macro = _macro(score_seen(rows, BinaryRule(unknown_seen=defaults).seen))
        grid.append({"task": "seen", "judged_seen": judged, "unknown_seen": defaults, "macro_f1": macro})
        if macro >= 0 and (best_seen is None or macro > best_seen[0]):
            best_seen = (macro, judged, defaults)
    liked_labels = [r.truth.liked for r in rows if r.truth.liked is not None]
    seen_labels = [r.truth.seen for r in rows if r.truth.seen is not None]
    defaults_used = RuleOptions()
    options = defaults_used.model_copy(update={
        "dislike_threshold": best_liked[1] if best_liked else defaults_used.dislike_threshold,
        "judged_seen": best_seen[1] if best_seen else defaults_used.judged_seen})
    binary = BinaryRule(neutral_is_liked=best_liked[2] if best_liked else True,
                        unknown_seen=best_seen[2] if best_seen else dict(ALL_SEEN))
    missing = [task for task, best in (("liked", best_liked), ("seen", best_seen)) if best is None]
    note = f"{split} has no {' or '.join(missing)} labels: the defaults are used" if missing else ""
    return Tuning(split=split, items=len(rows), rule_options=options, binary_rule=binary,
                  majority_liked=(sum(liked_labels) * 2 >= len(liked_labels)) if liked_labels else True,
                  majority_seen=(sum(seen_labels) * 2 >= len(seen_labels)) if seen_labels else True,
                  grid=grid, note=note)


# ------------------------------------------------------------------------------------------------ reports
def split_report(rows: Sequence[LabelledItem], binary: BinaryRule, tuning: Tuning) -> dict[str, Any]:
    """Rule path and majority baseline on one split's labelled items, plus what the rule path left open."""
    def count(test: Callable[[LabelledItem], bool]) -> int:
        return sum(1 for row in rows if test(row))

    report: dict[str, Any] = {
        "items": len(rows), "dialogues": len({r.dialogue_id for r in rows}),
        "labels": {"liked": count(lambda r: r.truth.liked is True), "not_liked": count(lambda r: r.truth.liked is False),
                   "seen": count(lambda r: r.truth.seen is True), "not_seen": count(lambda r: r.truth.seen is False),
                   "accepted": count(lambda r: r.truth.accepted is True),
                   "not_accepted": count(lambda r: r.truth.accepted is False)},
        "predicted": {"liked": count(lambda r: r.predicted.label == "liked"),
                      "disliked": count(lambda r: r.predicted.label == "disliked"),
                      "neutral": count(lambda r: r.predicted.label == "neutral"),
                      "seen_yes": count(lambda r: r.predicted.seen == "yes"),
                      "seen_no": count(lambda r: r.predicted.seen == "no"),
                      "seen_unknown": count(lambda r: r.predicted.seen == "unknown")},
        "rule": {"liked": _dump(score_liked(rows, binary.liked)), "seen": _dump(score_seen(rows, binary.seen))},
        "majority": {"liked": _dump(score_liked(rows, lambda _: tuning.majority_liked)),
                     "seen": _dump(score_seen(rows, lambda _: tuning.majority_seen))},
        # the items the rule path decided on its own (no neutral / unknown mapping involved)
        "rule_decided_only": {
            "liked": _dump(score_liked([r for r in rows if r.predicted.label != "neutral"], binary.liked)),
            "seen": _dump(score_seen([r for r in rows if r.predicted.seen != "unknown"], binary.seen)),
        },
    }
    accepted = [r for r in rows if r.truth.accepted is not None]
    if accepted:
        report["acceptance"] = {
            "items": len(accepted),
            "accuracy": round(sum(binary.liked(r.predicted) == r.truth.accepted for r in accepted) / len(accepted), 4),
            "read_as_liked": sum(r.predicted.label == "liked" for r in accepted),
            "read_as_disliked": sum(r.predicted.label == "disliked" for r in accepted),
            "read_as_neutral": sum(r.predicted.label == "neutral" for r in accepted),
            "rejections": [{"dialogue_id": r.dialogue_id, "item_id": r.predicted.item_id,
                            "read_as": r.predicted.label} for r in accepted if r.truth.accepted is False],
        }
    return report


def _dump(scores: BinaryScores | None) -> dict[str, Any] | None:
    return None if scores is None else scores.model_dump()


def sample_items(rows: Sequence[LabelledItem], limit: int, seed: int, stratify: bool) -> list[LabelledItem]:
    """``limit`` items with a liked label, drawn with ``seed``; ``stratify`` draws half from each class."""
    kept = sorted((r for r in rows if r.truth.liked is not None), key=lambda r: (r.dialogue_id, r.predicted.item_id))
    rng = random.Random(seed)
    if not stratify:
        return rng.sample(kept, min(limit, len(kept)))
    liked = [r for r in kept if r.truth.liked]
    not_liked = [r for r in kept if not r.truth.liked]
    half = limit // 2
    return rng.sample(not_liked, min(half, len(not_liked))) + rng.sample(liked, min(limit - half, len(liked)))


def llm_report(dataset: CRSDataset, subset: Sequence[LabelledItem], path: LLMSentiment, binary: BinaryRule,
               model: str, seed: int, stratified: bool) -> dict[str, Any]:
    """The LLM path and the rule path on the same items; every fallback counted by reason."""
    dialogues = {d.dialogue_id: d for d in dataset.dialogues}
    answered: list[LabelledItem] = []
    fallbacks: dict[str, int] = {}
    calls = 0
    started = time.perf_counter()
    for row in subset:
        result = path.analyze(dialogues[row.dialogue_id].turns, only=[row.predicted.item_id])
        calls += result.llm_calls
        for reason, number in result.fallbacks.items():
            fallbacks[reason] = fallbacks.get(reason, 0) + number
        predicted = result.get(row.predicted.item_id)
        assert predicted is not None  # the analyzer returns every mentioned item
        answered.append(LabelledItem(row.dialogue_id, row.truth, predicted))
    seconds = time.perf_counter() - started
    return {
        "model": model, "items": len(subset), "seed": seed, "stratified": stratified,
        "llm_calls": calls, "fallbacks": fallbacks, "seconds": round(seconds, 1),
        "seconds_per_call": round(seconds / max(calls, 1), 3),
        "llm_labels": {label: sum(r.predicted.label == label for r in answered)
                       for label in ("liked", "disliked", "neutral")},
        "llm": {"liked": _dump(score_liked(answered, binary.liked)), "seen": _dump(score_seen(answered, binary.seen))},
        "rule_same_items": {"liked": _dump(score_liked(subset, binary.liked)),
                            "seen": _dump(score_seen(subset, binary.seen))},
    }


def markdown(report: dict[str, Any]) -> str:
    """The report's numbers as a table (the JSON has every detail)."""
    name, split = report["dataset"], report["split"]
    lines = [f"# analyze_sentiment on {name} {split}", "",
             f"Tuned on {name} {report['tuning']['split']} ({report['tuning']['items']} labelled items); "
             f"{report['split_report']['items']} labelled items in {report['split_report']['dialogues']} dialogues. "
             f"± is one standard error ({BOOTSTRAP} bootstrap resamples of dialogues).", "",
             "| method | items | liked: accuracy | liked: macro-F1 | items | seen: accuracy | seen: macro-F1 |",
             "|---|---|---|---|---|---|---|"]

    def row(label: str, scores: dict[str, Any]) -> str:
        cells = []
        for task in ("liked", "seen"):
            value = scores.get(task)
            cells += ([str(value["n"]), f"{value['accuracy']:.3f} ± {value['accuracy_se']:.3f}",
                       f"{value['macro_f1']:.3f} ± {value['macro_f1_se']:.3f}"] if value else ["0", "-", "-"])
        return f"| {label} | " + " | ".join(cells) + " |"

    body = report["split_report"]
    lines.append(row("majority class (of the tuning split)", body["majority"]))
    lines.append(row("rule path", body["rule"]))
    lines.append(row("rule path, decided items only", body["rule_decided_only"]))
    llm = report.get("llm_subset")
    if llm:
        kind = "stratified 50/50 liked / not liked" if llm["stratified"] else "random"
        lines.append(row(f"rule path on the LLM subset ({kind}, seed {llm['seed']})", llm["rule_same_items"]))
        how = "JSON schema sent" if llm.get("constrained", True) else "free text, parsed strictly"
        lines.append(row(f"LLM path, {llm['model']} ({how})", llm["llm"]))
        lines += ["", f"LLM path: {llm['llm_calls']} calls, {llm['seconds_per_call']} s a call, fallbacks to the "
                  f"rule label: {llm['fallbacks'] or 'none'}; its labels: {llm['llm_labels']}."]
    acceptance = body.get("acceptance")
    if acceptance:
        lines += ["", f"Acceptance ({acceptance['items']} labelled recommendations): accuracy "
                  f"{acceptance['accuracy']:.3f}; read as liked {acceptance['read_as_liked']}, neutral "
                  f"{acceptance['read_as_neutral']}, disliked {acceptance['read_as_disliked']}; rejections "
                  f"{acceptance['rejections']}."]
    if report["tuning"].get("note"):
        lines += ["", f"Note: {report['tuning']['note']}."]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------------- entry
def build_llm_client(name: str, backend: str, base_url: str | None, threads: int, cache: Path | None) -> LLM:
    from convrec.llm import LLMConfig, LocalOptions, build_llm

    try:
        config = LLMConfig(backend=backend, model=name, base_url=base_url, cache_path=cache, max_concurrency=1,
                           local=LocalOptions(n_ctx=2048, n_threads=threads))
    except ValidationError as err:
        raise ConfigError(f"--llm {name!r}: {err.errors()[0]['msg']}") from None
    return build_llm(config)


def evaluate(dataset: CRSDataset, split: str, tune_split: str = "valid", llm: LLM | None = None,
             llm_name: str = "", limit: int = 100, seed: int = 0, stratify: bool = False,
             llm_options: LLMOptions | None = None) -> dict[str, Any]:
    vocabulary = VOCABULARIES[domain_for(dataset.name, dataset.catalog)]
    tuning = tune(dataset, vocabulary, tune_split)
    rules = RuleSentiment(dataset.catalog, vocabulary, tuning.rule_options)
    started = time.perf_counter()
    rows = labelled_items(dataset.split(split).dialogues, rule_analyze(rules))
    report: dict[str, Any] = {
        "dataset": dataset.name, "split": split, "domain": vocabulary.domain,
        "protocol": "each labelled item a dialogue with speaker roles mentions; the analyzer reads all turns, "
                    "the questionnaire is only the label",
        "tuning": tuning.model_dump(), "split_report": split_report(rows, tuning.binary_rule, tuning),
        "rule_seconds": round(time.perf_counter() - started, 2),
    }
    if llm is not None:
        subset = sample_items(rows, limit, seed, stratify)
        options = llm_options or LLMOptions()
        report["llm_subset"] = llm_report(dataset, subset, LLMSentiment(llm, rules, options), tuning.binary_rule,
                                          llm_name, seed, stratify)
        report["llm_subset"]["constrained"] = options.constrained
    return report


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="python -m convrec.agent.sentiment_eval", description=__doc__.split("\n")[0])
    parse.add_argument("--dataset", default="redial")
    parse.add_argument("--split", default="test", choices=("train", "valid", "test"))
    parse.add_argument("--tune-split", default="valid", choices=("train", "valid"),
                       help="where thresholds and the neutral / unknown mapping are chosen (never test)")
    parse.add_argument("--out", type=Path, required=True, help="writes OUT.json and OUT.md")
    parse.add_argument("--llm", default=None, help="also run the LLM path: a local model name (smollm2-135m, "
                       "qwen2.5-coder-1.5b), a GGUF file, or with --llm-backend openai the server's model")
    parse.add_argument("--llm-backend", default="local", choices=("local", "openai"))
    parse.add_argument("--base-url", default=None)
    parse.add_argument("--threads", type=int, default=1, help="llama.cpp threads (1 on a busy 2-core machine)")
    parse.add_argument("--llm-cache", type=Path, default=None, help="SQLite cache of LLM replies (default none)")
    parse.add_argument("--limit", type=int, default=100, help="items the LLM path is asked about")
    parse.add_argument("--seed", type=int, default=0, help="which items (with --llm)")
    parse.add_argument("--stratify", action="store_true", help="the LLM subset is half liked, half not liked")
    parse.add_argument("--free-text", action="store_true", help="do not send the answer's JSON schema: the model "
                       "writes what it likes and the strict parser decides (how often it falls back)")
    parse.add_argument("--data-dir", type=Path, default=None)
    parse.add_argument("--mirror", type=Path, default=None)
    return parse


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parser().parse_args(argv)
    if args.split == args.tune_split:
        raise ConfigError(f"--split {args.split} is also the --tune-split: choose them apart")
    if args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    out_json, out_md = args.out.with_name(args.out.name + ".json"), args.out.with_name(args.out.name + ".md")
    if args.out.parent.exists() and not args.out.parent.is_dir():
        raise OutputPathError(f"--out {args.out}: {args.out.parent} is not a folder")
    dataset = load_dataset(args.dataset, args.data_dir or default_data_dir(), args.mirror or default_mirror())
    llm = build_llm_client(args.llm, args.llm_backend, args.base_url, args.threads, args.llm_cache) if args.llm else None
    try:
        report = evaluate(dataset, args.split, args.tune_split, llm, args.llm or "", args.limit, args.seed,
                          args.stratify, LLMOptions(constrained=not args.free_text))
    finally:
        close = getattr(llm, "close", None)
        if close is not None:
            close()
    report["command"] = "python -m convrec.agent.sentiment_eval " + " ".join(argv if argv is not None else sys.argv[1:])
    write_report_files(out_json, report, out_md, markdown(report), f"--out {args.out}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    return report_main("sentiment_eval", run, markdown, argv)


if __name__ == "__main__":
    sys.exit(main())
