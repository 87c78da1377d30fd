"""Exact optimum of a tiny synthetic world, by enumerating every state.

For a catalog of a handful of tracks and a few steps, the session's decision process
can be solved outright: the state is the step, the tracks played so far (warm-up
included), the artists of the last five plays, the last ``skip_window`` listen flags
and, in the long-term world, the listener's satisfaction; :func:`optimal_value` is its
backward induction over every track at every step (an expectimax over the listener's
responses and the leaving), memoised on the state. :func:`policy_value` gives any
policy's exact expected return by the same enumeration of the listener's responses.
Both read the simulator's own parts for every number (``ResponseModel.static`` and
``fatigue``, ``LeaveModel.hazard`` with the satisfaction, ``satisfaction_update`` and
``sim.track_kind``), one state at a time: a reference, far too slow for a real catalog
(``tests/test_optimum*.py`` use it to check the planner and the bounds).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np

from musicrec_gym.errors import ConfigError
from musicrec_gym.optimum_plan import PlanState
from musicrec_gym.sim.constants import WINDOW
from musicrec_gym.sim.response import sigmoid
from musicrec_gym.sim.satisfaction import satisfaction_update
from musicrec_gym.sim.simulator import BatchSimulator

Policy = Callable[[BatchSimulator, PlanState], np.ndarray]
"""A policy: ``(sim, state) -> tracks`` (as ``Planner.actions``)."""

MAX_TRACKS = 12
MAX_STEPS = 8


class _Session:
    """One slot's session, stepped by hand with the simulator's models."""

    def __init__(self, sim: BatchSimulator, slot: int) -> None:
        if sim.n_tracks > MAX_TRACKS or sim.max_steps > MAX_STEPS:
            raise ConfigError(
                f"exact enumeration is for tiny worlds (<= {MAX_TRACKS} tracks, max_steps <= "
                f"{MAX_STEPS}), got {sim.n_tracks} tracks and max_steps {sim.max_steps}"
            )
        if sim.reward.mode != "listen":
            raise ConfigError(
                f"exact enumeration covers the 'listen' reward mode, not {sim.reward.mode!r}"
            )
        if int(sim.steps[slot]) != 0:
            raise ConfigError("exact enumeration starts right after reset (steps 0)")
        self.sim = sim
        self.user = int(sim.user[slot])
        w = sim.params.warmup
        self.hist0 = tuple(int(x) for x in sim.hist[slot, :w])
        self.win_artist0 = tuple(int(x) for x in sim.win_artist[slot])
        self.win_listened0 = tuple(float(x) for x in sim.win_listened[slot])
        self.k = sim.params.leave.skip_window
        users = np.full(sim.n_tracks, self.user)
        self.static = sim.response.static(users, np.arange(sim.n_tracks))
        sat = sim.params.satisfaction
        self.satisfied = bool(sat.enabled)
        self.s0 = int(sim.satisfaction[slot])

    def listen(self, hist: tuple[int, ...], win_artist: tuple[int, ...]) -> np.ndarray:
        """Listen probability of every track in a state (the simulator's formula)."""
        sim = self.sim
        tracks = np.arange(sim.n_tracks)
        repeated = np.isin(tracks, hist)
        same = (np.asarray(win_artist)[None, :] == sim.artist_of[tracks][:, None]).sum(axis=1)
        return sigmoid(self.static - sim.response.fatigue(repeated, same))

    def stay(self, win_listened: tuple[float, ...], satisfaction: int) -> float:
        """Probability of staying after a play: its window of flags, its new satisfaction."""
        recent = np.asarray(win_listened, dtype=np.float64)[None, WINDOW - self.k :]
        user = np.array([self.user])
        if self.satisfied:
            weight = self.sim.params.satisfaction.weight
            hazard = self.sim.leave.hazard(user, recent, np.array([satisfaction]), weight)
        else:
            hazard = self.sim.leave.hazard(user, recent)
        return float(1.0 - hazard[0])

    def after(self, state: tuple, track: int, listened: bool) -> tuple:
        """The state after ``track`` is played and listened to (or skipped)."""
        t, hist, win_artist, win_listened, satisfaction = state
        artist = int(self.sim.artist_of[track])
        if self.satisfied:  # the simulator's own update (a skip leaves it)
            satisfaction = int(
                satisfaction_update(
                    np.array([satisfaction]), self.sim.track_kind[[track]],
                    np.array([track in hist]), np.array([listened]),
                    self.sim.params.satisfaction.levels,
                )[0]
            )  # fmt: skip
        return (
            t + 1,
            (*hist, track),
            (*win_artist[1:], artist),
            (*win_listened[1:], 1.0 if listened else 0.0),
            satisfaction,
        )

    @property
    def start(self) -> tuple:
        return (0, self.hist0, self.win_artist0, self.win_listened0, self.s0)


def _expected(session: _Session, state: tuple, track: int, p: float, future) -> float:
    """``p (1 + stay V') + (1 - p) stay V'`` of playing ``track`` (``future(state')``)."""
    t = state[0]
    value = p
    if t + 1 < session.sim.max_steps:
        for listened, weight in ((True, p), (False, 1.0 - p)):
            nxt = session.after(state, track, listened)
            value += weight * session.stay(nxt[3], nxt[4]) * future(nxt)
    return value


def optimal_value(sim: BatchSimulator, slot: int) -> float:
    """The optimal expected return (listen reward) of slot ``slot`` from its post-warm-up state.

    Raises:
        ConfigError: The world is not tiny, the reward mode is not ``listen``, or the
            slot has been stepped.
    """
    session = _Session(sim, slot)

    @functools.cache
    def value(state: tuple) -> float:
        t, hist, win_artist = state[:3]
        if t >= sim.max_steps:
            return 0.0
        probs = session.listen(hist, win_artist)
        return max(
            _expected(session, state, a, float(probs[a]), value) for a in range(sim.n_tracks)
        )

    return value(session.start)


def policy_value(sim: BatchSimulator, slot: int, policy: Policy) -> float:
    """A policy's exact expected return from slot ``slot``'s post-warm-up state.

    The policy is asked for its track in every state the listener's responses can lead
    to (a ``PlanState`` of one session).
    """
    session = _Session(sim, slot)
    width = sim.params.warmup + sim.max_steps

    def value(state: tuple) -> float:
        t, hist, win_artist, win_listened, satisfaction = state
        if t >= sim.max_steps:
            return 0.0
        padded = np.full((1, width), -1, dtype=np.int64)
        padded[0, : len(hist)] = hist
        plan_state = PlanState(
            user=np.array([session.user]),
            hist=padded,
            win_artist=np.array([win_artist], dtype=np.int64),
            win_listened=np.array([win_listened]),
            steps=np.array([t]),
            satisfaction=np.array([satisfaction]),
        )
        track = int(policy(sim, plan_state)[0])
        p = float(session.listen(hist, win_artist)[track])
        return _expected(session, state, track, p, value)

    return value(session.start)


def greedy_policy(sim: BatchSimulator, state: PlanState) -> np.ndarray:
    """The greedy oracle as a :data:`Policy`: the track of highest listen probability."""
    out = np.empty(len(state.user), dtype=np.int64)
    for i in range(len(state.user)):
        hist = tuple(int(x) for x in state.hist[i] if x >= 0)
        static = sim.response.static_rows(np.array([state.user[i]]))[0]
        repeated = np.isin(np.arange(sim.n_tracks), hist)
        same = (state.win_artist[i][None, :] == sim.artist_of[:-1][:, None]).sum(axis=1)
        out[i] = int(np.argmax(static - sim.response.fatigue(repeated, same)))
    return out
