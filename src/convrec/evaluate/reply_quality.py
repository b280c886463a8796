"""Reply quality as the CRS literature measures it: the systems' replies against the dataset's own recommender turns.

**Samples.** Each sample is one recommender turn of the split that recommends an item (a dialogue with speaker
roles; a turn that recommends several items is one sample, not one per item), drawn as a seeded subset
(``--limit N --seed S``); the reference is that turn's text, whose ``@id`` mentions the converter already
rendered as display titles, "Alien (1979)", as every title in a system's reply is written (a turn with an
id the catalogue cannot render is left out: 2 of 1,571 ReDial valid turns). Every system answers the same
samples from the context before the turn, with the same retriever (``--retriever itemknn`` for development,
``--checkpoint RUN`` for a trained ``lrurec-text``), fitted on train only:

- ``harpo-template``: the HARPO agent (:mod:`convrec.agent.harpo`), its Explainer's template;
- ``harpo-llm``: the same agent with ``explainer = "llm"``: the template rewritten by the LLM, kept only when the
  reply writer's check and the agent's grounding accept it;
- ``rar-template``: RAR's chat reply (:class:`~convrec.rerank.reply.ReplyWriter`) over the retriever's top 3
  (items of the dialogue left out, as the chat does; no re-ranking: the reply is measured, not the ranking);
- ``rar-llm``: the same with the LLM's polish (``ReplyOptions.polish``), kept only if ``ReplyWriter.check``
  accepts it;
- ``reference``: the dataset's recommender turns themselves, for Distinct (the human level).

The agent answers every sample with a recommendation (``ask_first`` off): the references recommend, and a
question would be no Explainer reply.

**Metrics.**

- *Distinct-n* (n = 2, 3, 4): the number of distinct n-grams in all replies of a system divided by the number of
  n-grams in them (Li et al., 2016, "A Diversity-Promoting Objective Function for Neural Conversation Models"),
  the definition KBRD, KGSF and UniCRS name. Their published numbers come from code (KGSF's ``distinct_metrics``,
  CRSLab's ``StandardEvaluator``, which UniCRS reuses) that divides the distinct n-grams by the number of replies
  instead, so ``distinct_per_reply`` reports that too; neither is comparable across sample sizes. Tokens are
  lower-cased words and single punctuation marks.
- *BLEU-2, BLEU-4*: corpus-level BLEU of the replies against the references (one each) with ``sacrebleu``
  (``max_ngram_order`` 2 or 4, its default 13a tokenizer and exponential smoothing), on a 0-1 scale.
- *ROUGE-L*: the F-measure of the longest common subsequence, per reply against its reference, with
  ``rouge-score`` (Porter stemming on), averaged; paired differences between systems get a 95% bootstrap
  interval, resampling dialogues (the turns of one dialogue are not independent).
- the share of LLM rewrites kept and refused (by reason), reply length (words, characters) and seconds per
  reply: the agent's whole turn for the ``harpo`` systems (the retriever's scores precomputed), the reply
  writer's call for the ``rar`` ones; LLM calls answered by the response cache are counted apart, and a rerun
  of the same command is fast because every LLM reply comes from the cache.

    python -m convrec.evaluate.reply_quality --dataset redial --split valid --limit 60 --seed 0 \\
        --llm smollm2-135m --out runs/reply-quality-smollm2

writes ``OUT/reply_quality.json`` (every reply, with the summary) and ``OUT/reply_quality.md``.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError
from tqdm import tqdm

from convrec.agent.config import HarpoOptions
from convrec.agent.harpo import HarpoAgent, PrecomputedScores
from convrec.catalog.vocabulary import domain_for
from convrec.data.dataset import CRSDataset
from convrec.data.fetch import default_data_dir, default_mirror
from convrec.data.load import load_dataset
from convrec.data.model import RecSample
from convrec.errors import ConfigError, OutputPathError
from convrec.evaluate.paired import paired_bootstrap
from convrec.llm import LLM, LLMClient, LLMConfig, LocalOptions
from convrec.llm.config import default_threads
from convrec.options import report_main, write_report_files
from convrec.rerank.pipeline import with_default_cache
from convrec.rerank.prompts import PromptOptions
from convrec.rerank.reply import ReplyOptions, ReplyWriter
from convrec.resources import Resources
from convrec.retrieval.base import Recommender, build_recommender

SYSTEMS = ("harpo-template", "harpo-llm", "rar-template", "rar-llm")
REFERENCE = "reference"
DISTINCT_ORDERS = (2, 3, 4)
BOOTSTRAP = 2000
# Paired ROUGE-L differences reported: (system, baseline).
COMPARISONS = (("harpo-llm", "harpo-template"), ("rar-llm", "rar-template"), ("harpo-template", "rar-template"),
               ("harpo-llm", "rar-llm"))
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[^\sa-z0-9]")
_UNRENDERED = re.compile(r"@\d+")
# Refusal reasons grouped by what went wrong (the text after the prefix names the case).
_REFUSAL_KINDS = (("repeats its prompt", "repeats its prompt"), ("too long", "too long"),
                  ("does not name", "drops or changes a title"), ("names another title", "names another title"),
                  ("cut off", "cut off at max_tokens"), ("empty text", "empty"), ("states the", "ungrounded value"),
                  ("names ", "ungrounded person"), ("LLM call failed", "LLM call failed"),
                  ("LLM unavailable", "LLM unavailable"), ("no LLM", "no LLM"))


# ------------------------------------------------------------------------------------------------ metrics
def tokens(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks (what Distinct counts n-grams of)."""
    return _TOKEN.findall(text.lower())


