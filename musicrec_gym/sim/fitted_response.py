"""A fitted world's response model: a two-tower score for new tracks, a table for repeats.

The listen logit of a track the session has not played yet is an inner product
(Covington et al. 2016; Yi et al. 2019):

    logit(state, i) = <s(state), v_i> + s_0(state) + c_i

where ``s`` is a small MLP over the encoded session state, the position and the
session's context (:mod:`musicrec_gym.session_context`; the *state tower*), and
``v_i``, ``c_i`` are track ``i``'s vector and bias, computed once from its
embedding and popularity by the *track tower* when the world is fitted. Scoring the
whole catalog is then ``K`` multiply-adds per track, and the per-step optimum a maximum
inner product, which the compiled simulator (:mod:`musicrec_gym.sim.fitted_kernels`)
finds exactly while scoring few tracks (:func:`track_clusters`).

A track already played in this session (a *repeat*) gets the listen probability the
training logs show for such plays, by how often it was played before (1, 2, 3 or more
times) and whether its last play was listened: :data:`REPEAT_CELLS` cells, each shrunk
towards the pooled repeat rate. So a policy that plays one track over and over scores
what the logs say such repeats score, not what the track's first play would. (The logs'
*immediate* repeats listen far more, 0.68, but those are mostly the listener's own
repeat-one, which a recommender cannot choose for them: recency does not enter the
table; see ``docs/fitting.md``.) The rare-track row is never a repeat: it stands for
many different tracks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicrec_gym.errors import ArtifactError

FITTED_FORMAT = 2
"""Version of the fitted-world files; ``load_world`` refuses others with a message."""
REPEAT_COUNTS = 3
"""Earlier plays the repeat table tells apart: 1, 2, and 3 or more."""
REPEAT_CELLS = (REPEAT_COUNTS, 2)
"""Shape of the repeat table: (earlier plays - 1, capped) x (last play listened)."""
RESPONSE_SHAPES: dict[str, tuple[int | None, ...]] = {
    "state_w1": (None, None), "state_b1": (None,), "state_w2": (None, None),
    "state_b2": (None,), "track_vectors": (None, None), "track_bias": (None,),
    "repeat_logit": REPEAT_CELLS,
}  # fmt: skip
"""``response.npz``'s arrays and their shapes (``None``: any length)."""


def state_inputs(
    codes: np.ndarray, positions: np.ndarray, max_length: int, session: np.ndarray | None = None
) -> np.ndarray:
    """The state tower's inputs: ``[code, position / max_length, session]``, float64.

    ``session``: ``(B, G)`` session inputs (``None``: none).
    """
    pos = np.asarray(positions, np.float64)[:, None] / max_length
    parts = [np.asarray(codes, np.float64), pos]
    if session is not None:
        parts.append(np.asarray(session, np.float64).reshape(len(pos), -1))
    return np.concatenate(parts, axis=1)


