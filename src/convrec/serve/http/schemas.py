"""The API's requests and responses as pydantic models: the limits every request is checked against (the
length of a message, the items of one feedback, the form of an id) and the shapes of the answers, which the
OpenAPI schema (``docs/api/openapi.json``) publishes. Requests refuse unknown fields, so a misspelt field is
a 422 naming it rather than a silently ignored option, and are strict about JSON types: ``"top": true`` or
``"top": "5"`` is a 422, not a quiet 1 or 5."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_MESSAGE_CHARS = 2000
MAX_FEEDBACK_ITEMS = 20
MAX_TOP = 10
CLIENT_MESSAGE_ID = r"^[A-Za-z0-9_-]{1,64}$"
MAX_QUERY_CHARS = 200
MAX_SEARCH_RESULTS = 50


class Request(BaseModel):
    # strict: JSON types as the schema says them (no `true` for an integer, no `"5"` for 5, no 5 for a string)
    model_config = ConfigDict(extra="forbid", strict=True)


class SessionCreateOptions(Request):
    top: int = Field(5, ge=1, le=MAX_TOP, description="recommendations per answer")


class SessionCreate(Request):
    options: SessionCreateOptions | None = None


class MessageIn(Request):
    client_message_id: str = Field(pattern=CLIENT_MESSAGE_ID, description="the client's id for this message: "
                                   "sending it again returns the stored answer and runs nothing")
    text: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("the message is empty (only white space)")
        return value


class FeedbackIn(Request):
    item_ids: list[str] = Field(min_length=1, max_length=MAX_FEEDBACK_ITEMS,
                                description="catalogue item ids (each must exist)")
    kind: Literal["like", "dislike", "neutral", "seen", "unseen"] = Field(
        description="like / dislike; neutral takes either back. seen; unseen takes it back")

    @field_validator("item_ids")
    @classmethod
    def _ids_have_a_sane_length(cls, value: list[str]) -> list[str]:
        for item_id in value:
            if not 1 <= len(item_id) <= 200:
                raise ValueError("an item id has 1 to 200 characters")
        return value


# -- responses (what the OpenAPI schema documents; the routes build plain dicts of these shapes) ------------


class ErrorDetail(BaseModel):
    code: str = Field(description="a stable, machine-readable kind: not_found, invalid_request, unauthorized, ...")
    message: str = Field(description="what went wrong, for a person")
    request_id: str = Field(description="the X-Request-ID of the request: it finds the request in the server log")


class ErrorBody(BaseModel):
    error: ErrorDetail


class SessionCreated(BaseModel):
    session_id: str
    created_at: str
    options: dict[str, Any]


class Recommendation(BaseModel):
    number: int = Field(description="1-based position in this answer")
    item_id: str
    title: str
    year: int | None
    display_title: str
    facts: dict[str, Any] = Field(description="the item's catalogue metadata: a value or a list of values per field")
    score: float | None = Field(description="the final score (the fused one with a re-ranker)")
    retriever_score: float | None
    retriever_rank: int
    llm_score: float | None = Field(description="the LLM's score; null without a re-ranker")
    quality: dict[str, float] | None = Field(
        None, description="the HARPO agent with quality weights: each scored dimension (relevance and diversity "
        "in [0, 1], satisfaction and engagement as probabilities); null otherwise")
    why: str = Field(description="a reason to recommend it, from its catalogue facts")


class Recognised(BaseModel):
    text: str
    item_id: str
    title: str


class TraceLine(BaseModel):
    stage: str
    input: str
    output: str
    seconds: float


class Answer(BaseModel):
    client_message_id: str
    replayed: bool = Field(description="true: the stored answer to an earlier request with this id (nothing ran)")
    conversation: int
    turn: int
    reply: str
    recommendations: list[Recommendation]
    action: str | None = Field(description="the agent's action (recommend, ask, ...); null for the two-stage engine")
    recognised: list[Recognised] = Field(description="titles found in the message and linked to the catalogue")
    trace: list[TraceLine]
    search: dict[str, Any] | None = Field(None, description="the agent's STAR search when it chose the move by "
                                          "search (agent_options.search): each move's value, the chosen one and "
                                          "why, and the tree as text (`text`); null otherwise")
    seconds: float | None


class MessageView(BaseModel):
    client_message_id: str
    text: str
    created_at: str
    answered: bool
    answered_at: str | None
    conversation: int | None
    reply: str | None
    recommendations: list[Recommendation]


class Feedback(BaseModel):
    liked: bool | None
    seen: bool


class SessionView(BaseModel):
    session_id: str
    created_at: str
    updated_at: str
    conversation: int
    options: dict[str, Any]
    messages: list[MessageView]
    feedback: dict[str, Feedback]


class FeedbackResult(BaseModel):
    session_id: str
    kind: str
    items: list[dict[str, Any]]
    feedback: dict[str, Feedback]


class ItemView(BaseModel):
    item_id: str
    title: str
    year: int | None
    display_title: str
    facts: dict[str, Any]


class SearchHit(BaseModel):
    item_id: str
    title: str
    year: int | None
    display_title: str
    score: float = Field(description="how well the title matches: 100 exact, 90 prefix, ... (fuzzy below 70)")


class SearchResult(BaseModel):
    query: str
    results: list[SearchHit]


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    ready: Literal[True]
    sessions: int = Field(description="sessions in the store")
