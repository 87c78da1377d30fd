"""Gymnasium wrappers that give any agent what the project's bandits use.

``SessionFeatures(gym.make("MusicRec-v0"))`` and, for the native vector environment,
``SessionFeaturesVector(gym.make_vec("MusicRec-v0", num_envs=N))`` append the session
features of ``musicrec_gym.session_features`` to the observation and put an action mask
(the tracks not played yet this session) in ``info["action_mask"]`` and in
``action_masks()``, as sb3-contrib's ``MaskablePPO`` reads it::

    env = SessionFeatures(gym.make("MusicRec-v0"))
    venv = SessionFeaturesVector(gym.make_vec("MusicRec-v0", num_envs=64))

The linear bandits of ``agents.linear`` compute their session features with the same
code (``SessionPlays``), so an outside agent sees exactly the same numbers.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from musicrec_gym.errors import ConfigError
from musicrec_gym.session_features import (
    WARMUP_KEY,
    WARMUP_LISTENED_KEY,
    SessionPlays,
    standardized,
)

MASK_KEY = "action_mask"
"""The info key of the action mask: True for the tracks allowed (not played yet)."""

_ONE = np.zeros(1, dtype=np.int64)


def session_plays_for(env: Any, standardize: bool, name: str) -> SessionPlays:
    """An empty ``SessionPlays`` on the track embeddings of ``env``'s world.

    Raises:
        ConfigError: ``env`` has no MusicRec world (``env.unwrapped.world``), or its
            observation space is not a float32 ``Box``.
    """
    world = getattr(env.unwrapped, "world", None)
    if world is None and isinstance(env, VectorEnv) and hasattr(env.unwrapped, "get_attr"):
        try:  # Gymnasium's SyncVectorEnv / AsyncVectorEnv of MusicRec-v0
            world = env.unwrapped.get_attr("world")[0]
        except AttributeError:
            world = None
    if world is None or not hasattr(world, "embeddings"):
        raise ConfigError(
            f"{name} wraps a MusicRec-v0 environment (one with a `world`), got {env!r}"
        )
    if not isinstance(standardize, bool):
        raise ConfigError(f"`standardize` must be a bool, got {standardize!r}")
    emb = standardized(world.embeddings) if standardize else world.embeddings
    return SessionPlays(emb)


def extended_box(base: gym.Space, plays: SessionPlays, name: str) -> spaces.Box:
    """``base`` (a 1-D ``Box``) followed by the feature columns' bounds."""
    if not isinstance(base, spaces.Box) or len(base.shape) != 1:
        raise ConfigError(f"{name} needs a 1-D Box observation space, got {base!r}")
    low, high = plays.bounds()
    return spaces.Box(
        np.concatenate([base.low, low]).astype(np.float32),
        np.concatenate([base.high, high]).astype(np.float32),
        dtype=np.float32,
    )


