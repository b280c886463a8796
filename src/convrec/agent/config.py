"""The agent's options: :class:`HarpoOptions` (the ``harpo`` recommender's config, TOML-settable)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from convrec.agent.quality.dimensions import QualityOptions
from convrec.agent.search.options import SearchOptions
from convrec.llm.config import LLMConfig
from convrec.retrieval.base import RecommenderConfig


class HarpoOptions(RecommenderConfig):
    retriever: str = Field("lrurec-text", description="search_candidates: any registered recommender but harpo/rar")
    retriever_options: dict[str, Any] = Field({}, description="the retriever's own options")
    checkpoint: str | None = Field(None, description="a `convrec train` run dir for the retriever")
    candidates: int = Field(100, ge=1, le=5000, description="N: the retriever's top-N the agent works on")
    slate: int = Field(5, ge=1, le=50, description="items recommended per turn (the chat's slate)")
    context_chars: int = Field(600, ge=50, description="characters of dialogue extract_context keeps")
    state_tracking: bool = Field(True, description="ablation: false = no filtering by constraints / rejections")
    critic: bool = Field(True, description="ablation: false = the Recommender's slate goes out unchecked")
    vtos: bool = Field(True, description="ablation: false = the retriever alone, with the Explainer")
    critique_rounds: int = Field(2, ge=0, le=5, description="MAVEN: critique and edit rounds per turn")
    # 0.3 chosen on ReDial valid with itemknn (NDCG@10 paired difference against the retriever: 0 -> -0.0001,
    # 0.1 -> +0.0014, 0.3 -> +0.0016; all within noise, 0.3 the best)
    attribute_weight: float = Field(0.3, ge=0.0, description="rank_options: weight of wanted values matched")
    graph_weight: float = Field(0.0, ge=0.0, description="rank_options: weight of links to liked items")
    implicit: bool = Field(False, description="infer_implicit adds values most liked items share as soft wants")
    wants: Literal["hard", "soft"] = Field("soft", description="wanted values (a genre, a person, an era) "
                                           "in the ranking below the slate: hard = an item without them goes "
                                           "below every item with them; soft = they add attribute_weight per "
                                           "value matched. The slate itself always holds them (the Critic); "
                                           "avoided values and ruled-out items are always hard")
    liked_window: int = Field(5, ge=1, description="the most recent liked items the graph and inference read")
    demote_seen: bool = Field(True, description="items the seeker has seen are not recommended again")
    ask_first: bool = Field(True, description="chat: ask about an attribute when nothing is known yet")
    explainer: Literal["template", "llm"] = Field(
        "template", description="the reply: the Explainer's grounded template, or (llm) the template rewritten "
        "by the LLM, kept only if the ReplyWriter's check and the agent's grounding accept it (the turn records "
        "which, and why not)")
    # named as rar names its LLM (RARConfig.llm, llm_cache), so one TOML table configures either
    llm: LLMConfig = Field(LLMConfig(), description="the Explainer's LLM when explainer = llm; default local "
                           "qwen2.5-coder-1.5b (e.g. --set llm.model=smollm2-135m)")
    llm_cache: bool = Field(True, description="cache replies in $CONVREC_CACHE_DIR/llm/responses.sqlite when "
                            "llm.cache_path is not set")
    quality: QualityOptions = Field(QualityOptions(), description="CHARM: the weight of each quality dimension "
                                    "(relevance, diversity, satisfaction, engagement) in rank_options and the "
                                    "models' run dirs; relevance alone by default")
    search: SearchOptions = Field(SearchOptions(), description="STAR: how the agent chooses its move in a "
                                  "conversation (convrec simulate, the chat): greedy, by the value network, or by "
                                  "roll-outs with simulated users; offline ranking is the same for all")
