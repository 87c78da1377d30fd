"""A fitted world's step and reset compiled with numba: one loop iteration per slot.

The same dynamics as :class:`~musicrec_gym.sim.fitted.FittedSimulator`'s NumPy methods
(the reference), for one slot at a time, so a slot's numbers never depend on its batch,
on the machinery of the built-in world's kernels (:mod:`musicrec_gym.sim.kernels`): the
slot streams (:func:`~musicrec_gym.sim.rng.draw`), the reward
(:mod:`~musicrec_gym.sim.reward`), the listen probability
(:func:`~musicrec_gym.sim.response.sigmoid_one`) and the session encoder
(:mod:`musicrec_gym.encoder_kernel`). A batch step plays every slot, encodes every
window in SIMD blocks, runs the state tower and scans the catalog for the optimum: an
inner product per track, found exactly without scoring every track: the catalog is
grouped once (``fitted_response.track_clusters``), a bound per group is scored
(vectorised), and only the groups whose bound reaches the best so far are scanned; then
the session's repeats from the table. With autoreset it restarts the ended sessions in
the same pass.

Arrays (the argument counts matter for a single env's step, see ``kernels``):

* ``cf`` (float64) and ``ci`` (int64): the world's constants, at the offsets
  :func:`pack` writes into ``ci``'s header (the ``C_*``/``O_*`` names below);
* ``si`` (int64), ``sf`` (float64), ``rng`` (uint64): the slots' state, one row per
  slot, laid out as the ``S_*`` names say (``FittedSimulator``'s state arrays are views
  of these columns);
* ``ce``, ``lay``: the packed encoder; ``acc``: scratch (a mark per track, a bound
  per group, the state tower's hidden layer).

Floats are the reference's up to the order of the sums (BLAS against these loops) and
the encoder's rational ``tanh``; discrete outcomes are the same
(``tests/sim/test_fitted_kernels.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from musicrec_gym.encoder_kernel import encode_slots, encode_window
from musicrec_gym.sim.constants import FITTED_RESET_DRAWS, JIT_OPTIONS, STEP_DRAWS, WINDOW
from musicrec_gym.sim.fitted_response import REPEAT_COUNTS
from musicrec_gym.sim.response import sigmoid_one
from musicrec_gym.sim.reward import draw_one, expected_one
from musicrec_gym.sim.rng import draw

# ``ci``'s header: sizes, then offsets into ``cf`` (O_*) and ``ci`` (O_START*)
C_N, C_K, C_F, C_H, C_U, C_HW, C_SKIPW, C_MAXS, C_MODE, C_NPOS, C_C, C_G = range(12)
O_W1, O_B1, O_W2, O_B2, O_REP, O_POS, O_CB, O_V, O_MT, O_CMAX, O_CRAD, O_SFEAT = range(12, 24)
O_STRACK, O_SLIS, O_ORDER, O_CSTART = range(24, 28)
HEADER = 28
SLACK = 1e-6
"""Added to a group's bound: far above the rounding of any logit, so no group that could
hold the best (or a tie) is skipped."""
# ``cf``'s first values
P_A, P_B, P_TLL, P_TLH, P_TSL, P_TSH, P_LIKE, P_ADD, P_PER_SKIP, P_INV_MAXLEN = range(10)
N_PARAMS = 10
# a slot's state: ``si`` columns (the history's width ``hw`` from ``ci[C_HW]``) ...
S_USER, S_STEPS, S_HLEN, S_OPTA, S_HIST = range(5)
# ... and ``sf`` columns (the state tower's ``K + 1`` outputs, then the ``G`` session inputs)
S_OPTL, S_WL = 0, 1
S_STATE = S_WL + WINDOW


def int_width(hw: int) -> int:
    """Columns of ``si`` for a history of ``hw`` plays."""
    return S_HIST + 2 * hw + WINDOW


def float_width(dim: int, session_dim: int) -> int:
    """Columns of ``sf``: track vectors of ``dim``, ``session_dim`` session inputs."""
    return S_STATE + dim + 1 + session_dim


def pack(
    params: np.ndarray,
    response,
    position_logit: np.ndarray,
    start_tracks: np.ndarray,
    start_listened: np.ndarray,
    start_features: np.ndarray,
    sizes: dict[str, int],
    clusters: dict[str, np.ndarray],
) -> tuple[np.ndarray, np.ndarray]:
    """The constants as ``cf`` and ``ci``: the ``N_PARAMS`` values first, then the arrays.

    Args:
        params: The ``P_*`` values.
        response: The :class:`~musicrec_gym.sim.fitted_response.TwoTowerResponse`.
        position_logit: The leave model's logit per position (``-inf``: hazard 0).
        start_tracks: ``(U, 5)`` the starting sessions' tracks.
        start_listened: ``(U, 5)`` their listen flags.
        start_features: ``(U, G)`` their session inputs.
        sizes: ``n_tracks``, ``hw`` (history width), ``skip_window``, ``max_steps``, ``mode``.
        clusters: The catalog's groups (``fitted_response.track_clusters``).
    """
    ci = np.zeros(HEADER, np.int64)
    ci[C_N], ci[C_K] = sizes["n_tracks"], response.dim
    ci[C_F], ci[C_H] = response.code_dim, response.w1.shape[1]
    ci[C_U], ci[C_HW] = start_tracks.shape[0], sizes["hw"]
    ci[C_SKIPW], ci[C_MAXS], ci[C_MODE] = sizes["skip_window"], sizes["max_steps"], sizes["mode"]
    ci[C_NPOS], ci[C_C] = len(position_logit), len(clusters["radius"])
    ci[C_G] = response.session_dim
    floats = [
        (O_W1, response.w1), (O_B1, response.b1), (O_W2, response.w2), (O_B2, response.b2),
        (O_REP, response.repeat_logit), (O_POS, position_logit), (O_CB, response.bias),
        (O_V, response.vectors), (O_MT, clusters["centres"].T), (O_CMAX, clusters["max_bias"]),
        (O_CRAD, clusters["radius"]), (O_SFEAT, start_features),
    ]  # fmt: skip
    parts, at = [np.asarray(params, np.float64)], N_PARAMS
    for key, arr in floats:
        ci[key] = at
        parts.append(np.ascontiguousarray(arr, np.float64).ravel())
        at += parts[-1].size
    ints, iat = [ci], HEADER
    for key, arr in (
        (O_STRACK, start_tracks), (O_SLIS, start_listened), (O_ORDER, clusters["order"]),
        (O_CSTART, clusters["starts"]),
    ):  # fmt: skip
        ci[key] = iat
        ints.append(np.ascontiguousarray(arr, np.int64).ravel())
        iat += ints[-1].size
    return np.concatenate(parts), np.concatenate(ints)


@njit(**JIT_OPTIONS)
def _repeat(ci, ir, track):
    """Earlier plays of ``track`` this session and its last play's flag (rare row: none)."""
    count, last = 0, 0
    if track >= ci[C_N]:
        return 0, 0
    hist, hlis = S_HIST, S_HIST + ci[C_HW]
    for j in range(ir[S_HLEN]):
        if ir[hist + j] == track:
            count += 1
            last = ir[hlis + j]
    return count, last