class SessionFeatures(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """``MusicRec-v0`` with the session's mean track embeddings and an action mask.

    ``SessionFeatures(gym.make("MusicRec-v0"))``. The observation is the environment's
    followed by ``2 d`` columns (``d`` = 8 in the built-in world): the mean embedding of
    the session's plays, warm-up included, split by outcome. With ``L`` and ``S`` the
    sums of the embeddings of the tracks listened to and skipped this session and ``n``
    the number of plays (``max(n, 1)``):

    | Index            | Observation                           | Min         | Max         |
    |------------------|---------------------------------------|-------------|-------------|
    | 0 – k-1          | the environment's observation (k = 9) | its own     | its own     |
    | k + j, j < d     | ``L[j] / n``: listened plays          | min(0, e_j) | max(0, e_j) |
    | k + d + j, j < d | ``S[j] / n``: skipped plays           | min(0, e_j) | max(0, e_j) |

    where ``e_j`` is column ``j`` of the world's track embeddings, standardised over the
    catalog (``standardize=True``, as the bandits use them), and its min / max run over
    the catalog. A fitted world's warm-up tracks outside the catalog (``-1``) are not
    plays here. These are the numbers the linear bandits append to their state
    (``agents.linear``, ``session_features=True``): the same code computes both
    (``musicrec_gym.session_features.SessionPlays``).

    ``info["action_mask"]``, at reset and at every step: a bool array ``(n_tracks,)``,
    True for the tracks not played yet this session (warm-up plays and recommendations);
    every track once all have been played. ``action_masks()`` returns the same array, as
    sb3-contrib's ``MaskablePPO`` expects. The mask is a hint: the environment still
    accepts a repeat (the listener penalises it).

    Args:
        env: A ``MusicRec-v0`` environment (any wrappers of it whose info keeps the
            keys ``track``, ``listened``, ``warmup_tracks`` and ``warmup_listened``).
        standardize: Standardise each embedding column over the catalog (default, what
            the bandits use); False: the raw embeddings.

    Raises:
        ConfigError: ``env`` is not a MusicRec environment, or ``standardize`` is not a
            bool.
    """

    def __init__(self, env: gym.Env, standardize: bool = True) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, standardize=standardize)
        gym.Wrapper.__init__(self, env)
        self.plays = session_plays_for(env, standardize, "SessionFeatures")
        self.plays.resize(1)
        self.observation_space = extended_box(env.observation_space, self.plays, "SessionFeatures")
        self._low = self.observation_space.low[-self.plays.n_features :]
        self._high = self.observation_space.high[-self.plays.n_features :]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the environment; the features start from the warm-up plays."""
        obs, info = self.env.reset(seed=seed, options=options)
        warm = np.asarray(info[WARMUP_KEY])[None]
        self.plays.reset(_ONE, warm, np.asarray(info[WARMUP_LISTENED_KEY])[None])
        return self._observation(obs), self._with_mask(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Step the environment and add the play to the session."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        track = int(info["track"])
        if track >= 0:
            self.plays.add(_ONE, np.array([track]), np.array([bool(info["listened"])]))
        return self._observation(obs), reward, terminated, truncated, self._with_mask(info)

    def action_masks(self) -> np.ndarray:
        """The tracks allowed now, ``(n_tracks,)`` bool (sb3-contrib's ``MaskablePPO``)."""
        return self.plays.allowed()[0]

    def _observation(self, obs: np.ndarray) -> np.ndarray:
        feats = np.clip(self.plays.features()[0].astype(np.float32), self._low, self._high)
        return np.concatenate([np.asarray(obs, dtype=np.float32), feats])

    def _with_mask(self, info: dict[str, Any]) -> dict[str, Any]:
        info[MASK_KEY] = self.action_masks()
        return info


class SessionFeaturesVector(VectorWrapper):
    """``SessionFeatures`` for a vector environment, slot by slot.

    ``SessionFeaturesVector(gym.make_vec("MusicRec-v0", num_envs=N))``: the same columns
    as ``SessionFeatures`` (see its table) appended to each slot's observation, and
    ``info["action_mask"]`` (with its ``_action_mask`` mask) and ``action_masks()`` of
    shape ``(N, n_tracks)``. Slot ``i`` gives what ``SessionFeatures`` gives on a single
    environment on the same trajectory, in every ``autoreset_mode`` of the native
    environment (and for Gymnasium's ``SyncVectorEnv`` of ``MusicRec-v0``): with
    same-step autoreset the ended session's last observation in ``info["final_obs"]``
    carries its own features, and ``info["final_info"]`` its action mask.

    Args:
        env: A vector environment of ``MusicRec-v0`` (its info arrays carry ``track``,
            ``listened``, ``warmup_tracks`` and ``warmup_listened``).
        standardize: As for ``SessionFeatures``.

    Raises:
        ConfigError: ``env`` is not a vector MusicRec environment, or ``standardize`` is
            not a bool.
    """

    def __init__(self, env: VectorEnv, standardize: bool = True) -> None:
        super().__init__(env)
        self.plays = session_plays_for(env, standardize, "SessionFeaturesVector")
        self.plays.resize(self.num_envs)
        single = extended_box(env.single_observation_space, self.plays, "SessionFeaturesVector")
        self.single_observation_space = single
        self.observation_space = batch_space(single, self.num_envs)
        self._low = single.low[-self.plays.n_features :]
        self._high = single.high[-self.plays.n_features :]
        mode = env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        self.autoreset_mode = AutoresetMode(mode)
        self._all = np.arange(self.num_envs)
        self._restart = np.zeros(self.num_envs, dtype=bool)  # next-step: ended last step

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the slots (all, or ``options["reset_mask"]``); features from their warm-ups."""
        obs, info = self.env.reset(seed=seed, options=options)
        mask = options.get("reset_mask") if isinstance(options, dict) else None
        slots = self._all if mask is None else np.flatnonzero(mask)
        self._start(slots, info)
        self._restart[slots] = False
        return self._observation(obs), self._with_mask(info, mask)

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step every slot; add each play to its session, restart the sessions that ended."""
        obs, reward, terminated, truncated, info = self.env.step(actions)
        restart = self._restart
        done = np.asarray(terminated | truncated, dtype=bool)
        track = np.array(info["track"], dtype=np.int64)
        listened = np.array(info["listened"], dtype=bool)
        final = info.get("final_info")
        if self.autoreset_mode is AutoresetMode.SAME_STEP and done.any() and final:
            # the ended sessions' last plays (SyncVectorEnv shows the new ones' resets)
            track[done] = np.asarray(final["track"])[done]
            listened[done] = np.asarray(final["listened"], dtype=bool)[done]
        played = np.flatnonzero(~restart & (track >= 0))
        self.plays.add(played, track[played], listened[played])
        if self.autoreset_mode is AutoresetMode.NEXT_STEP:
            if restart.any():
                self._start(np.flatnonzero(restart), info)
            self._restart = done
        elif self.autoreset_mode is AutoresetMode.SAME_STEP and done.any():
            self._finish(np.flatnonzero(done), done, info)
        return self._observation(obs), reward, terminated, truncated, self._with_mask(info)

    def action_masks(self) -> np.ndarray:
        """The tracks allowed now in each slot, ``(N, n_tracks)`` bool."""
        return self.plays.allowed()

    def _start(self, slots: np.ndarray, info: dict[str, Any]) -> None:
        warm = np.asarray(info[WARMUP_KEY])[slots]
        self.plays.reset(slots, warm, np.asarray(info[WARMUP_LISTENED_KEY])[slots])

    def _finish(self, ended: np.ndarray, done: np.ndarray, info: dict[str, Any]) -> None:
        """Same-step autoreset: the ended sessions' final obs and mask, then new sessions."""
        if "final_obs" in info:
            final = np.zeros(self.observation_space.shape, dtype=np.float32)
            last = info["final_obs"]  # an array, or SyncVectorEnv's object array
            rows = np.stack([np.asarray(last[i], dtype=np.float32) for i in ended])
            final[ended] = np.concatenate([rows, self._features(ended)], axis=1)
            info["final_obs"] = final
        if isinstance(info.get("final_info"), dict):
            allowed = np.zeros((self.num_envs, self.plays.n_tracks), dtype=bool)
            allowed[ended] = self.plays.allowed(ended)
            info["final_info"] = {**info["final_info"], MASK_KEY: allowed, "_" + MASK_KEY: done}
        self._start(ended, info)  # the state keys now describe the new sessions

    def _features(self, slots: np.ndarray | None = None) -> np.ndarray:
        feats = self.plays.features(slots).astype(np.float32)
        return np.clip(feats, self._low, self._high)

    def _observation(self, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([np.asarray(obs, dtype=np.float32), self._features()], axis=1)

    def _with_mask(self, info: dict[str, Any], mask: np.ndarray | None = None) -> dict[str, Any]:
        info[MASK_KEY] = self.action_masks()
        info["_" + MASK_KEY] = np.ones(self.num_envs, bool) if mask is None else mask
        return info