def repeat_cell(count: np.ndarray, last_listened: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The repeat table's indices of plays with ``count >= 1`` earlier plays."""
    return np.minimum(np.asarray(count), REPEAT_COUNTS) - 1, np.asarray(last_listened, np.int64)


class TwoTowerResponse:
    """NumPy inference of a fitted world's response model (the reference of the kernels).

    Args:
        weights: ``response.npz``'s arrays (see :data:`RESPONSE_SHAPES`): the state
            tower ``state_w1 (F + 1, H)``, ``state_b1 (H,)``, ``state_w2 (H, K + 1)``,
            ``state_b2 (K + 1,)``; ``track_vectors (n + 1, K)`` and ``track_bias (n + 1,)``
            for every catalog row and the rare row; ``repeat_logit`` (3, 2).
        code_dim: ``F``, the encoder's code size.
        max_length: Positions are divided by this.
        source: Names the weights' origin in errors.

    Raises:
        ArtifactError: The shapes do not fit together, or a value is not finite.
    """

    def __init__(
        self,
        weights: dict[str, np.ndarray],
        code_dim: int,
        max_length: int,
        source: str = "response.npz",
    ) -> None:
        w = {k: np.asarray(weights[k], dtype=np.float64) for k in RESPONSE_SHAPES}
        for key, arr in w.items():
            if not np.all(np.isfinite(arr)):
                raise ArtifactError(f"{source}: {key!r} holds a value that is not finite")
        rows, hidden = w["state_w1"].shape
        k = w["track_vectors"].shape[1]
        if rows < code_dim + 1:
            raise ArtifactError(
                f"{source}: 'state_w1' has {rows} rows, expected at least {code_dim + 1} "
                f"(a {code_dim}-dim code and the position)"
            )
        expected = {
            "state_w1": (rows, hidden), "state_b1": (hidden,),
            "state_w2": (hidden, k + 1), "state_b2": (k + 1,),
            "track_bias": (w["track_vectors"].shape[0],),
        }  # fmt: skip
        for key, shape in expected.items():
            if w[key].shape != shape:
                raise ArtifactError(
                    f"{source}: {key!r} has shape {w[key].shape}, expected {shape} for a "
                    f"{code_dim}-dim code, {hidden} hidden units and {k}-dim track vectors"
                )
        self.code_dim, self.max_length, self.dim = code_dim, max_length, k
        self.session_dim = rows - code_dim - 1
        self.w1, self.b1 = w["state_w1"], w["state_b1"]
        self.w2, self.b2 = w["state_w2"], w["state_b2"]
        self.vectors, self.bias = w["track_vectors"], w["track_bias"]
        self.vectors_t = np.ascontiguousarray(self.vectors.T)  # (K, n + 1): for scoring the catalog
        self.repeat_logit = w["repeat_logit"]
        self.n_rows = self.vectors.shape[0]

    def weights(self) -> dict[str, np.ndarray]:
        """The arrays as ``response.npz`` holds them."""
        return {
            "state_w1": self.w1, "state_b1": self.b1, "state_w2": self.w2,
            "state_b2": self.b2, "track_vectors": self.vectors, "track_bias": self.bias,
            "repeat_logit": self.repeat_logit,
        }  # fmt: skip

    def state(
        self, codes: np.ndarray, positions: np.ndarray, session: np.ndarray | None = None
    ) -> np.ndarray:
        """The state tower: codes, 1-based positions, session inputs -> ``(B, K + 1)``.

        ``session``: ``(B, G)`` (``None``: zeros).
        """
        if session is None:
            session = np.zeros((len(positions), self.session_dim))
        x = state_inputs(codes, positions, self.max_length, session)
        return np.maximum(x @ self.w1 + self.b1, 0.0) @ self.w2 + self.b2

    def new_logits(self, states: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """Logits of one never-played track per state: ``(B, K + 1)``, ``(B,)`` -> ``(B,)``."""
        k = self.dim
        return (
            np.einsum("bk,bk->b", states[:, :k], self.vectors[tracks])
            + states[:, k]
            + self.bias[tracks]
        )

    def all_new_logits(self, states: np.ndarray, n_tracks: int) -> np.ndarray:
        """Logits of the first ``n_tracks`` rows as never played: ``(B, n_tracks)``."""
        k = self.dim
        out = states[:, :k] @ self.vectors_t[:, :n_tracks]
        out += states[:, k : k + 1]
        out += self.bias[None, :n_tracks]
        return out

    def repeat_logits(self, count: np.ndarray, last_listened: np.ndarray) -> np.ndarray:
        """Logits of plays with ``count >= 1`` earlier plays this session (the table)."""
        return self.repeat_logit[repeat_cell(count, last_listened)]

    def logits(
        self,
        codes: np.ndarray,
        positions: np.ndarray,
        tracks: np.ndarray,
        count: np.ndarray | None = None,
        last_listened: np.ndarray | None = None,
        session: np.ndarray | None = None,
    ) -> np.ndarray:
        """Listen logits of one play per state, repeats from the table: ``(B,)``.

        Args:
            codes: ``(B, F)`` encoded session states (the five plays before).
            positions: 1-based position of each play.
            tracks: Track rows (catalog index, or ``n_tracks`` for a rare track).
            count: Earlier plays of the track this session (``None``: none).
            last_listened: Whether its last earlier play was listened (where ``count``).
            session: ``(B, G)`` session inputs (``None``: zeros).
        """
        out = self.new_logits(self.state(codes, positions, session), np.asarray(tracks))
        if count is not None:
            rep = np.asarray(count) > 0
            if rep.any():
                out[rep] = self.repeat_logits(count[rep], np.asarray(last_listened)[rep])
        return out

    def summary(self) -> dict[str, Any]:
        """Sizes, for reports."""
        return {
            "state_hidden": int(self.w1.shape[1]), "dim": self.dim, "rows": self.n_rows,
            "session_inputs": self.session_dim,
        }  # fmt: skip


def track_clusters(vectors: np.ndarray, bias: np.ndarray, iterations: int = 8) -> dict[str, Any]:
    """Catalog tracks grouped by their vectors, with what bounds each group's best logit.

    For a state ``s``, every track ``i`` of a group ``g`` scores at most
    ``<s, centre_g> + max_bias_g + |s| radius_g`` (Cauchy-Schwarz on ``v_i - centre_g``),
    so the compiled optimum (:mod:`musicrec_gym.sim.fitted_kernels`) scores the groups'
    bounds first and then only the tracks of groups that could hold the best: about 25
    of the sample world's 1,785 tracks a step instead of all of them. The grouping only
    decides how fast the exact optimum is found, never what it is.

    ``sqrt(n)`` groups (at least 1), by k-means from farthest-point seeds (NumPy,
    deterministic).

    Args:
        vectors: ``(n, K)`` the catalog's track vectors (not the rare row).
        bias: ``(n,)`` their biases.
        iterations: Lloyd iterations.

    Returns:
        ``order`` (tracks by group), ``starts`` (each group's first place in ``order``,
        then ``n``), ``centres`` ``(C, K)``, ``max_bias`` and ``radius`` ``(C,)``.
    """
    v = np.asarray(vectors, np.float64)
    n = v.shape[0]
    c = max(1, min(n, int(np.ceil(np.sqrt(n)))))
    seeds = [0]
    dist = ((v - v[0]) ** 2).sum(axis=1)
    for _ in range(1, c):
        seeds.append(int(np.argmax(dist)))
        dist = np.minimum(dist, ((v - v[seeds[-1]]) ** 2).sum(axis=1))
    centres = v[seeds].copy()
    for _ in range(iterations):
        d = (v * v).sum(1)[:, None] - 2 * v @ centres.T + (centres * centres).sum(1)[None, :]
        label = np.argmin(d, axis=1)
        for g in range(c):
            members = label == g
            if members.any():
                centres[g] = v[members].mean(axis=0)
    d = (v * v).sum(1)[:, None] - 2 * v @ centres.T + (centres * centres).sum(1)[None, :]
    label = np.argmin(d, axis=1)
    order = np.argsort(label, kind="stable")
    starts = np.searchsorted(label[order], np.arange(c + 1))
    radius = np.zeros(c)
    max_bias = np.full(c, -np.inf)
    for g in range(c):
        members = order[starts[g] : starts[g + 1]]
        if members.size:
            radius[g] = np.sqrt(((v[members] - centres[g]) ** 2).sum(axis=1)).max()
            max_bias[g] = np.asarray(bias, np.float64)[members].max()
    return {
        "order": order.astype(np.int64),
        "starts": starts.astype(np.int64),
        "centres": centres,
        "max_bias": max_bias,
        "radius": radius,
    }
