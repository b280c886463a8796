"""What ``convrec chat`` prints: the banner, each turn (recognised titles, the recommendations with their
scores, the reply, a timing line), ``/why N`` and ``/help``. Rendering only; the work is in
:mod:`convrec.serve`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from convrec.catalog.items import Catalog, Item
from convrec.catalog.vocabulary import GENERIC, Vocabulary
from convrec.serve.engine import NoSuchRecommendation, Why
from convrec.serve.state import FeedbackKind, TurnRecord

COMMANDS = "/why N, /like N, /dislike N, /seen N, /reset, /trace, /status, /help, /quit (or Ctrl-D)"
HELP = """\
Type what you are looking for, in your own words. Titles you mention are recognised when they are
quoted ("Up"), followed by their year (It 2017), written with capitals (Get Out, The Notebook) or three
words or longer (the dark knight); so are the full names of their {makers}, whose {plural} then come
first. The chat shows what it recognised.

  /why N       the catalogue's facts about the N-th recommendation, and its scores (the agent's quality too)
  /like N     you like the N-th recommendation: it counts as one you named
  /dislike N  you dislike it: it is not recommended again in this conversation
  /seen N     you have seen it already: not recommended again either
  /reset      start a new conversation (forget the dialogue and the marks so far)
  /trace      the steps of the last turn (with --agent harpo: each VTO call, the Critic's edits)
  /status     which retriever answers, and how its training in the background is going
  /help       this text
  /quit       leave (Ctrl-D too)

Scores: "retriever" is the first stage's raw score and its rank among the k candidates, "LLM" the
model's P(yes) that the {noun} fits the conversation (pointwise) or its rank score (listwise), "fused" the
mix (1 - w) * retriever rank score + w * LLM that orders the list."""


def banner(console: Console, lines: list[tuple[str, str]]) -> None:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column()
    for label, text in lines:
        grid.add_row(label, text)
    console.print(Panel(grid, title="convrec chat", title_align="left", border_style="cyan"))


def show_help(console: Console, vocabulary: Vocabulary) -> None:
    makers = " or ".join(f"{field}s" for field in vocabulary.creator_fields)
    console.print(escape(HELP.format(noun=vocabulary.noun, plural=vocabulary.plural, makers=makers)),
                  highlight=False)


@dataclass
class Screen:
    """Where and how turns are shown: ``with_llm`` adds the LLM's columns; ``item_only`` (a retriever that
    reads no text) adds a hint while no title has been named; ``vocabulary`` names the domain's items;
    ``retriever`` is the name of the retriever that answers (it changes when a trained one is swapped in)."""

    console: Console
    with_llm: bool
    item_only: bool = False
    vocabulary: Vocabulary = GENERIC
    retriever: str = ""

    def turn(self, turn: TurnRecord, catalog: Catalog) -> None:
        show_turn(self.console, turn, catalog, self.with_llm, self.item_only, self.vocabulary, self.retriever)


def show_turn(console: Console, turn: TurnRecord, catalog: Catalog, with_llm: bool, item_only: bool = False,
              vocabulary: Vocabulary = GENERIC, retriever: str = "") -> None:
    names = [f"{escape(catalog.get(m.item_id).display_title)} [dim]({escape(m.text)!r})[/dim]" for m in turn.mentions]
    names += [f"{escape(p.name)} [dim]({p.field} of {len(p.item_ids)} "
              f"{vocabulary.noun if len(p.item_ids) == 1 else vocabulary.plural})[/dim]" for p in turn.people]
    if names:
        console.print(f"[green]recognised[/green]: {', '.join(names)}")
    else:
        console.print("[dim]recognised: no titles (quote a title or add its year to be sure)[/dim]")
    if not turn.context_items and not turn.people and item_only:
        console.print("[dim]no title named yet: the retriever reads only titles, so the candidates are popular "
                      f"items; name {vocabulary.a_noun} you liked for better ones[/dim]")
    if turn.recommendations:
        console.print(_table(turn, catalog, with_llm))
    console.print(f"[bold magenta]recommender[/bold magenta]: {escape(turn.reply.text)}")
    if turn.fallback:
        console.print(f"[yellow]note[/yellow]: the LLM's answer was not used ({escape(turn.fallback)})")
    if turn.reply_rejection:
        console.print(f"[yellow]note[/yellow]: the LLM's rewrite of the reply was not used "
                      f"({escape(turn.reply_rejection)}); the template reply is shown")
    console.print(f"[dim]{timing_line(turn, with_llm, retriever)}[/dim]")


def _table(turn: TurnRecord, catalog: Catalog, with_llm: bool) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, header_style="bold", show_edge=False)
    table.add_column("#", justify="right")
    table.add_column("title")
    table.add_column("genres", style="dim")
    table.add_column("retriever", justify="right")
    if with_llm:
        table.add_column("LLM", justify="right")
        table.add_column("fused", justify="right")
    for rank, rec in enumerate(turn.recommendations, start=1):
        genres = ", ".join(sorted(catalog.get(rec.item_id).genres())[:3])
        row = [str(rank), escape(rec.title), escape(genres), f"{rec.retriever_score:.3f} (#{rec.retriever_rank})"]
        if with_llm:
            row += ["-" if rec.llm_score is None else f"{rec.llm_score:.2f}", f"{rec.score:.2f}"]
        table.add_row(*row)
    return table


def timing_line(turn: TurnRecord, with_llm: bool, retriever: str = "") -> str:
    t = turn.timing
    by = f" by {retriever}" if retriever else ""
    parts = [f"retrieval{by} {t.retrieval_ms:.0f} ms ({turn.n_candidates} candidates)"]
    if with_llm:
        parts.append(f"LLM {t.rerank_s + t.reply_s:.1f} s ({t.llm_calls} calls, {t.cache_hits} from the cache; "
                     f"{t.prompt_tokens} prompt tokens, {t.prefix_cached_tokens} of them from the prefix cache)")
    parts.append(f"turn {t.total_s:.1f} s")
    return " · ".join(parts)


def show_why(console: Console, why: Why) -> None:
    rec, item = why.recommendation, why.item
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    for label, key in (("genres", "genre"), ("director", "director"), ("author", "author"), ("cast", "star"),
                       ("writer", "writer"), ("plot", "plot")):
        value = item.metadata.get(key)
        if value:
            grid.add_row(label, escape(value if isinstance(value, str) else ", ".join(map(str, value))))
    grid.add_row("item id", escape(item.item_id))
    scores = f"retriever {rec.retriever_score:.4g} (#{rec.retriever_rank} of {why.n_candidates} candidates)"
    if rec.llm_score is not None:
        scores += f", LLM {rec.llm_score:.3f}, fused {rec.score:.3f}"
    grid.add_row("scores", scores)
    if rec.quality:  # the agent's CHARM dimensions
        grid.add_row("quality", ", ".join(f"{name} {value:.2f}" for name, value in rec.quality.items()))
    if why.reason:
        grid.add_row("reason", escape(why.reason))
    console.print(Panel(grid, title=f"{why.number}. {escape(item.display_title)}", title_align="left"))


FEEDBACK_SHOWN = {"like": "liked: it counts as one you named",
                  "dislike": "disliked: it will not be recommended again in this conversation",
                  "seen": "seen: it will not be recommended again in this conversation"}


def show_feedback(console: Console, item: Item, kind: FeedbackKind) -> None:
    console.print(f"[cyan]{escape(item.display_title)} marked {FEEDBACK_SHOWN[kind]}[/cyan]")


def show_no_such_recommendation(console: Console, command: str, error: NoSuchRecommendation) -> None:
    if not error.count:
        console.print("[yellow]no recommendations yet in this conversation[/yellow]")
    else:
        console.print(f"[yellow]usage: {escape(command)} N, with N from 1 to {error.count}[/yellow]")


def show_trace(console: Console, turn: TurnRecord | None, title: Callable[[str], str] = str) -> None:
    """The last turn's steps: the stages (link, retrieve, rerank, reply) and, for an agent, every VTO call with
    its agent, arguments, result, time and whether it changed the slate, then the Critic's edits, and the tree
    STAR searched when it chose the move (``title`` names an item id)."""
    if turn is None:
        console.print("[yellow]no turn yet in this conversation[/yellow]")
        return
    stages = Table(title="stages", title_justify="left", show_edge=False)
    for column in ("stage", "in", "out", "ms"):
        stages.add_column(column, overflow="fold")
    for record in turn.trace:
        stages.add_row(record.stage.value, escape(record.input), escape(record.output), f"{record.seconds * 1000:.1f}")
    console.print(stages)
    if turn.action is None:
        return
    console.print(f"[bold]action[/bold]: {escape(turn.action)}"
                  + (f" · constraints: {escape('; '.join(turn.constraints))}" if turn.constraints else ""))
    calls = Table(title="VTO calls", title_justify="left", show_edge=False)
    for column in ("agent", "operation", "arguments", "result", "ms", "changed"):
        calls.add_column(column, overflow="fold")
    for call in turn.vto_calls:
        calls.add_row(call.agent, call.operation, escape(call.arguments), escape(call.result),
                      f"{call.seconds * 1000:.1f}", "yes" if call.changed_slate else "")
    console.print(calls)
    for note in turn.critique:
        replaced = f"replaced by {note.replacement}" if note.replacement else "dropped"
        console.print(f"critic, round {note.round}: {escape(note.item_id)} {escape(note.problem)}; {replaced}")
    if turn.search is not None:
        console.print(f"[bold]STAR[/bold] ({turn.search.seconds * 1000:.1f} ms)")
        console.print(escape(turn.search.render(title)))
