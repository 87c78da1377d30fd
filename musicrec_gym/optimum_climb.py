"""The long-term world's open-loop search: hill climbing with (flags, satisfaction) values.

The moves of :mod:`musicrec_gym.optimum_search` (swaps, moves and replacements), but
each improving move is taken at once (first improvement: far more, cheaper moves), a
sequence is valued over the states ``(flags, satisfaction)`` of
:mod:`musicrec_gym.optimum_kernels`, and a trial sequence is valued incrementally: with
the current sequence's forward masses ``M_t`` (probability of being there, in each
state, before play ``t``), its earned reward ``R_t`` before ``t`` and its backward values
``V_t``, a trial whose listen probabilities or satisfaction moves differ only at plays
``lo .. hi`` is worth ``R_lo + M_lo . V'_lo``, ``V'`` the induction from ``V_{hi+1}``
down through the changed plays. The search starts from the greedy oracle's sequence and
from the best of the ``lambda * kind`` rules' sequences (each valued exactly), and keeps
the better result; its final value is a full backward induction.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicrec_gym.optimum_kernels import (
    back_step,
    move_play,
    play,
    rule_sequence,
    sequence_value,
    track_logit,
)
from musicrec_gym.sim.constants import JIT_OPTIONS, WINDOW


@njit(**JIT_OPTIONS)
def _forward(cs, ca, ck, played0, warts0, seq, rep, art, ps, ds, played, warts):
    """Listen probabilities and satisfaction moves of candidates ``seq`` played in order."""
    played[:] = played0
    warts[:] = warts0
    for t in range(len(seq)):
        j = seq[t]
        logit = track_logit(cs, ca, played, warts, j, rep, art)
        ps[t] = 1.0 / (1.0 + np.exp(-logit))
        ds[t] = -1 if played[j] else ck[j]
        play(played, warts, j, ca[j])


@njit(**JIT_OPTIONS)
def _tables(ps, ds, x0, surv, next1, next0, vb, mf, rf):
    """Backward values ``vb``, forward masses ``mf`` and earned rewards ``rf`` of a sequence."""
    n_steps, n = len(ps), len(surv)
    vb[n_steps] = 0.0
    for t in range(n_steps - 1, -1, -1):
        back_step(ps[t], ds[t], t + 1 < n_steps, surv, next1, next0, vb[t + 1], vb[t])
    mf[0] = 0.0
    mf[0, x0] = 1.0
    rf[0] = 0.0
    for t in range(n_steps):
        mf[t + 1] = 0.0
        total = 0.0
        for x in range(n):
            m = mf[t, x]
            if m == 0.0:
                continue
            total += m
            x1, xs = next1[x, ds[t] + 1], next0[x]
            mf[t + 1, x1] += m * ps[t] * surv[x1]
            mf[t + 1, xs] += m * (1.0 - ps[t]) * surv[xs]
        rf[t + 1] = rf[t] + total * ps[t]


@njit(**JIT_OPTIONS)
def _trial(ps, ds, qs, es, surv, next1, next0, vb, mf, rf, va, vt):
    """Value of a trial with plays ``qs, es`` against the current ``ps, ds`` tables."""
    n_steps = len(ps)
    lo, hi = -1, -1
    for t in range(n_steps):
        if qs[t] != ps[t] or es[t] != ds[t]:
            if lo < 0:
                lo = t
            hi = t
    if lo < 0:
        return rf[n_steps]
    va[:] = vb[hi + 1]
    for t in range(hi, lo - 1, -1):
        back_step(qs[t], es[t], t + 1 < n_steps, surv, next1, next0, va, vt)
        va[:] = vt
    v = rf[lo]
    for x in range(len(va)):
        v += mf[lo, x] * va[x]
    return v


@njit(**JIT_OPTIONS)
def _climb(cs, ca, ck, played0, warts0, seq, rep, art, surv, next1, next0, x0, rounds):
    """First-improvement hill climb of ``seq`` in place; returns its exact value.

    Sweeps the swaps, moves and replacements, applying each move that improves the value
    (by more than 1e-12) at once, until a whole sweep finds none or ``rounds`` moves are
    made.
    """
    n_steps, m, n = len(seq), len(cs), len(surv)
    ps, ds = np.empty(n_steps), np.empty(n_steps, np.int64)
    qs, es = np.empty(n_steps), np.empty(n_steps, np.int64)
    played = np.empty(m, np.bool_)
    warts = np.empty(WINDOW, np.int64)
    vb, mf, rf = np.empty((n_steps + 1, n)), np.empty((n_steps + 1, n)), np.empty(n_steps + 1)
    va, vt = np.empty(n), np.empty(n)
    trial = seq.copy()
    used = np.zeros(m, np.bool_)
    _forward(cs, ca, ck, played0, warts0, seq, rep, art, ps, ds, played, warts)
    _tables(ps, ds, x0, surv, next1, next0, vb, mf, rf)
    cur = rf[n_steps]
    made = 0
    n_moves = 2 * n_steps * n_steps + n_steps * m
    since = 0  # moves tried since the last improvement
    move = 0
    while made < rounds and since < n_moves:
        # move number -> (kind, i, j): swaps/moves (i, j) first, then replacements
        if move < 2 * n_steps * n_steps:
            i, rest = move // (2 * n_steps), move % (2 * n_steps)
            j, swap = rest // 2, rest % 2 == 0
            ok = i != j and (not swap or i < j)
            if ok:
                if swap:
                    trial[:] = seq
                    trial[i], trial[j] = seq[j], seq[i]
                else:
                    move_play(seq, i, j, trial)
        else:
            r = move - 2 * n_steps * n_steps
            i, j = r // m, r % m
            if j == 0:
                used[:] = False
                for t in range(n_steps):
                    used[seq[t]] = True
            ok = not (used[j] or played0[j])
            if ok:
                trial[:] = seq
                trial[i] = j
        move = (move + 1) % n_moves
        since += 1
        if not ok:
            continue
        _forward(cs, ca, ck, played0, warts0, trial, rep, art, qs, es, played, warts)
        v = _trial(ps, ds, qs, es, surv, next1, next0, vb, mf, rf, va, vt)
        if v > cur + 1e-12:
            seq[:] = trial
            ps[:] = qs
            ds[:] = es
            _tables(ps, ds, x0, surv, next1, next0, vb, mf, rf)
            cur = rf[n_steps]
            made += 1
            since = 0
            used[:] = False
            for t in range(n_steps):
                used[seq[t]] = True
    sequence_value(ps, ds, 0, n_steps, surv, next1, next0, va)
    return va[x0]


@njit(**JIT_OPTIONS)
def climb_long_term(cs, ca, ck, played0, warts0, greedy, greedy_ok, surv, x0, next1, next0, rep,
                    art, lams, rounds):  # fmt: skip
    """Climb every session from its greedy sequence and its best rule sequence.

    Args:
        cs: (B, M) the candidates' static logits.
        ca: (B, M) their artists.
        ck: (B, M) their kinds.
        played0: (B, M) whether the warm-up played them.
        warts0: (B, WINDOW) the window's artists after the warm-up.
        greedy: (B, T) the greedy oracle's sequence as candidate positions.
        greedy_ok: (B,) whether every greedy track is a candidate (else not climbed).
        surv: (B, X) stay probabilities by state.
        x0: (B,) the start states.
        next1: (X, 3) the state after a listen, by satisfaction move + 1.
        next0: (X,) the state after a skip.
        rep: The repeat penalty.
        art: The artist penalty.
        lams: The rules' ``lambda`` grid.
        rounds: Improving moves at most, per start.

    Returns:
        ``(values, seqs)``: (B,) exact values and (B, T) the best sequences found.
    """
    b, n_steps = greedy.shape
    out = np.empty(b)
    seqs = np.empty((b, n_steps), np.int64)
    ps, ds = np.empty(n_steps), np.empty(n_steps, np.int64)
    seq = np.empty(n_steps, np.int64)
    vec = np.empty(surv.shape[1])
    for i in range(b):
        best_rule, best_v = seq.copy(), -1.0
        for li in range(len(lams)):
            rule_sequence(cs[i], ca[i], ck[i], played0[i], warts0[i], lams[li], n_steps, rep,
                          art, seq, ps, ds)  # fmt: skip
            sequence_value(ps, ds, 0, n_steps, surv[i], next1, next0, vec)
            if vec[x0[i]] > best_v:
                best_v = vec[x0[i]]
                best_rule[:] = seq
        v = _climb(cs[i], ca[i], ck[i], played0[i], warts0[i], best_rule, rep, art, surv[i],
                   next1, next0, x0[i], rounds)  # fmt: skip
        out[i] = v
        seqs[i] = best_rule
        if greedy_ok[i]:
            g = greedy[i].copy()
            v = _climb(cs[i], ca[i], ck[i], played0[i], warts0[i], g, rep, art, surv[i],
                       next1, next0, x0[i], rounds)  # fmt: skip
            if v > out[i]:
                out[i] = v
                seqs[i] = g
    return out, seqs
