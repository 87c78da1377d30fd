"""A lookahead planner on the true model of a synthetic session: a lower bound's policy.

The planner knows what the simulator knows (each listener's static logits, the
fatigue, the leave hazard) and plans over the listener's next responses: from the
current state it expands the ``top_k`` tracks of highest current listen probability,
``depth`` plays deep, and values each leaf by the greedy oracle's exact expected return
from there. The greedy continuation's tracks do not depend on the listener's responses
(fatigue depends on the tracks played only), so its value over the responses is an
exact backward induction over the last ``skip_window`` listen flags; the values of the
tree's nodes are maximised per flag pattern, so the second play may differ after a
listen and after a skip (an expectimax over the responses and the leaving).

With ``top_k`` covering the candidates and ``depth`` reaching the horizon it is the
exact expectimax (the tiny-world tests hold it to an exhaustive dynamic programme); in
general it is a rollout policy with the greedy oracle as base policy, so its exact value
is at least the greedy oracle's (policy improvement) when its candidates hold the
listener's best tracks. It only chooses among each listener's ``ListenerCandidates``
(the ``m`` best tracks by static logit).

The dynamics here (listen logit, fatigue, hazard) are a re-implementation, compiled;
``tests/test_optimum.py`` holds them to ``BatchSimulator`` on the same states.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from musicrec_gym.checks import is_int
from musicrec_gym.errors import ConfigError
from musicrec_gym.sim.constants import JIT_OPTIONS, WINDOW
from musicrec_gym.sim.simulator import BatchSimulator


@njit(**JIT_OPTIONS)
def _logits(cs, ca, played, warts, repeat, artist_pen, out):
    """Listen logits of the candidates: static - repeat * played - artist * same-artist count."""
    for j in range(len(cs)):
        same = 0
        for w in range(WINDOW):
            if warts[w] == ca[j]:
                same += 1
        out[j] = cs[j] - (repeat * (1.0 if played[j] else 0.0) + artist_pen * same)


@njit(**JIT_OPTIONS)
def _play(played, warts, j, artist):
    """Record candidate ``j`` (of ``artist``) as played: flag it, shift the window."""
    played[j] = True
    for w in range(WINDOW - 1):
        warts[w] = warts[w + 1]
    warts[WINDOW - 1] = artist


@njit(**JIT_OPTIONS)
def _survive(base, per_skip, k, n_codes, out):
    """Probability of staying after a play, by flag code (newest flag = bit 0)."""
    for c in range(n_codes):
        ones = 0
        for bit in range(k):
            ones += (c >> bit) & 1
        out[c] = np.exp(-(base + per_skip * (k - ones)))


@njit(**JIT_OPTIONS)
def _back(p, cont, surv, child, out):
    """``out[c] = p (1 + S1 V1) + (1 - p) S0 V0`` over the flag codes ``c``."""
    n = len(out)
    for c in range(n):
        c1, c0 = ((c << 1) | 1) & (n - 1), (c << 1) & (n - 1)
        go1 = surv[c1] * child[c1] if cont else 0.0
        go0 = surv[c0] * child[c0] if cont else 0.0
        out[c] = p * (1.0 + go1) + (1.0 - p) * go0


@njit(**JIT_OPTIONS)
def _greedy_value(cs, ca, played, warts, t0, n_steps, rep, art, surv, out):
    """Exact value vector (by flag code) at step ``t0`` of the greedy continuation."""
    m = len(cs)
    pl, wa = played.copy(), warts.copy()
    logit = np.empty(m)
    ps = np.empty(n_steps)
    for t in range(t0, n_steps):
        _logits(cs, ca, pl, wa, rep, art, logit)
        j = np.argmax(logit)
        ps[t] = 1.0 / (1.0 + np.exp(-logit[j]))
        _play(pl, wa, j, ca[j])
    out[:] = 0.0
    tmp = np.empty(len(out))
    for t in range(n_steps - 1, t0 - 1, -1):
        _back(ps[t], t + 1 < n_steps, surv, out, tmp)
        out[:] = tmp


@njit(**JIT_OPTIONS)
def _plan_one(cs, ca, played, warts, code, t0, n_steps, rep, art, surv, top_k, depth):
    """The planner's candidate for one session (the index into its candidates)."""
    m, n = len(cs), len(surv)
    k = min(top_k, m)
    d = min(depth, n_steps - t0)
    # nodes level by level: level l has k**l nodes, children of node q are q*k .. q*k+k-1
    count = np.empty(d + 1, np.int64)
    start = np.empty(d + 1, np.int64)
    total = 0
    for lev in range(d + 1):
        count[lev] = k**lev
        start[lev] = total
        total += count[lev]
    node_played = np.empty((total, m), np.bool_)
    node_warts = np.empty((total, WINDOW), np.int64)
    node_p = np.zeros(total)  # listen probability of the play that led here
    node_track = np.zeros(total, np.int64)
    value = np.zeros((total, n))
    node_played[0] = played
    node_warts[0] = warts
    logit = np.empty(m)
    chosen = np.zeros(m, np.bool_)
    for lev in range(d):
        for q in range(count[lev]):
            me = start[lev] + q
            _logits(cs, ca, node_played[me], node_warts[me], rep, art, logit)
            chosen[:] = False
            for r in range(k):  # the k best, ties to the lower index
                best = -1
                for j in range(m):
                    if not chosen[j] and (best < 0 or logit[j] > logit[best]):
                        best = j
                chosen[best] = True
                child = start[lev + 1] + q * k + r
                node_played[child] = node_played[me]
                node_warts[child] = node_warts[me]
                _play(node_played[child], node_warts[child], best, ca[best])
                node_p[child] = 1.0 / (1.0 + np.exp(-logit[best]))
                node_track[child] = best
    leaf = start[d]
    if t0 + d < n_steps:
        for q in range(count[d]):
            me = leaf + q
            _greedy_value(
                cs, ca, node_played[me], node_warts[me], t0 + d, n_steps, rep, art, surv, value[me]
            )
    tmp = np.empty(n)
    action, best_q = -1, -np.inf
    for lev in range(d - 1, -1, -1):
        cont = t0 + lev + 1 < n_steps
        for q in range(count[lev]):
            me = start[lev] + q
            value[me] = -np.inf
            for r in range(k):
                child = start[lev + 1] + q * k + r
                _back(node_p[child], cont, surv, value[child], tmp)
                if lev == 0 and tmp[code] > best_q:  # first max: the greedy track on ties
                    best_q = tmp[code]
                    action = node_track[child]
                for c in range(n):
                    value[me, c] = max(value[me, c], tmp[c])
    return action


