"""The long-term world's upper bound: a priced relaxation with satisfaction in the state.

In ``MusicRecLongTerm-v0`` the leave hazard depends on the listen flags *and* the
listener's satisfaction, which a listen moves by the track's kind (popular -1, neutral
0, discovery +1; a repeat -1). The sorted and artist-capacity bounds of
:mod:`musicrec_gym.optimum_model` assume a hazard of the flags alone (their exchange
argument fails: a discovery played early lowers every later hazard), so they are not
used here. The Lagrangian bound carries over with the state ``(flags, satisfaction)``:

* *Options.* At step ``t`` a never-played track ``i`` of kind ``c`` has listen
  probability at most ``sigmoid(a_t(i))`` (``a_t(i)``: the static logit less the
  warm-up plays' artist fatigue still in the window), and a listen of it moves
  satisfaction by ``c``; a repeat has at most ``sigmoid(max_i a_t(i) - repeat)`` and
  moves it by -1. The ``n_top`` best never-played tracks of each kind are priced
  apart; the others of a kind share a *free* option of that kind (their best bound;
  the popular one also holds the repeats).
* *Relaxation.* Any policy (history-dependent, random) plays at each step one of these
  options with a listen probability at most the option's bound, the flags and the
  satisfaction move as in the session, and the hazard is a function of them: so it is a
  policy of the relaxed process where each step picks an option and any probability in
  ``[0, bound]`` (an end point is optimal: the value is linear in it).
* *Prices.* A track is played for the first time at most once on every path, so for
  ``y_i >= 0``, ``y_i (1 - sum_t alive_t [first play of i at t]) >= 0``; adding these
  and maximising the relaxed process with the prices charged gives ``optimum <= sum_i
  y_i + V_relaxed(y)`` for every ``y >= 0``. ``y = 0`` is the bound without the
  play-once constraint on the priced tracks; a projected subgradient descent (the
  subgradient is ``1 - expected uses``) looks for lower ones, and the smallest value met
  is the bound.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicrec_gym.optimum_kernels import satisfaction_levels, survive_states, transitions
from musicrec_gym.optimum_model import SessionStart, flag_code, require_listen, upper_bound
from musicrec_gym.sim.constants import JIT_OPTIONS, WINDOW
from musicrec_gym.sim.response import sigmoid
from musicrec_gym.sim.simulator import BatchSimulator


def kind_options(
    sim: BatchSimulator, start: SessionStart, n_top: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The relaxation's options of each session start.

    Returns:
        ``(top_p, top_kind, free_p)``: (B, T, L) the bounds of the priced tracks (the
        ``n_top`` never-played tracks of highest static logit of each kind) at every step,
        (B, L) their kinds, and (B, T, 3) the free options' bounds by kind + 1 (0 where
        a kind has no other track).
    """
    users = start.user
    n_steps = sim.max_steps
    static = sim.response.static_rows(users)
    b, n = static.shape
    kinds = np.asarray(sim.track_kind)
    fresh = np.ones((b, n), dtype=bool)
    rows = np.repeat(np.arange(b), start.hist.shape[1])
    played = start.hist.ravel()
    fresh[rows[played >= 0], played[played >= 0]] = False
    tops, rests = [], []
    for kind in (-1, 0, 1):
        mine = fresh & (kinds[None, :] == kind)
        count = int(min(n_top, mine.sum(axis=1).min()))
        ranked = np.where(mine, static, -np.inf)
        top = np.argsort(-ranked, axis=1, kind="stable")[:, :count]
        rest = mine.copy()
        rest[np.arange(b)[:, None], top] = False
        tops.append(top)
        rests.append(rest)
    top = np.concatenate(tops, axis=1)
    artist_of = sim.artist_of[:-1]
    no_repeat = np.zeros((b, n), dtype=bool)
    top_p = np.empty((b, n_steps, top.shape[1]))
    free_p = np.empty((b, n_steps, 3))
    for t in range(n_steps):
        if t <= WINDOW:  # from step WINDOW on, no warm-up play is left in the window
            window = start.win_artist[:, min(t, WINDOW) :]
            same = (window[:, :, None] == artist_of[None, None, :]).sum(axis=1)
            adjusted = static - sim.response.fatigue(no_repeat, same)
            at_top = sigmoid(np.take_along_axis(adjusted, top, axis=1))
            free = np.stack(
                [sigmoid(np.where(rest, adjusted, -np.inf).max(axis=1)) for rest in rests], axis=1
            )
            repeat = sigmoid(adjusted.max(axis=1) - sim.params.response.repeat)
            free[:, 0] = np.maximum(free[:, 0], repeat)
        top_p[:, t] = at_top
        free_p[:, t] = free
    return top_p, kinds[top], free_p


