"""RAR stage 2: a frozen LLM re-ranks the retriever's top-K candidates, grounded in the catalogue.

Modules: ``types`` (:class:`Ranking`, the :class:`Reranker` interface), ``prompts`` (every prompt, as
data), ``pointwise`` (P(Yes) per candidate), ``listwise`` (the LLM orders the titles), ``grounding``
(titles in a reply -> catalogue items, unmatched and out-of-candidate counts), ``fusion`` (retriever +
LLM scores, weight chosen on validation), ``stats`` (per-run diagnostics), ``reply`` (a grounded reply
text) and ``pipeline`` (the two-stage recommender ``rar``; importing it registers the name).
"""

from convrec.rerank.fusion import FusionChoice, choose_weight, fuse, fused_order, normalise_retriever_scores
from convrec.rerank.grounding import CandidateGrounder, Grounding, GroundingStats, parse_titles
from convrec.rerank.listwise import ListwiseOptions, ListwiseReranker
from convrec.rerank.pointwise import PointwiseOptions, PointwiseReranker, yes_probability
from convrec.rerank.prompts import PromptOptions
from convrec.rerank.reply import Reply, ReplyOptions, ReplyWriter
from convrec.rerank.types import Ranking, RerankDiagnostics, Reranker

__all__ = [
    "CandidateGrounder",
    "FusionChoice",
    "Grounding",
    "GroundingStats",
    "ListwiseOptions",
    "ListwiseReranker",
    "PointwiseOptions",
    "PointwiseReranker",
    "PromptOptions",
    "Ranking",
    "RerankDiagnostics",
    "Reranker",
    "Reply",
    "ReplyOptions",
    "ReplyWriter",
    "choose_weight",
    "fuse",
    "fused_order",
    "normalise_retriever_scores",
    "parse_titles",
    "yes_probability",
]
