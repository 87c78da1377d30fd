"""The logging policy: the radio-like policy that plays a session's warm-up and logs.

A popular track (by play share), a track to the listener's taste (one of its
``logging_pool`` best), or a continuation of the last play (of those pool tracks, the
``continuation_pool`` most like it), by the shares in ``SimulatorParams``. The NumPy
reference is ``BatchSimulator``'s ``_logging_choice`` and ``_warmup`` (the tests hold
the two to the same plays), on :func:`by_popularity` (also a fitted world's logger);
:func:`logging_choice` is the policy for one slot, called by the numba kernels
(:mod:`musicrec_gym.sim.kernels`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicrec_gym.sim.constants import JIT_OPTIONS, WINDOW
from musicrec_gym.sim.layout import (
    C_CONTK,
    C_K,
    C_POOL,
    C_PTAB,
    C_T,
    I_CAND,
    I_WT,
    O_FACT,
    O_POPCDF,
    O_PTAB,
    P_NEXT,
    P_POP,
)


def by_popularity(pop_cdf: np.ndarray, idx: np.ndarray, n_tracks: int) -> np.ndarray:
    """The popular tracks ``idx`` (uniforms) pick from the play-share CDF ``pop_cdf`` (NumPy).

    The first track whose cumulative share exceeds ``idx`` (``searchsorted``, right side),
    capped at the last track against rounding.
    """
    return np.minimum(np.searchsorted(pop_cdf, idx, side="right"), n_tracks - 1)


@njit(**JIT_OPTIONS)
def logging_choice(cf, ci, ir, mix, idx, sims, user, q_prev):
    """The logging policy's track in one slot (``BatchSimulator._logging_choice``).

    ``mix`` picks the kind of play, ``idx`` the track; ``sims`` is scratch of ``2 * pool``
    floats. Returns the track and its place in the listener's pool (-1 for a popular track).
    A continuation after a play from the pool (``q_prev >= 0``) is looked up in the
    pool's nearest-tracks table (``ListenerCandidates.pool_nearest``), as the
    reference's warm-up does; otherwise, or without a table, it is computed.
    """
    n_tracks, pool, k, dim = ci[C_T], ci[C_POOL], ci[C_CONTK], ci[C_K]
    if mix < cf[P_POP]:  # a popular track: searched only then (at 1M tracks, 20 reads)
        pop_cdf = ci[O_POPCDF]
        lo, hi = 0, n_tracks  # searchsorted(side="right"): the first entry > idx
        while lo < hi:
            mid = (lo + hi) // 2
            if cf[pop_cdf + mid] <= idx:
                lo = mid + 1
            else:
                hi = mid
        return min(lo, n_tracks - 1), -1
    pool_pos = min(np.int64(idx * pool), pool - 1)
    cand = ci[I_CAND]
    last = ir[ci[I_WT] + WINDOW - 1]
    if mix >= cf[P_POP] + cf[P_NEXT] or last < 0:
        return ir[cand + pool_pos], pool_pos
    pick = min(np.int64(idx * k), k - 1)
    if q_prev >= 0 and ci[C_PTAB] != 0:
        q = ci[ci[O_PTAB] + (user * pool + q_prev) * k + pick]
        return ir[cand + q], q
    # Similarities to the last play: k outer, so the pool's dot products (each
    # summed in k order, as one at a time would) run side by side.
    fact = ci[O_FACT]
    last_row = fact + last * dim
    for q in range(pool):
        sims[q] = 0.0
    for j in range(dim):
        y = cf[last_row + j]
        for q in range(pool):
            sims[q] += cf[fact + ir[cand + q] * dim + j] * y
    for q in range(pool):
        if ir[cand + q] == last:
            sims[q] = -np.inf
    # the k most similar, in pool order; the one idx picks
    chosen = sims[pool : 2 * pool]  # 1.0 marks a chosen place
    for q in range(pool):
        chosen[q] = 0.0
    for _ in range(k):
        best = -1
        for q in range(pool):
            if chosen[q] == 0.0 and (best < 0 or sims[q] > sims[best]):
                best = q
        chosen[best] = 1.0
    seen = -1
    for q in range(pool):
        if chosen[q] != 0.0:
            seen += 1
            if seen == pick:
                return ir[cand + q], q
    return -1, -1  # not reached: k <= pool places are chosen
