"""What a ranking recommender sees when it is wrapped as a conversational system: the logged context as
offline, then the simulated turns, its own proposals without their items (the user never endorsed them)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

import worlds
from convrec.data.model import ContextView, Turn
from convrec.retrieval.base import Recommender
from convrec.simulate.system import RankingSystem
from convrec.simulate.turns import UserTurn


class Spy(Recommender):
    """Scores items in catalogue order (first best) and keeps every view it is given."""

    name = "spy"

    def __init__(self, catalog):
        super().__init__(catalog)
        self.views: list[ContextView] = []

    def score(self, samples: Sequence[ContextView]) -> np.ndarray:
        self.views += list(samples)
        return np.tile(-np.arange(len(self.catalog), dtype=np.float32), (len(samples), 1))


def test_a_ranking_system_reads_the_dialogue_without_its_own_proposals():
    world = worlds.world()
    spy = Spy(world.catalog)
    context = [Turn("seeker", "I liked The Farmhouse", ("horror0",)), Turn("recommender", "Try The Motel", ("horror5",)),
               Turn("seeker", "Seen it. Something else?")]
    conversation = RankingSystem(spy, slate=3).start("d", context, exclude=["horror1"])
    first = conversation.respond(None)
    assert spy.views[0].context == tuple(context)  # the offline sample's view
    assert first.slate == ("horror0", "horror2", "horror3")  # the best three but the excluded one
    second = conversation.respond(UserTurn(text="No thanks, I'm not into horror.", act="reject"))
    view = spy.views[1]
    assert view.context[:3] == tuple(context)
    assert view.context[3].role == "recommender" and view.context[3].items == () and view.context[3].text == first.text
    assert view.context[4] == Turn("seeker", "No thanks, I'm not into horror.")
    assert second.slate == ("horror4", "horror5", "horror6")  # nothing shown before, nor excluded
    assert np.isneginf(second.scores[world.catalog.indices(["horror0", "horror1", "horror2", "horror3"])]).all()
