"""The machinery of ``MusicRecSlate-v0`` shared by its single and vector environment.

:class:`SlateCore` is a :class:`~musicrec_gym.envs.core.SessionCore` whose step shows a
slate: it keeps, per slot, every catalog track's expected reward and choice utility in
the current state (``Simulator.expected_rewards``, O(n_tracks) per slot and step) and the
exact optimal slate (:func:`musicrec_gym.slate_choice.optimal_slates_ordered`); a step draws the
listener's pick from the slot's own random stream, then plays the picked track through
the simulator exactly as ``MusicRec-v0`` plays an action. A no-pick ends the session
(see :mod:`musicrec_gym.envs.slate`). The simulator is used unchanged, so the catalog
setting stays bit for bit what it was.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces
from threadpoolctl import ThreadpoolController

from musicrec_gym.checks import is_int
from musicrec_gym.envs.core import (
    ENV_KWARGS,
    SETTING_KWARGS,
    SLOT0,
    SessionCore,
    check_kwargs,
    first_slot,
)
from musicrec_gym.errors import ArgumentError, InvalidActionError, unknown_name_message
from musicrec_gym.slate_choice import SlateChoice, check_slate_size, optimal_slates_ordered

SLATE_ENV_NAME = "MusicRecSlate-v0"
DEFAULT_SLATE = 5
"""The slate size ``K`` of ``MusicRecSlate-v0``."""
CHOICE_SCALE = 1.0
"""A track's choice utility is this times its listen logit."""
NO_PICK_UTILITY = 0.0
"""The utility of picking nothing (a track listened to with probability 1/2 is as
attractive as nothing)."""
CHOICE_DRAWS = 1
"""Uniforms a slate step draws from the slot's stream (the pick), before the play's."""


class SlateSpace(spaces.MultiDiscrete):
    """``MultiDiscrete([n_tracks] * K)`` whose members are slates of K *distinct* tracks.

    ``sample()`` draws K distinct tracks uniformly (so that checkers that step with
    samples, such as Gymnasium's and SB3's ``check_env``, step with valid slates) and
    ``contains`` refuses duplicates. Everything else is ``MultiDiscrete``'s.
    """

    def __init__(self, n_tracks: int, k: int, seed: int | np.random.Generator | None = None):
        super().__init__(np.full(k, n_tracks, dtype=np.int64), seed=seed)

    def sample(self, mask: Any = None, probability: Any = None) -> np.ndarray:
        """K distinct uniformly random tracks (masks and probabilities: ``MultiDiscrete``'s)."""
        if mask is not None or probability is not None:
            return super().sample(mask=mask, probability=probability)
        n, k = int(self.nvec[0]), len(self.nvec)
        return self.np_random.choice(n, size=k, replace=False).astype(self.dtype)

    def contains(self, x: Any) -> bool:
        """A member of ``MultiDiscrete`` without a repeated track."""
        if not super().contains(x):
            return False
        arr = np.asarray(x)
        return len(np.unique(arr)) == arr.size


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def _flat(values: Any) -> list:
    """The leaves of nested lists, tuples and arrays."""
    if isinstance(values, (list, tuple, np.ndarray)):
        return [leaf for v in values for leaf in _flat(v)]
    return [values]


