"""The listener's choice among a slate, and the exact optimal slate (``MusicRecSlate-v0``).

The choice model is the conditional logit of RecSim's ``MultinomialLogitChoiceModel``
with a no-pick option: shown a slate ``S`` of ``K`` distinct tracks, the listener picks
track ``j`` with probability ``w_j / (w_0 + sum_{i in S} w_i)`` and nothing with
probability ``w_0 / (w_0 + sum_{i in S} w_i)``, where ``w = exp(utility)``:

- a track's utility is ``scale`` times its listen logit now, the response model's
  ``logit(p_listen)``, fatigue (repeats, recent artists) included: the listener is
  drawn to what they would listen to;
- the no-pick utility is ``no_pick``.

A picked track is then played and listened or skipped as in ``MusicRec-v0``, so a
slate's expected reward is the fractional sum ``V(S) = sum_j w_j r_j / (w_0 + sum_j
w_j)``, with ``r_j`` the expected reward of playing ``j`` (affine in its listen
probability, ``r = a + b p``) and 0 for a no-pick. :func:`optimal_slates` maximises it
exactly over the slates of exactly ``K`` distinct tracks, without enumerating them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicrec_gym.checks import is_int
from musicrec_gym.errors import ConfigError

MAX_ITERATIONS = 100
"""Dinkelbach iterations before :func:`optimal_slates` gives up (it needs a handful)."""
_P_CLIP = 1e-15
"""Listen probabilities are clipped to [_P_CLIP, 1 - _P_CLIP] before their logit."""


@dataclass(frozen=True)
class SlateChoice:
    """The conditional-logit choice model, in terms of the tracks' expected rewards.

    Attributes:
        scale: Multiplies a track's listen logit to give its utility (> 0; larger:
            the listener is pickier, the best track of the slate wins more often).
        no_pick: The utility of picking nothing (any finite number).
        reward_a, reward_b: The reward mode's affine map, expected reward
            ``a + b * p_listen`` (``RewardModel.affine``; 0 and 1 for ``"listen"``), to
            get listen probabilities back from expected rewards.
    """

    scale: float = 1.0
    no_pick: float = 0.0
    reward_a: float = 0.0
    reward_b: float = 1.0

    def __post_init__(self) -> None:
        for name in ("scale", "no_pick", "reward_a", "reward_b"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)):
                raise ConfigError(f"`{name}` must be a number, got {value!r}")
            if not np.isfinite(value):
                raise ConfigError(f"`{name}` must be finite, got {value!r}")
        if self.scale <= 0:
            raise ConfigError(f"`scale` must be a number > 0, got {self.scale!r}")
        if self.reward_b <= 0:
            raise ConfigError(f"`reward_b` must be > 0, got {self.reward_b!r}")

    def utilities(self, rewards: np.ndarray) -> np.ndarray:
        """Each track's utility from its expected reward: ``scale * logit(p_listen)``."""
        p = np.asarray(rewards, dtype=np.float64) - self.reward_a
        p /= self.reward_b
        np.clip(p, _P_CLIP, 1.0 - _P_CLIP, out=p)
        odds = np.divide(p, 1.0 - p, out=p)  # 1 - p is exact for p >= 1/2
        u = np.log(odds, out=odds)
        if self.scale != 1.0:
            u *= self.scale
        return u

    def probabilities(self, utilities: np.ndarray) -> np.ndarray:
        """Pick probabilities of a batch of slates: ``(B, K)`` utilities -> ``(B, K + 1)``.

        Column ``j < K`` is slate position ``j``, the last column the no-pick.
        """
        u = np.asarray(utilities, dtype=np.float64)
        full = np.concatenate([u, np.full((len(u), 1), float(self.no_pick))], axis=1)
        full -= full.max(axis=1, keepdims=True)  # the same ratios, no overflow
        w = np.exp(full)
        return w / w.sum(axis=1, keepdims=True)

    def draw(self, probabilities: np.ndarray, uniforms: np.ndarray) -> np.ndarray:
        """The picked slate position of each row (-1: no pick), from one uniform per row.

        Position ``j`` is picked when the uniform falls in its share of [0, 1), positions
        in slate order and the no-pick last.
        """
        cum = np.cumsum(probabilities[:, :-1], axis=1)
        picked = (np.asarray(uniforms)[:, None] >= cum).sum(axis=1)
        k = probabilities.shape[1] - 1
        return np.where(picked >= k, -1, picked).astype(np.int64)

    def slate_values(self, utilities: np.ndarray, rewards: np.ndarray) -> np.ndarray:
        """Expected reward of each slate: ``(B, K)`` utilities and rewards -> ``(B,)``."""
        probs = self.probabilities(utilities)
        return np.einsum("bk,bk->b", probs[:, :-1], np.asarray(rewards, dtype=np.float64))