class Distinct(BaseModel):
    model_config = ConfigDict(frozen=True)

    n: int
    distinct: int  # distinct n-grams over all replies
    total: int  # n-grams over all replies
    replies: int

    @property
    def ratio(self) -> float:
        """Li et al.'s Distinct-n: distinct / total n-grams (0 when there is none)."""
        return self.distinct / self.total if self.total else 0.0

    @property
    def per_reply(self) -> float:
        """What KGSF's and CRSLab's code report as Dist-n: distinct n-grams / replies."""
        return self.distinct / self.replies if self.replies else 0.0


def distinct(texts: Sequence[str], n: int) -> Distinct:
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = tokens(text)
        grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return Distinct(n=n, distinct=len(set(grams)), total=len(grams), replies=len(texts))


def _metrics_package(module: str, distribution: str) -> None:
    """Fail with one line when an optional metrics package is missing (they are the ``reply-metrics`` extra)."""
    try:
        __import__(module)
    except ImportError:
        raise ConfigError(f"reply quality needs the {distribution} package, which is not installed",
                          hint="pip install 'convrec[reply-metrics]' (scripts/install.sh installs it)") from None


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], order: int) -> float:
    """Corpus BLEU with n-grams up to ``order`` (sacrebleu's defaults otherwise), on a 0-1 scale."""
    _metrics_package("sacrebleu", "sacrebleu")
    from sacrebleu.metrics import BLEU

    return float(BLEU(max_ngram_order=order).corpus_score(list(hypotheses), [list(references)]).score) / 100.0


def rouge_l(hypotheses: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """Sentence-level ROUGE-L F-measure of each hypothesis against its reference (Porter stemming)."""
    _metrics_package("rouge_score", "rouge-score")
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], use_stemmer=True)
    return np.asarray([scorer.score(ref, hyp)["rougeL"].fmeasure for hyp, ref in zip(hypotheses, references,
                                                                                     strict=True)], dtype=np.float64)


class PairedInterval(BaseModel):
    model_config = ConfigDict(frozen=True)

    system: str
    baseline: str
    diff: float  # mean over samples of system - baseline
    low: float  # 95% bootstrap interval of that mean (dialogues resampled)
    high: float
    samples: int
    dialogues: int


def refusal_kind(reason: str) -> str:
    return next((kind for prefix, kind in _REFUSAL_KINDS if reason.startswith(prefix)), "other")


