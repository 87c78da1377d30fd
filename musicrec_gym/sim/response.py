"""The response model: how likely a listener is to listen to a track, and what that is worth."""

from __future__ import annotations

import numpy as np

from musicrec_gym.data.synthetic import WorldTruth
from musicrec_gym.sim.params import REWARD_MODES, ResponseParams, RewardParams


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return 1.0 / (1.0 + np.exp(-x))


class ResponseModel:
    """Listen logits split into a static part (listener × track) and a session fatigue.

    The static logit ``bias + b_u + taste*<θ_u, φ_i> + pop*z_i`` never changes within a
    session, which is what lets the simulator cache each listener's best tracks.

    Args:
        truth: The world's hidden truth.
        params: Response parameters.
    """

    def __init__(self, truth: WorldTruth, params: ResponseParams) -> None:
        self.params = params
        self.factors = truth.track_factors.astype(np.float64)
        self.taste = truth.listener_taste.astype(np.float64) * params.taste
        self.track_term = params.pop * truth.pop_z.astype(np.float64)
        self.user_term = params.bias + truth.listener_bias.astype(np.float64)

    @property
    def n_tracks(self) -> int:
        """Catalog size."""
        return self.factors.shape[0]

    def static(self, users: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """Static logits of one track per listener: shapes (B,), (B,) -> (B,)."""
        dot = np.einsum("bk,bk->b", self.taste[users], self.factors[tracks])
        return self.user_term[users] + dot + self.track_term[tracks]

    def static_rows(self, users: np.ndarray) -> np.ndarray:
        """Static logits of every track for each listener: (B,) -> (B, n_tracks)."""
        rows = self.taste[users] @ self.factors.T
        rows += self.track_term[None, :]
        rows += self.user_term[users][:, None]
        return rows

    def fatigue(self, repeated: np.ndarray, same_artist: np.ndarray) -> np.ndarray:
        """Fatigue penalty from a repeat flag and the count of same-artist tracks in the window."""
        return self.params.repeat * repeated + self.params.artist * same_artist


class RewardModel:
    """Turns listen outcomes into rewards in one of the modes ``listen``, ``time``, ``event``.

    Args:
        mode: Reward mode.
        params: Reward scales.
    """

    def __init__(self, mode: str, params: RewardParams) -> None:
        self.a, self.b = params.affine(mode)
        self.mode = mode
        self.params = params
        assert mode in REWARD_MODES

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
