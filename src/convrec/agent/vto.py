"""Virtual Tool Operations (VTOs): the agent's typed reasoning steps, registered by name and traced per call.

HARPO reasons through 21 domain-agnostic operations in 7 categories, bound to a catalogue by a domain adapter.
Here each operation is a plain function ``(context, arguments) -> result`` whose arguments and result are
pydantic models, declared once with :func:`VTORegistry.operation`. Calling it through :meth:`VTORegistry.call`
checks the arguments, times the call and appends a :class:`VTOCall` to the turn's trace: which operation, a
one-line summary of what went in and what came out, the seconds it took, and whether it changed the slate
(the agent marks that). The trace is what ``/trace`` shows and what the per-operation statistics count.

Why a registry and not method calls: the set of operations is data (listed, counted, ablated by name: "without
VTOs" runs the retriever alone with the Explainer), and the search of a later issue enumerates actions over it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from convrec.trace import SUMMARY_CHARS, brief

In = TypeVar("In", bound=BaseModel)
Out = TypeVar("Out", bound=BaseModel)


class Category(StrEnum):
    EXTRACTION = "extraction"
    USER_MODELLING = "user modelling"
    RETRIEVAL = "retrieval"
    RANKING = "ranking"
    REASONING = "reasoning"
    INTERACTION = "interaction"
    MEMORY = "memory"


# HARPO's 21 operations by category (arXiv 2604.10048); the registry must hold exactly these.
PAPER_OPERATIONS: Mapping[Category, tuple[str, ...]] = {
    Category.EXTRACTION: ("analyze_sentiment", "extract_context", "extract_entities"),
    Category.USER_MODELLING: ("retrieve_preferences", "identify_constraints", "model_user_state"),
    Category.RETRIEVAL: ("search_candidates", "filter_results", "match_attributes"),
    Category.RANKING: ("rank_options", "compare_options", "select_best"),
    Category.REASONING: ("query_knowledge", "reason_over_graph", "infer_implicit"),
    Category.INTERACTION: ("explain_choice", "refine_query", "handle_rejection"),
    Category.MEMORY: ("track_history", "update_beliefs", "recall_context"),
}


class VTOCall(BaseModel):
    """One call of one operation in one turn."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    operation: str
    category: Category
    arguments: str = Field(max_length=SUMMARY_CHARS)
    result: str = Field(max_length=SUMMARY_CHARS)
    seconds: float = Field(ge=0.0)
    changed_slate: bool = False
    agent: str = Field("recommender", description="recommender, critic or explainer")


@dataclass
class Trace:
    """The calls of one turn, in order."""

    calls: list[VTOCall] = field(default_factory=list)

    def __iter__(self) -> Iterator[VTOCall]:
        return iter(self.calls)

    def __len__(self) -> int:
        return len(self.calls)

    def mark_changed(self) -> None:
        """The last call changed the slate."""
        if self.calls:
            self.calls[-1] = self.calls[-1].model_copy(update={"changed_slate": True})


@dataclass(frozen=True)
class Operation(Generic[In, Out]):
    name: str
    category: Category
    arguments: type[In]
    result: type[Out]
    run: Callable[[Any, In], Out]
    description: str
    uses_llm: bool = False

    def summarise(self, value: BaseModel) -> str:
        summary = getattr(value, "summary", None)
        return brief(summary() if callable(summary) else value.model_dump_json(exclude_defaults=True))


class UnknownOperation(KeyError):
    pass


class VTORegistry:
    """Operations by name. ``call`` runs one and records it in ``trace``."""

    def __init__(self) -> None:
        self._operations: dict[str, Operation] = {}

    def operation(self, category: Category, arguments: type[In], result: type[Out], uses_llm: bool = False
                  ) -> Callable[[Callable[[Any, In], Out]], Callable[[Any, In], Out]]:
        """Decorator: register ``fn`` under its own name; its docstring's first line is its description."""

        def register(fn: Callable[[Any, In], Out]) -> Callable[[Any, In], Out]:
            if fn.__name__ in self._operations:
                raise ValueError(f"VTO {fn.__name__!r} is registered twice")
            description = (fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else ""
            self._operations[fn.__name__] = Operation(fn.__name__, category, arguments, result, fn, description,
                                                      uses_llm)
            return fn

        return register

    def __contains__(self, name: object) -> bool:
        return name in self._operations

    def __iter__(self) -> Iterator[Operation]:
        return iter(self._operations.values())

    def __len__(self) -> int:
        return len(self._operations)

    def get(self, name: str) -> Operation:
        try:
            return self._operations[name]
        except KeyError:
            raise UnknownOperation(f"no VTO {name!r}; known: {', '.join(sorted(self._operations))}") from None

    def call(self, name: str, context: Any, arguments: BaseModel, trace: Trace | None, agent: str = "recommender"):
        operation = self.get(name)
        if not isinstance(arguments, operation.arguments):
            raise TypeError(f"VTO {name} takes {operation.arguments.__name__}, got {type(arguments).__name__}")
        started = time.perf_counter()
        result = operation.run(context, arguments)
        seconds = time.perf_counter() - started
        if not isinstance(result, operation.result):
            raise TypeError(f"VTO {name} returned {type(result).__name__}, declared {operation.result.__name__}")
        if trace is not None:
            trace.calls.append(VTOCall(operation=name, category=operation.category,
                                       arguments=operation.summarise(arguments), result=operation.summarise(result),
                                       seconds=seconds, agent=agent))
        return result
