"""Building an :class:`~convrec.serve.engine.Engine` from one typed config: dataset, retriever, LLM.

The default retriever needs no training run: ``itemknn`` fits on ReDial's train split in about 0.3 s
(Recall@10 0.150 on ReDial test against 0.159 for ``ease``, whose fit takes about 30 s and 1.6 GB on one
core). A trained LRURec run dir (``checkpoint``) switches the default to ``lrurec-text``, RAR's own
retriever. Retrievers are fit on the train split only: choosing hyper-parameters on validation would
take minutes at every start (``retriever_options`` sets them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from convrec.agent.config import HarpoOptions
from convrec.agent.domain import DomainAdapter
from convrec.agent.search.star import RolloutUsers
from convrec.catalog.titles import TitleLinker
from convrec.catalog.vocabulary import domain_for
from convrec.data.dataset import CRSDataset, Split
from convrec.errors import ConfigError
from convrec.llm import LLM, LLMConfig, build_llm
from convrec.rerank.listwise import ListwiseOptions, ListwiseReranker
from convrec.rerank.pointwise import PointwiseOptions, PointwiseReranker
from convrec.rerank.prompts import PromptOptions
from convrec.rerank.reply import ReplyOptions, ReplyWriter
from convrec.rerank.types import Reranker
from convrec.resources import Resources
from convrec.retrieval import build_recommender
from convrec.retrieval.base import Recommender, item_counts
from convrec.serve.agent_engine import build_agent_engine
from convrec.serve.engine import Engine
from convrec.serve.state import SessionOptions

QUICK_RETRIEVER = "itemknn"
ITEM_ONLY = frozenset(("itemknn", "ease", "popularity", "repeat", "lrurec"))  # read no dialogue text
TRAINED_RETRIEVER = "lrurec-text"
NO_CHAT_LLM = "the chat has no LLM (llm = None, --no-llm)"  # why an agent with explainer = llm writes templates
TRAIN_HINT = "convrec train --dataset {dataset} --recommender lrurec-text --out runs/lrurec-text-{dataset}"


# Each candidate costs its own prompt tokens in every turn. Title, year and genres are ~14 tokens a candidate
# (Qwen tokenizer, the answer cue included); two cast names and the director make it ~40, a 100-character plot
# ~65. Measured with qwen2.5-coder-1.5b on an idle 2-core machine (prefill 13 tokens/s with 1 thread, 24 with
# 2): 5 candidates took 8.4-10.2 s a turn with 2 threads with this description, 13-14 s with the cast. A later
# three-turn chat (longer messages, 2026-11-23) took 10.7-11.7 s a turn with 5 candidates, 9.7-10.1 s with 4,
# hence convrec chat's default --k 4.
CHAT_PROMPT = PromptOptions(plot_chars=0, max_people=0)


class ChatConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    retriever: str | None = Field(None, description="None: lrurec-text with a checkpoint, else itemknn")
    retriever_options: dict[str, Any] = Field(default_factory=dict)
    checkpoint: str | None = Field(None, description="a `convrec train` run dir (lrurec, lrurec-text)")
    llm: LLMConfig | None = Field(LLMConfig(), description="None: no LLM, the retriever's order")
    strategy: Literal["pointwise", "listwise"] = "pointwise"
    fusion_weight: float = Field(0.5, ge=0.0, le=1.0, description="w in (1-w)*retriever + w*LLM")
    polish: bool = Field(False, description="the LLM rewrites the template reply (checked; seconds per turn)")
    prompt: PromptOptions = Field(CHAT_PROMPT, description="what the LLM reads about the dialogue and each "
                                  "candidate (the session's window follows its context_chars)")
    session: SessionOptions = SessionOptions()
    agent: Literal["harpo"] | None = Field(None, description="harpo: the HARPO agent answers (VTOs, tracked state, "
                                           "Critic, Explainer) over the same retriever; None: retriever + re-ranker")
    agent_options: dict[str, Any] = Field(default_factory=dict, description="the agent's options (HarpoOptions)")

    @property
    def retriever_name(self) -> str:
        if self.retriever:
            return self.retriever
        return TRAINED_RETRIEVER if self.checkpoint else QUICK_RETRIEVER


def build_retriever(dataset: CRSDataset, config: ChatConfig, train: Split | None = None, *,
                    resources: Resources | None = None) -> Recommender:
    """The retriever, fit on the train split (or loaded from ``checkpoint``); a text retriever takes its
    encoder and embedding cache from ``resources`` (None: from the environment)."""
    options = dict(config.retriever_options)
    if config.checkpoint is not None:
        options["checkpoint"] = config.checkpoint
    if config.retriever_name == "rar":
        raise ValueError("the chat runs its own two stages: choose a retriever, not rar")
    retriever = build_recommender(config.retriever_name, dataset.catalog, options, resources=resources)
    retriever.fit(train or dataset.split("train"), None)
    return retriever


def build_reranker(dataset: CRSDataset, config: ChatConfig, llm: LLM) -> Reranker:
    if config.strategy == "pointwise":
        return PointwiseReranker(llm, dataset.catalog, PointwiseOptions(prompt=config.prompt),
                                 fusion_weight=config.fusion_weight)
    return ListwiseReranker(llm, dataset.catalog, ListwiseOptions(prompt=config.prompt),
                            fusion_weight=config.fusion_weight)


def build_engine(dataset: CRSDataset, config: ChatConfig, llm: LLM | None = None,
                 retriever: Recommender | None = None, *, resources: Resources | None = None,
                 rollout_users: Callable[[DomainAdapter], RolloutUsers] | None = None) -> Engine:
    """An engine ready for any number of sessions. ``llm`` replaces the one ``config.llm`` describes, which is
    otherwise ``resources``' client of that config (closed by ``resources.close()``), or without
    ``resources`` built here (which loads a local model; the caller closes it); ``retriever`` replaces building
    and fitting one (with ``resources``). The prompts and replies speak of the dataset's items (books, movies)
    in its words: the domain of ``dataset`` replaces the config's (``engine.config`` is the config it ran
    with). ``rollout_users``: the simulated users of the agent's STAR roll-outs (search.kind = "rollout")."""
    catalog = dataset.catalog
    domain = domain_for(dataset.name, catalog)
    config = config.model_copy(update={"prompt": config.prompt.model_copy(update={"domain": domain})})
    train = dataset.split("train")
    retriever = retriever or build_retriever(dataset, config, train, resources=resources)
    if llm is None and config.llm is not None:
        llm = resources.llm(config.llm) if resources is not None else build_llm(config.llm)
    reranker = build_reranker(dataset, config, llm) if llm is not None else None
    writer = ReplyWriter(catalog, llm, ReplyOptions(n_items=min(3, config.session.top), polish=config.polish,
                                                   prompt=config.prompt), TitleLinker(catalog))
    counts = item_counts(train)
    popularity = dict(zip(catalog.ids, counts.tolist(), strict=True))
    options = config.session.model_copy(update={"window_chars": config.prompt.context_chars})
    if config.agent == "harpo":
        try:
            agent_options = HarpoOptions(**{"retriever": config.retriever_name, "slate": options.top,
                                            **config.agent_options})
        except ValidationError as err:  # one line, naming the option (--agent-set, or [engine] agent_options)
            problem = err.errors()[0]
            field = ".".join(str(p) for p in problem["loc"])
            raise ConfigError(f"agent option {field!r}: {problem['msg'].removeprefix('Value error, ')} "
                              "(see `convrec recommenders`, harpo)") from None
        # the agent's Explainer (explainer = llm) rewrites its replies with the chat's own LLM client
        return build_agent_engine(catalog, retriever, writer, options, popularity, config, dataset.name,
                                  agent_options, llm=llm, llm_problem=None if llm is not None else NO_CHAT_LLM,
                                  train=train, rollout_users=rollout_users)
    return Engine(catalog, retriever, writer, reranker, options, popularity, config)
