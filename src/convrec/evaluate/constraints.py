"""Do recommended slates respect what the user said? A constraint suite and a checker that needs no agent.

The suite (``suites/constraints.toml``, issue 15) is a set of scripted conversations, movies and books, each
a few user messages and the constraints they state: an era ("from after 2010"), a genre to avoid or to have,
a person to have or to avoid, an item the user has seen or disliked. Each constraint holds from the message
that states it (``from_turn``, 1-based) to the end of the conversation.

Any system plugs in as a ``converse(dataset, messages) -> slates`` function that returns the items it
recommended after each user message (the chat engine today, the HARPO agent later). The checker,
:func:`violates`, reads nothing but the catalogue's metadata, never the system's own state: measured with
its own tracked state a system that filters by it would be right by construction. Where the metadata does
not say (no year, no genre, no people listed) the answer is None, and those checks are counted apart.

What a constraint means, item by item (the values are inclusive and, where a phrasing has a boundary that
could be read either way, "after 2010", the suite writes the lenient reading, 2010, so that no reasonable
reading of the message counts as a violation):

- ``year_after`` Y: the item's year is Y or later; ``year_before`` Y: Y or earlier; ``decade`` D: D to D+9;
- ``genre_avoid`` G: G is not among the item's genres; ``genre_want`` G: it is (genre names as the catalogue
  spells them, compared case-insensitively);
- ``person_want`` P: P is among the item's people (director, star, writer, author); ``person_avoid`` P: not.
  Only the people the metadata lists count: ReDial lists three stars a movie, so an actor in a smaller role
  is invisible to the checker;
- ``seen_item`` / ``disliked_item`` I: the item is not I, nor another catalogue entry of the same work (ReDial
  lists some movies twice, with and without a year): same normalised title and the same year, or a year
  missing on one side and a shared director or author (no creators to compare: undetermined).

The report (:func:`run_suite`) counts (slate, constraint) pairs, one per slate from the constraint's turn on.
A pair is violated when an item of the slate violates the constraint, clean when every item is known not to,
undetermined otherwise; an empty slate (a turn that asked a question instead) is counted apart, in no rate; the violation rate is violated / (violated + clean), with the undetermined pairs
reported beside it. Pairs of one conversation are not independent (one slate is checked against each of its
constraints, one constraint against each later slate), so the standard error treats conversations as the
sampled units: the clustered (ratio-estimator) standard error of sum(violated) / sum(determined) over them.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from convrec.catalog.items import Catalog, Item
from convrec.catalog.titles import normalize_title
from convrec.catalog.vocabulary import domain_for
from convrec.data.load import load_dataset
from convrec.errors import DataError

SUITE_PATH = Path(__file__).resolve().parent / "suites" / "constraints.toml"
PEOPLE_FIELDS = ("director", "star", "writer", "author")
CREATOR_FIELDS = ("director", "author")
# Years a catalogue may hold (OpenDialKG has books from 970 on); anything else in a suite is a typo.
MIN_YEAR, MAX_YEAR = 800, 2100
_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,79}")

# What a system under test is: the items it recommended after each of the user's messages, in order.
Converse = Callable[[str, Sequence[str]], Sequence[Sequence[str]]]


class ConstraintKind(StrEnum):
    YEAR_AFTER = "year_after"
    YEAR_BEFORE = "year_before"
    DECADE = "decade"
    GENRE_AVOID = "genre_avoid"
    GENRE_WANT = "genre_want"
    PERSON_WANT = "person_want"
    PERSON_AVOID = "person_avoid"
    SEEN_ITEM = "seen_item"
    DISLIKED_ITEM = "disliked_item"


YEAR_KINDS = frozenset({ConstraintKind.YEAR_AFTER, ConstraintKind.YEAR_BEFORE, ConstraintKind.DECADE})
GENRE_KINDS = frozenset({ConstraintKind.GENRE_AVOID, ConstraintKind.GENRE_WANT})
PERSON_KINDS = frozenset({ConstraintKind.PERSON_WANT, ConstraintKind.PERSON_AVOID})
ITEM_KINDS = frozenset({ConstraintKind.SEEN_ITEM, ConstraintKind.DISLIKED_ITEM})


class Constraint(BaseModel):
    """One thing the user asked for, stated in ``quote`` (words of message ``from_turn``), holding from then on."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ConstraintKind
    value: int | str = Field(description="a year or decade (an integer), a genre, a person or an item id")
    from_turn: int = Field(ge=1, description="the 1-based user message that states it; it holds from there on")
    quote: str = Field(min_length=1, description="the words of that message that state it")

    @model_validator(mode="after")
    def _value_fits_kind(self) -> Constraint:
        if self.kind in YEAR_KINDS:
            if not isinstance(self.value, int) or not MIN_YEAR <= self.value <= MAX_YEAR:
                raise ValueError(f"a {self.kind} value is a year, an integer from {MIN_YEAR} to {MAX_YEAR}, "
                                 f"got {self.value!r}")
            if self.kind is ConstraintKind.DECADE and self.value % 10:
                raise ValueError(f"a decade is the year it starts (1980 for the eighties), got {self.value}")
        elif not isinstance(self.value, str) or not self.value.strip():
            what = "a genre" if self.kind in GENRE_KINDS else "a person" if self.kind in PERSON_KINDS else "an item id"
            raise ValueError(f"a {self.kind} value is {what} (a non-empty string), got {self.value!r}")
        return self

    def describe(self) -> str:
        return f"{self.kind}={self.value} from turn {self.from_turn}"


