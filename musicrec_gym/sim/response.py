"""The response model: how likely a listener is to listen to a track.

The synthetic world's :class:`ResponseModel` (a fitted world's is
:mod:`musicrec_gym.sim.fitted_response`, trained by
:mod:`musicrec_gym.sim.response_training`). The synthetic listen logit is
``static(u, i) - fatigue``: :class:`ResponseModel` is the NumPy reference
(``BatchSimulator`` and the tests use it); the functions under ``# compiled`` are the
same formulas for one play, which the numba kernels (:mod:`musicrec_gym.sim.kernels`)
call, in the reference's order of operations (the tests hold the two paths to the same
floats).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicrec_gym.data.synthetic import WorldTruth
from musicrec_gym.sim.constants import JIT_OPTIONS
from musicrec_gym.sim.params import ResponseParams


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function."""
    return 1.0 / (1.0 + np.exp(-x))


class ResponseModel:
    """Listen logits split into a static part (listener × track) and a session fatigue.

    The NumPy reference of the compiled functions below.

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


# --------------------------------------------------------------------------- compiled


@njit(**JIT_OPTIONS)
def sigmoid_one(x: float) -> float:
    """:func:`sigmoid` of one value (the listen probability of a logit)."""
    return 1.0 / (1.0 + np.exp(-x))


@njit(**JIT_OPTIONS)
def taste_dot(cf: np.ndarray, a: int, b: int, k: int) -> float:
    """``<cf[a:a+k], cf[b:b+k]>`` summed in ``k`` order: a listener's taste · a track's factors."""
    acc = 0.0
    for j in range(k):
        acc += cf[a + j] * cf[b + j]
    return acc


@njit(**JIT_OPTIONS)
def static_logit(user_term: float, dot: float, track_term: float) -> float:
    """``ResponseModel.static`` of one play: ``user_term + dot + track_term``, in that order."""
    return user_term + dot + track_term


@njit(**JIT_OPTIONS)
def static_row_logit(user_term: float, dot: float, track_term: float) -> float:
    """``ResponseModel.static_rows`` of one track: ``(dot + track_term) + user_term``."""
    return (dot + track_term) + user_term


@njit(**JIT_OPTIONS)
def fatigue_one(repeat: float, artist: float, repeated: bool, same_artist: int) -> float:
    """``ResponseModel.fatigue`` of one play: ``repeat * repeated + artist * same_artist``."""
    return repeat * (1.0 if repeated else 0.0) + artist * same_artist
