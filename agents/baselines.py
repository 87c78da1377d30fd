"""Reference policies that do not learn: random, most-popular and the oracle.

They bracket every learner: the normalised score of an agent is
``(agent - random) / (oracle - random)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from agents.base import Agent, AgentContext, register_agent
from agents.history import AvoidsRepeats, masked_argmax
from musicrec_gym.errors import ConfigError


@register_agent("random")
@dataclass
class RandomAgent(Agent):
    """Uniformly random tracks: the lower reference of the normalised score."""

    name = "random"

    def act(self, obs: np.ndarray, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """One uniformly random track per slot."""
        return self.rng.integers(0, self.context.n_tracks, size=len(obs), dtype=np.int64)


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
        plays = np.asarray(context.track_plays, dtype=np.float64)
        n = context.n_tracks
        # A strictly decreasing score: plays, ties broken by catalog order.
        order = np.lexsort((np.arange(n), -plays))
        self._score = np.empty(n, dtype=np.float64)
        self._score[order] = np.arange(n, 0, -1, dtype=np.float64)

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
    which only a simulator can know. Zero regret at every step by construction.
    """

    name = "oracle"

    def act(self, obs: np.ndarray, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """The simulator's best track for each slot."""
        if "optimal_action" not in info:
            raise ConfigError(
                "the oracle needs info['optimal_action'] from a MusicRec environment; "
                f"got info keys {sorted(info)}"
            )
        actions = np.asarray(info["optimal_action"], dtype=np.int64)
        if actions.shape != (len(obs),):
            raise ConfigError(
                f"info['optimal_action'] has shape {actions.shape}, expected ({len(obs)},): "
                "pass the vector environment's batched info"
            )
        return actions.copy()