@njit(**JIT_OPTIONS)
def _repeat_logit(cf, ci, count, last):
    """The repeat table's logit for ``count >= 1`` earlier plays."""
    return cf[ci[O_REP] + (min(count, REPEAT_COUNTS) - 1) * 2 + last]


@njit(**JIT_OPTIONS)
def _new_logit(cf, ci, fr, track):
    """Two-tower logit of one track: the ``K`` products in four running sums, then the biases.

    Four sums, not one, so the multiply-adds do not wait on each other (the optimum scores
    a few dozen tracks a step this way); the chosen track's logit comes from the same
    function, so it is the same bits as in the optimum.
    """
    k = ci[C_K]
    v = ci[O_V] + track * k
    a0 = a1 = a2 = a3 = 0.0
    j = 0
    while j + 4 <= k:
        a0 += fr[S_STATE + j] * cf[v + j]
        a1 += fr[S_STATE + j + 1] * cf[v + j + 1]
        a2 += fr[S_STATE + j + 2] * cf[v + j + 2]
        a3 += fr[S_STATE + j + 3] * cf[v + j + 3]
        j += 4
    while j < k:
        a0 += fr[S_STATE + j] * cf[v + j]
        j += 1
    return (cf[ci[O_CB] + track] + fr[S_STATE + k]) + ((a0 + a1) + (a2 + a3))


