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
from gymnasium.vector import AutoresetMode, VectorWrapper
from gymnasium.vector.utils import batch_space

from agents.base import AgentContext
from agents.history import EpisodeHistory, follow_session
from musicrec_gym.errors import ConfigError
from musicrec_gym.session_features import SessionPlays, standardized
from musicrec_gym.wrappers import SessionFeaturesVector, extended_box


class SessionObservation:
    """Appends ``SessionFeaturesVector``'s columns (standardised embeddings) to observations.

    Args:
        context: The agent's context (its ``obs_dim`` is the environment's observation).
    """

    def __init__(self, context: AgentContext) -> None:
        self.plays = SessionPlays(standardized(context.track_features))
        self.track_artist = context.track_artist
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

    def wrap(self, env: Any, mask: bool = False, artist_window: int = 0) -> VectorWrapper:
        """The training environment: ``env`` with the same columns appended.

        With ``mask``, then the allowed-track mask too (:class:`MaskObservation`), which
        with ``artist_window`` also blocks the artists of the last recommendations.
        """
        features = SessionFeaturesVector(env)
        if not mask:
            return features
        return MaskObservation(features, self.track_artist, artist_window)


class MaskObservation(VectorWrapper):
    """The allowed-track mask appended to ``SessionFeaturesVector``'s observation.

    One float32 column per track, 1 where the track may be recommended, for policies
    trained with the mask (``train_mask``). The mask is the one the agent acts with,
    from the same code (``EpisodeHistory.blocked``): the tracks not played this session
    (warm-up included, as ``info["action_mask"]``), and with ``artist_window`` not by
    an artist of the last that many recommendations either. Same-step autoreset (SB3's):
    ``info["final_obs"]`` gets the ended session's last mask.

    Args:
        env: A ``SessionFeaturesVector`` with same-step autoreset.
        track_artist: (n_tracks,) artist of each track (for ``artist_window``).
        artist_window: Block the artists of this many last recommendations (0: none).
    """

    def __init__(
        self,
        env: SessionFeaturesVector,
        track_artist: np.ndarray | None = None,
        artist_window: int = 0,
    ) -> None:
        super().__init__(env)
        if env.autoreset_mode is not AutoresetMode.SAME_STEP:
            raise ConfigError(
                f"MaskObservation needs same-step autoreset, got {env.autoreset_mode}"
            )
        n = int(env.single_action_space.n)
        box = env.single_observation_space
        self.single_observation_space = spaces.Box(
            np.concatenate([box.low, np.zeros(n, np.float32)]),
            np.concatenate([box.high, np.ones(n, np.float32)]),
            dtype=np.float32,
        )
        self.observation_space = batch_space(self.single_observation_space, self.num_envs)
        self.autoreset_mode = env.autoreset_mode
        self.history = EpisodeHistory(n, track_artist, artist_window)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset ``env`` (all slots, or ``options["reset_mask"]``); observations with the mask."""
        obs, info = self.env.reset(**kwargs)
        options = kwargs.get("options")
        slots = options.get("reset_mask") if isinstance(options, dict) else None
        self.history.end(np.ones(self.num_envs, bool) if slots is None else slots)
        return with_mask(obs, self.history.blocked(self.num_envs, info)), info

    def step(self, actions: Any) -> tuple[np.ndarray, Any, Any, Any, dict[str, Any]]:
        """Step ``env``; its observations (and ``final_obs``) with the mask."""
        self.history.mark(np.asarray(actions, dtype=np.int64).reshape(self.num_envs))
        obs, reward, terminated, truncated, info = self.env.step(actions)
        done = np.asarray(terminated | truncated, dtype=bool)
        if done.any():
            if "final_obs" in info:
                last = with_mask(info["final_obs"], self.history.blocked(self.num_envs))
                info = {**info, "final_obs": last}
            self.history.end(done)
        obs = with_mask(obs, self.history.blocked(self.num_envs, info))
        return obs, reward, terminated, truncated, info


def with_mask(obs: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """``obs`` followed by the allowed-track mask (1: allowed), float32: a policy's input.

    The one encoding of the mask, in training (``MaskObservation``) as at ``act``.
    """
    return np.concatenate([obs, ~blocked], axis=1, dtype=np.float32)