# ------------------------------------------------------------------------------------------------ samples
def reply_samples(dataset: CRSDataset, split: str, limit: int | None, seed: int) -> list[RecSample]:
    """One sample per recommender turn that recommends an item (its first target), in dialogues with speaker
    roles, a turn with an unrendered ``@id`` left out; a seeded subset of ``limit`` of them."""
    turns: dict[tuple[str, int], RecSample] = {}
    for sample in dataset.split(split).samples:
        turn = sample.dialogue.turns[sample.turn_index]
        if sample.dialogue.has_roles and turn.role == "recommender" and turn.text.strip() \
                and not _UNRENDERED.search(turn.text):
            turns.setdefault((sample.dialogue_id, sample.turn_index), sample)
    chosen = list(turns.values())
    if not chosen:
        raise ConfigError(f"dataset {dataset.name!r} has no {split} recommender turns with text to compare with")
    if limit is not None and limit < len(chosen):
        chosen = random.Random(seed).sample(chosen, limit)
    return chosen


def reference_text(sample: RecSample) -> str:
    return sample.dialogue.turns[sample.turn_index].text.strip()


# ------------------------------------------------------------------------------------------------ systems
class SystemReply(BaseModel):
    """One system's reply to one sample."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    text: str
    items: tuple[str, ...]
    source: Literal["template", "llm"] = "template"
    asked_llm: bool = False
    refusal: str | None = None
    rejected: str | None = None  # the LLM's text, when refused
    seconds: float
    llm_calls: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0  # of the calls the cache did not answer
    completion_tokens: int = 0


@dataclass
class Systems:
    """The four reply writers over one retriever; ``llm`` the client both LLM systems share."""

    retriever: Recommender
    template_agent: HarpoAgent
    llm_agent: HarpoAgent
    template_writer: ReplyWriter
    polish_writer: ReplyWriter
    llm: LLM

    @classmethod
    def build(cls, dataset: CRSDataset, retriever: Recommender, llm: LLM) -> Systems:
        catalog = dataset.catalog
        options = HarpoOptions(retriever=retriever.name, ask_first=False)
        prompt = PromptOptions(domain=domain_for(dataset.name, catalog))
        template_writer = ReplyWriter(catalog, None, ReplyOptions(prompt=prompt))
        return cls(
            retriever=retriever,
            template_agent=HarpoAgent.build(catalog, retriever, options, dataset.name),
            llm_agent=HarpoAgent.build(catalog, retriever, options.model_copy(update={"explainer": "llm"}),
                                       dataset.name, llm),
            template_writer=template_writer,
            polish_writer=ReplyWriter(catalog, llm, ReplyOptions(polish=True, prompt=prompt), template_writer.linker),
            llm=llm,
        )

    def answer(self, sample: RecSample) -> dict[str, SystemReply]:
        view = sample.view()
        scores = np.asarray(self.retriever.score([view])[0], dtype=np.float64)
        top = self.retriever.retrieve([view], self.template_writer.options.n_items, [view.context_items])[0].item_ids
        out: dict[str, SystemReply] = {}
        for name, agent in (("harpo-template", self.template_agent), ("harpo-llm", self.llm_agent)):
            ctx = replace(agent.ctx, retriever=PrecomputedScores(self.retriever, scores))

            def respond(agent: HarpoAgent = agent, ctx=ctx) -> SystemReply:
                turn = agent.respond(view, scores=scores, ctx=ctx)
                return SystemReply(text=turn.reply, items=turn.slate, source=turn.explainer_source,
                                   asked_llm=turn.explainer_draft is not None, refusal=turn.explainer_refusal,
                                   rejected=turn.explainer_rejected, seconds=0.0)

            out[name] = self._timed(respond)
        for name, writer in (("rar-template", self.template_writer), ("rar-llm", self.polish_writer)):
            def write(writer: ReplyWriter = writer) -> SystemReply:
                reply = writer.write(view, top)
                return SystemReply(text=reply.text, items=reply.item_ids, source=reply.source,
                                   asked_llm=writer.options.polish and bool(reply.item_ids),
                                   refusal=reply.rejection, rejected=reply.rejected, seconds=0.0)

            out[name] = self._timed(write)
        return out

    def _timed(self, make: Callable[[], SystemReply]) -> SystemReply:
        before = _usage(self.llm)
        started = time.perf_counter()
        reply = make()
        seconds = time.perf_counter() - started
        counts = dict(zip(("llm_calls", "cache_hits", "prompt_tokens", "completion_tokens"),
                          (a - b for a, b in zip(_usage(self.llm), before, strict=True)), strict=True))
        return reply.model_copy(update={"seconds": seconds, **counts})


def _usage(llm: LLM) -> tuple[int, int, int, int]:
    """(calls, cache hits, prompt and completion tokens) so far, for a client that counts them (the run is
    sequential, so differences are one reply's)."""
    if isinstance(llm, LLMClient):
        usage = llm.usage
        return usage.calls, usage.cache_hits, usage.prompt_tokens, usage.completion_tokens
    return 0, 0, 0, 0


# ------------------------------------------------------------------------------------------------- report
def summarise(name: str, replies: Sequence[SystemReply] | None, texts: Sequence[str], references: Sequence[str],
              rouge: np.ndarray | None) -> dict[str, Any]:
    words = [len([t for t in tokens(text) if t[0].isalnum()]) for text in texts]
    summary: dict[str, Any] = {
        "system": name,
        "replies": len(texts),
        **{f"distinct_{n}": distinct(texts, n).ratio for n in DISTINCT_ORDERS},
        **{f"distinct_{n}_per_reply": distinct(texts, n).per_reply for n in DISTINCT_ORDERS},
        "words_mean": float(np.mean(words)) if words else 0.0,
        "chars_mean": float(np.mean([len(t) for t in texts])) if texts else 0.0,
    }
    if rouge is not None:
        summary.update({"bleu_2": corpus_bleu(texts, references, 2), "bleu_4": corpus_bleu(texts, references, 4),
                        "rouge_l": float(rouge.mean())})
    if replies is not None:
        seconds = np.asarray([r.seconds for r in replies])
        fresh = np.asarray([r.seconds for r in replies if r.llm_calls > r.cache_hits])
        asked = [r for r in replies if r.asked_llm]
        kept = sum(1 for r in asked if r.source == "llm")
        summary.update({
            "seconds_mean": float(seconds.mean()), "seconds_median": float(np.median(seconds)),
            "llm_calls": sum(r.llm_calls for r in replies), "cache_hits": sum(r.cache_hits for r in replies),
            "seconds_mean_uncached": float(fresh.mean()) if len(fresh) else None,
            "prompt_tokens": sum(r.prompt_tokens for r in replies),
            "completion_tokens": sum(r.completion_tokens for r in replies),
        })
        if asked:
            summary.update({
                "llm_asked": len(asked), "llm_kept": kept, "llm_refused": len(asked) - kept,
                "llm_kept_share": kept / len(asked),
                "refusals": dict(Counter(refusal_kind(r.refusal or "") for r in asked if r.source != "llm")
                                 .most_common()),
            })
    return summary


def evaluate(dataset: CRSDataset, samples: Sequence[RecSample], systems: Systems, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    """Every system's reply to every sample, the metrics of each, and the paired ROUGE-L intervals."""
    answers: list[dict[str, SystemReply]] = []
    for sample in tqdm(samples, desc="replies", unit="sample", disable=not progress):
        answers.append(systems.answer(sample))
    references = [reference_text(s) for s in samples]
    rouge = {name: rouge_l([a[name].text for a in answers], references) for name in SYSTEMS}
    table = [summarise(name, [a[name] for a in answers], [a[name].text for a in answers], references, rouge[name])
             for name in SYSTEMS]
    table.append(summarise(REFERENCE, None, references, references, None))
    dialogues = [s.dialogue_id for s in samples]
    paired = []
    for system, baseline in COMPARISONS:
        diff, low, high = paired_bootstrap(rouge[system], rouge[baseline], dialogues, seed=seed)
        paired.append(PairedInterval(system=system, baseline=baseline, diff=diff, low=low, high=high,
                                     samples=len(samples), dialogues=len(set(dialogues))).model_dump())
    rows = [{"sample_id": s.sample_id, "reference": ref,
             **{name: a[name].model_dump(mode="json") | {"rouge_l": float(rouge[name][k])} for name in SYSTEMS}}
            for k, (s, ref, a) in enumerate(zip(samples, references, answers, strict=True))]
    return {"systems": table, "paired_rouge_l": paired, "samples": rows}


def markdown(report: dict[str, Any]) -> str:
    run = report["run"]
    lines = [f"# Reply quality: {run['dataset']} {run['split']}, {run['samples']} recommender turns "
             f"(seed {run['seed']}), retriever {run['retriever']}, LLM {run['llm']}", "",
             "Distinct-n: distinct / total n-grams over all replies (Li et al. 2016); per reply: distinct n-grams / "
             "replies (KGSF's and CRSLab's code). BLEU: corpus-level, sacrebleu. ROUGE-L: mean sentence-level F. "
             "Seconds: the agent's whole turn (harpo) or the reply writer's call (rar).", "",
             "| system | Dist-2 | Dist-3 | Dist-4 | Dist-2/reply | Dist-4/reply | BLEU-2 | BLEU-4 | ROUGE-L | words | "
             "s/reply | LLM kept |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in report["systems"]:
        def cell(key: str, digits: int = 3, row: dict[str, Any] = row) -> str:
            value = row.get(key)
            return "" if value is None else f"{value:.{digits}f}"
        kept = f"{row['llm_kept']}/{row['llm_asked']}" if "llm_asked" in row else ""
        lines.append(f"| {row['system']} | {cell('distinct_2')} | {cell('distinct_3')} | {cell('distinct_4')} | "
                     f"{cell('distinct_2_per_reply', 2)} | {cell('distinct_4_per_reply', 2)} | {cell('bleu_2')} | "
                     f"{cell('bleu_4')} | {cell('rouge_l')} | {cell('words_mean', 1)} | {cell('seconds_mean', 3)} | "
                     f"{kept} |")
    lines += ["", "Paired ROUGE-L differences (95% bootstrap interval, dialogues resampled):", ""]
    for p in report["paired_rouge_l"]:
        lines.append(f"- {p['system']} - {p['baseline']}: {p['diff']:+.4f} [{p['low']:+.4f}, {p['high']:+.4f}] "
                     f"({p['samples']} samples, {p['dialogues']} dialogues)")
    lines += ["", "LLM rewrites refused, by reason:", ""]
    for row in report["systems"]:
        if row.get("llm_asked"):
            reasons = ", ".join(f"{kind} {count}" for kind, count in row["refusals"].items()) or "none"
            uncached = row.get("seconds_mean_uncached")
            lines.append(f"- {row['system']}: {row['llm_refused']} of {row['llm_asked']} refused ({reasons}); "
                         f"{row['llm_calls']} LLM calls, {row['cache_hits']} from the cache ({row['prompt_tokens']} prompt "
                         f"and {row['completion_tokens']} completion tokens generated); mean seconds per reply "
                         f"with a fresh LLM call: {'n/a' if uncached is None else f'{uncached:.2f}'}")
    lines += ["", f"Command: `{report['command']}`"]
    return "\n".join(lines) + "\n"


# -------------------------------------------------------------------------------------------------- entry
def build_retriever(dataset: CRSDataset, name: str | None, checkpoint: str | None, resources: Resources
                    ) -> Recommender:
    """The retriever as the chat builds it (``serve.build.build_retriever``, which ``evaluate`` may not import):
    ``name``, else ``lrurec-text`` with a checkpoint, else ``itemknn``; fitted on train only."""
    name = name or ("lrurec-text" if checkpoint else "itemknn")
    if name in ("harpo", "rar"):
        raise ConfigError(f"--retriever {name}: choose a first-stage retriever (itemknn, lrurec-text, ease...)")
    options = {"checkpoint": checkpoint} if checkpoint else {}
    retriever = build_recommender(name, dataset.catalog, options, resources=resources)
    retriever.fit(dataset.split("train"), None)
    return retriever


def parser() -> argparse.ArgumentParser:
    parse = argparse.ArgumentParser(prog="python -m convrec.evaluate.reply_quality",
                                    description=__doc__.split("\n")[0])
    parse.add_argument("--dataset", default="redial")
    parse.add_argument("--split", default="test", choices=("valid", "test"))
    parse.add_argument("--limit", type=int, default=100, help="recommender turns compared (a seeded subset)")
    parse.add_argument("--seed", type=int, default=0, help="which turns, and the bootstrap's draws")
    parse.add_argument("--llm", required=True, help="a local model name (smollm2-135m, qwen2.5-coder-1.5b), a GGUF "
                       "file, or with --llm-backend openai the server's model")
    parse.add_argument("--llm-backend", default="local", choices=("local", "openai"))
    parse.add_argument("--base-url", default=None, help="the openai backend's server")
    parse.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: half the cores, 1-4)")
    parse.add_argument("--retriever", default=None, help="default itemknn, or lrurec-text with --checkpoint")
    parse.add_argument("--checkpoint", default=None, help="a `convrec train` run dir for the retriever")
    parse.add_argument("--out", type=Path, required=True, help="folder for reply_quality.json and .md")
    parse.add_argument("--quiet", action="store_true", help="no progress bar")
    parse.add_argument("--data-dir", type=Path, default=None)
    parse.add_argument("--mirror", type=Path, default=None)
    return parse


def run(argv: Sequence[str] | None = None, resources: Resources | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    if args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    if args.threads is not None and args.threads < 1:
        raise ConfigError(f"--threads must be at least 1, got {args.threads}")
    if args.out.exists() and not args.out.is_dir():
        raise OutputPathError(f"--out {args.out}: is a file, expected a folder")
    _metrics_package("sacrebleu", "sacrebleu")  # before any work, not after the LLM's
    _metrics_package("rouge_score", "rouge-score")
    owned = resources is None
    resources = resources or Resources.from_env()
    try:
        config = LLMConfig(backend=args.llm_backend, model=args.llm, base_url=args.base_url, max_concurrency=1,
                           local=LocalOptions(n_threads=args.threads or default_threads()))
    except ValidationError as err:
        raise ConfigError(f"--llm {args.llm!r}: {err.errors()[0]['msg']}") from None
    try:
        dataset = load_dataset(args.dataset, args.data_dir or default_data_dir(), args.mirror or default_mirror())
        samples = reply_samples(dataset, args.split, args.limit, args.seed)
        llm = resources.llm(with_default_cache(config, True, resources))  # a missing model fails before any work
        retriever = build_retriever(dataset, args.retriever, args.checkpoint, resources)
        started = time.perf_counter()
        report = evaluate(dataset, samples, Systems.build(dataset, retriever, llm), args.seed,
                          progress=not args.quiet)
        elapsed = time.perf_counter() - started
    finally:
        if owned:
            resources.close()
    report["run"] = {"dataset": dataset.name, "split": args.split, "samples": len(samples), "seed": args.seed,
                     "retriever": retriever.name + (f" ({args.checkpoint})" if args.checkpoint else ""),
                     "llm": args.llm, "llm_backend": args.llm_backend, "threads": config.local.n_threads,
                     "seconds": round(elapsed, 1), "data_hash": dataset.fingerprint}
    report["command"] = "python -m convrec.evaluate.reply_quality " + " ".join(argv)
    report = {key: report[key] for key in ("run", "command", "systems", "paired_rouge_l", "samples")}
    write_report_files(args.out / "reply_quality.json", report, args.out / "reply_quality.md", markdown(report),
                       f"--out {args.out}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    return report_main("reply_quality", run, markdown, argv)


if __name__ == "__main__":
    sys.exit(main())
