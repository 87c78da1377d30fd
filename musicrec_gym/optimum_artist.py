"""The artist-capacity bound: the sorted bound, with the agent's own artist fatigue priced in.

The sorted bound (:func:`musicrec_gym.optimum_model.sorted_bound`) lets every track
offer its full static logit. But a listener's best tracks come from few artists, and
each of the last five plays by the same artist costs ``artist`` logits: a session
cannot play them all at full value. This bound caps, for every logit level ``l``, how
many plays of a session can reach ``l``:

* a play of a never-played track ``i`` by artist ``A`` reaches ``l`` only if its count
  of ``A`` plays in the window is at most ``tau_i(l) = floor((static_i - l) / artist)``
  (at most 5, the window);
* ``m`` plays of ``A`` at steps ``0 .. T-1`` have counts summing to at least
  ``g_A(m)``, the fewest same-artist window pairs ``m`` plays can make (warm-up plays of
  ``A`` still in the window included): a small dynamic programme over the steps and the
  window's ``A`` places;
* the plays whose count is ``>= c`` need distinct tracks with ``tau >= c``, and ``m``
  plays hold at least ``g_A^c(m)`` of them (the same programme, counting those plays);
* so ``A`` gives at most ``cap_A(l)``, the largest ``m <= n_A(l)`` with the ``m``
  largest ``tau`` summing to at least ``g_A(m)`` and ``#{tau >= c} >= g_A^c(m)`` for
  ``c = 1 .. 5``, plays at level ``l``, and the ``r``-th largest logit of any session is at
  most ``M_r = max{l : sum_A cap_A(l) >= r}`` (or the free option's bound: repeats
  and the tracks beyond the priced ones).

Every session's sorted logits are then at most ``M`` place by place, so each play can
be matched, as it comes, to an unused item of ``M`` at least as large (the smallest
such; it never fails when the whole multiset is dominated), and the session's policy
becomes one of the sorted relaxation with items ``M``: its value is at most the flag
programme of ``sigmoid(M)``. The levels ``l`` only need checking where a ``tau`` or an
``n_A`` changes, ``l = static_i - artist * j`` (``j = 0 .. 5``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicrec_gym.sim.constants import JIT_OPTIONS, WINDOW

_FULL = (1 << WINDOW) - 1
_EPS = 1e-9  # levels are tested a hair lower: rounding cannot shrink a capacity


@njit(**JIT_OPTIONS)
def fewest_pairs(n_steps: int, at_least: int = 0) -> np.ndarray:
    """``g[mask, m]``: the least total window count of ``m`` plays of one artist.

    ``mask`` marks the artist's places in the window after the warm-up (bit ``j`` for
    window place ``j``, oldest first); a play's count is the number of the artist's plays
    among the five before it. With ``at_least = c >= 1``: instead the least number of
    the ``m`` plays whose count is ``>= c``. Unreachable ``m``: a large number.
    """
    big = 10**9
    out = np.full((1 << WINDOW, n_steps + 1), big, np.int64)
    cur = np.full((1 << WINDOW, n_steps + 1), big, np.int64)
    nxt = np.empty_like(cur)
    for mask0 in range(1 << WINDOW):
        cur[:] = big
        cur[mask0, 0] = 0
        for _ in range(n_steps):
            nxt[:] = big
            for mask in range(1 << WINDOW):
                count = 0
                for bit in range(WINDOW):
                    count += (mask >> bit) & 1
                if at_least > 0:
                    count = 1 if count >= at_least else 0
                for m in range(n_steps + 1):
                    v = cur[mask, m]
                    if v >= big:
                        continue
                    skip = mask >> 1  # the oldest place leaves, a play of another artist
                    if v < nxt[skip, m]:
                        nxt[skip, m] = v
                    play = (mask >> 1) | (1 << (WINDOW - 1))
                    if m < n_steps and v + count < nxt[play, m + 1]:
                        nxt[play, m + 1] = v + count
            cur[:] = nxt
        for m in range(n_steps + 1):
            best = big
            for mask in range(1 << WINDOW):
                best = min(best, cur[mask, m])
            out[mask0, m] = best
    return out


@njit(**JIT_OPTIONS)
def _capacity(static, group, n_groups, masks, level, pen, g, taus):
    """``sum_A cap_A(level)`` over the artists (``group`` numbers them 0..n_groups-1)."""
    total = 0
    for a in range(n_groups):
        k = 0
        for i in range(len(static)):
            if group[i] == a and static[i] >= level:
                taus[k] = min(WINDOW, np.floor((static[i] - level) / pen))
                k += 1
        if k == 0:
            continue
        part = np.sort(taus[:k])[::-1]
        acc, cap = 0.0, 0
        for m in range(1, min(k, g.shape[2] - 1) + 1):
            acc += part[m - 1]
            ok = acc >= g[0, masks[a], m]  # the counts' sum fits the tracks' tolerances
            for c in range(1, WINDOW + 1):  # plays counting >= c need tracks tolerating c
                ok = ok and g[c, masks[a], m] <= np.sum(part >= c)
            if ok:
                cap = m
        total += cap
    return total


@njit(**JIT_OPTIONS)
def _levels_one(static, group, n_groups, masks, free, pen, g, n_steps, out):
    """``out[r]``: the bound ``M_{r+1}`` on the session's ``(r+1)``-th largest logit."""
    cands = np.empty(len(static) * (WINDOW + 1))
    for i in range(len(static)):
        for j in range(WINDOW + 1):
            cands[i * (WINDOW + 1) + j] = static[i] - pen * j
    cands = np.sort(cands)[::-1]
    taus = np.empty(len(static))
    out[:] = free
    done = 0
    for c in range(len(cands)):
        level = cands[c]
        if level <= free or done >= n_steps:
            break
        total = _capacity(static, group, n_groups, masks, level - _EPS, pen, g, taus)
        while done < min(total, n_steps):
            out[done] = level
            done += 1