class SlateCore(SessionCore):
    """``n`` listening sessions that are shown slates of ``slate`` tracks.

    Args:
        n: Number of slots.
        slate: The slate size ``K``, an int in ``[1, n_tracks]``.
        choice_scale: Utility per unit of listen logit (> 0).
        no_pick_utility: The no-pick option's utility.
        **kwargs: ``MusicRec-v0``'s (``world``, ``reward``, ``profile_features``,
            ``max_steps``, ``string_ids``, ``long_term``).

    Raises:
        ConfigError: A bad ``slate`` (not an int, < 1, larger than the catalog) or choice
            parameter, or a bad ``MusicRec-v0`` argument (as ``SessionCore``).
    """

    def __init__(
        self,
        n: int,
        slate: int = DEFAULT_SLATE,
        choice_scale: float = CHOICE_SCALE,
        no_pick_utility: float = NO_PICK_UTILITY,
        **kwargs: Any,
    ) -> None:
        allowed = (*ENV_KWARGS, "slate", "choice_scale", "no_pick_utility")
        for key in kwargs:
            if key not in allowed and key not in SETTING_KWARGS:
                raise ArgumentError(
                    f"{SLATE_ENV_NAME}: {unknown_name_message('keyword argument', key, allowed)}"
                    f" (__init__() got an unexpected keyword argument {key!r})"
                )
        check_kwargs(kwargs, SLATE_ENV_NAME)
        super().__init__(n, **kwargs)
        self.k = check_slate_size(slate, self.world.n_tracks)
        reward = self.sim.reward
        self.choice = SlateChoice(
            scale=choice_scale, no_pick=no_pick_utility, reward_a=reward.a, reward_b=reward.b
        )
        self.action_space = SlateSpace(self.world.n_tracks, self.k)
        self.slate_keys = (*self.info_keys, "picked")
        """``info``'s keys in order: ``MusicRec-v0``'s, then ``picked``."""
        shape = (n, self.world.n_tracks)
        self.rewards = np.zeros(shape)  # every track's expected reward now, per slot
        self.utilities = np.zeros(shape)  # and its choice utility
        self.opt_slate = np.full((n, self.k), -1, dtype=np.int64)
        self.opt_value = np.zeros(n)

    # ------------------------------------------------------------------ state
    def refresh(self, slots: np.ndarray | slice = slice(None)) -> None:
        """Recompute the expected rewards, utilities and optimal slates of ``slots``.

        The catalog's expected rewards are a small matrix product per call, which one
        BLAS thread computes 10 times faster than several on a busy machine.
        """
        with _blas().limit(limits=1, user_api="blas"):
            rewards = self.sim.expected_rewards(slots)
        utilities = self.choice.utilities(rewards)
        self.rewards[slots] = rewards
        self.utilities[slots] = utilities
        best, value = optimal_slates_ordered(utilities, rewards, self.k, self.choice.no_pick)
        self.opt_slate[slots] = best
        self.opt_value[slots] = value

    def reset(self, slots: np.ndarray, users: np.ndarray | None = None) -> np.ndarray:
        """Start sessions in ``slots`` (as ``SessionCore.reset``) and find their optima."""
        obs = super().reset(slots, users)
        self.refresh(slots)
        return obs

    def state_info(self, slots: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        """The session keys of ``info``, ``optimal_action`` being the optimal slate."""
        out = super().state_info(slots)
        out["optimal_action"] = self.opt_slate[slots].copy()
        return out

    def reset_info(self, slots: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        """``SessionCore.reset_info`` plus ``picked`` = -1 (no slate shown yet)."""
        out = super().reset_info(slots)
        out["picked"] = np.full(len(out["user"]), -1, dtype=np.int64)
        return {key: out[key] for key in self.slate_keys}

    def reset_one(self, users: np.ndarray | None) -> tuple[np.ndarray, dict[str, Any]]:
        """Slot 0 of a one-slot core restarts: its observation and info (NumPy scalars)."""
        obs = self.reset(SLOT0, users)
        return obs[0], first_slot(self.reset_info())

    # ------------------------------------------------------------------ actions
    def check_slates(self, actions: Any, single: bool = False) -> np.ndarray:
        """Validate slates: ``(n, K)`` distinct track indices (``single``: one ``(K,)``).

        Integral floats are taken, as catalog actions are; bools, strings and NaN are not.

        Raises:
            InvalidActionError: The wrong type or shape (a slate of the wrong length), a
                track outside the catalog, or a track twice in one slate.
        """
        n_tracks, k = self.world.n_tracks, self.k
        want = (k,) if single else (self.n, k)
        expected = (
            f"a slate of {k} distinct integer track indices in [0, {n_tracks}), shape {want}"
            if single
            else f"{self.n} slates of {k} distinct integer track indices in [0, {n_tracks}), "
            f"shape {want}"
        )
        try:
            arr = np.asarray(actions)
        except (ValueError, TypeError):  # ragged nested lists
            raise InvalidActionError(f"expected {expected}, got {actions!r}") from None
        if arr.shape != want:
            what = f"a slate of length {arr.shape[-1]}" if arr.ndim >= 1 else "a scalar"
            raise InvalidActionError(
                f"expected {expected}, got {what} (shape {arr.shape}): {actions!r}"
            )
        kind = arr.dtype.kind
        if not isinstance(actions, np.ndarray) and kind in "iu":  # a list mixing in bools
            kind = "b" if any(isinstance(v, (bool, np.bool_)) for v in _flat(actions)) else kind
        ok = kind in "iu" or (
            kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
        )
        if kind == "O":
            ok = all(is_int(v) for v in arr.ravel())
        if not ok:
            raise InvalidActionError(f"expected {expected}, got {actions!r}")
        bad = (arr < 0) | (arr >= n_tracks)
        if bad.any():
            first = arr[np.nonzero(bad)][0]
            first = first.item() if isinstance(first, np.generic) else first
            raise InvalidActionError(
                f"slate track {first!r} is outside the action space "
                f"MultiDiscrete([{n_tracks}] * {k}): tracks are indices 0..{n_tracks - 1}"
            )
        slates = arr.astype(np.int64).reshape(-1, k)
        ordered = np.sort(slates, axis=1)
        dup = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if dup.any():
            row = int(np.flatnonzero(dup)[0])
            twice = ordered[row, 1:][ordered[row, 1:] == ordered[row, :-1]][0]
            where = "" if single else f" (slot {row})"
            raise InvalidActionError(
                f"the slate {slates[row].tolist()}{where} shows track {int(twice)} twice: a "
                "slate's tracks must be distinct"
            )
        return slates

    # ------------------------------------------------------------------ stepping
    def step_slates(
        self, slates: np.ndarray, last_obs: np.ndarray, autoreset: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any], np.ndarray]:
        """Show ``slates`` (valid, ``(n, K)``) in every slot: the listeners pick and play.

        Each slot draws its pick from its own stream (:data:`CHOICE_DRAWS` uniforms), then
        the simulator plays the picked tracks. A slot whose listener picks nothing ends its
        session there (``terminated``, reward 0, nothing played, its last observation
        ``last_obs``'s row) and, with ``autoreset``, restarts; its stream has drawn the
        pick and nothing else. (The simulator steps every slot at once, so in a batch such
        a slot is stepped with its slate's first track, and that play and its draws are
        discarded: the stream is rewound and, with ``autoreset``, the session restarted
        from there. A one-slot core does not step at all.)

        Returns:
            ``(obs, reward, terminated, truncated, info, final_obs)``: ``obs`` after the
            step (new sessions' first observations where ``autoreset`` restarted one);
            ``info`` describes the step, its session keys the sessions as they were
            after it (``optimal_action`` -1 where a session ended); ``final_obs`` the
            ended sessions' last observations (zeros elsewhere; with ``autoreset`` only).
        """
        n = self.n
        rows = np.arange(n)[:, None]
        shown_u, shown_r = self.utilities[rows, slates], self.rewards[rows, slates]
        probs = self.choice.probabilities(shown_u)
        expected = np.einsum("bk,bk->b", probs[:, :-1], shown_r)
        optimal = self.opt_value.copy()
        picked = self.choice.draw(probs, self.sim.streams.uniform(slice(None), CHOICE_DRAWS)[:, 0])
        none = picked < 0
        tracks = slates[np.arange(n), np.maximum(picked, 0)]
        if n == 1 and none[0] and not autoreset:
            return self._passed_over(last_obs, expected, optimal)
        where = np.flatnonzero(none)
        counters = self.stream_counters(where)  # right after the pick
        result, enc = self.step(tracks, autoreset=autoreset)
        info = self.step_info(tracks, result, enc)
        terminated = result.terminated | none
        truncated = result.truncated & ~none
        reward = np.where(none, 0.0, result.reward)
        obs = enc.obs
        final = enc.final_obs if autoreset else np.zeros_like(obs)
        if where.size:
            self.rewind_streams(where, counters)  # the discarded play's draws undone
            if autoreset:
                final[where] = last_obs[where]
                obs[where] = super().reset(where)
            else:
                obs[where] = last_obs[where]
        self.refresh()
        info["optimal_reward"] = optimal
        info["expected_reward"] = expected
        info["regret"] = optimal - expected
        info["listened"] = result.listened & ~none
        info["track"] = np.where(none, -1, tracks)
        info["picked"] = picked
        opt = self.opt_slate.copy()
        opt[terminated | truncated] = -1
        info["optimal_action"] = opt
        if self.string_ids:
            info["track_id"] = np.where(none, "", info["track_id"]).astype(object)
        info = {key: info[key] for key in self.slate_keys}
        return obs, reward, terminated, truncated, info, final

    def _passed_over(
        self, last_obs: np.ndarray, expected: np.ndarray, optimal: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any], np.ndarray]:
        """:meth:`step_slates`' outputs when a one-slot core's listener picks nothing.

        Nothing is played, so the simulator is not stepped: its state (what ``render``
        shows) stays the session's.
        """
        info = self.reset_info()
        info["optimal_reward"] = optimal
        info["expected_reward"] = expected
        info["regret"] = optimal - expected
        info["step"] = self.sim.steps[:1] + 1
        info["optimal_action"] = np.full((1, self.k), -1, dtype=np.int64)
        flags = np.ones(1, dtype=bool), np.zeros(1, dtype=bool)
        return last_obs.copy(), np.zeros(1), *flags, info, np.zeros_like(last_obs)