@njit(**JIT_OPTIONS)
def _state_tower(cf, ci, fr, code, position, hidden):
    """The state tower on ``code`` and ``position`` into the slot's state columns."""
    f, h, k = ci[C_F], ci[C_H], ci[C_K]
    w1, b1, w2, b2 = ci[O_W1], ci[O_B1], ci[O_W2], ci[O_B2]
    for i in range(h):
        hidden[i] = cf[b1 + i]
    for j in range(f):
        x = np.float64(code[j])
        row = w1 + j * h
        for i in range(h):
            hidden[i] += x * cf[row + i]
    x = position * cf[P_INV_MAXLEN]
    row = w1 + f * h
    for i in range(h):
        hidden[i] += x * cf[row + i]
    session = S_STATE + k + 1
    for g in range(ci[C_G]):
        x = fr[session + g]
        row = w1 + (f + 1 + g) * h
        for i in range(h):
            hidden[i] += x * cf[row + i]
    for i in range(h):
        hidden[i] = max(hidden[i], 0.0)
    for o in range(k + 1):
        fr[S_STATE + o] = cf[b2 + o]
    for i in range(h):
        x = hidden[i]
        row = w2 + i * (k + 1)
        for o in range(k + 1):
            fr[S_STATE + o] += x * cf[row + o]


@njit(**JIT_OPTIONS)
def _better(value, track, best, best_track):
    """Whether ``track`` beats the best so far: a higher logit, or the same and a lower row."""
    return value > best or (value == best and track < best_track)


@njit(**JIT_OPTIONS)
def _optimum(cf, ci, ir, fr, acc) -> None:
    """The best track now and its logit, exactly, scoring few tracks (``acc``: scratch).

    New tracks: each group's bound (``track_clusters``) for this state, then the tracks of
    the groups whose bound reaches the best found (the highest bound's group first).
    Played tracks are marked in ``acc`` and take the repeat table's logit instead. Ties go
    to the lower row, as the reference's ``argmax``.
    """
    n, k, c = ci[C_N], ci[C_K], ci[C_C]
    marks = acc[:n]
    hist, hlen = S_HIST, ir[S_HLEN]
    for j in range(hlen):
        track = ir[hist + j]
        if 0 <= track < n:
            marks[track] = 1.0
    bounds = acc[n : n + c]
    mt, norm = ci[O_MT], 0.0
    for g in range(c):
        bounds[g] = cf[ci[O_CMAX] + g]
    for j in range(k):
        sj = fr[S_STATE + j]
        norm += sj * sj
        row = cf[mt + j * c : mt + j * c + c]
        for g in range(np.uint64(c)):
            bounds[g] += sj * row[g]
    norm = np.sqrt(norm)
    top = 0
    for g in range(c):
        bounds[g] += fr[S_STATE + k] + norm * cf[ci[O_CRAD] + g] + SLACK
        if bounds[g] > bounds[top]:
            top = g
    best, action = -np.inf, n
    order, starts = ci[O_ORDER], ci[O_CSTART]
    for step in range(c + 1):
        g = top if step == 0 else step - 1
        if (step > 0 and g == top) or bounds[g] < best:
            continue
        for r in range(ci[starts + g], ci[starts + g + 1]):
            track = ci[order + r]
            if marks[track] == 0.0:
                value = _new_logit(cf, ci, fr, track)
                if _better(value, track, best, action):
                    best, action = value, track
    for j in range(hlen):
        track = ir[hist + j]
        if 0 <= track < n and marks[track] != 0.0:
            marks[track] = 0.0  # each played track once
            count, last = _repeat(ci, ir, track)
            value = _repeat_logit(cf, ci, count, last)
            if _better(value, track, best, action):
                best, action = value, track
    fr[S_OPTL] = best
    ir[S_OPTA] = action


@njit(**JIT_OPTIONS)
def _after_encode(cf, ci, ir, fr, code, acc) -> None:
    """The state tower on the new code, then the optimum (``acc``: scratch, n + C + H floats)."""
    n, c = ci[C_N], ci[C_C]
    _state_tower(cf, ci, fr, code, np.float64(ir[S_HLEN] + 1), acc[n + c :])
    _optimum(cf, ci, ir, fr, acc)