@njit(**JIT_OPTIONS)
def _relaxed(top_p, top_d, free_p, prices, surv, next1, next0, x0, uses, value, choice, q_of):
    """Optimum of the priced relaxation from ``x0``; fills ``uses`` (expected first plays)."""
    n_steps, n_top = top_p.shape
    n = len(surv)
    go1 = np.empty(3)
    for t in range(n_steps - 1, -1, -1):
        cont = t + 1 < n_steps
        for x in range(n):
            g0 = surv[next0[x]] * value[t + 1, next0[x]] if cont else 0.0
            for d in range(3):
                x1 = next1[x, d]
                go1[d] = (surv[x1] * value[t + 1, x1] if cont else 0.0) + 1.0 - g0
            best, pick, q = 0.0, -4, 0.0  # p = 0: nothing earned, nothing paid
            for d in range(3):
                v = free_p[t, d] * go1[d]
                if v > best:
                    best, pick, q = v, -1 - d, free_p[t, d]
            for i in range(n_top):
                v = top_p[t, i] * go1[top_d[i] + 1] - prices[i]
                if v > best:
                    best, pick, q = v, i, top_p[t, i]
            value[t, x] = g0 + best
            choice[t, x] = pick
            q_of[t, x] = q
    uses[:] = 0.0
    mass = np.zeros(n)
    new = np.empty(n)
    mass[x0] = 1.0
    for t in range(n_steps):
        new[:] = 0.0
        for x in range(n):
            m = mass[x]
            if m == 0.0:
                continue
            pick = choice[t, x]
            if pick >= 0:
                uses[pick] += m
                d = top_d[pick] + 1
            else:
                d = 0 if pick == -4 else -1 - pick
            q = q_of[t, x]
            x1, xs = next1[x, d], next0[x]
            new[x1] += m * q * surv[x1]
            new[xs] += m * (1.0 - q) * surv[xs]
        mass[:] = new
    return value[0, x0]


@njit(**JIT_OPTIONS)
def _lagrangian(top_p, top_d, free_p, base, x0, k, per_skip, levels, weight, iterations, step):
    """Smallest ``sum(prices) + relaxed optimum`` met by projected subgradient descent."""
    b, n_steps, n_top = top_p.shape
    n = 2**k * (2 * levels + 1)
    next1, next0 = transitions(2**k, levels)
    surv = np.empty(n)
    value = np.zeros((n_steps + 1, n))
    choice = np.empty((n_steps, n), np.int64)
    q_of = np.empty((n_steps, n))
    uses = np.empty(n_top)
    prices = np.empty(n_top)
    out = np.empty(b)
    for i in range(b):
        survive_states(base[i], per_skip, k, levels, weight, surv)
        prices[:] = 0.0
        best = np.inf
        for it in range(iterations + 1):
            v = _relaxed(top_p[i], top_d[i], free_p[i], prices, surv, next1, next0, x0[i], uses,
                         value, choice, q_of) + prices.sum()  # fmt: skip
            best = min(best, v)
            eta = step / np.sqrt(it + 1.0)
            for j in range(n_top):
                prices[j] = max(prices[j] - eta * (1.0 - uses[j]), 0.0)
        out[i] = best
    return out


def long_term_bound(
    sim: BatchSimulator,
    start: SessionStart,
    n_top: int = 10,
    iterations: int = 250,
    step: float = 0.01,
) -> np.ndarray:
    """(B,) provable upper bound on the long-term world's optimal return (module doc).

    Args:
        sim: A simulator of the world (satisfaction on; its state is not used).
        start: The session starts (satisfaction 0).
        n_top: Tracks of each kind priced apart.
        iterations: Subgradient steps.
        step: The first step size (then ``step / sqrt(it + 1)``).
    """
    require_listen(sim)
    levels = satisfaction_levels(sim)
    k = sim.params.leave.skip_window
    top_p, top_kind, free_p = kind_options(sim, start, n_top)
    x0 = flag_code(start.win_listened[:, WINDOW - k :]) * (2 * levels + 1) + levels
    sat = sim.params.satisfaction
    return _lagrangian(
        top_p, np.ascontiguousarray(top_kind), free_p, sim.leave.base_rate[start.user], x0, k,
        float(sim.params.leave.per_skip), levels, float(sat.weight) if levels else 0.0,
        iterations, step,
    )  # fmt: skip


def session_bound(sim: BatchSimulator, start: SessionStart) -> np.ndarray:
    """(B,) the provable upper bound that fits ``sim``'s world, per session start.

    :func:`long_term_bound` with satisfaction on, else
    :func:`musicrec_gym.optimum_model.upper_bound`.
    """
    if satisfaction_levels(sim):
        return long_term_bound(sim, start)
    return upper_bound(sim, start)
