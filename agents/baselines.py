"""Reference policies that do not learn: random, most-popular, the oracle and the planner.

They bracket every learner: the normalised score of an agent is
``(agent - random) / (upper - random)``, the upper reference being the greedy oracle on
``MusicRec-v0`` and the planner on ``MusicRecLongTerm-v0`` (where greedy is far from
optimal).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import (
    SETTINGS,
    Agent,
    AgentContext,
    ReadsSimulator,
    batch_size,
    register_agent,
)
from agents.history import AvoidsRepeats, masked_argmax
from musicrec_gym.errors import ConfigError
from musicrec_gym.optimum_plan import Planner


def popularity_score(plays: np.ndarray) -> np.ndarray:
    """A strictly decreasing score over the catalog: plays, ties broken by catalog order."""
    plays = np.asarray(plays, dtype=np.float64)
    n = len(plays)
    order = np.lexsort((np.arange(n), -plays))
    score = np.empty(n, dtype=np.float64)
    score[order] = np.arange(n, 0, -1, dtype=np.float64)
    return score


@register_agent("random")
@dataclass
class RandomAgent(Agent):
    """Uniformly random choices: the lower reference of the normalised score.

    A uniform track (catalog setting), a uniform candidate (``candidates``), or a slate
    of distinct uniform tracks (``slate``).
    """

    name = "random"
    settings = SETTINGS

    def act(self, obs: Any, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """One uniformly random choice per slot."""
        b, k = batch_size(obs), self.context.slate_size
        if k:
            keys = self.rng.random((b, self.context.n_tracks))
            return np.argpartition(keys, k - 1, axis=1)[:, :k].astype(np.int64)
        return self.rng.integers(0, self.context.n_actions, size=b, dtype=np.int64)


@register_agent("popularity")
@dataclass
class PopularityAgent(AvoidsRepeats, Agent):
    """Most-played tracks first (ties by catalog order), never twice in a session.

    The classic non-personalised recommender (e.g. Cremonesi et al., "Performance of
    recommender algorithms on top-N recommendation tasks", RecSys 2010): every session
    gets the logs' most-played track, then the next most played, and so on.
    """

    name = "popularity"

    def bind(self, context: AgentContext) -> None:
        """Rank the catalog by play count."""
        super().bind(context)
        self._score = popularity_score(context.track_plays)

    def act(self, obs: np.ndarray, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """The most-played track not yet recommended in each slot's session."""
        blocked = self.history.blocked(len(obs), info)
        actions = masked_argmax(np.broadcast_to(self._score, blocked.shape), blocked)
        self.history.mark(actions)
        return actions


@register_agent("oracle")
@dataclass
class OracleAgent(Agent):
    """Greedy on the simulator's true expected reward: the upper reference.

    It reads ``info["optimal_action"]``, the best track for the next step of each slot,
    which only a simulator can know. Zero regret at every step by construction. In the
    ``candidates`` setting that is the best candidate's index, in the ``slate`` setting
    the optimal slate.
    """

    name = "oracle"
    settings = SETTINGS

    def act(self, obs: Any, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """The simulator's best choice for each slot."""
        if "optimal_action" not in info:
            raise ConfigError(
                "the oracle needs info['optimal_action'] from a MusicRec environment; "
                f"got info keys {sorted(info)}"
            )
        actions = np.asarray(info["optimal_action"], dtype=np.int64)
        k = self.context.slate_size
        shape = (batch_size(obs), k) if k else (batch_size(obs),)
        if actions.shape != shape:
            raise ConfigError(
                f"info['optimal_action'] has shape {actions.shape}, expected {shape}: "
                "pass the vector environment's batched info"
            )
        return actions.copy()


@register_agent("planner")
@dataclass
class PlannerAgent(ReadsSimulator, Agent):
    """A lookahead planner on the simulator's true model: the upper reference of delayed worlds.

    Each step it runs :class:`musicrec_gym.optimum_plan.Planner` (an expectimax over the
    next ``depth`` plays, ``top_k`` tracks per node and kind of move, each leaf valued
    exactly by the best of a few open-loop rules) on the state of every slot. Like the
    oracle it reads what only the simulator knows (the listeners' taste, satisfaction
    and patience), through the environment given to ``attach``. On
    ``MusicRecLongTerm-v0`` it is the reference the benchmark normalises by
    (``docs/optimum.md`` brackets how far it is from the optimum).
    """

    name = "planner"
    role = "the planner reads the simulator's state"
    label = "the planner"
    top_k: int = 2  # the report's planner (musicrec optimum --long-term): 14.93 listens
    depth: int = 2  # per session there, about 16 ms per 64-slot step (top_k 4: 131 ms)

    def __post_init__(self) -> None:
        self.planner = Planner(top_k=self.top_k, depth=self.depth)  # checks both

    def hyperparameters(self) -> dict[str, Any]:
        """``top_k`` and ``depth``."""
        return {"top_k": self.top_k, "depth": self.depth}

    def act(self, obs: np.ndarray, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """The planner's track for each slot's current state."""
        return np.asarray(self.planner.actions(self.simulator(obs)), dtype=np.int64)