class SuiteConversation(BaseModel):
    """A scripted conversation: the user's messages, the items its opening names as liked, and the constraints."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    dataset: str = Field(min_length=1)
    messages: tuple[str, ...] = Field(min_length=1, max_length=8)
    liked: tuple[str, ...] = Field((), description="item ids the messages name as liked (for state tracking)")
    constraints: tuple[Constraint, ...] = Field(min_length=1)

    @field_validator("id")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _ID.fullmatch(value):
            raise ValueError(f"an id is a lower-case slug (a-z, 0-9, '.', '_', '-'), got {value!r}")
        return value

    @field_validator("messages")
    @classmethod
    def _not_blank(cls, messages: tuple[str, ...]) -> tuple[str, ...]:
        if any(not message.strip() for message in messages):
            raise ValueError("a message is empty")
        return messages

    @model_validator(mode="after")
    def _constraints_fit_messages(self) -> SuiteConversation:
        for number, constraint in enumerate(self.constraints):
            if constraint.from_turn > len(self.messages):
                raise ValueError(f"constraints[{number}].from_turn is {constraint.from_turn} but there are only "
                                 f"{len(self.messages)} messages")
            if constraint.quote not in self.messages[constraint.from_turn - 1]:
                raise ValueError(f"constraints[{number}].quote {constraint.quote!r} is not in message "
                                 f"{constraint.from_turn} ({self.messages[constraint.from_turn - 1]!r})")
        return self


class ConstraintSuite(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = Field(ge=1)
    conversations: tuple[SuiteConversation, ...] = Field(min_length=1)

    @property
    def datasets(self) -> list[str]:
        return sorted({conversation.dataset for conversation in self.conversations})

    def constraints(self) -> Iterable[tuple[SuiteConversation, Constraint]]:
        for conversation in self.conversations:
            for constraint in conversation.constraints:
                yield conversation, constraint


def load_suite(path: Path = SUITE_PATH) -> ConstraintSuite:
    """Read and validate a suite file; a problem is a DataError naming the file, the conversation and the field."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise DataError(f"cannot read the constraint suite: {err.strerror or err}", path) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"not valid TOML: {err}", path) from None
    unknown = sorted(set(raw) - {"version", "conversation"})
    if unknown:
        raise DataError(f"unknown top-level key(s) {', '.join(unknown)}: a suite has 'version' and "
                        "[[conversation]] tables", path)
    records = raw.get("conversation")
    if not isinstance(records, list) or not records:
        raise DataError("no [[conversation]] tables: a suite holds at least one conversation", path)
    conversations = []
    seen: dict[str, int] = {}
    for position, record in enumerate(records, start=1):
        name = record.get("id") if isinstance(record, dict) else None
        where = f"conversation {name!r} (number {position})" if isinstance(name, str) else f"conversation number {position}"
        try:
            conversation = SuiteConversation.model_validate(record)
        except ValidationError as err:
            raise DataError(f"{where}: {_first_problem(err)}", path) from None
        if conversation.id in seen:
            raise DataError(f"{where}: id {conversation.id!r} already used by conversation number "
                            f"{seen[conversation.id]}", path)
        seen[conversation.id] = position
        conversations.append(conversation)
    try:
        return ConstraintSuite(version=raw.get("version", 0), conversations=tuple(conversations))
    except ValidationError as err:
        raise DataError(f"{_first_problem(err)}", path) from None


