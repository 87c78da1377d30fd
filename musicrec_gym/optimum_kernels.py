"""Compiled pieces shared by the planner, the open-loop search and the long-term bound.

The session state the values are indexed by is ``x = code * n_sat + (s + levels)``:
``code`` the last ``skip_window`` listen flags (newest = bit 0, as
:func:`musicrec_gym.optimum_model.flag_code`) and ``s`` the listener's satisfaction in
``[-levels, levels]`` (``MusicRecLongTerm-v0``; ``levels = 0``, one satisfaction
state, when the world has none). A play of a track whose listen moves satisfaction by
``delta`` (its kind, or -1 for a repeat) leads, after a listen, to ``next1[x, delta +
1]`` and after a skip to ``next0[x]``; the listener stays with ``survive[x']``
(``1 - LeaveModel.hazard`` of that state). Also here: the listen logits of a
listener's candidate tracks and the ``lambda * kind`` rule's open-loop sequence.
"""

from __future__ import annotations

import weakref

import numpy as np
from numba import njit

from musicrec_gym.errors import ConfigError
from musicrec_gym.sim.constants import JIT_OPTIONS, WINDOW
from musicrec_gym.sim.simulator import BatchSimulator


def satisfaction_levels(sim: BatchSimulator) -> int:
    """``levels`` of the world's satisfaction, 0 when it has none (``MusicRec-v0``)."""
    sat = sim.params.satisfaction
    return int(sat.levels) if sat.enabled else 0


def satisfaction_weight(sim: BatchSimulator) -> float:
    """The hazard's weight per satisfaction level (0 when the world has none)."""
    sat = sim.params.satisfaction
    return float(sat.weight) if sat.enabled else 0.0


def check_lams(lams: object, owner: str) -> None:
    """``lams`` (the ``lambda * kind`` rules' weights) is a non-empty tuple of finite numbers >= 0.

    Raises:
        ConfigError: Naming ``owner.lams``.
    """
    if not (
        isinstance(lams, tuple) and lams
        and all(isinstance(v, (int, float)) and 0 <= v < float("inf") for v in lams)
    ):  # fmt: skip
        raise ConfigError(
            f"`{owner}.lams` must be a non-empty tuple of finite numbers >= 0, got {lams!r}"
        )


@njit(**JIT_OPTIONS)
def transitions(n_codes: int, levels: int) -> tuple[np.ndarray, np.ndarray]:
    """``(next1, next0)``: the state after a listen (by ``delta + 1``) and after a skip."""
    n_sat = 2 * levels + 1
    n = n_codes * n_sat
    next1 = np.empty((n, 3), np.int64)
    next0 = np.empty(n, np.int64)
    for x in range(n):
        c, si = x // n_sat, x % n_sat
        c1, c0 = ((c << 1) | 1) & (n_codes - 1), (c << 1) & (n_codes - 1)
        next0[x] = c0 * n_sat + si
        for d in range(3):
            s1 = min(max(si + d - 1, 0), n_sat - 1)
            next1[x, d] = c1 * n_sat + s1
    return next1, next0


@njit(**JIT_OPTIONS)
def survive_states(base, per_skip, k, levels, weight, out):
    """``out[x]``: the probability of staying in state ``x`` (``LeaveModel.hazard``'s formula)."""
    n_sat = 2 * levels + 1
    for x in range(len(out)):
        c, s = x // n_sat, x % n_sat - levels
        ones = 0
        for bit in range(k):
            ones += (c >> bit) & 1
        rate = base + per_skip * (k - ones)
        if levels > 0:
            rate = max(rate - weight * s, 0.0)
        out[x] = np.exp(-rate)


@njit(**JIT_OPTIONS)
def back_step(p, d, cont, surv, next1, next0, child, out):
    """``out[x] = p (1 + S(x1) V(x1)) + (1 - p) S(x0) V(x0)``, ``V = child``."""
    for x in range(len(out)):
        if cont:
            x1, x0 = next1[x, d + 1], next0[x]
            out[x] = p * (1.0 + surv[x1] * child[x1]) + (1.0 - p) * surv[x0] * child[x0]
        else:
            out[x] = p


@njit(**JIT_OPTIONS)
def track_logit(cs, ca, played, warts, j, repeat, artist_pen):
    """Candidate ``j``'s listen logit: static - repeat * played - artist * same-artist count."""
    same = 0
    for w in range(WINDOW):
        if warts[w] == ca[j]:
            same += 1
    return cs[j] - (repeat * (1.0 if played[j] else 0.0) + artist_pen * same)


@njit(**JIT_OPTIONS)
def logits(cs, ca, played, warts, repeat, artist_pen, out):
    """Listen logits of every candidate (:func:`track_logit`)."""
    for j in range(len(cs)):
        out[j] = track_logit(cs, ca, played, warts, j, repeat, artist_pen)