@njit(**JIT_OPTIONS)
def _plan_all(cs, ca, played, warts, codes, steps, base, n_steps, k_skip, per_skip, rep, art,
              top_k, depth):  # fmt: skip
    out = np.empty(len(codes), np.int64)
    surv = np.empty(2**k_skip)
    for b in range(len(codes)):
        _survive(base[b], per_skip, k_skip, 2**k_skip, surv)
        out[b] = _plan_one(
            cs[b], ca[b], played[b], warts[b], codes[b], steps[b], n_steps, rep, art, surv,
            top_k, depth,
        )  # fmt: skip
    return out


@dataclass(frozen=True)
class PlanState:
    """The state of ``B`` sessions the planner reads (any session, not only a simulator's).

    Attributes:
        user: (B,) listener.
        hist: (B, H) tracks played so far, warm-up included (-1 pads).
        win_artist: (B, WINDOW) artists of the last five plays, oldest first (-1: none).
        win_listened: (B, WINDOW) their listen flags.
        steps: (B,) recommendations made since the warm-up.
    """

    user: np.ndarray
    hist: np.ndarray
    win_artist: np.ndarray
    win_listened: np.ndarray
    steps: np.ndarray

    @classmethod
    def of(cls, sim: BatchSimulator) -> PlanState:
        """The current state of every slot of ``sim``."""
        return cls(sim.user, sim.hist, sim.win_artist, sim.win_listened, sim.steps)


@dataclass(frozen=True)
class Planner:
    """Expectimax over the next ``depth`` plays of the ``top_k`` best tracks, greedy beyond.

    Args:
        top_k: Tracks expanded per node (by current listen probability), >= 1.
        depth: Plays looked ahead before the greedy continuation, >= 1. With
            ``top_k=1`` the planner is the greedy oracle (on the candidate lists).
    """

    top_k: int = 4
    depth: int = 2

    def __post_init__(self) -> None:
        for name in ("top_k", "depth"):
            value = getattr(self, name)
            if not (is_int(value) and value >= 1):
                raise ConfigError(f"`Planner.{name}` must be an int >= 1, got {value!r}")
        if self.top_k**self.depth > 4096:
            raise ConfigError(
                f"`Planner` expands top_k**depth = {self.top_k}**{self.depth} leaves per "
                "decision; keep it <= 4096"
            )

    def actions(self, sim: BatchSimulator, state: PlanState | None = None) -> np.ndarray:
        """The planner's track for every session of ``state`` (default: ``sim``'s slots).

        Args:
            sim: Supplies the model: the truth, the params and the candidate lists.
            state: The sessions' states.
        """
        state = PlanState.of(sim) if state is None else state
        cands = sim.candidates
        users = np.asarray(state.user, dtype=np.int64)
        cand = cands.index[users]
        played = (cand[:, :, None] == np.asarray(state.hist)[:, None, :]).any(axis=2)
        k = sim.params.leave.skip_window
        flags = np.asarray(state.win_listened)[:, WINDOW - k :] > 0.5
        codes = (flags * (1 << np.arange(k - 1, -1, -1))).sum(axis=1).astype(np.int64)
        response = sim.params.response
        pick = _plan_all(
            np.ascontiguousarray(cands.static[users]),
            np.ascontiguousarray(sim.artist_of[cand]),
            np.ascontiguousarray(played),
            np.ascontiguousarray(np.asarray(state.win_artist, dtype=np.int64)),
            codes,
            np.asarray(state.steps, dtype=np.int64),
            sim.leave.base_rate[users],
            sim.max_steps, k, float(sim.params.leave.per_skip),
            float(response.repeat), float(response.artist),
            self.top_k, self.depth,
        )  # fmt: skip
        return cand[np.arange(len(users)), pick]
