"""The simulator's step and reset compiled with numba: one loop iteration per slot.

The same dynamics as :class:`~musicrec_gym.sim.simulator.BatchSimulator`'s NumPy
methods (the reference), computed play by play for one slot at a time, so that a
slot's numbers never depend on its batch; a batch is split into chunks run on every
core (``prange``). A step also encodes each slot's observation, and with autoreset
restarts the ended sessions in the same pass.

Arguments are packed into few arrays because each array argument costs the caller
about 40 ns to hand over (what a single environment's step is made of):

* ``cf`` (float64) and ``ci`` (int64): the world's constants, laid out by :data:`LAYOUT`
  with offsets and sizes in ``ci`` itself;
* ``si`` (int64), ``sf`` (float64) and ``rng`` (uint64): the slots' state, one row per
  slot, with columns laid out by ``ci`` (``BatchSimulator``'s state arrays are views of
  these columns);
* ``ce``, ``lay``: the packed encoder (:mod:`musicrec_gym.encoder_kernel`).

numba caches each module's compiled code checked against that module's own source
only: after editing :mod:`musicrec_gym.encoder_kernel` in a checkout, delete the
``.nbi``/``.nbc`` files under ``musicrec_gym/sim/__pycache__`` (an installed release
replaces both files, so its cache is rebuilt).

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

from musicrec_gym.encoder_kernel import BLOCK, MIN_BLOCK, encode_block, encode_window

# ``ci`` header: sizes and parameters, then offsets (into ``cf`` or ``ci``) and state columns.
(
    C_U, C_T, C_K, C_M, C_HW, C_WARM, C_POOL, C_CONTK, C_SKIPW, C_MAXS, C_MODE, C_PTAB,
    O_TASTE, O_FACT, O_UTERM, O_TTERM, O_POPCDF, O_BASE, O_CSTAT, O_CTHR,
    O_ARTIST, O_CIDX, O_CART, O_PTAB,
    I_USER, I_HLEN, I_STEPS, I_OPTA, I_HIST, I_HLIS, I_WT, I_WA, I_CAND, I_CART,
    F_OPTL, F_THR, F_WL, F_CST, F_PEN,
    HEADER,
) = range(40)  # fmt: skip
# float parameters, the first entries of ``cf``
(
    P_REPEAT, P_ARTIST, P_PER_SKIP, P_A, P_B, P_POP, P_NEXT,
    P_TLL, P_TLH, P_TSL, P_TSH, P_LIKE, P_ADD, N_PARAMS,
) = range(14)  # fmt: skip
WINDOW = 5
RESET_DRAWS = 1 + 3 * WINDOW
STEP_DRAWS = 4


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


MODES = ("listen", "time", "event")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 2.0**-53

_JIT = {"cache": True, "error_model": "numpy"}


@njit(**_JIT)
def _draw(rng: np.ndarray, s: int, k: int, out: np.ndarray) -> None:
    """``k`` uniforms of slot ``s``'s stream (``SlotStreams.uniform``, bit for bit)."""
    key, ctr = rng[s, 0], rng[s, 1]
    for j in range(k):
        x = (key ^ ((ctr + np.uint64(j)) * _GOLDEN)) + key
        z = x + _GOLDEN
        z = (z ^ (z >> _S30)) * _M1
        z = (z ^ (z >> _S27)) * _M2
        z = z ^ (z >> _S31)
        out[j] = np.float64(z >> _S11) * _TO_UNIT
    rng[s, 1] = ctr + np.uint64(k)


@njit(**_JIT)
def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + np.exp(-x))


@njit(**_JIT)
def _dot(cf: np.ndarray, a: int, b: int, k: int) -> float:
    acc = 0.0
    for j in range(k):
        acc += cf[a + j] * cf[b + j]
    return acc


@njit(**_JIT)
def _in_history(ir: np.ndarray, hist: int, hlen: int, track: int) -> bool:
    """Whether ``track`` was played this session (the first ``hlen`` history places)."""
    for j in range(hlen):  # noqa: SIM110  (a loop numba compiles; not a generator)
        if ir[hist + j] == track:
            return True
    return False


@njit(**_JIT)
def _window_count(ir: np.ndarray, wa: int, artist: int) -> int:
    """Plays by ``artist`` among the window's five."""
    same = 0
    for j in range(WINDOW):
        if ir[wa + j] == artist:
            same += 1
    return same


@njit(**_JIT)
def _fatigue(cf: np.ndarray, repeated: bool, same: int) -> float:
    """``ResponseModel.fatigue``: ``repeat * repeated + artist * same_artist``."""
    return cf[P_REPEAT] * (1.0 if repeated else 0.0) + cf[P_ARTIST] * same


