"""Interactive evaluation: simulated users with a hidden goal talk to any recommender.

The pieces, in the order an episode uses them:

- :mod:`~convrec.simulate.goal`: the episodes (a seeded subset of a split's samples) and each one's hidden
  :class:`~convrec.simulate.goal.Goal` (the target, the seeker's liked items, the target's attribute values);
- :mod:`~convrec.simulate.user`: the :class:`~convrec.simulate.user.UserSimulator` interface, a dialogue
  participant, and the ``rule`` user (:class:`~convrec.simulate.user.RuleUser`); :mod:`~convrec.simulate.llm_user`:
  the ``llm`` user (the rule user's goal and plan in an LLM's words, with the LLM's own decision);
- :mod:`~convrec.simulate.system`: the :class:`~convrec.simulate.system.System` interface every recommender is
  adapted to (ranking recommenders, the HARPO agent, the chat's engine), and why it is not ``Engine.turn``;
- :mod:`~convrec.simulate.episode`: one episode and its record; :mod:`~convrec.simulate.runner`: the protocol
  with resumable JSONL transcripts (what ``convrec simulate`` runs); :mod:`~convrec.simulate.metrics`: the
  interactive metrics with standard errors; :mod:`~convrec.simulate.validity`: how well the rule user agrees
  with real seekers (``convrec simulate-validity``).

``simulate`` sits above ``serve`` (its chat adapter drives the chat's engine) and beside ``evaluate``, whose
metrics and protocols it reuses.
"""

from convrec.simulate.goal import Goal, Preference, choose_samples, goal_for
from convrec.simulate.llm_user import LLMUser, LLMUserOptions
from convrec.simulate.runner import SimulationConfig, build_system, simulate
from convrec.simulate.system import Conversation, EngineSystem, HarpoSystem, RankingSystem, System
from convrec.simulate.turns import SystemTurn, UserTurn
from convrec.simulate.user import USERS, RuleUser, UserOptions, UserSimulator

__all__ = ["USERS", "Conversation", "EngineSystem", "Goal", "HarpoSystem", "LLMUser", "LLMUserOptions", "Preference", "RankingSystem", "RuleUser",
           "SimulationConfig", "System", "SystemTurn", "UserOptions", "UserSimulator", "UserTurn", "build_system",
           "choose_samples", "goal_for", "simulate"]
