"""The reward function: what a listen (or a skip) is worth, in each reward mode.

:class:`RewardModel` is the NumPy reference (``BatchSimulator``, ``FittedSimulator``
and the tests use it); :func:`expected_one` and :func:`draw_one` are the same formulas
for one play, called by the numba kernels (:mod:`musicrec_gym.sim.kernels`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicrec_gym.errors import ConfigError, unknown_name_message
from musicrec_gym.sim.constants import JIT_OPTIONS, REWARD_MODES
from musicrec_gym.sim.params import RewardParams


class RewardModel:
    """Turns listen outcomes into rewards in one of the modes ``listen``, ``time``, ``event``.

    The NumPy reference of :func:`expected_one` and :func:`draw_one`.

    Args:
        mode: Reward mode.
        params: Reward scales.
    """

    def __init__(self, mode: str, params: RewardParams) -> None:
        self.a, self.b = self.affine(mode, params)
        self.mode = mode
        self.params = params

    @staticmethod
    def affine(mode: str, params: RewardParams) -> tuple[float, float]:
        """(a, b) such that a track listened with probability p has expected reward a + b p.

        Raises:
            ConfigError: ``mode`` is not a reward mode (with a did-you-mean hint).
        """
        if mode == "listen":
            return 0.0, 1.0
        if mode == "time":
            skipped = sum(params.time_skipped) / 2
            return skipped, sum(params.time_listened) / 2 - skipped
        if mode == "event":
            return -1.0, 1.0 + params.p_like + 2 * params.p_add + 1.0
        raise ConfigError(unknown_name_message("reward mode", str(mode), REWARD_MODES))

    def bounds(self) -> tuple[float, float]:
        """The lowest and the highest reward one step can give (what :meth:`draw` can draw)."""
        if self.mode == "listen":
            return 0.0, 1.0
        if self.mode == "time":
            values = (*self.params.time_listened, *self.params.time_skipped)
            return float(min(values)), float(max(values))
        return -1.0, 4.0  # event: a skip -1; a listen 1, plus a like 1, plus an add 2

    def expected(self, p_listen: np.ndarray) -> np.ndarray:
        """Expected reward of a track listened with probability ``p_listen``."""
        return self.a + self.b * p_listen

    def draw(self, listened: np.ndarray, u1: np.ndarray, u2: np.ndarray) -> np.ndarray:
        """Realised reward given the listen outcome and two uniforms per slot."""
        if self.mode == "listen":
            return listened.astype(np.float64)
        p = self.params
        if self.mode == "time":
            lo_l, hi_l = p.time_listened
            lo_s, hi_s = p.time_skipped
            return np.where(listened, lo_l + (hi_l - lo_l) * u1, lo_s + (hi_s - lo_s) * u1)
        liked = (u1 < p.p_like).astype(np.float64)
        added = (u2 < p.p_add).astype(np.float64)
        return np.where(listened, 1.0 + liked + 2.0 * added, -1.0)

    @property
    def mode_code(self) -> int:
        """The mode's code in the compiled functions (its index in ``REWARD_MODES``)."""
        return REWARD_MODES.index(self.mode)


# --------------------------------------------------------------------------- compiled


@njit(**JIT_OPTIONS)
def expected_one(a: float, b: float, p_listen: float) -> float:
    """``RewardModel.expected`` of one track: ``a + b * p_listen``."""
    return a + b * p_listen


@njit(**JIT_OPTIONS)
def draw_one(
    mode: int,
    listened: bool,
    u1: float,
    u2: float,
    time_listened_lo: float,
    time_listened_hi: float,
    time_skipped_lo: float,
    time_skipped_hi: float,
    p_like: float,
    p_add: float,
) -> float:
    """``RewardModel.draw`` of one play (``mode``: :attr:`RewardModel.mode_code`)."""
    if mode == 0:
        return 1.0 if listened else 0.0
    if mode == 1:
        if listened:
            return time_listened_lo + (time_listened_hi - time_listened_lo) * u1
        return time_skipped_lo + (time_skipped_hi - time_skipped_lo) * u1
    if listened:
        liked = 1.0 if u1 < p_like else 0.0
        added = 1.0 if u2 < p_add else 0.0
        return 1.0 + liked + 2.0 * added
    return -1.0
