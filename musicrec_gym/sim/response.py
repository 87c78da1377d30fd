"""The response model: how likely a listener is to listen to a track.

Two models: a synthetic world's :class:`ResponseModel` and a fitted world's
:class:`FittedResponse` (an MLP learned from logs, trained by
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
from musicrec_gym.errors import ArtifactError
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


RESPONSE_KEYS = ("w1", "b1", "w2", "b2", "w3", "b3")
"""The fitted response MLP's weight arrays (PyTorch's layout), as ``response.npz`` holds them."""


class FittedResponse:
    """NumPy inference of the response MLP.

    Input per (state, candidate): ``[code (F), position / max_length, embedding (d),
    popularity z]``. The first layer is split into a state part and a track part, so
    scoring the whole catalog costs one ``(B, n, H1)`` add and ReLU, not a matmul per
    track.

    Args:
        weights: ``w1 (H1, F + 1 + d + 1)``, ``b1``, ``w2 (H2, H1)``, ``b2``,
            ``w3 (1, H2)``, ``b3`` in PyTorch's layout.
        track_features: ``(n_tracks + 1, d + 1)``: embedding and popularity z of every
            catalog track, then the rare-track row.
        code_dim: ``F``, the encoder's code size.
        max_length: Positions are divided by this.
        source: Names the weights' origin in errors.

    Raises:
        ArtifactError: The shapes do not fit together.
    """

    def __init__(
        self,
        weights: dict[str, np.ndarray],
        track_features: np.ndarray,
        code_dim: int,
        max_length: int,
        source: str = "response.npz",
    ) -> None:
        w = {k: np.asarray(weights[k], dtype=np.float64) for k in RESPONSE_KEYS}
        n_in = code_dim + 1 + track_features.shape[1]
        if w["w1"].ndim != 2 or w["w1"].shape[1] != n_in:
            raise ArtifactError(
                f"{source}: 'w1' has shape {w['w1'].shape}, expected (H1, {n_in}) for a "
                f"{code_dim}-dim code, the position and {track_features.shape[1]} track features"
            )
        self.code_dim = code_dim
        self.max_length = max_length
        self.w_state = w["w1"][:, : code_dim + 1].T  # (F + 1, H1)
        self.b1 = w["b1"]
        self.track_term = np.asarray(track_features, np.float64) @ w["w1"][:, code_dim + 1 :].T
        self.w2, self.b2 = w["w2"].T, w["b2"]
        self.w3, self.b3 = w["w3"].reshape(-1), float(np.asarray(w["b3"]).reshape(-1)[0])
        self.n_rows = track_features.shape[0]

    def _state(self, codes: np.ndarray, positions: np.ndarray) -> np.ndarray:
        x = np.concatenate([codes, positions[:, None] / self.max_length], axis=1)
        return x @ self.w_state + self.b1

    def logits(self, codes: np.ndarray, positions: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """Listen logits of one candidate per state: (B, F), (B,), (B,) -> (B,).

        Args:
            codes: Encoded session states.
            positions: 1-based position in the session of the candidate's play.
            tracks: Candidate rows (catalog index, or ``n_tracks`` for a rare track).
        """
        h = np.maximum(self._state(codes, positions) + self.track_term[tracks], 0.0)
        h = np.maximum(h @ self.w2 + self.b2, 0.0)
        return h @ self.w3 + self.b3

    def all_logits(self, codes: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Listen logits of every catalog track (not the rare row): (B, n_tracks)."""
        state = self._state(codes, positions)
        h = state[:, None, :] + self.track_term[None, :-1, :]
        np.maximum(h, 0.0, out=h)
        h2 = h @ self.w2
        h2 += self.b2
        np.maximum(h2, 0.0, out=h2)
        return h2 @ self.w3 + self.b3


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
