"""The listener's satisfaction: the delayed effect of ``MusicRecLongTerm-v0``.

A listened discovery raises satisfaction, a listened over-familiar pick (a popular
track or a repeat) lowers it, and satisfaction lowers the leave hazard
(:func:`musicrec_gym.sim.leave.hazard_satisfied_one`); the parameters and their meaning
are :class:`~musicrec_gym.sim.params.SatisfactionParams`. :func:`track_kinds` gives each
track its effect from the catalog's popularity (public, as a real service's play
counts), :func:`satisfaction_after` is the update of one slot (the compiled kernels
call it) and :func:`satisfaction_update` its NumPy reference.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicrec_gym.sim.constants import JIT_OPTIONS
from musicrec_gym.sim.params import SatisfactionParams

POPULAR, NEUTRAL, DISCOVERY = -1, 0, 1
"""A track's kind: what a listen of it does to satisfaction."""


def track_kinds(popularity: np.ndarray, params: SatisfactionParams) -> np.ndarray:
    """Each track's kind: ``POPULAR`` (-1), ``NEUTRAL`` (0) or ``DISCOVERY`` (+1).

    Tracks are ranked by ``popularity`` (play share; ties by catalog index, so the
    ranking is deterministic): the first ``round(popular_share * n)`` are popular, the
    last ``round(discovery_share * n)`` discoveries.
    """
    popularity = np.asarray(popularity, dtype=np.float64)
    n = len(popularity)
    order = np.lexsort((np.arange(n), -popularity))  # most played first
    kinds = np.zeros(n, dtype=np.int64)
    n_popular = round(params.popular_share * n)
    n_discovery = min(round(params.discovery_share * n), n - n_popular)
    kinds[order[:n_popular]] = POPULAR
    if n_discovery:
        kinds[order[n - n_discovery :]] = DISCOVERY
    return kinds


def satisfaction_update(
    satisfaction: np.ndarray,
    kind: np.ndarray,
    repeated: np.ndarray,
    listened: np.ndarray,
    levels: int,
) -> np.ndarray:
    """Satisfaction after a play, for a batch: the NumPy reference of :func:`satisfaction_after`.

    Args:
        satisfaction: (B,) int satisfaction before the play.
        kind: (B,) the played tracks' kinds.
        repeated: (B,) the track was already played this session (counts as popular).
        listened: (B,) the listener listened (a skip leaves satisfaction as it is).
        levels: Satisfaction stays in ``[-levels, levels]``.
    """
    delta = np.where(repeated, POPULAR, kind) * np.asarray(listened, dtype=np.int64)
    return np.clip(satisfaction + delta, -levels, levels).astype(np.int64)


@njit(**JIT_OPTIONS)
def satisfaction_after(
    satisfaction: int, kind: int, repeated: bool, listened: bool, levels: int
) -> int:
    """One slot's satisfaction after a play (see :func:`satisfaction_update`)."""
    if not listened:
        return satisfaction
    value = satisfaction + (POPULAR if repeated else kind)
    return min(max(value, -levels), levels)
