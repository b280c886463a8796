"""Recommendation samples from hand-built dialogues: which items are targets, what context they see, and the
context-only view a recommender gets."""

from __future__ import annotations

from dataclasses import FrozenInstanceError

import pytest

from convrec.data.model import ContextView, Dialogue, ItemFeedback, Turn, samples_from_dialogue


def movie_chat() -> Dialogue:
    return Dialogue(
        "d1",
        "test",
        [
            Turn("seeker", "Hi! I liked Alien.", ("alien",)),
            Turn("recommender", "Try Blade Runner or Contact.", ("blade", "contact")),
            Turn("seeker", "Seen Blade Runner. Dune is my favourite.", ("blade", "dune")),
            Turn("recommender", "Then Alien again, or Event Horizon?", ("alien", "event")),
            Turn("seeker", "Thanks!"),
        ],
        feedback={"contact": ItemFeedback(liked=True, seen=False), "event": ItemFeedback(accepted=False)},
    )


def test_recommender_items_are_targets_with_earlier_context():
    samples = samples_from_dialogue(movie_chat())
    assert [(s.turn_index, s.target, s.context_items) for s in samples] == [
        (1, "blade", ("alien",)),
        (1, "contact", ("alien",)),
        # Context keeps the order of mention and repeats ("blade" twice), most recent last.
        (3, "alien", ("alien", "blade", "contact", "blade", "dune")),
        (3, "event", ("alien", "blade", "contact", "blade", "dune")),
    ]
    # "dune", mentioned only by the seeker, is never a target.
    assert "dune" not in {s.target for s in samples}


def test_target_in_context_and_ids():
    samples = samples_from_dialogue(movie_chat())
    assert [s.target_in_context for s in samples] == [False, False, True, False]
    assert samples[2].sample_id == "d1:3:alien"
    assert samples[2].dialogue_id == "d1"
    assert len(samples[2].context) == 3
    assert samples[2].context[-1].text == "Seen Blade Runner. Dune is my favourite."


def test_target_feedback():
    samples = samples_from_dialogue(movie_chat())
    by_target = {s.target: s for s in samples}
    assert by_target["contact"].target_feedback == ItemFeedback(liked=True, seen=False)
    assert by_target["event"].target_feedback.accepted is False
    assert by_target["blade"].target_feedback is None


def test_first_turn_recommendation_has_empty_context():
    dialogue = Dialogue("d", "train", [Turn("recommender", "Watch Heat.", ("heat",)), Turn("seeker", "ok")])
    [sample] = samples_from_dialogue(dialogue)
    assert (sample.turn_index, sample.target, sample.context_items) == (0, "heat", ())
    assert sample.context_text() == ""


def test_sequence_only_dialogue_yields_every_item_after_the_first():
    dialogue = Dialogue("user-1", "train", [Turn("unknown", "", (i,)) for i in ("x", "y", "x", "z")])
    assert not dialogue.has_roles
    samples = samples_from_dialogue(dialogue)
    assert [(s.turn_index, s.target, s.context_items) for s in samples] == [
        (1, "y", ("x",)),
        (2, "x", ("x", "y")),
        (3, "z", ("x", "y", "x")),
    ]
    assert [s.target_in_context for s in samples] == [False, True, False]


def test_unknown_turns_in_a_role_dialogue_are_context_only():
    dialogue = Dialogue(
        "d",
        "train",
        [Turn("seeker", "", ("a",)), Turn("unknown", "", ("b",)), Turn("recommender", "", ("c",))],
    )
    assert dialogue.has_roles
    assert [(s.target, s.context_items) for s in samples_from_dialogue(dialogue)] == [("c", ("a", "b"))]


def test_no_recommendation_no_samples():
    dialogue = Dialogue("d", "train", [Turn("seeker", "hi", ("a",)), Turn("recommender", "hello")])
    assert samples_from_dialogue(dialogue) == []
    assert dialogue.items_in_order() == ["a"]


def test_context_text_with_roles():
    sample = samples_from_dialogue(movie_chat())[2]
    assert sample.context_text() == (
        "Seeker: Hi! I liked Alien.\n"
        "Recommender: Try Blade Runner or Contact.\n"
        "Seeker: Seen Blade Runner. Dune is my favourite."
    )
    assert sample.context_text(with_roles=False).splitlines()[0] == "Hi! I liked Alien."


