"""The VTO registry: exactly the paper's 21 operations in their 7 categories, typed arguments and results
checked on every call, and each call recorded in the turn's trace (arguments, result, seconds, agent)."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

import worlds
from convrec.agent.config import HarpoOptions
from convrec.agent.operations import VTOS, AgentContext, MessageArgs, StateArgs, TurnsArgs
from convrec.agent.state import AgentState
from convrec.agent.vto import PAPER_OPERATIONS, Category, Trace, UnknownOperation, VTOCall, VTORegistry
from convrec.data.model import Turn
from convrec.retrieval.base import build_recommender
from convrec.trace import SUMMARY_CHARS


@pytest.fixture(scope="module")
def ctx() -> AgentContext:
    world = worlds.world(classics=True)
    retriever = build_recommender("itemknn", world.catalog, {})
    retriever.fit(world.train)
    return AgentContext.for_catalog(world.catalog, retriever, HarpoOptions(retriever="itemknn"))


def test_the_registry_holds_exactly_the_papers_21_operations_in_their_categories():
    registered = {op.name: op.category for op in VTOS}
    expected = {name: category for category, names in PAPER_OPERATIONS.items() for name in names}
    assert len(VTOS) == 21 and registered == expected
    assert set(PAPER_OPERATIONS) == set(Category) and all(len(names) == 3 for names in PAPER_OPERATIONS.values())
    for op in VTOS:
        assert op.description, f"{op.name} has no description (its docstring's first line)"
        assert issubclass(op.arguments, BaseModel) and issubclass(op.result, BaseModel)
        assert op.name in VTOS
    # only the sentiment reader may ask an LLM; every other operation is rules and arithmetic
    assert [op.name for op in VTOS if op.uses_llm] == ["analyze_sentiment"]


class Ping(BaseModel):
    text: str


class Pong(BaseModel):
    length: int

    def summary(self) -> str:
        return f"{self.length} chars"


def test_a_name_registered_twice_is_an_error():
    registry = VTORegistry()

    @registry.operation(Category.MEMORY, Ping, Pong)
    def echo(ctx, args: Ping) -> Pong:
        """Count the characters."""
        return Pong(length=len(args.text))

    with pytest.raises(ValueError, match="'echo' is registered twice"):
        @registry.operation(Category.RANKING, Ping, Pong)
        def echo(ctx, args: Ping) -> Pong:  # noqa: F811 (the duplicate is the point)
            return Pong(length=0)

    assert len(registry) == 1 and registry.get("echo").category is Category.MEMORY
    assert registry.get("echo").description == "Count the characters."


def test_arguments_and_results_are_type_checked():
    registry = VTORegistry()

    @registry.operation(Category.MEMORY, Ping, Pong)
    def echo(ctx, args: Ping) -> Pong:
        """Count."""
        return Pong(length=len(args.text))

    @registry.operation(Category.MEMORY, Ping, Pong)
    def liar(ctx, args: Ping) -> Pong:
        """Return the wrong type."""
        return Ping(text="not a Pong")  # type: ignore[return-value]

    trace = Trace()
    with pytest.raises(TypeError, match="echo takes Ping, got Pong"):
        registry.call("echo", None, Pong(length=1), trace)
    with pytest.raises(TypeError, match="liar returned Ping, declared Pong"):
        registry.call("liar", None, Ping(text="x"), trace)
    assert len(trace) == 0  # a failed call is not recorded
    with pytest.raises(UnknownOperation, match="no VTO 'nope'; known: echo, liar"):
        registry.call("nope", None, Ping(text="x"), trace)


def test_each_call_is_recorded_with_arguments_result_seconds_and_agent():
    registry = VTORegistry()

    @registry.operation(Category.EXTRACTION, Ping, Pong)
    def echo(ctx, args: Ping) -> Pong:
        """Count."""
        return Pong(length=len(args.text))

    trace = Trace()
    assert registry.call("echo", None, Ping(text="hello"), trace, agent="critic") == Pong(length=5)
    assert registry.call("echo", None, Ping(text="x" * 5000), trace).length == 5000
    first, second = trace.calls
    assert (first.operation, first.category, first.agent, first.changed_slate) == ("echo", "extraction", "critic",
                                                                                   False)
    assert first.arguments == '{"text":"hello"}' and first.result == "5 chars"  # the result's own summary()
    assert 0.0 <= first.seconds < 1.0 and second.agent == "recommender"
    assert len(second.arguments) <= SUMMARY_CHARS  # a long argument is cut, not refused
    trace.mark_changed()
    assert [c.changed_slate for c in trace] == [False, True]
    registry.call("echo", None, Ping(text="quiet"), None)  # no trace: nothing recorded anywhere
    assert len(trace) == 2
    assert VTOCall.model_validate_json(second.model_dump_json()) == second  # JSON, for /trace and saved sessions


def test_the_real_operations_are_checked_and_traced(ctx):
    trace = Trace()
    turns = (Turn("seeker", "I loved The Conjuring (2013), nothing before 2000", ("conjuring",)),)
    history = VTOS.call("track_history", ctx, TurnsArgs(turns=turns), trace)
    found = VTOS.call("identify_constraints", ctx, MessageArgs(message=turns[0].text), trace, agent="recommender")
    assert history.seeker_turns == 1 and [c.describe() for c in found.constraints] == ["year 2000.."]
    assert [c.operation for c in trace] == ["track_history", "identify_constraints"]
    assert trace.calls[1].result == "year 2000.." and trace.calls[1].category is Category.USER_MODELLING
    with pytest.raises(TypeError, match="track_history takes TurnsArgs, got StateArgs"):
        VTOS.call("track_history", ctx, StateArgs(state=AgentState()), trace)