@njit(**JIT_OPTIONS)
def _reset_slot(cf, ci, si, sf, rng, s, user, u) -> None:
    """Start a session in slot ``s`` from starting session ``user`` (drawn if negative)."""
    draw(rng, s, FITTED_RESET_DRAWS, u)
    n_users, hw = ci[C_U], ci[C_HW]
    drawn = min(np.int64(u[0] * n_users), n_users - 1)
    if user < 0:
        user = drawn
    ir, fr = si[s], sf[s]
    hist, hlis, wt = S_HIST, S_HIST + hw, S_HIST + 2 * hw
    for j in range(hw):
        ir[hist + j] = -1
        ir[hlis + j] = 0
    st, sl = ci[O_STRACK] + user * WINDOW, ci[O_SLIS] + user * WINDOW
    for j in range(WINDOW):
        ir[hist + j] = ci[st + j]
        ir[hlis + j] = ci[sl + j]
        ir[wt + j] = ci[st + j]
        fr[S_WL + j] = np.float64(ci[sl + j])
    ir[S_USER] = user
    ir[S_HLEN] = WINDOW
    ir[S_STEPS] = 0
    g, session = ci[C_G], S_STATE + ci[C_K] + 1
    for j in range(g):
        fr[session + j] = cf[ci[O_SFEAT] + user * g + j]


@njit(**JIT_OPTIONS)
def _step_slot(cf, ci, si, sf, rng, s, action, u):
    """Play ``action`` in slot ``s``; the leave decision. The caller encodes and rescoring.

    Returns reward, expected reward, optimal reward, listened, terminated, truncated.
    """
    draw(rng, s, STEP_DRAWS, u)
    ir, fr = si[s], sf[s]
    hw = ci[C_HW]
    a, b = cf[P_A], cf[P_B]
    optimal = expected_one(a, b, sigmoid_one(fr[S_OPTL]))
    count, last = _repeat(ci, ir, action)
    logit = _repeat_logit(cf, ci, count, last) if count > 0 else _new_logit(cf, ci, fr, action)
    logit = min(logit, fr[S_OPTL])
    p = sigmoid_one(logit)
    listened = u[0] < p
    hlen = ir[S_HLEN]
    ir[S_HIST + hlen] = action
    ir[S_HIST + hw + hlen] = 1 if listened else 0
    hlen += 1
    ir[S_HLEN] = hlen
    wt = S_HIST + 2 * hw
    for j in range(WINDOW - 1):
        ir[wt + j] = ir[wt + j + 1]
        fr[S_WL + j] = fr[S_WL + j + 1]
    ir[wt + WINDOW - 1] = action
    fr[S_WL + WINDOW - 1] = 1.0 if listened else 0.0
    reward = draw_one(ci[C_MODE], listened, u[2], u[3], cf[P_TLL], cf[P_TLH], cf[P_TSL],
                      cf[P_TSH], cf[P_LIKE], cf[P_ADD])  # fmt: skip
    steps = ir[S_STEPS] + 1
    ir[S_STEPS] = steps
    window = ci[C_SKIPW]
    recent = fr[S_WL + WINDOW - window]
    for j in range(1, window):
        recent += fr[S_WL + WINDOW - window + j]
    skips = window - recent
    pos_logit = cf[ci[O_POS] + min(hlen, ci[C_NPOS] - 1)]
    hazard = sigmoid_one(pos_logit + cf[P_PER_SKIP] * skips) if np.isfinite(pos_logit) else 0.0
    at_cap = steps >= ci[C_MAXS]
    terminated = not at_cap and u[1] < hazard
    return reward, expected_one(a, b, p), optimal, listened, terminated, at_cap


@njit(**JIT_OPTIONS)
def _step_range(cf, ci, si, sf, rng, ce, lay, actions, lo, hi, autoreset,
                resf, resb, pre, obs, final_obs, work, acc) -> None:  # fmt: skip
    """Step slots ``lo..hi-1``, encode and rescore them; with ``autoreset``, restart ended ones."""
    u = np.empty(STEP_DRAWS, np.float64)
    ended = np.empty(hi - lo, np.int64)
    n_ended = 0
    for s in range(lo, hi):
        out = _step_slot(cf, ci, si, sf, rng, s, actions[s], u)
        resf[0, s], resf[1, s], resf[2, s] = out[0], out[1], out[2]
        resb[0, s], resb[1, s], resb[2, s] = out[3], out[4], out[5]
        if autoreset and (out[4] or out[5]):
            ended[n_ended] = s
            n_ended += 1
    encode_slots(ce, lay, si, sf, S_HIST + 2 * ci[C_HW], S_WL, np.arange(lo, hi), obs[lo:hi], work)
    for s in range(lo, hi):
        ir = si[s]
        _after_encode(cf, ci, ir, sf[s], obs[s], acc)
        pre[0, s] = ir[S_USER]
        pre[1, s] = ir[S_OPTA]
        pre[2, s] = ir[S_STEPS]
        for j in range(WINDOW):
            pre[3 + j, s] = ir[S_HIST + j]
            pre[3 + WINDOW + j, s] = ir[S_HIST + ci[C_HW] + j]
    if n_ended:
        ended = ended[:n_ended]
        for r in range(n_ended):
            s = ended[r]
            for j in range(obs.shape[1]):
                final_obs[s, j] = obs[s, j]
            _reset_slot(cf, ci, si, sf, rng, s, -1, u)
        fresh = np.empty((n_ended, obs.shape[1]), np.float32)
        encode_slots(ce, lay, si, sf, S_HIST + 2 * ci[C_HW], S_WL, ended, fresh, work)
        for r in range(n_ended):
            s = ended[r]
            for j in range(obs.shape[1]):
                obs[s, j] = fresh[r, j]
            _after_encode(cf, ci, si[s], sf[s], obs[s], acc)