@njit(**_JIT)
def _play(cf, ci, ir, fr, action, u_listen):
    """Play ``action`` in one slot (state rows ``ir``, ``fr``): (listen prob., listened)."""
    k, m = ci[C_K], ci[C_M]
    user = ir[ci[I_USER]]
    hlen = ir[ci[I_HLEN]]
    hist, wt, wa = ci[I_HIST], ci[I_WT], ci[I_WA]
    artist = ci[ci[O_ARTIST] + action]
    repeated = _in_history(ir, hist, hlen, action)
    static = (
        cf[ci[O_UTERM] + user]
        + _dot(cf, ci[O_TASTE] + user * k, ci[O_FACT] + action * k, k)
        + cf[ci[O_TTERM] + action]
    )
    p = _sigmoid(static - _fatigue(cf, repeated, _window_count(ir, wa, artist)))
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
    return p, listened


@njit(**_JIT)
def _update_optimal(cf, ci, ir, fr) -> None:
    """The best track now and its logit, from the cached candidates or the whole catalog."""
    m, k, n_tracks = ci[C_M], ci[C_K], ci[C_T]
    cst, pen = ci[F_CST], ci[F_PEN]
    best = fr[cst] - fr[pen]
    j = 0
    for c in range(1, m):
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
            logit = (_dot(cf, taste, fact + t * k, k) + cf[ci[O_TTERM] + t]) + uterm
            played = _in_history(ir, hist, hlen, t)
            v = logit - _fatigue(cf, played, _window_count(ir, wa, ci[ci[O_ARTIST] + t]))
            if t == 0 or v > best:
                best, action = v, t
    fr[ci[F_OPTL]] = best
    ir[ci[I_OPTA]] = action


@njit(**_JIT)
def _logging_choice(cf, ci, ir, mix, idx, sims, user, q_prev):
    """The radio-like logging policy's track (``BatchSimulator._logging_choice``).

    Returns the track and its place in the listener's pool (-1 for a popular track).
    A continuation after a play from the pool (``q_prev >= 0``) is looked up in the
    pool's nearest-tracks table (``ListenerCandidates.pool_nearest``), as the
    reference's warm-up does; otherwise, or without a table, it is computed.
    """
    n_tracks, pool, k, dim = ci[C_T], ci[C_POOL], ci[C_CONTK], ci[C_K]
    pop_cdf = ci[O_POPCDF]
    lo, hi = 0, n_tracks  # searchsorted(side="right"): the first entry > idx
    while lo < hi:
        mid = (lo + hi) // 2
        if cf[pop_cdf + mid] <= idx:
            lo = mid + 1
        else:
            hi = mid
    by_pop = min(lo, n_tracks - 1)
    pool_pos = min(np.int64(idx * pool), pool - 1)
    cand = ci[I_CAND]
    if mix < cf[P_POP]:
        return by_pop, -1
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


@njit(**_JIT)
def _reset_slot(cf, ci, si, sf, rng, s, user, u, sims) -> None:
    """Start a session in slot ``s`` (listener ``user``, or drawn if negative), warm-up played."""
    _draw(rng, s, RESET_DRAWS, u)
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
    cidx, cartu = ci[O_CIDX] + user * m, ci[O_CART] + user * m
    cstat = ci[O_CSTAT] + user * m
    ir[cand : cand + m] = ci[cidx : cidx + m]
    ir[cart : cart + m] = ci[cartu : cartu + m]
    fr[cst : cst + m] = cf[cstat : cstat + m]
    fr[pen : pen + m] = 0.0
    fr[ci[F_THR]] = cf[ci[O_CTHR] + user]
    at_pool = -1
    for j in range(ci[C_WARM]):
        action, at_pool = _logging_choice(
            cf, ci, ir, u[1 + 3 * j], u[2 + 3 * j], sims, user, at_pool
        )
        _play(cf, ci, ir, fr, action, u[3 + 3 * j])
    _update_optimal(cf, ci, ir, fr)