def _first_problem(err: ValidationError) -> str:
    problem = err.errors()[0]
    field = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in problem["loc"]).lstrip(".")
    message = str(problem["msg"]).removeprefix("Value error, ")
    return f"{field}: {message}" if field else message


def _names(item: Item, fields: Sequence[str]) -> set[str] | None:
    """The people ``item`` lists in ``fields``, case-folded and with spacing normalised; None: none listed."""
    found: set[str] = set()
    listed = False
    for field in fields:
        value = item.metadata.get(field)
        if not value:
            continue
        listed = True
        found.update(_person_key(name) for name in ([value] if isinstance(value, str) else value))
    return found if listed else None


def _person_key(name: str) -> str:
    return " ".join(str(name).split()).casefold()


def same_work(item: Item, other: Item) -> bool | None:
    """Two catalogue entries of one work (see the module docstring); None when the metadata cannot tell."""
    if item.item_id == other.item_id:
        return True
    if normalize_title(item.title) != normalize_title(other.title):
        return False
    if item.year is not None and other.year is not None:
        return item.year == other.year
    ours, theirs = _names(item, CREATOR_FIELDS), _names(other, CREATOR_FIELDS)
    if ours is None or theirs is None:
        return None
    return bool(ours & theirs)


def violates(item_id: str, constraint: Constraint, catalog: Catalog) -> bool | None:
    """Whether recommending ``item_id`` breaks ``constraint``, from the catalogue's metadata only; None when
    the metadata does not say. The item must be in ``catalog`` (KeyError otherwise)."""
    item = catalog.get(item_id)
    kind, value = constraint.kind, constraint.value
    if kind in YEAR_KINDS:
        if item.year is None:
            return None
        if kind is ConstraintKind.YEAR_AFTER:
            return item.year < value  # type: ignore[operator]
        if kind is ConstraintKind.YEAR_BEFORE:
            return item.year > value  # type: ignore[operator]
        return not value <= item.year <= value + 9  # type: ignore[operator]
    if kind in GENRE_KINDS:
        genres = item.genres()
        if not genres:
            return None
        has = str(value).strip().lower() in genres
        return has if kind is ConstraintKind.GENRE_AVOID else not has
    if kind in PERSON_KINDS:
        people = _names(item, PEOPLE_FIELDS)
        if people is None:
            return None
        has = _person_key(str(value)) in people
        return has if kind is ConstraintKind.PERSON_AVOID else not has
    return same_work(item, catalog.get(str(value)))


