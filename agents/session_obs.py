"""The session features, appended to a deep agent's observations (``session_features``).

The nine numbers of ``MusicRec-v0``'s observation encode only the last five plays. The
linear bandits also see the mean embeddings of the session's listened and skipped plays
(warm-up included); ``musicrec_gym.wrappers.SessionFeaturesVector`` gives any agent the
same columns. :class:`SessionObservation` lets an SB3 agent train on that wrapper and
act on the same numbers, computed from ``info`` as the bandits compute theirs
(``agents.history.follow_session``), so training and acting see identical inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from agents.base import AgentContext
from agents.history import EpisodeHistory, follow_session
from musicrec_gym.session_features import SessionPlays, standardized
from musicrec_gym.wrappers import SessionFeaturesVector, extended_box


class SessionObservation:
    """Appends ``SessionFeaturesVector``'s columns (standardised embeddings) to observations.

    Args:
        context: The agent's context (its ``obs_dim`` is the environment's observation).
    """

    def __init__(self, context: AgentContext) -> None:
        self.plays = SessionPlays(standardized(context.track_features))
        base = spaces.Box(-1.0, 1.0, shape=(context.obs_dim,), dtype=np.float32)
        box = extended_box(base, self.plays, "session_features")
        n = self.plays.n_features
        self.low, self.high = box.low[-n:], box.high[-n:]
        self.dim = context.obs_dim + n

    def append(self, history: EpisodeHistory, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """``obs`` with each slot's session features, after folding in what ``info`` says.

        ``history`` must be the agent's own, marked with every action it took.
        """
        follow_session(history, self.plays, len(obs), info)
        feats = np.clip(self.plays.features().astype(np.float32), self.low, self.high)
        return np.concatenate([np.asarray(obs, dtype=np.float32), feats], axis=1)

    @staticmethod
    def wrap(env: Any) -> SessionFeaturesVector:
        """The training environment: ``env`` with the same columns appended."""
        return SessionFeaturesVector(env)