@njit(**_JIT)
def _step_slot(cf, ci, si, sf, rng, s, action, u):
    """One recommendation in slot ``s``.

    Returns reward, expected reward, optimal reward, listened, terminated, truncated.
    """
    _draw(rng, s, STEP_DRAWS, u)
    ir, fr = si[s], sf[s]
    a, b = cf[P_A], cf[P_B]
    optimal = a + b * _sigmoid(fr[ci[F_OPTL]])
    p, listened = _play(cf, ci, ir, fr, action, u[0])
    mode = ci[C_MODE]
    if mode == 0:
        reward = 1.0 if listened else 0.0
    elif mode == 1:
        if listened:
            reward = cf[P_TLL] + (cf[P_TLH] - cf[P_TLL]) * u[2]
        else:
            reward = cf[P_TSL] + (cf[P_TSH] - cf[P_TSL]) * u[2]
    elif listened:
        liked = 1.0 if u[2] < cf[P_LIKE] else 0.0
        added = 1.0 if u[3] < cf[P_ADD] else 0.0
        reward = 1.0 + liked + 2.0 * added
    else:
        reward = -1.0
    steps = ir[ci[I_STEPS]] + 1
    ir[ci[I_STEPS]] = steps
    window = ci[C_SKIPW]
    wl = ci[F_WL] + WINDOW - window
    recent = fr[wl]
    for j in range(1, window):
        recent += fr[wl + j]
    skips = window - recent
    hazard = 1.0 - np.exp(-(cf[ci[O_BASE] + ir[ci[I_USER]]] + cf[P_PER_SKIP] * skips))
    terminated = u[1] < hazard
    _update_optimal(cf, ci, ir, fr)
    truncated = not terminated and steps >= ci[C_MAXS]
    return reward, a + b * p, optimal, listened, terminated, truncated


@njit(**_JIT)
def _encode_slots(si, sf, ci, ce, lay, slots, obs, work) -> None:
    """Observations of ``slots`` into the rows of ``obs``: blocks, then a short tail one by one."""
    tracks = np.empty((BLOCK, WINDOW), np.int64)
    flags = np.empty((BLOCK, WINDOW), np.float64)
    wt, wl = ci[I_WT], ci[F_WL]
    n = slots.shape[0]
    for start in range(0, n, BLOCK):
        nb = min(BLOCK, n - start)
        if nb < MIN_BLOCK:
            for r in range(start, n):
                s = slots[r]
                encode_window(ce, lay, si[s, wt : wt + WINDOW], sf[s, wl : wl + WINDOW],
                              obs[r], work)  # fmt: skip
            return
        for r in range(nb):
            s = slots[start + r]
            for j in range(WINDOW):
                tracks[r, j] = si[s, wt + j]
                flags[r, j] = sf[s, wl + j]
        encode_block(ce, lay, tracks[:nb], flags[:nb], obs[start : start + nb], work)


@njit(**_JIT)
def _step_range(cf, ci, si, sf, rng, ce, lay, actions, lo, hi, autoreset,
                resf, resb, pre, obs, final_obs, work) -> None:  # fmt: skip
    """Step slots ``lo..hi-1``; with ``autoreset``, restart ended ones; encode all."""
    u = np.empty(RESET_DRAWS, np.float64)
    sims = np.empty(2 * ci[C_POOL], np.float64)
    warm = ci[C_WARM]
    ended = np.empty(hi - lo, np.int64)
    n_ended = 0
    for s in range(lo, hi):
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
        _encode_slots(si, sf, ci, ce, lay, ended, last, work)
        for r in range(n_ended):
            s = ended[r]
            for j in range(final_obs.shape[1]):
                final_obs[s, j] = last[r, j]
            _reset_slot(cf, ci, si, sf, rng, s, -1, u, sims)
    _encode_slots(si, sf, ci, ce, lay, np.arange(lo, hi), obs[lo:hi], work)


@njit(parallel=True, **_JIT)
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


@njit(**_JIT)
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


@njit(**_JIT)
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
    return ir[ci[I_USER]], ir[ci[I_OPTA]], cf[P_A] + cf[P_B] * _sigmoid(sf[0, ci[F_OPTL]])


@njit(**_JIT)
def optimal_rewards(cf, ci, sf, slots, out) -> None:
    """The best expected reward now in ``slots``, as a step reports it (the same ``exp``)."""
    for r in range(slots.shape[0]):
        out[r] = cf[P_A] + cf[P_B] * _sigmoid(sf[slots[r], ci[F_OPTL]])


@njit(**_JIT)
def reset_slots(cf, ci, si, sf, rng, ce, lay, slots, users, obs, work) -> None:
    """Restart ``slots`` (listener ``users[i]``, drawn where negative); codes into ``obs``."""
    u = np.empty(RESET_DRAWS, np.float64)
    sims = np.empty(2 * ci[C_POOL], np.float64)
    for r in range(slots.shape[0]):
        _reset_slot(cf, ci, si, sf, rng, slots[r], users[r], u, sims)
    _encode_slots(si, sf, ci, ce, lay, slots, obs, work[0])


def num_threads() -> int:
    """Threads the parallel kernel splits a batch over (``NUMBA_NUM_THREADS`` sets it)."""
    return numba.get_num_threads()