def reference_problems(suite: ConstraintSuite, catalogs: Mapping[str, Catalog]) -> list[str]:
    """What the suite names that its dataset's catalogue does not hold: items (constraints and ``liked``),
    people (in any people field), genres. One line per problem, naming the conversation; empty: all exist."""
    problems = []
    people: dict[str, set[str]] = {}
    genres: dict[str, set[str]] = {}
    for conversation in suite.conversations:
        name = conversation.dataset
        catalog = catalogs.get(name)
        if catalog is None:
            problems.append(f"conversation {conversation.id!r}: no catalogue for dataset {name!r}")
            continue
        if name not in people:
            people[name] = {key for item in catalog for key in (_names(item, PEOPLE_FIELDS) or ())}
            genres[name] = {genre for item in catalog for genre in item.genres()}
        for item_id in conversation.liked:
            if item_id not in catalog:
                problems.append(f"conversation {conversation.id!r}: liked item {item_id!r} is not in {name}")
        for constraint in conversation.constraints:
            value = constraint.value
            missing = (
                (constraint.kind in ITEM_KINDS and value not in catalog)
                or (constraint.kind in PERSON_KINDS and _person_key(str(value)) not in people[name])
                or (constraint.kind in GENRE_KINDS and str(value).strip().lower() not in genres[name])
            )
            if missing:
                problems.append(f"conversation {conversation.id!r}: {constraint.kind} value {value!r} is not in "
                                f"the {name} catalogue")
    return problems


def check_references(suite: ConstraintSuite, catalogs: Mapping[str, Catalog], path: Path = SUITE_PATH) -> None:
    problems = reference_problems(suite, catalogs)
    if problems:
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        raise DataError("; ".join(problems[:5]) + more, path)


class RateEstimate(BaseModel):
    """Violated and clean (slate, constraint) pairs of a group, the pairs the metadata could not decide, and
    the violation rate with its standard error clustered by conversation (None: not defined)."""

    model_config = ConfigDict(frozen=True)

    violated: int
    clean: int
    undetermined: int
    conversations: int
    rate: float | None
    se: float | None

    @property
    def determined(self) -> int:
        return self.violated + self.clean

    def cell(self) -> str:
        if self.rate is None:
            return "n/a"
        error = f" ± {self.se:.3f}" if self.se is not None else ""
        return f"{self.rate:.3f}{error} ({self.violated}/{self.determined})"


class PairResult(BaseModel):
    """One slate checked against one constraint: the items that violate it and those the metadata cannot decide."""

    model_config = ConfigDict(frozen=True)

    conversation: str
    domain: str
    turn: int
    kind: ConstraintKind
    value: int | str
    violating: tuple[str, ...]
    undetermined: tuple[str, ...]
    checked: int  # the slate's catalogue items (an id outside the catalogue is reported apart)

    @property
    def outcome(self) -> bool | None:
        """True: violated; False: clean; None: undetermined."""
        if self.violating:
            return True
        return None if self.undetermined else False


class SuiteReport(BaseModel):
    """The result of one system on one suite (see the module docstring for what is counted and how)."""

    model_config = ConfigDict(frozen=True)

    suite_version: int
    conversations: int
    slates: int
    empty_slates: int
    overall: RateEstimate
    by_kind: dict[str, RateEstimate]
    by_domain: dict[str, RateEstimate]
    by_conversation: dict[str, RateEstimate]
    items_checked: int  # (item, constraint) checks, over every pair
    items_violating: int
    items_undetermined: int
    unknown_items: tuple[str, ...]  # "conversation turn N: item" for each recommended id not in the catalogue
    pairs: tuple[PairResult, ...]

    def table(self) -> str:
        """A markdown table: overall, per domain, per kind."""
        rows = [("all", self.overall)]
        rows += [(f"domain {name}", estimate) for name, estimate in self.by_domain.items()]
        rows += [(f"kind {name}", estimate) for name, estimate in self.by_kind.items()]
        lines = ["| group | violation rate ± SE (violated/determined pairs) | undetermined pairs | conversations |",
                 "|---|---|---|---|"]
        lines += [f"| {name} | {estimate.cell()} | {estimate.undetermined} | {estimate.conversations} |"
                  for name, estimate in rows]
        return "\n".join(lines)