def check_slate_size(slate: object, n_tracks: int) -> int:
    """``slate`` as the slate size ``K``: an int in ``[1, n_tracks]``.

    Raises:
        ConfigError: Naming ``slate``: not an int, below 1, or larger than the catalog.
    """
    if not is_int(slate) or slate < 1:
        raise ConfigError(f"`slate` must be an int >= 1 (the slate size K), got {slate!r}")
    if slate > n_tracks:
        raise ConfigError(
            f"`slate`={slate} is larger than the catalog ({n_tracks} tracks): a slate "
            "shows distinct tracks"
        )
    return int(slate)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """The column indices of each row's ``k`` largest ``scores``, best first: ``(B, k)``.

    Ties go to the lower column index (a stable order), so the result is deterministic.
    """
    n = scores.shape[1]
    if k < n:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(n), scores.shape).copy()
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    return np.take_along_axis(part, order, axis=1)


def optimal_slates(
    utilities: np.ndarray,
    rewards: np.ndarray,
    k: int,
    no_pick: float,
    blocked: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """The slate of exactly ``k`` distinct tracks of highest expected reward, per row.

    Maximises ``V(S) = N(S) / D(S)`` with ``N(S) = sum_{j in S} w_j r_j`` and ``D(S) =
    w_0 + sum_{j in S} w_j`` (``w = exp(utility)``, ``w_0 = exp(no_pick)``) by
    Dinkelbach's parametric method, vectorised over the rows:

    1. Start from any slate ``S_0`` (the top ``k`` of ``w_j r_j``); ``λ_t = V(S_t)``.
    2. ``S_{t+1}`` = the top ``k`` of ``w_j (r_j - λ_t)``: it maximises ``N(S) - λ_t
       D(S)`` over the slates of size ``k``, since that is ``sum_{j in S} w_j (r_j -
       λ_t) - λ_t w_0`` and the last term does not depend on ``S``.
    3. Stop when ``S_{t+1}`` does no better than ``λ_t``.

    Why it is exact: let ``F(λ) = max_S N(S) - λ D(S)``. ``F(λ_t) >= N(S_t) - λ_t
    D(S_t) = 0``. If ``F(λ_t) = 0``, then ``N(S) <= λ_t D(S)`` for every ``S`` (``D > 0``),
    i.e. ``V(S) <= λ_t = V(S_t)``: ``S_t`` is optimal. Otherwise ``N(S_{t+1}) - λ_t
    D(S_{t+1}) > 0``, i.e. ``V(S_{t+1}) > λ_t``: ``λ`` strictly increases, so no slate
    comes back and the method stops after finitely many steps (in practice 1 to 3 passes;
    Dinkelbach 1967, and Rusmevichientong, Shen & Shmoys 2010 for this cardinality-
    constrained MNL assortment problem). In floating point it stops when the gain is
    below 1e-12 relative, and keeps the best slate seen.

    Each iteration is a top-``k`` over every track of every row, so a call costs
    ``O(B n_tracks)`` per iteration: the expected rewards of the whole catalog are
    needed (1,000 tracks in the built-in world).

    Args:
        utilities: ``(B, n)`` every track's utility.
        rewards: ``(B, n)`` every track's expected reward when played.
        k: The slate size, ``1 <= k <= n`` (minus the blocked tracks).
        no_pick: The no-pick utility ``log w_0``.
        blocked: Optional ``(B, n)`` bool mask of tracks that may not be shown (the
            agents' own use: unplayed tracks only); each row needs ``k`` unblocked.

    Returns:
        ``(slates, values)``: ``(B, k)`` int64 track indices (in the order of the last
        top-``k``), and ``(B,)`` the optimal expected rewards ``V(S*)``.
    """
    u = np.asarray(utilities, dtype=np.float64)
    r = np.asarray(rewards, dtype=np.float64)
    rows = np.arange(len(u))[:, None]
    # w and w_0 scaled by the same exp(-c) per row: V unchanged, no overflow
    c = np.maximum(u.max(axis=1), no_pick)
    w = np.exp(u - c[:, None])
    w0 = np.exp(no_pick - c)

    def shown(scores: np.ndarray, idx: np.ndarray) -> np.ndarray:
        return scores if blocked is None else np.where(blocked[idx], -np.inf, scores)

    every = np.arange(len(u))
    best = top_k(shown(w * r, every), k)
    ws = w[rows, best]
    lam = (ws * r[rows, best]).sum(axis=1) / (w0 + ws.sum(axis=1))
    active = np.ones(len(u), dtype=bool)
    for _ in range(MAX_ITERATIONS):
        idx = np.flatnonzero(active)
        if not idx.size:
            break
        cand = top_k(shown(w[idx] * (r[idx] - lam[idx, None]), idx), k)
        ws = w[idx[:, None], cand]
        new = (ws * r[idx[:, None], cand]).sum(axis=1) / (w0[idx] + ws.sum(axis=1))
        better = new > lam[idx] + 1e-12 * np.maximum(1.0, np.abs(lam[idx]))
        gain = idx[better]
        best[gain] = cand[better]
        lam[gain] = new[better]
        active[idx[~better]] = False
    return best, lam


def _ends(u: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's ``k`` columns of highest ``u`` (best first) and ``k`` of lowest.

    The lowest come worst first; the two are disjoint (ties between them split either way).
    """
    n = u.shape[1]
    if 2 * k > n:  # the ends meet: one strict order, ties by column
        return top_k(u, k), n - 1 - top_k(-u[:, ::-1], k)
    part = np.argpartition(u, [k - 1, n - k], axis=1)
    high, low = part[:, n - k :], part[:, :k]
    vh, vl = np.take_along_axis(u, high, axis=1), np.take_along_axis(u, low, axis=1)
    high = np.take_along_axis(high, np.lexsort((high, -vh), axis=1), axis=1)
    low = np.take_along_axis(low, np.lexsort((low, vl), axis=1), axis=1)
    return high, low


def optimal_slates_ordered(
    utilities: np.ndarray, rewards: np.ndarray, k: int, no_pick: float
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`optimal_slates` when a track's reward rises with its utility, as here.

    The environment's choice model ties both to the listen logit ``l``: ``w = exp(scale
    l)`` and ``r = a + b sigmoid(l)`` (``b > 0``). Then the optimal slate is the ``k - m``
    tracks of highest utility plus the ``m`` of lowest, for some ``m`` in ``0..k``, so
    comparing those ``k + 1`` slates finds it in two partial sorts per row.

    Why: the optimal slate is a top ``k`` of ``f = w (r - λ*)`` (see
    :func:`optimal_slates`). As a function of ``l``, ``f`` is positive and increasing
    where ``r > λ*`` (both factors are). Where ``r < λ*``, ``f < 0`` tends to 0 as ``l ->
    -inf`` and is 0 at ``r = λ*``; ``f' = w h`` with ``h = scale (a - λ* + b s) + b s (1 -
    s)`` (``s = sigmoid(l)``), ``h < 0`` at the left end, ``h > 0`` at ``r = λ*``, and
    ``h' = b s (1 - s) (scale + 1 - 2 s)`` changes sign at most once (from + to -), so
    ``h`` changes sign exactly once: ``f`` falls, then rises. Every upper level set of
    ``f`` is therefore the tracks of lowest utility plus those of highest utility, and so
    is a top ``k``. (Ties in utility are ties in ``(w, r)``: either track gives the same
    value.)

    Args:
        utilities: ``(B, n)`` every track's utility.
        rewards: ``(B, n)`` their expected rewards, a nondecreasing function of the
            utilities in each row.
        k: The slate size, ``1 <= k <= n``.
        no_pick: The no-pick utility.

    Returns:
        ``(slates, values)`` as :func:`optimal_slates`.
    """
    u = np.asarray(utilities, dtype=np.float64)
    r = np.asarray(rewards, dtype=np.float64)
    rows = np.arange(len(u))[:, None]
    c = np.maximum(u.max(axis=1), no_pick)
    high, low = _ends(u, k)
    zero = np.zeros((len(u), 1))

    def sums(idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cumulative ``w`` and ``w r`` of the first 0..k of ``idx``: ``(B, k + 1)`` each."""
        w = np.exp(u[rows, idx] - c[:, None])
        return (
            np.concatenate([zero, np.cumsum(w, axis=1)], axis=1),
            np.concatenate([zero, np.cumsum(w * r[rows, idx], axis=1)], axis=1),
        )

    w_high, n_high = sums(high)
    w_low, n_low = sums(low)
    m = np.arange(k + 1)  # tracks taken from the low end
    num = n_high[:, k - m] + n_low[:, m]
    den = np.exp(no_pick - c)[:, None] + w_high[:, k - m] + w_low[:, m]
    values = num / den
    best = values.argmax(axis=1)
    slates = np.where(
        np.arange(k)[None, :] < (k - best)[:, None],
        high,
        np.take_along_axis(low, np.maximum(np.arange(k)[None, :] - (k - best)[:, None], 0), 1),
    )
    return slates, values[np.arange(len(u)), best]
