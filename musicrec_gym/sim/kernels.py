"""The simulator's step and reset compiled with numba: one loop iteration per slot.

The same dynamics as :class:`~musicrec_gym.sim.simulator.BatchSimulator`'s NumPy
methods (the reference), computed play by play for one slot at a time, so that a
slot's numbers never depend on its batch; a batch is split into chunks run on every
core (``prange``). A step also encodes each slot's observation, and with autoreset
restarts the ended sessions in the same pass. This module only keeps the session
state; each listener role's formula is its own module's compiled function: the
response (:mod:`~musicrec_gym.sim.response`), the leave hazard
(:mod:`~musicrec_gym.sim.leave`), the reward (:mod:`~musicrec_gym.sim.reward`), the
logging policy (:mod:`~musicrec_gym.sim.logging_policy`) and the random streams
(:mod:`~musicrec_gym.sim.rng`).

Arguments are packed into few arrays because each array argument costs the caller
about 40 ns to hand over (what a single environment's step is made of):

* ``cf`` (float64) and ``ci`` (int64): the world's constants, laid out as
  :mod:`musicrec_gym.sim.layout` says, with offsets and sizes in ``ci`` itself;
* ``si`` (int64), ``sf`` (float64) and ``rng`` (uint64): the slots' state, one row per
  slot, with columns laid out by ``ci`` (``BatchSimulator``'s state arrays are views of
  these columns);
* ``ce``, ``lay``: the packed encoder (:mod:`musicrec_gym.encoder_kernel`).

numba caches each module's compiled code checked against that module's own source
only: after editing a module these kernels call (the role modules above,
:mod:`musicrec_gym.encoder_kernel`) in a checkout, delete the ``.nbi``/``.nbc`` files
under ``musicrec_gym/sim/__pycache__`` and ``musicrec_gym/__pycache__`` (an installed
release replaces every file, so its cache is rebuilt).

Floats are the reference's up to the last bits of library ``exp`` and of dot
products summed in another order; discrete outcomes (plays, listens, ends) are the
same (``tests/sim/test_kernels.py`` compares the two on thousands of steps).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from musicrec_gym.encoder_kernel import encode_slots, encode_window
from musicrec_gym.sim.constants import JIT_OPTIONS, RESET_DRAWS, STEP_DRAWS, WINDOW
from musicrec_gym.sim.layout import (
    C_HW,
    C_K,
    C_M,
    C_MAXS,
    C_MODE,
    C_POOL,
    C_SATL,
    C_SKIPW,
    C_T,
    C_U,
    C_WARM,
    F_CST,
    F_OPTL,
    F_PEN,
    F_THR,
    F_WL,
    I_CAND,
    I_CART,
    I_HIST,
    I_HLEN,
    I_HLIS,
    I_OPTA,
    I_SAT,
    I_STEPS,
    I_USER,
    I_WA,
    I_WT,
    O_ARTIST,
    O_BASE,
    O_CART,
    O_CIDX,
    O_CSTAT,
    O_CTHR,
    O_FACT,
    O_KIND,
    O_TASTE,
    O_TTERM,
    O_UTERM,
    P_A,
    P_ADD,
    P_ARTIST,
    P_B,
    P_LIKE,
    P_PER_SKIP,
    P_REPEAT,
    P_SATW,
    P_TLH,
    P_TLL,
    P_TSH,
    P_TSL,
)  # fmt: skip
from musicrec_gym.sim.leave import hazard_one, hazard_satisfied_one
from musicrec_gym.sim.logging_policy import logging_choice
from musicrec_gym.sim.prefetch import prefetch
from musicrec_gym.sim.response import (
    fatigue_one,
    sigmoid_one,
    static_logit,
    static_row_logit,
    taste_dot,
)
from musicrec_gym.sim.reward import draw_one, expected_one
from musicrec_gym.sim.rng import draw
from musicrec_gym.sim.satisfaction import satisfaction_after


def one_out_size(pool: int) -> int:
    """Length of the scratch ``out`` of :func:`step_one` and :func:`reset_one`."""
    return RESET_DRAWS + 2 * pool


def entry_point(kernel: Any, *args: Any) -> Callable[..., Any]:
    """``kernel`` compiled for ``args``' types, callable without numba's type dispatch.

    Compiles (or loads from the cache) without running. The call then skips resolving
    each argument's type, a quarter of a microsecond of a single env's step; the
    caller must pass arguments of exactly these types. (A numba whose internals differ
    gets the kernel itself back: the same results, with numba's dispatch.)
    """
    sig = tuple(numba.typeof(a) for a in args)
    kernel.compile(sig)
    try:
        return kernel.overloads[sig].entry_point
    except (AttributeError, KeyError):  # another numba's internals: its own dispatch
        return kernel


@njit(**JIT_OPTIONS)
def _in_history(ir: np.ndarray, hist: int, hlen: int, track: int) -> bool:
    """Whether ``track`` was played this session (the first ``hlen`` history places)."""
    for j in range(hlen):  # noqa: SIM110  (a loop numba compiles; not a generator)
        if ir[hist + j] == track:
            return True
    return False


@njit(**JIT_OPTIONS)
def _window_count(ir: np.ndarray, wa: int, artist: int) -> int:
    """Plays by ``artist`` among the window's five."""
    same = 0
    for j in range(WINDOW):
        if ir[wa + j] == artist:
            same += 1
    return same


@njit(**JIT_OPTIONS)
def _play(cf, ci, ir, fr, action, u_listen):
    """Play ``action`` in one slot (state rows ``ir``, ``fr``).

    Returns the listen probability, whether the listener listened, and whether the
    track had been played before this session (a repeat).
    """
    k, m = ci[C_K], ci[C_M]
    user = ir[ci[I_USER]]
    hlen = ir[ci[I_HLEN]]
    hist, wt, wa = ci[I_HIST], ci[I_WT], ci[I_WA]
    artist = ci[ci[O_ARTIST] + action]
    repeated = _in_history(ir, hist, hlen, action)
    static = static_logit(
        cf[ci[O_UTERM] + user],
        taste_dot(cf, ci[O_TASTE] + user * k, ci[O_FACT] + action * k, k),
        cf[ci[O_TTERM] + action],
    )
    same = _window_count(ir, wa, artist)
    p = sigmoid_one(static - fatigue_one(cf[P_REPEAT], cf[P_ARTIST], repeated, same))
    listened = u_listen < p
    # The candidates' fatigue, as the reference's masked adds (in the same order), as
    # selects over views indexed by an unsigned counter: a loop the compiler vectorises.
    cands, carts = ir[ci[I_CAND] : ci[I_CAND] + m], ir[ci[I_CART] : ci[I_CART] + m]
    pens = fr[ci[F_PEN] : ci[F_PEN] + m]
    hlis, hlen_at, wl = ci[I_HLIS], ci[I_HLEN], ci[F_WL]
    w_repeat, w_artist = cf[P_REPEAT], cf[P_ARTIST]
    gone_artist = ir[wa]
    hit = -2 if repeated else action  # -2: no candidate is a new repeat
    for c in range(np.uint64(m)):
        x = pens[c]
        x = x + w_repeat if cands[c] == hit else x
        ca = carts[c]
        same, gone = ca == artist, ca == gone_artist
        x = x + w_artist if same and not gone else (x - w_artist if gone and not same else x)
        pens[c] = x
    ir[hist + hlen] = action
    ir[hlis + hlen] = 1 if listened else 0
    ir[hlen_at] = hlen + 1
    for j in range(WINDOW - 1):
        ir[wt + j] = ir[wt + j + 1]
        ir[wa + j] = ir[wa + j + 1]
        fr[wl + j] = fr[wl + j + 1]
    ir[wt + WINDOW - 1] = action
    ir[wa + WINDOW - 1] = artist
    fr[wl + WINDOW - 1] = 1.0 if listened else 0.0
    return p, listened, repeated


PEN_SLACK = 1e-9
"""Allowance for a fatigue penalty below zero: adding and taking off the >= 0 weights in
floating point can leave one a few ulps (about 1e-15) under its true value of 0."""


@njit(**JIT_OPTIONS)
def _update_optimal(cf, ci, ir, fr) -> None:
    """The best track now and its logit, from the cached candidates or the whole catalog.

    The cached tracks are in descending order of static logit, so the scan stops at the
    first whose static logit is below the best penalised one so far: the same track and
    logit as a scan of all ``m`` (at 1,000,000 tracks, ``m`` = 256, usually a few).
    """
    m, k, n_tracks = ci[C_M], ci[C_K], ci[C_T]
    cst, pen = ci[F_CST], ci[F_PEN]
    best = fr[cst] - fr[pen]
    j = 0
    for c in range(1, m):
        if fr[cst + c] < best - PEN_SLACK:  # static logits descend, penalties are >= 0:
            break  # no later track can reach ``best``, so it stays the first best
        v = fr[cst + c] - fr[pen + c]
        if v > best:
            best, j = v, c
    action = ir[ci[I_CAND] + j]
    if best < fr[ci[F_THR]]:  # fatigue pushed the cache below the rest: score everything
        user, hlen = ir[ci[I_USER]], ir[ci[I_HLEN]]
        hist, wa = ci[I_HIST], ci[I_WA]
        taste, fact = ci[O_TASTE] + user * k, ci[O_FACT]
        uterm = cf[ci[O_UTERM] + user]
        for t in range(n_tracks):
            logit = static_row_logit(uterm, taste_dot(cf, taste, fact + t * k, k),
                                     cf[ci[O_TTERM] + t])  # fmt: skip
            played = _in_history(ir, hist, hlen, t)
            same = _window_count(ir, wa, ci[ci[O_ARTIST] + t])
            v = logit - fatigue_one(cf[P_REPEAT], cf[P_ARTIST], played, same)
            if t == 0 or v > best:
                best, action = v, t
    fr[ci[F_OPTL]] = best
    ir[ci[I_OPTA]] = action


@njit(**JIT_OPTIONS)
def _reset_slot(cf, ci, si, sf, rng, s, user, u, sims) -> None:
    """Start a session in slot ``s`` (listener ``user``, or drawn if negative), warm-up played."""
    draw(rng, s, RESET_DRAWS, u)
    n_users, m = ci[C_U], ci[C_M]
    drawn = min(np.int64(u[0] * n_users), n_users - 1)
    if user < 0:
        user = drawn
    ir, fr = si[s], sf[s]
    # Layout read once: stores into ``ir`` could alias ``ci`` (both int64), which
    # would make the compiler reload every offset after every store.
    hw, hist, hlis, wt, wa, wl = ci[C_HW], ci[I_HIST], ci[I_HLIS], ci[I_WT], ci[I_WA], ci[F_WL]
    cand, cart, cst, pen = ci[I_CAND], ci[I_CART], ci[F_CST], ci[F_PEN]
    for j in range(hw):
        ir[hist + j] = -1
        ir[hlis + j] = 0
    for j in range(WINDOW):
        ir[wt + j] = -1
        ir[wa + j] = -1
        fr[wl + j] = 0.0
    ir[ci[I_USER]] = user
    ir[ci[I_HLEN]] = 0
    ir[ci[I_STEPS]] = 0
    ir[ci[I_SAT]] = 0
    cidx, cartu = ci[O_CIDX] + user * m, ci[O_CART] + user * m
    cstat = ci[O_CSTAT] + user * m
    ir[cand : cand + m] = ci[cidx : cidx + m]
    ir[cart : cart + m] = ci[cartu : cartu + m]
    fr[cst : cst + m] = cf[cstat : cstat + m]
    fr[pen : pen + m] = 0.0
    fr[ci[F_THR]] = cf[ci[O_CTHR] + user]
    at_pool = -1
    for j in range(ci[C_WARM]):
        action, at_pool = logging_choice(
            cf, ci, ir, u[1 + 3 * j], u[2 + 3 * j], sims, user, at_pool
        )
        _play(cf, ci, ir, fr, action, u[3 + 3 * j])
    _update_optimal(cf, ci, ir, fr)


@njit(**JIT_OPTIONS)
def _step_slot(cf, ci, si, sf, rng, s, action, u):
    """One recommendation in slot ``s``.

    Returns reward, expected reward, optimal reward, listened, terminated, truncated.
    """
    draw(rng, s, STEP_DRAWS, u)
    ir, fr = si[s], sf[s]
    a, b = cf[P_A], cf[P_B]
    optimal = expected_one(a, b, sigmoid_one(fr[ci[F_OPTL]]))
    p, listened, repeated = _play(cf, ci, ir, fr, action, u[0])
    reward = draw_one(ci[C_MODE], listened, u[2], u[3], cf[P_TLL], cf[P_TLH], cf[P_TSL],
                      cf[P_TSH], cf[P_LIKE], cf[P_ADD])  # fmt: skip
    steps = ir[ci[I_STEPS]] + 1
    ir[ci[I_STEPS]] = steps
    window = ci[C_SKIPW]
    wl = ci[F_WL] + WINDOW - window
    recent = fr[wl]
    for j in range(1, window):
        recent += fr[wl + j]
    skips = window - recent
    base = cf[ci[O_BASE] + ir[ci[I_USER]]]
    levels = ci[C_SATL]  # 0: no satisfaction (MusicRec-v0)
    if levels > 0:
        kind = ci[ci[O_KIND] + action]
        sat = satisfaction_after(ir[ci[I_SAT]], kind, repeated, listened, levels)
        ir[ci[I_SAT]] = sat
        hazard = hazard_satisfied_one(base, cf[P_PER_SKIP], skips, cf[P_SATW], sat)
    else:
        hazard = hazard_one(base, cf[P_PER_SKIP], skips)
    terminated = u[1] < hazard
    _update_optimal(cf, ci, ir, fr)
    truncated = not terminated and steps >= ci[C_MAXS]
    return reward, expected_one(a, b, p), optimal, listened, terminated, truncated


@njit(**JIT_OPTIONS)
def _step_range(cf, ci, si, sf, rng, ce, lay, actions, lo, hi, autoreset,
                resf, resb, pre, obs, final_obs, work) -> None:  # fmt: skip
    """Step slots ``lo..hi-1``; with ``autoreset``, restart ended ones; encode all."""
    u = np.empty(RESET_DRAWS, np.float64)
    sims = np.empty(2 * ci[C_POOL], np.float64)
    warm = ci[C_WARM]
    ended = np.empty(hi - lo, np.int64)
    n_ended = 0
    k_dim, fact, tterm, art = ci[C_K], ci[O_FACT], ci[O_TTERM], ci[O_ARTIST]
    for s in range(lo, hi):
        if s + 1 < hi:  # the next play's rows (at catalog scale, misses) come in meanwhile
            a = actions[s + 1]
            prefetch(cf, fact + a * k_dim)
            prefetch(cf, tterm + a)
            prefetch(ci, art + a)
        out = _step_slot(cf, ci, si, sf, rng, s, actions[s], u)
        resf[0, s], resf[1, s], resf[2, s] = out[0], out[1], out[2]
        resb[0, s], resb[1, s], resb[2, s] = out[3], out[4], out[5]
        ir = si[s]
        pre[0, s] = ir[ci[I_USER]]
        pre[1, s] = ir[ci[I_OPTA]]
        pre[2, s] = ir[ci[I_STEPS]]
        for j in range(warm):
            pre[3 + j, s] = ir[ci[I_HIST] + j]
            pre[3 + warm + j, s] = ir[ci[I_HLIS] + j]
        if autoreset and (resb[1, s] or resb[2, s]):
            ended[n_ended] = s
            n_ended += 1
    if n_ended:
        ended = ended[:n_ended]
        last = np.empty((n_ended, final_obs.shape[1]), np.float32)
        encode_slots(ce, lay, si, sf, ci[I_WT], ci[F_WL], ended, last, work)
        for r in range(n_ended):
            s = ended[r]
            for j in range(final_obs.shape[1]):
                final_obs[s, j] = last[r, j]
            _reset_slot(cf, ci, si, sf, rng, s, -1, u, sims)
    encode_slots(ce, lay, si, sf, ci[I_WT], ci[F_WL], np.arange(lo, hi), obs[lo:hi], work)


@njit(parallel=True, **JIT_OPTIONS)
def step_parallel(cf, ci, si, sf, rng, ce, lay, actions, autoreset,
                  resf, resb, pre, obs, final_obs, work) -> None:  # fmt: skip
    """Every slot steps (see :func:`_step_range`), in chunks spread over the cores.

    One chunk per row of ``work``. Even one chunk runs faster here than in a plain
    ``njit`` function: numba compiles a parallel loop's body with its arrays marked
    as not aliasing each other (15% on the whole step), for about 1 µs per call.
    """
    n = si.shape[0]
    chunks = work.shape[0]
    for c in prange(chunks):
        lo, hi = c * n // chunks, (c + 1) * n // chunks
        if hi > lo:
            _step_range(cf, ci, si, sf, rng, ce, lay, actions, lo, hi, autoreset,
                        resf, resb, pre, obs, final_obs, work[c])  # fmt: skip


@njit(**JIT_OPTIONS)
def step_one(cf, ci, si, sf, rng, ce, lay, action, out, obs, work):
    """Slot 0 steps with ``action`` (a single env); its observation into ``obs[:code_dim]``.

    Returns reward, expected reward, optimal reward, listened, terminated, truncated,
    the next optimal action and the step count. ``out`` (float64,
    :func:`one_out_size`) is scratch.
    """
    u = out[:STEP_DRAWS]  # scratch: no allocation in a single env's step
    reward, expected, optimal, listened, terminated, truncated = _step_slot(
        cf, ci, si, sf, rng, 0, action, u
    )
    ir = si[0]
    wt, wl = ci[I_WT], ci[F_WL]
    encode_window(ce, lay, ir[wt : wt + WINDOW], sf[0, wl : wl + WINDOW], obs, work[0])
    return (
        reward, expected, optimal, listened, terminated, truncated, ir[ci[I_OPTA]],
        ir[ci[I_STEPS]],
    )  # fmt: skip


@njit(**JIT_OPTIONS)
def reset_one(cf, ci, si, sf, rng, ce, lay, user, out, obs, work):
    """Slot 0 restarts (a single env), with ``user`` or a drawn listener if negative.

    Its observation goes into ``obs[:code_dim]``. Returns the listener, the best first
    recommendation and its expected reward. ``out``: scratch, as for :func:`step_one`.
    """
    u = out[:RESET_DRAWS]  # scratch: no allocation in a single env's reset
    sims = out[RESET_DRAWS:]
    _reset_slot(cf, ci, si, sf, rng, 0, user, u, sims)
    ir = si[0]
    wt, wl = ci[I_WT], ci[F_WL]
    encode_window(ce, lay, ir[wt : wt + WINDOW], sf[0, wl : wl + WINDOW], obs, work[0])
    optimal = expected_one(cf[P_A], cf[P_B], sigmoid_one(sf[0, ci[F_OPTL]]))
    return ir[ci[I_USER]], ir[ci[I_OPTA]], optimal


@njit(**JIT_OPTIONS)
def optimal_rewards(cf, ci, sf, slots, out) -> None:
    """The best expected reward now in ``slots``, as a step reports it (the same ``exp``)."""
    for r in range(slots.shape[0]):
        out[r] = expected_one(cf[P_A], cf[P_B], sigmoid_one(sf[slots[r], ci[F_OPTL]]))


@njit(**JIT_OPTIONS)
def reset_slots(cf, ci, si, sf, rng, ce, lay, slots, users, obs, work) -> None:
    """Restart ``slots`` (listener ``users[i]``, drawn where negative); codes into ``obs``."""
    u = np.empty(RESET_DRAWS, np.float64)
    sims = np.empty(2 * ci[C_POOL], np.float64)
    for r in range(slots.shape[0]):
        _reset_slot(cf, ci, si, sf, rng, slots[r], users[r], u, sims)
    encode_slots(ce, lay, si, sf, ci[I_WT], ci[F_WL], slots, obs, work[0])


def num_threads() -> int:
    """Threads the parallel kernel splits a batch over (``NUMBA_NUM_THREADS`` sets it)."""
    return numba.get_num_threads()