@njit(**JIT_OPTIONS)
def _levels_all(static, group, n_groups, masks, free, pen, g, n_steps):
    out = np.empty((static.shape[0], n_steps))
    for b in range(static.shape[0]):
        _levels_one(static[b], group[b], n_groups[b], masks[b], free[b], pen, g, n_steps, out[b])
    return out


def level_bounds(
    top_static: np.ndarray,
    top_artist: np.ndarray,
    win_artist: np.ndarray,
    free_logit: np.ndarray,
    artist_penalty: float,
    n_steps: int,
) -> np.ndarray:
    """(B, T) bounds ``M_r`` on the ``r``-th largest logit of any session, best first.

    Args:
        top_static: (B, L) static logits of the priced never-played tracks.
        top_artist: (B, L) their artists.
        win_artist: (B, WINDOW) the artists of the window after the warm-up.
        free_logit: (B,) bound of every other option (repeats, other tracks).
        artist_penalty: ``ResponseParams.artist``, > 0.
        n_steps: ``max_steps``.
    """
    b, n_top = top_static.shape
    group = np.empty((b, n_top), np.int64)
    n_groups = np.empty(b, np.int64)
    masks = np.zeros((b, max(n_top, 1)), np.int64)
    for s in range(b):
        names, group[s] = np.unique(top_artist[s], return_inverse=True)
        n_groups[s] = len(names)
        for a, name in enumerate(names):
            places = np.flatnonzero(win_artist[s] == name)
            masks[s, a] = int(np.sum(1 << places))
    g = np.stack([fewest_pairs(n_steps, c) for c in range(WINDOW + 1)])
    return _levels_all(
        np.ascontiguousarray(top_static, dtype=np.float64), group, n_groups, masks,
        np.asarray(free_logit, dtype=np.float64), float(artist_penalty), g, n_steps,
    )  # fmt: skip