@njit(**JIT_OPTIONS)
def move_play(seq, i, j, trial):
    """``trial`` = ``seq`` with the play at place ``i`` moved to place ``j`` (a climb's move)."""
    x = seq[i]
    pos = 0
    for r in range(len(seq)):
        if r == i:
            continue
        if pos == j:
            trial[pos] = x
            pos += 1
        trial[pos] = seq[r]
        pos += 1
    if pos == j:
        trial[pos] = x


@njit(**JIT_OPTIONS)
def play(played, warts, j, artist):
    """Record candidate ``j`` (of ``artist``) as played: flag it, shift the window."""
    played[j] = True
    for w in range(WINDOW - 1):
        warts[w] = warts[w + 1]
    warts[WINDOW - 1] = artist


@njit(**JIT_OPTIONS)
def rule_sequence(cs, ca, ck, played, warts, lam, n, rep, art, seq, ps, ds):
    """The ``lambda * kind`` rule's next ``n`` plays from a state (fixed: no flags needed).

    Each play is the candidate of highest ``logit + lam * delta`` (``delta``: the kind, or
    -1 for a repeat; the first on ties); ``lam = 0`` is the greedy oracle. Fills
    ``seq``, ``ps`` (listen probabilities) and ``ds`` (deltas); ``played`` and ``warts``
    are copied, not changed.
    """
    m = len(cs)
    pl, wa = played.copy(), warts.copy()
    logit = np.empty(m)
    logits(cs, ca, pl, wa, rep, art, logit)
    for t in range(n):
        best, best_v = 0, -np.inf
        for j in range(m):
            v = logit[j] + lam * (-1 if pl[j] else ck[j])
            if v > best_v:
                best, best_v = j, v
        seq[t] = best
        ps[t] = 1.0 / (1.0 + np.exp(-logit[best]))
        ds[t] = -1 if pl[best] else ck[best]
        # the logits after the play: only the played track, its artist's and the artist
        # leaving the window change (up to rounding, the same numbers)
        a_new, a_old = ca[best], wa[0]
        if a_new != a_old:
            for j in range(m):
                if ca[j] == a_new:
                    logit[j] -= art
                elif ca[j] == a_old:
                    logit[j] += art
        if not pl[best]:
            logit[best] -= rep
        play(pl, wa, best, a_new)


@njit(**JIT_OPTIONS)
def sequence_value(ps, ds, t0, n_steps, surv, next1, next0, out):
    """``out``: exact value (by state) at step ``t0`` of plays ``ps[t0:], ds[t0:]``."""
    out[:] = 0.0
    tmp = np.empty(len(out))
    for t in range(n_steps - 1, t0 - 1, -1):
        back_step(ps[t], ds[t], t + 1 < n_steps, surv, next1, next0, out, tmp)
        out[:] = tmp


class KindCandidates:
    """Each listener's ``per_kind`` best tracks of every kind (popular, neutral, discovery).

    The long-term world's planner and search choose among these (the ``ListenerCandidates``
    of the simulator hold the best tracks by static logit, mostly popular ones). Columns:
    the kinds in order, each by static logit (ties to the lower track index).

    Attributes:
        index, static, artist, kind: (n_listeners, M) tracks, static logits, artists, kinds.
    """

    def __init__(self, sim: BatchSimulator, per_kind: int, chunk: int = 256) -> None:
        kinds = np.asarray(sim.track_kind)
        n_users = sim.n_users
        cols = []
        for kind in (-1, 0, 1):
            cols.append(min(per_kind, int((kinds == kind).sum())))
        width = sum(cols)
        self.index = np.empty((n_users, width), np.int64)
        self.static = np.empty((n_users, width))
        for start in range(0, n_users, chunk):
            users = np.arange(start, min(start + chunk, n_users))
            rows = sim.response.static_rows(users)
            at = 0
            for kind, n in zip((-1, 0, 1), cols, strict=True):
                if n == 0:
                    continue
                masked = np.where(kinds[None, :] == kind, rows, -np.inf)
                order = np.argsort(-masked, axis=1, kind="stable")[:, :n]
                self.index[users, at : at + n] = order
                self.static[users, at : at + n] = np.take_along_axis(rows, order, axis=1)
                at += n
        self.artist = sim.artist_of[self.index]
        self.kind = kinds[self.index]


_TABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def kind_candidates(sim: BatchSimulator, per_kind: int) -> KindCandidates:
    """The :class:`KindCandidates` of ``sim``'s world (made once per world and size)."""
    per_world = _TABLES.setdefault(sim.candidates, {})
    if per_kind not in per_world:
        per_world[per_kind] = KindCandidates(sim, per_kind)
    return per_world[per_kind]
