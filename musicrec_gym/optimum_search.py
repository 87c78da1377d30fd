"""Open-loop plans: a whole session's track sequence, searched, and valued exactly.

A fixed sequence of tracks is a policy (it ignores the listener's responses), and the
listen probabilities of a fixed sequence do not depend on the responses either, so its
expected return is exactly the flag programme of :func:`musicrec_gym.optimum_model.
flag_values`: no Monte Carlo. A hill climb from the greedy oracle's sequence (swap two
plays, move a play elsewhere, replace a play by an unplayed candidate; the best move
each round, until none improves) finds better sequences, typically by spacing out a
favourite artist's tracks. Every sequence's value is a lower bound on the optimum.

The dynamics here are a compiled re-implementation; ``tests/test_optimum.py`` plays the
sequences through ``BatchSimulator`` and compares the listen probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from musicrec_gym.checks import is_int
from musicrec_gym.errors import ConfigError
from musicrec_gym.optimum_climb import climb_long_term
from musicrec_gym.optimum_kernels import (
    check_lams,
    kind_candidates,
    move_play,
    play,
    satisfaction_levels,
    track_logit,
    transitions,
)
from musicrec_gym.optimum_model import (
    SessionStart,
    flag_code,
    flag_values,
    require_listen,
    state_index,
    state_survival,
    survival_table,
)
from musicrec_gym.sim.constants import JIT_OPTIONS, WINDOW
from musicrec_gym.sim.simulator import BatchSimulator


@njit(**JIT_OPTIONS)
def _value(cs, ca, played0, warts0, seq, rep, art, surv, code0, ps, work, played, warts):
    """Exact expected return of playing candidates ``seq`` in order from the start."""
    n_steps, n = len(seq), len(surv)
    played[:] = played0
    warts[:] = warts0
    for t in range(n_steps):
        j = seq[t]
        ps[t] = 1.0 / (1.0 + np.exp(-track_logit(cs, ca, played, warts, j, rep, art)))
        play(played, warts, j, ca[j])
    v = work[0]
    nxt = work[1]
    v[:] = 0.0
    for t in range(n_steps - 1, -1, -1):
        last = t == n_steps - 1
        for c in range(n):
            c1, c0 = ((c << 1) | 1) & (n - 1), (c << 1) & (n - 1)
            go1 = 0.0 if last else surv[c1] * v[c1]
            go0 = 0.0 if last else surv[c0] * v[c0]
            nxt[c] = ps[t] * (1.0 + go1) + (1.0 - ps[t]) * go0
        v[:] = nxt
    return v[code0]


@njit(**JIT_OPTIONS)
def _climb(cs, ca, played0, warts0, seq, rep, art, surv, code0, rounds):
    """Best-improvement hill climb of ``seq`` in place; returns its value."""
    n_steps, m = len(seq), len(cs)
    ps = np.empty(n_steps)
    work = np.empty((2, len(surv)))
    played = np.empty(m, np.bool_)
    warts = np.empty(WINDOW, np.int64)
    cur = _value(cs, ca, played0, warts0, seq, rep, art, surv, code0, ps, work, played, warts)
    trial = seq.copy()
    best_seq = seq.copy()
    used = np.zeros(m, np.bool_)
    for _ in range(rounds):
        best = cur
        for i in range(n_steps):  # swaps and moves
            for j in range(n_steps):
                if i == j:
                    continue
                if i < j:  # swap
                    trial[:] = seq
                    trial[i], trial[j] = seq[j], seq[i]
                    v = _value(cs, ca, played0, warts0, trial, rep, art, surv, code0, ps, work,
                               played, warts)  # fmt: skip
                    if v > best + 1e-12:
                        best = v
                        best_seq[:] = trial
                move_play(seq, i, j, trial)  # the play at i to place j
                v = _value(cs, ca, played0, warts0, trial, rep, art, surv, code0, ps, work,
                           played, warts)  # fmt: skip
                if v > best + 1e-12:
                    best = v
                    best_seq[:] = trial
        used[:] = False
        for t in range(n_steps):
            used[seq[t]] = True
        for i in range(n_steps):  # replacements by an unplayed candidate
            for j in range(m):
                if used[j] or played0[j]:
                    continue
                trial[:] = seq
                trial[i] = j
                v = _value(cs, ca, played0, warts0, trial, rep, art, surv, code0, ps, work,
                           played, warts)  # fmt: skip
                if v > best + 1e-12:
                    best = v
                    best_seq[:] = trial
        if best <= cur:
            break
        cur = best
        seq[:] = best_seq
    return cur


@njit(**JIT_OPTIONS)
def _climb_all(cs, ca, played0, warts0, seqs, base, k_skip, per_skip, rep, art, codes, rounds):
    n = 2**k_skip
    out = np.empty(len(codes))
    surv = np.empty(n)
    for b in range(len(codes)):
        for c in range(n):
            ones = 0
            for bit in range(k_skip):
                ones += (c >> bit) & 1
            surv[c] = np.exp(-(base[b] + per_skip * (k_skip - ones)))
        out[b] = _climb(cs[b], ca[b], played0[b], warts0[b], seqs[b], rep, art, surv, codes[b],
                        rounds[b])  # fmt: skip
    return out


@dataclass(frozen=True)
class OpenLoopSearch:
    """Hill climbing over whole-session track sequences, from the greedy oracle's.

    Args:
        rounds: Improving moves at most (each the best of all swaps, moves and
            replacements), >= 0; 0 keeps the greedy sequence.
        lams: The long-term world's other starting sequences: the ``lambda * kind``
            rules (:func:`~musicrec_gym.optimum_kernels.rule_sequence`); the best one,
            valued exactly, is climbed too.
        per_kind: The long-term world's candidates: each listener's ``per_kind`` best
            tracks of every kind (:class:`~musicrec_gym.optimum_kernels.KindCandidates`).
    """

    rounds: int = 50
    lams: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    per_kind: int = 32

    def __post_init__(self) -> None:
        if not (is_int(self.rounds) and self.rounds >= 0):
            raise ConfigError(f"`OpenLoopSearch.rounds` must be an int >= 0, got {self.rounds!r}")
        if not (is_int(self.per_kind) and self.per_kind >= 1):
            raise ConfigError(
                f"`OpenLoopSearch.per_kind` must be an int >= 1, got {self.per_kind!r}"
            )
        check_lams(self.lams, "OpenLoopSearch")

    def plans(self, sim: BatchSimulator) -> tuple[np.ndarray, np.ndarray]:
        """Search a sequence for every slot of ``sim``, right after its ``reset``.

        ``sim`` is stepped ``max_steps`` times by the greedy oracle (for the starting
        sequences); the plans start from the state before.

        Returns:
            ``(tracks, values)``: (B, T) the sequences (catalog tracks) and (B,) their
            exact expected returns.
        """
        require_listen(sim)
        if satisfaction_levels(sim):
            return self._long_term(sim)
        start = SessionStart.from_simulator(sim)
        users = start.user
        cand = sim.candidates.index[users]
        greedy = np.empty((len(users), sim.max_steps), dtype=np.int64)
        p = np.empty((len(users), sim.max_steps))
        for t in range(sim.max_steps):
            greedy[:, t] = sim.opt_action
            p[:, t] = sim.step(sim.opt_action.copy()).expected_reward
        # the greedy tracks as candidate positions (a track outside the list: kept apart)
        hit = cand[:, None, :] == greedy[:, :, None]  # (B, T, m)
        inside = hit.any(axis=2).all(axis=1)
        seqs = np.ascontiguousarray(hit.argmax(axis=2))
        played0 = (cand[:, :, None] == start.hist[:, None, :]).any(axis=2)
        k = sim.params.leave.skip_window
        response = sim.params.response
        values = _climb_all(
            np.ascontiguousarray(sim.candidates.static[users]),
            np.ascontiguousarray(sim.artist_of[cand]),
            np.ascontiguousarray(played0),
            np.ascontiguousarray(start.win_artist.astype(np.int64)),
            seqs,
            sim.leave.base_rate[users],
            k, float(sim.params.leave.per_skip),
            float(response.repeat), float(response.artist),
            flag_code(start.win_listened[:, WINDOW - k :]),
            np.where(inside, self.rounds, 0).astype(np.int64),
        )  # fmt: skip
        # outside the lists (rare): the greedy sequence, valued from the simulator's p
        code0 = flag_code(start.win_listened[:, WINDOW - k :])
        exact = flag_values(p, code0, survival_table(sim, users))
        values = np.where(inside, values, exact)
        tracks = np.where(inside[:, None], np.take_along_axis(cand, seqs, axis=1), greedy)
        return tracks, values

    def _long_term(self, sim: BatchSimulator) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`plans` in the long-term world (:mod:`musicrec_gym.optimum_climb`)."""
        start = SessionStart.from_simulator(sim)
        users = start.user
        greedy_tracks = np.empty((len(users), sim.max_steps), dtype=np.int64)
        for t in range(sim.max_steps):
            greedy_tracks[:, t] = sim.opt_action
            sim.step(sim.opt_action.copy())
        table = kind_candidates(sim, self.per_kind)
        cand = table.index[users]
        hit = cand[:, None, :] == greedy_tracks[:, :, None]
        inside = hit.any(axis=2).all(axis=1)
        played0 = (cand[:, :, None] == start.hist[:, None, :]).any(axis=2)
        k = sim.params.leave.skip_window
        levels = satisfaction_levels(sim)
        next1, next0 = transitions(2**k, levels)
        x0 = state_index(sim, start.win_listened[:, WINDOW - k :], np.zeros(len(users)))
        response = sim.params.response
        values, seqs = climb_long_term(
            np.ascontiguousarray(table.static[users]), np.ascontiguousarray(table.artist[users]),
            np.ascontiguousarray(table.kind[users]), np.ascontiguousarray(played0),
            np.ascontiguousarray(start.win_artist.astype(np.int64)),
            np.ascontiguousarray(hit.argmax(axis=2)), inside,
            np.ascontiguousarray(state_survival(sim, users)), x0, next1, next0,
            float(response.repeat), float(response.artist),
            np.asarray(self.lams, dtype=np.float64), self.rounds,
        )  # fmt: skip
        return np.take_along_axis(cand, seqs, axis=1), values