def test_context_text_skips_empty_turns():
    dialogue = Dialogue(
        "d",
        "test",
        [Turn("seeker", "a"), Turn("recommender", ""), Turn("seeker", "b"), Turn("recommender", "", ("x",))],
    )
    [sample] = samples_from_dialogue(dialogue)
    assert sample.context_text() == "Seeker: a\nSeeker: b"


def test_context_text_max_chars_keeps_the_most_recent_whole_lines():
    sample = samples_from_dialogue(movie_chat())[2]
    lines = sample.context_text().split("\n")
    last_two = "\n".join(lines[1:])
    # Exactly the last two lines fit: both are kept.
    assert sample.context_text(max_chars=len(last_two)) == last_two
    # One character fewer: the second-to-last line no longer fits whole, so only the last line is kept.
    assert sample.context_text(max_chars=len(last_two) - 1) == lines[2]
    # One more character than the last line (the newline before it): still only the last line.
    assert sample.context_text(max_chars=len(lines[2]) + 1) == lines[2]
    # No limit, or a limit above the length: everything.
    full = sample.context_text()
    assert sample.context_text(max_chars=len(full)) == full
    assert sample.context_text(max_chars=10_000) == full


def test_context_text_max_chars_smaller_than_the_last_line_keeps_its_end():
    sample = samples_from_dialogue(movie_chat())[2]
    assert sample.context_text(max_chars=15) == "is my favourite."[-15:]
    assert sample.context_text(max_chars=0) == ""


def test_feedback_to_json_drops_unknowns():
    assert ItemFeedback(liked=True, seen=None, accepted=False).to_json() == {"liked": True, "accepted": False}
    assert ItemFeedback().to_json() == {}


def reachable(start: object) -> list[object]:
    """Every object reachable from ``start`` through instance dicts and containers (types, modules and
    functions are not followed: through them everything is reachable)."""
    import gc
    import types

    seen: dict[int, object] = {}
    stack = [start]
    while stack:
        current = stack.pop()
        if id(current) in seen or isinstance(current, type | types.ModuleType | types.FunctionType):
            continue
        seen[id(current)] = current
        stack.extend(gc.get_referents(current))
    return list(seen.values())


def test_a_view_shows_the_context_and_nothing_after_it():
    dialogue = movie_chat()
    sample = samples_from_dialogue(dialogue)[2]  # target "alien" at turn 3
    view = sample.view()
    assert (view.dialogue_id, view.turn_index) == ("d1", 3)
    assert view.context == tuple(sample.context) and view.context_items == sample.context_items
    assert view.context_text(max_chars=40) == sample.context_text(max_chars=40)
    for hidden in ("dialogue", "target", "feedback", "target_feedback", "sample_id", "turns"):
        with pytest.raises(AttributeError):
            getattr(view, hidden)
    # Not only unnamed: the dialogue, its feedback and the turns from the target's on are out of reach.
    objects = reachable(view)
    assert not any(obj is dialogue or obj is dialogue.feedback for obj in objects)
    assert not any(any(obj is turn for obj in objects) for turn in dialogue.turns[3:])


def test_a_view_is_frozen_and_owns_its_context():
    turns = [Turn("seeker", "I liked Alien", ("alien",)), Turn("recommender", "Try Heat", ("heat",))]
    options = {"k": 5}
    view = ContextView("chat-1", turns, options)  # a live chat: the view at the end of the turns so far
    turns.append(Turn("seeker", "Seen it"))
    options["k"] = 9
    assert view.turn_index == 2 and view.context_items == ("alien", "heat") and view.metadata == {"k": 5}
    with pytest.raises(FrozenInstanceError):
        view.context = ()  # type: ignore[misc]
    with pytest.raises(TypeError):
        view.metadata["k"] = 1  # type: ignore[index]


def test_a_dataset_dialogues_metadata_stays_out_of_the_view():
    dialogue = Dialogue("d", "test", [Turn("seeker", "hi"), Turn("recommender", "Heat", ("heat",))],
                        metadata={"summary": "the seeker accepted Heat"})
    [sample] = samples_from_dialogue(dialogue)
    assert sample.view().metadata == {}