@njit(parallel=True, **JIT_OPTIONS)
def step_parallel(cf, ci, si, sf, rng, ce, lay, actions, autoreset,
                  resf, resb, pre, obs, final_obs, work, acc) -> None:  # fmt: skip
    """Every slot steps (see :func:`_step_range`), in chunks spread over the cores.

    One chunk per row of ``work`` and ``acc``.
    """
    n = si.shape[0]
    chunks = work.shape[0]
    for c in prange(chunks):
        lo, hi = c * n // chunks, (c + 1) * n // chunks
        if hi > lo:
            _step_range(cf, ci, si, sf, rng, ce, lay, actions, lo, hi, autoreset,
                        resf, resb, pre, obs, final_obs, work[c], acc[c])  # fmt: skip


@njit(**JIT_OPTIONS)
def reset_slots(cf, ci, si, sf, rng, ce, lay, slots, users, obs, work, acc) -> None:
    """Restart ``slots`` (starting session ``users[i]``, or drawn); codes into ``obs``."""
    u = np.empty(STEP_DRAWS, np.float64)
    for r in range(slots.shape[0]):
        _reset_slot(cf, ci, si, sf, rng, slots[r], users[r], u)
    encode_slots(ce, lay, si, sf, S_HIST + 2 * ci[C_HW], S_WL, slots, obs, work[0])
    for r in range(slots.shape[0]):
        s = slots[r]
        _after_encode(cf, ci, si[s], sf[s], obs[r], acc[0])


@njit(**JIT_OPTIONS)
def step_one(cf, ci, si, sf, rng, ce, lay, action, u, obs, work, acc):
    """Slot 0 steps with ``action`` (a single env); its code into ``obs[:code_dim]``.

    Returns reward, expected reward, optimal reward, listened, terminated, truncated,
    the next optimal action and the step count. ``u``: scratch of ``STEP_DRAWS``.
    """
    reward, expected, optimal, listened, terminated, truncated = _step_slot(
        cf, ci, si, sf, rng, 0, action, u
    )
    ir, fr = si[0], sf[0]
    wt = S_HIST + 2 * ci[C_HW]
    encode_window(ce, lay, ir[wt : wt + WINDOW], fr[S_WL : S_WL + WINDOW], obs, work[0])
    _after_encode(cf, ci, ir, fr, obs, acc[0])
    return reward, expected, optimal, listened, terminated, truncated, ir[S_OPTA], ir[S_STEPS]


@njit(**JIT_OPTIONS)
def reset_one(cf, ci, si, sf, rng, ce, lay, user, u, obs, work, acc):
    """Slot 0 restarts (a single env) from ``user`` or a drawn one if negative.

    Its code goes into ``obs[:code_dim]``. Returns the starting session, the best first
    recommendation and its expected reward.
    """
    _reset_slot(cf, ci, si, sf, rng, 0, user, u)
    ir, fr = si[0], sf[0]
    wt = S_HIST + 2 * ci[C_HW]
    encode_window(ce, lay, ir[wt : wt + WINDOW], fr[S_WL : S_WL + WINDOW], obs, work[0])
    _after_encode(cf, ci, ir, fr, obs, acc[0])
    return ir[S_USER], ir[S_OPTA], expected_one(cf[P_A], cf[P_B], sigmoid_one(fr[S_OPTL]))