def clustered_rate(groups: Sequence[tuple[int, int, int]]) -> RateEstimate:
    """``groups``: (violated, clean, undetermined) per conversation. The ratio estimator and its clustered
    standard error sqrt(C / (C - 1) * sum((v_i - r * n_i)^2)) / sum(n_i) over the C conversations with a
    determined pair."""
    violated = sum(g[0] for g in groups)
    clean = sum(g[1] for g in groups)
    undetermined = sum(g[2] for g in groups)
    determined = violated + clean
    counted = [(v, v + c) for v, c, _ in groups if v + c]
    rate = violated / determined if determined else None
    se = None
    if rate is not None and len(counted) >= 2:
        spread = sum((v - rate * n) ** 2 for v, n in counted)
        se = math.sqrt(len(counted) / (len(counted) - 1) * spread) / determined
    return RateEstimate(violated=violated, clean=clean, undetermined=undetermined, conversations=len(counted),
                        rate=rate, se=se)


def _estimate(pairs: Iterable[PairResult]) -> RateEstimate:
    """Pairs of an empty slate (a turn that asked instead of recommending) say nothing: left out."""
    per_conversation: dict[str, list[int]] = {}
    for pair in pairs:
        if not pair.checked:
            continue
        counts = per_conversation.setdefault(pair.conversation, [0, 0, 0])
        counts[{True: 0, False: 1, None: 2}[pair.outcome]] += 1
    return clustered_rate([tuple(c) for c in per_conversation.values()])  # type: ignore[misc]


def load_catalogs(suite: ConstraintSuite, data_dir: Path | None = None, mirror: Path | None = None) -> dict[str, Catalog]:
    return {name: load_dataset(name, data_dir, mirror).catalog for name in suite.datasets}


def run_suite(converse: Converse, suite: ConstraintSuite, catalogs: Mapping[str, Catalog] | None = None) -> SuiteReport:
    """Run every conversation of ``suite`` through ``converse`` and check each slate against each constraint
    stated by then. ``catalogs`` (dataset name -> catalogue) default to the datasets loaded by name."""
    catalogs = catalogs if catalogs is not None else load_catalogs(suite)
    missing = [name for name in suite.datasets if name not in catalogs]
    if missing:
        raise DataError(f"no catalogue given for dataset(s) {', '.join(missing)} of the constraint suite")
    domains = {name: domain_for(name, catalogs[name]) for name in suite.datasets}
    pairs: list[PairResult] = []
    unknown: list[str] = []
    slates = empty = 0
    for conversation in suite.conversations:
        catalog = catalogs[conversation.dataset]
        answered = [list(slate) for slate in converse(conversation.dataset, conversation.messages)]
        if len(answered) != len(conversation.messages):
            raise ValueError(f"conversation {conversation.id!r}: converse returned {len(answered)} slates for "
                             f"{len(conversation.messages)} messages (one slate per message is expected)")
        for turn, slate in enumerate(answered, start=1):
            slates += 1
            empty += not slate
            known = []
            for item_id in slate:
                if item_id in catalog:
                    known.append(item_id)
                else:
                    unknown.append(f"{conversation.id} turn {turn}: {item_id!r}")
            for constraint in conversation.constraints:
                if turn < constraint.from_turn:
                    continue
                verdicts = [(item_id, violates(item_id, constraint, catalog)) for item_id in known]
                pairs.append(PairResult(
                    conversation=conversation.id, domain=domains[conversation.dataset], turn=turn,
                    kind=constraint.kind, value=constraint.value,
                    violating=tuple(i for i, verdict in verdicts if verdict is True),
                    undetermined=tuple(i for i, verdict in verdicts if verdict is None),
                    checked=len(known)))
    return SuiteReport(
        suite_version=suite.version, conversations=len(suite.conversations), slates=slates, empty_slates=empty,
        overall=_estimate(pairs),
        by_kind={kind.value: _estimate(p for p in pairs if p.kind is kind)
                 for kind in ConstraintKind if any(p.kind is kind for p in pairs)},
        by_domain={domain: _estimate(p for p in pairs if p.domain == domain) for domain in sorted(set(domains.values()))},
        by_conversation={c.id: _estimate(p for p in pairs if p.conversation == c.id) for c in suite.conversations},
        items_checked=sum(p.checked for p in pairs),
        items_violating=sum(len(p.violating) for p in pairs),
        items_undetermined=sum(len(p.undetermined) for p in pairs),
        unknown_items=tuple(unknown), pairs=tuple(pairs))

