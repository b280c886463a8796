"""Constraint extraction measured on real seeker messages: 100 seeker turns of the ReDial test split, hand
labelled with the constraints each states for what to recommend (an item described is no request: "The Ring is
really scary" states none), before the extractor was run on them.

The sample: seed 2604, 40 seeker turns drawn at random and 60 drawn among those holding a genre, era, person or
negation word (so that there is something to find), none of them in the sample the rules were tuned on. The
labels are one person's reading; the numbers are a check on real phrasing, not a benchmark. Measured when the
sample was drawn, and asserted below with margin: precision 19/24 = 0.79, recall 19/21 = 0.90.
"""

from __future__ import annotations

import pytest

from convrec.agent.constraints import extract_constraints
from convrec.agent.domain import DomainAdapter
from convrec.agent.normalise import value_key

# Seeker turns of the ReDial test split, as dialogue_id:turn_index.
SAMPLE = """
20058:3 21121:3 20686:7 21378:9 21921:7 20825:9 20400:5 20640:0 20757:4 21027:0 22326:7 22182:9 22062:8
21464:9 22454:8 20706:13 22812:5 22553:11 20908:8 20098:0 21775:8 20899:4 20095:2 20379:7 20869:13
22105:7 22797:7 22138:4 20683:13 22192:2 22931:3 20392:13 21172:11 21189:2 20747:4 22217:12 21358:7
21418:5 21600:3 22162:9 21840:3 21025:1 22461:9 22869:5 22671:3 22479:7 22037:3 21724:5 21885:10
20587:12 20083:8 21384:7 23177:5 21884:7 21048:1 21203:1 21015:12 22102:3 20723:5 22003:1 21165:1
22581:12 21799:2 21222:1 22739:8 23200:7 22330:1 22069:1 22045:7 20870:8 22147:3 22257:10 22311:8
21979:4 22014:5 23092:6 21367:3 22354:3 22766:13 21183:2 22553:7 21984:5 20915:8 22841:3 21064:13
20995:6 20732:7 20754:5 20545:4 23322:9 22021:10 22712:7 22940:6 21407:9 21310:6 22545:11 20676:1
21727:6 21684:3 21006:7
""".split()  # noqa: SIM905 (dialogue:turn refs read better as a block)
# What each turn states (turns not listed state no constraint): (polarity, attribute, value or (low, high)).
GOLD = {
    "21378:9": [("want", "genre", "thriller")],
    "20379:7": [("want", "person", "Adam Sandler"), ("want", "genre", "comedy"), ("want", "year", (1990, 1999))],
    "22797:7": [("want", "year", (1980, 1989))],
    "22931:3": [("want", "genre", "war"), ("want", "genre", "action")],
    "21025:1": [("want", "genre", "action")],
    "22671:3": [("want", "genre", "family")],
    "21048:1": [("want", "genre", "romance")],
    "22102:3": [("want", "genre", "thriller")],
    "22003:1": [("want", "year", (1980, 1989))],
    "21222:1": [("want", "genre", "fantasy")],
    "22330:1": [("want", "genre", "action")],
    "22147:3": [("want", "genre", "horror"), ("want", "genre", "comedy")],
    "21367:3": [("want", "genre", "action")],
    "22354:3": [("want", "genre", "horror")],
    "20545:4": [("want", "year", (2015, None))],
    "20676:1": [("want", "genre", "comedy")],
    "21006:7": [("want", "genre", "action")],
}


def read(constraint) -> tuple:
    if constraint.is_range:
        return (constraint.polarity, constraint.attribute, (constraint.low, constraint.high))
    return (constraint.polarity, constraint.attribute, value_key(constraint.value or ""))


def gold(ref: str) -> set[tuple]:
    return {(p, a, v if isinstance(v, tuple) else value_key(v)) for p, a, v in GOLD.get(ref, [])}


@pytest.fixture(scope="module")
def seeker_turns(redial) -> dict[str, str]:
    dialogues = {d.dialogue_id: d for d in redial.split("test").dialogues}
    turns = {}
    for ref in SAMPLE:
        dialogue_id, index = ref.split(":")
        turn = dialogues[dialogue_id].turns[int(index)]
        assert turn.role == "seeker" and turn.text.strip()
        turns[ref] = turn.text
    return turns


def test_precision_and_recall_on_real_seeker_messages(redial, seeker_turns):
    adapter = DomainAdapter.of(redial.catalog, redial.name)
    hits = predicted = expected = 0
    for ref, text in seeker_turns.items():
        found = {read(c) for c in extract_constraints(text, adapter)}
        hits += len(found & gold(ref))
        predicted += len(found)
        expected += len(gold(ref))
    precision, recall = hits / predicted, hits / expected
    print(f"\nconstraint extraction on {len(SAMPLE)} real ReDial test seeker turns ({expected} labelled "
          f"constraints): precision {hits}/{predicted} = {precision:.3f}, recall {hits}/{expected} = {recall:.3f}")
    assert len(SAMPLE) == 100 and expected == 21
    assert precision >= 0.7 and recall >= 0.8
