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
from gymnasium.vector import VectorWrapper
from gymnasium.vector.utils import batch_space

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
    def wrap(env: Any, mask: bool = False) -> VectorWrapper:
        """The training environment: ``env`` with the same columns appended.

        With ``mask``, then the allowed-track mask too (:class:`MaskObservation`).
        """
        features = SessionFeaturesVector(env)
        return MaskObservation(features) if mask else features


class MaskObservation(VectorWrapper):
    """``SessionFeaturesVector``'s ``info["action_mask"]`` appended to the observation.

    One float32 column per track, 1 where the track may be recommended (not played this
    session), for policies trained with the mask (``train_mask``). With same-step
    autoreset, ``info["final_obs"]`` gets the ended session's last mask.

    Args:
        env: A ``SessionFeaturesVector``.
    """

    def __init__(self, env: SessionFeaturesVector) -> None:
        super().__init__(env)
        n = int(env.single_action_space.n)
        box = env.single_observation_space
        self.single_observation_space = spaces.Box(
            np.concatenate([box.low, np.zeros(n, np.float32)]),
            np.concatenate([box.high, np.ones(n, np.float32)]),
            dtype=np.float32,
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.autoreset_mode = env.autoreset_mode

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset ``env``; its observations with the mask."""
        obs, info = self.env.reset(**kwargs)
        return self._with_mask(obs, info["action_mask"]), info

    def step(self, actions: Any) -> tuple[np.ndarray, Any, Any, Any, dict[str, Any]]:
        """Step ``env``; its observations (and ``final_obs``) with the mask."""
        obs, reward, terminated, truncated, info = self.env.step(actions)
        if "final_obs" in info:
            info = {**info, "final_obs": self._with_mask(
                info["final_obs"], info["final_info"]["action_mask"]
            )}  # fmt: skip
        return self._with_mask(obs, info["action_mask"]), reward, terminated, truncated, info

    @staticmethod
    def _with_mask(obs: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return np.concatenate([obs, mask], axis=1, dtype=np.float32)
