"""The true model of a synthetic session, as the optimum's bounds and planner read it.

A session of a synthetic world (:class:`~musicrec_gym.sim.simulator.BatchSimulator`)
after its warm-up is a Markov decision process whose state is the step ``t``, the
tracks played so far, the artists of the last five plays (``WINDOW``) and the listen
flags of the last ``skip_window`` plays. Two facts make it tractable:

* the listen flags only change the leave hazard, never a listen probability, so the
  probabilities of a fixed track sequence do not depend on the listener's responses;
* the leave hazard only depends on the last ``skip_window`` flags, so for a given
  sequence of listen probabilities the expected return is a dynamic programme over the
  ``2**skip_window`` flag patterns (:func:`flag_values`).

In the long-term world (satisfaction on) the hazard also depends on the listener's
satisfaction, which a listen moves by the track's kind, and the programme runs over
(flags, satisfaction) instead (:func:`state_values`, :func:`state_survival`).

This module holds the session start (:class:`SessionStart`), that flag programme, the
provable upper bound (:func:`upper_bound`) and the greedy oracle's exact value
(:func:`greedy_values`). Every number comes from the simulator's own parts:
``ResponseModel.static_rows`` and ``fatigue``, ``LeaveModel.hazard``, the params.
Only the ``listen`` reward mode is covered (reward 1 for a listen, 0 for a skip).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicrec_gym.errors import ConfigError
from musicrec_gym.optimum_artist import level_bounds
from musicrec_gym.optimum_kernels import satisfaction_levels, transitions
from musicrec_gym.sim.constants import WINDOW
from musicrec_gym.sim.response import sigmoid
from musicrec_gym.sim.simulator import BatchSimulator


@dataclass(frozen=True)
class SessionStart:
    """The state of ``B`` sessions right after the warm-up (what the bounds start from).

    Attributes:
        user: (B,) listener of each session.
        hist: (B, warmup) tracks of the warm-up plays.
        win_artist: (B, WINDOW) artists of the last five plays, oldest first (-1: none).
        win_listened: (B, WINDOW) their listen flags (0.0 or 1.0).
    """

    user: np.ndarray
    hist: np.ndarray
    win_artist: np.ndarray
    win_listened: np.ndarray

    @classmethod
    def from_simulator(cls, sim: BatchSimulator) -> SessionStart:
        """Copy the post-warm-up state of every slot of ``sim`` (call right after ``reset``).

        Raises:
            ConfigError: A slot has already been stepped.
        """
        if np.any(sim.steps != 0):
            raise ConfigError(
                "SessionStart.from_simulator needs a simulator right after reset (steps 0), "
                f"got steps {np.unique(sim.steps).tolist()}"
            )
        w = sim.params.warmup
        return cls(
            user=sim.user.copy(),
            hist=sim.hist[:, :w].copy(),
            win_artist=sim.win_artist.copy(),
            win_listened=sim.win_listened.copy(),
        )

    def __len__(self) -> int:
        return len(self.user)


def require_listen(sim: BatchSimulator) -> None:
    """Refuse a simulator whose reward mode is not ``listen`` (the values here assume it).

    Raises:
        ConfigError: Naming the mode.
    """
    if sim.reward.mode != "listen":
        raise ConfigError(
            f"the optimum bounds cover the 'listen' reward mode only, got {sim.reward.mode!r}"
        )


def flag_code(recent_listened: np.ndarray) -> np.ndarray:
    """Code of the last ``k`` listen flags (oldest first): the newest is bit 0.

    Args:
        recent_listened: (B, k) flags, as ``win_listened[:, WINDOW - k:]``.
    """
    flags = np.asarray(recent_listened) > 0.5
    k = flags.shape[1]
    weights = 1 << np.arange(k - 1, -1, -1)
    return (flags * weights).sum(axis=1).astype(np.int64)


def survival_table(sim: BatchSimulator, users: np.ndarray) -> np.ndarray:
    """(B, 2**k) probability that the listener stays after a play, by flag code.

    ``1 - LeaveModel.hazard`` of the flags the code stands for (``k = skip_window``).
    """
    k = sim.params.leave.skip_window
    codes = np.arange(2**k)
    flags = (codes[:, None] >> np.arange(k - 1, -1, -1)[None, :]) & 1  # (2**k, k), oldest first
    users = np.asarray(users, dtype=np.int64)
    b = len(users)
    hazard = sim.leave.hazard(np.repeat(users, len(codes)), np.tile(flags, (b, 1)).astype(float))
    return 1.0 - hazard.reshape(b, len(codes))


def state_index(sim: BatchSimulator, recent_listened: np.ndarray, satisfaction) -> np.ndarray:
    """(B,) the value index of flags and satisfaction: ``code * (2 levels + 1) + s + levels``.

    ``levels`` is 0 (one satisfaction state) in a world without satisfaction.
    """
    levels = satisfaction_levels(sim)
    s = np.asarray(satisfaction, dtype=np.int64) if levels else 0
    return flag_code(recent_listened) * (2 * levels + 1) + s + levels


def state_survival(sim: BatchSimulator, users: np.ndarray) -> np.ndarray:
    """(B, 2**k * (2 levels + 1)) probability of staying, by :func:`state_index`.

    ``1 - LeaveModel.hazard`` of the flags and the satisfaction (the new one, after the
    play) the index stands for; :func:`survival_table` when the world has no satisfaction.
    """
    levels = satisfaction_levels(sim)
    if levels == 0:
        return survival_table(sim, users)
    k = sim.params.leave.skip_window
    n_sat = 2 * levels + 1
    x = np.arange(2**k * n_sat)
    codes, s = x // n_sat, x % n_sat - levels
    flags = (codes[:, None] >> np.arange(k - 1, -1, -1)[None, :]) & 1
    users = np.asarray(users, dtype=np.int64)
    b = len(users)
    hazard = sim.leave.hazard(
        np.repeat(users, len(x)), np.tile(flags, (b, 1)).astype(float), np.tile(s, b),
        sim.params.satisfaction.weight,
    )  # fmt: skip
    return 1.0 - hazard.reshape(b, len(x))


def state_values(
    p: np.ndarray,
    delta: np.ndarray,
    x0: np.ndarray,
    survive: np.ndarray,
    levels: int,
    optimistic: bool = False,
) -> np.ndarray:
    """:func:`flag_values` with satisfaction in the state (the long-term world).

    A listen of step ``t`` moves satisfaction by ``delta[:, t]`` (the track's kind, -1
    for a repeat; clipped to ``[-levels, levels]``), a skip leaves it; the stay
    probability after the play is ``survive`` of the new (flags, satisfaction)::

        V_t(x) = p_t (1 + S(x1) V_{t+1}(x1)) + (1 - p_t) S(x0) V_{t+1}(x0).

    Args:
        p: (B, T) listen probabilities.
        delta: (B, T) satisfaction moves of a listen (ints in {-1, 0, 1}).
        x0: (B,) :func:`state_index` after the warm-up.
        survive: (B, X) :func:`state_survival`.
        levels: Satisfaction levels (0: none, then this is :func:`flag_values`).
        optimistic: Allow a listen probability of 0 at each step instead.
    """
    b, n_steps = p.shape
    n_states = survive.shape[1]
    next1, next0 = transitions(n_states // (2 * levels + 1), levels)
    rows = np.arange(b)[:, None]
    value = np.zeros((b, n_states))
    for t in range(n_steps - 1, -1, -1):
        if t == n_steps - 1:
            go1 = go0 = np.zeros((b, n_states))
        else:
            sv = survive * value
            go1 = sv[rows, next1[:, np.asarray(delta[:, t], dtype=np.int64) + 1].T]
            go0 = sv[:, next0]
        pt = p[:, t, None]
        q = pt * (1.0 + go1) + (1.0 - pt) * go0
        value = np.maximum(q, go0) if optimistic else q
    return value[np.arange(b), x0]


def flag_values(
    p: np.ndarray, code0: np.ndarray, survive: np.ndarray, optimistic: bool = False
) -> np.ndarray:
    """Expected return of listen probabilities ``p`` played from flag pattern ``code0``.

    Step ``t`` earns ``p[:, t]`` (the listen probability), appends its flag to the
    pattern, and the session goes on to step ``t + 1`` with the probability
    ``survive[:, new pattern]``; there are ``T = p.shape[1]`` steps at most
    (truncation). Backward induction over the ``2**k`` patterns::

        V_T = 0,
        V_t(c) = p_t (1 + S(c1) V_{t+1}(c1)) + (1 - p_t) S(c0) V_{t+1}(c0),

    with ``c1``/``c0`` the pattern after a listen/skip (no continuation after the last
    step). With ``optimistic`` the step may instead choose a listen probability of 0
    (the best of ``[0, p_t]``, an end point as the value is linear in it): the relaxed
    problem of :func:`upper_bound`.

    Args:
        p: (B, T) listen probabilities of the steps.
        code0: (B,) flag code (:func:`flag_code`) after the warm-up.
        survive: (B, 2**k) :func:`survival_table`.
        optimistic: Allow the choice of 0 at each step (the max of the two).

    Returns:
        (B,) expected returns.
    """
    b, n_steps = p.shape
    n = survive.shape[1]
    codes = np.arange(n)
    c1, c0 = ((codes << 1) | 1) & (n - 1), (codes << 1) & (n - 1)
    value = np.zeros((b, n))
    for t in range(n_steps - 1, -1, -1):
        if t == n_steps - 1:
            go1 = go0 = np.zeros((b, n))
        else:
            go1 = survive[:, c1] * value[:, c1]
            go0 = survive[:, c0] * value[:, c0]
        pt = p[:, t, None]
        q = pt * (1.0 + go1) + (1.0 - pt) * go0
        value = np.maximum(q, go0) if optimistic else q
    return value[np.arange(b), code0]


@dataclass(frozen=True)
class TrackOptions:
    """What a step can offer, bounded from above: the relaxed problem's options.

    At step ``t`` (``t`` recommendations made since the warm-up) a track never played
    this session keeps its static logit minus the artist fatigue of the warm-up plays
    still in the window (those at window places ``>= t``), minus the fatigue of the
    agent's own plays (>= 0): its listen probability is at most ``sigmoid(a_t(i))``,
    ``a_t(i) = static(i) - artist * #{window places j >= t with track i's artist}``.
    A track played before (by the warm-up or the agent) pays ``repeat`` too: at most
    ``sigmoid(max_i a_t(i) - repeat)``.

    Attributes:
        top: (B, L) the ``L`` never-played tracks of highest static logit.
        top_p: (B, T, L) their bounds ``sigmoid(a_t(i))`` at each step.
        top_static: (B, L) their static logits.
        free_logit: (B,) the largest logit bound of the other options (at the last step).
        free_p: (B, T) the best bound of every other option: the other never-played
            tracks and any repeat.
    """

    top: np.ndarray
    top_p: np.ndarray
    free_p: np.ndarray
    top_static: np.ndarray
    free_logit: np.ndarray


def track_options(sim: BatchSimulator, start: SessionStart, n_top: int = 40) -> TrackOptions:
    """The :class:`TrackOptions` of each session start (``n_top`` tracks priced apart)."""
    users = start.user
    n_steps = sim.max_steps
    static = sim.response.static_rows(users)  # (B, N)
    b, n = static.shape
    artist_of = sim.artist_of[:-1]
    fresh = np.ones((b, n), dtype=bool)
    rows = np.repeat(np.arange(b), start.hist.shape[1])
    played = start.hist.ravel()
    fresh[rows[played >= 0], played[played >= 0]] = False
    n_top = int(min(n_top, fresh.sum(axis=1).min()))
    ranked = np.where(fresh, static, -np.inf)
    top = np.argsort(-ranked, axis=1, kind="stable")[:, :n_top]
    rest = fresh.copy()
    rest[np.arange(b)[:, None], top] = False
    top_p = np.empty((b, n_steps, n_top))
    free_p = np.empty((b, n_steps))
    no_repeat = np.zeros((b, n), dtype=bool)
    for t in range(n_steps):
        if t <= WINDOW:  # from step WINDOW on, no warm-up play is left in the window
            window = start.win_artist[:, min(t, WINDOW) :]
            same = (window[:, :, None] == artist_of[None, None, :]).sum(axis=1)
            adjusted = static - sim.response.fatigue(no_repeat, same)
            best_repeat = adjusted.max(axis=1) - sim.params.response.repeat
            best_rest = np.where(rest, adjusted, -np.inf).max(axis=1)
            free_logit = np.maximum(best_repeat, best_rest)
            free = sigmoid(free_logit)
            at_top = sigmoid(np.take_along_axis(adjusted, top, axis=1))
        top_p[:, t] = at_top
        free_p[:, t] = free
    return TrackOptions(
        top=top,
        top_p=top_p,
        free_p=free_p,
        top_static=np.take_along_axis(static, top, axis=1),
        free_logit=free_logit,
    )


def relaxed_values(
    options: TrackOptions,
    prices: np.ndarray,
    code0: np.ndarray,
    survive: np.ndarray,
    usage: bool = False,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Optimum of the priced relaxation, and each priced track's expected use under it.

    The relaxed process: at each step choose a priced track ``i`` (pay ``prices[i]``) or
    the free option, then any listen probability in ``[0, bound]``; the flags and the
    leaving evolve as in the session. Backward induction over (step, flag pattern)::

        V_t(c) = S0 V0 + max(max(0, free_p D), max_i (top_p_i D - price_i)),
        D = 1 + S1 V1 - S0 V0,

    (``S1 V1``, ``S0 V0``: the survival-weighted values after a listen, a skip).

    Args:
        options: The step bounds.
        prices: (B, L) the price of each priced track, >= 0.
        code0: (B,) flag code after the warm-up.
        survive: (B, 2**k) :func:`survival_table`.
        usage: Also return the expected number of (survived) uses of each priced track.

    Returns:
        ``(values, uses)``: (B,) relaxed optima (prices not added back) and (B, L) uses
        or ``None``.
    """
    b, n_steps, n_top = options.top_p.shape
    n = survive.shape[1]
    codes = np.arange(n)
    c1, c0 = ((codes << 1) | 1) & (n - 1), (codes << 1) & (n - 1)
    value = np.zeros((b, n))
    choice = np.empty((n_steps, b, n), dtype=np.int64) if usage else None
    q_of = np.empty((n_steps, b, n)) if usage else None
    for t in range(n_steps - 1, -1, -1):
        if t == n_steps - 1:
            go1 = go0 = np.zeros((b, n))
        else:
            go1 = survive[:, c1] * value[:, c1]
            go0 = survive[:, c0] * value[:, c0]
        gain = 1.0 + go1 - go0  # (B, n): worth of a listen over a skip
        priced = options.top_p[:, t, None, :] * gain[:, :, None] - prices[:, None, :]
        free = np.maximum(options.free_p[:, t, None] * gain, 0.0)
        if n_top == 0:  # every track was played in the warm-up: only the free option
            best = np.zeros((b, n), dtype=np.int64)
            best_priced = np.full((b, n), -np.inf)
        else:
            best = priced.argmax(axis=2)
            best_priced = np.take_along_axis(priced, best[:, :, None], axis=2)[:, :, 0]
        value = go0 + np.maximum(best_priced, free)
        if usage:
            take = best_priced > free
            choice[t] = np.where(take, best, -1)
            q_top = np.take_along_axis(options.top_p[:, t], best, axis=1) if n_top else 0.0
            q_free = np.where(options.free_p[:, t, None] * gain > 0, options.free_p[:, t, None], 0)
            q_of[t] = np.where(take, q_top, q_free)
    values = value[np.arange(b), code0]
    if not usage:
        return values, None
    uses = np.zeros((b, n_top))
    mass = np.zeros((b, n))
    mass[np.arange(b), code0] = 1.0
    rows = np.repeat(np.arange(b), n)
    for t in range(n_steps):
        ch = choice[t].ravel()
        taken = ch >= 0
        np.add.at(uses, (rows[taken], ch[taken]), mass.ravel()[taken])
        if t == n_steps - 1:
            break
        q = q_of[t]
        new = np.zeros((b, n))
        np.add.at(new.T, c1, (mass * q).T)
        np.add.at(new.T, c0, (mass * (1 - q)).T)
        mass = new * survive
    return values, uses


def sorted_bound(options: TrackOptions, code0: np.ndarray, survive: np.ndarray) -> np.ndarray:
    """(B,) the bound of the sorted relaxation (valid when ``skip_window >= 2``).

    Every track's bound only grows with the step (warm-up plays leave the window), so its
    last-step bound ``v_i`` holds at every step. In the relaxation where track ``i``
    offers any listen probability up to ``v_i`` (once; the free option: any number of
    times), playing the remaining item of highest ``v`` at its full ``v`` is optimal in
    every state, so the bound is :func:`flag_values` of the sorted values
    (proof: :func:`upper_bound`).
    """
    n_steps = options.top_p.shape[1]
    last = np.concatenate(
        [options.top_p[:, -1], np.repeat(options.free_p[:, -1:], n_steps, axis=1)], axis=1
    )
    ranked = -np.sort(-last, axis=1)[:, :n_steps]
    return flag_values(ranked, code0, survive, optimistic=True)


def lagrangian_bound(
    options: TrackOptions, code0: np.ndarray, survive: np.ndarray, iterations: int = 40
) -> np.ndarray:
    """(B,) the smallest priced-relaxation bound met by projected subgradient descent.

    Valid for every ``skip_window`` (proof: :func:`upper_bound`); the subgradient in the
    prices is ``1 - expected uses``.
    """
    prices = np.zeros(options.top.shape)
    best = np.full(len(code0), np.inf)
    for it in range(iterations + 1):
        more = it < iterations
        values, uses = relaxed_values(options, prices, code0, survive, usage=more)
        best = np.minimum(best, values + prices.sum(axis=1))
        if more:
            prices = np.maximum(prices - 0.01 / np.sqrt(it + 1) * (1.0 - uses), 0.0)
    return best


def upper_bound(
    sim: BatchSimulator, start: SessionStart, n_top: int = 40, iterations: int = 40
) -> np.ndarray:
    """(B,) provable upper bound on the optimal expected return from each session start.

    The smallest of three valid bounds: :func:`sorted_bound` and the artist-capacity
    bound of :mod:`musicrec_gym.optimum_artist` (both when ``skip_window >= 2``; the
    latter the sorted bound of items that also price the agent's own artist fatigue),
    and :func:`lagrangian_bound`. They start from the same facts. Take any policy (it
    may depend on the whole history, and randomise); let ``alive_t`` say that step ``t``
    happens and ``p_t`` be the listen probability of its track given the history, so
    its expected return is ``E sum_t alive_t p_t`` (the reward of step ``t`` is earned
    before its leave draw, as in ``BatchSimulator.step``). ``p_t`` is at most the bound
    of its option (:class:`TrackOptions`); the leave hazard depends only on the last
    ``k`` listen flags, each drawn with probability ``p_t``. So the policy is a
    history-dependent policy of a relaxed process in which each step picks an option and
    then any listen probability up to its bound, with the session's flags and leaving.
    In a finite-horizon process the optimum over history-dependent policies is reached
    by a Markov one, and the value is linear in the chosen probability (an end point of
    ``[0, bound]`` is optimal).

    *Sorted.* Let every track offer its largest bound ``v_i`` at every step (once; the
    free option any number of times). Value functions of this process only grow with a
    listen in the flags (couple the two runs: every later hazard is lower or equal), so
    the full ``v`` is chosen. Playing the best remaining item ``x`` before a lower ``y``
    is never worse: with ``W`` the optimal value two steps on, the two orders differ by
    ``(x - y) [(1 - S0) + G(1, 0) - G(0, 1)]`` where ``G(a, b)`` is the survival-weighted
    ``W`` after flags ``a`` then ``b``. With ``k >= 2`` both patterns hold one skip
    among the same flags (equal hazard), ``S(c + 1) = e^kappa S(c + 0)``
    (``kappa = per_skip``), and the skip of ``(1, 0)`` stays one hazard longer in the
    window, which costs at most the factor ``e^-kappa`` on what follows (rewards are
    >= 0): ``G(1, 0) >= G(0, 1)``. By induction on the steps left, the sorted order is
    optimal, and its value is :func:`flag_values` of the sorted bounds.

    *Lagrangian.* A track is played for the first time at most once, so for every price
    ``y_i >= 0``, ``y_i (1 - sum_t alive_t [first play of i at t]) >= 0`` on every path.
    Adding these terms and maximising over the relaxed process gives, for all ``y >= 0``,
    ``optimum <= sum_i y_i + V_relaxed(y)`` (:func:`relaxed_values`); any prices give a
    valid bound, the descent only looks for low ones.

    Not for the long-term world (satisfaction on): its bound is
    :func:`musicrec_gym.optimum_long.long_term_bound`
    (:func:`~musicrec_gym.optimum_long.session_bound` picks the right one).

    Args:
        sim: A simulator of the world (its model and params; its state is not used).
        start: The session starts.
        n_top: Tracks priced apart (the rest share the free option).
        iterations: Subgradient steps of the Lagrangian bound.
    """
    require_listen(sim)
    if satisfaction_levels(sim):  # these proofs assume a hazard of the flags alone
        raise ConfigError(
            "upper_bound is for worlds without satisfaction; the long-term world's bound is "
            "musicrec_gym.optimum_long.long_term_bound (optimum_long.session_bound picks)"
        )
    k = sim.params.leave.skip_window
    code0 = flag_code(start.win_listened[:, WINDOW - k :])
    survive = survival_table(sim, start.user)
    options = track_options(sim, start, n_top)
    bound = lagrangian_bound(options, code0, survive, iterations)
    if k >= 2:
        bound = np.minimum(bound, sorted_bound(options, code0, survive))
        penalty = sim.params.response.artist
        if penalty > 0:
            levels = level_bounds(
                options.top_static, sim.artist_of[options.top], start.win_artist,
                options.free_logit, penalty, sim.max_steps,
            )  # fmt: skip
            artist = flag_values(sigmoid(levels), code0, survive, optimistic=True)
            bound = np.minimum(bound, artist)
    return bound


def greedy_values(sim: BatchSimulator) -> tuple[np.ndarray, np.ndarray]:
    """The greedy oracle's exact expected return from each slot's post-warm-up state.

    The oracle plays ``opt_action`` (the best immediate listen probability), which
    depends on the tracks played and the window's artists but never on the listen
    flags, so its track sequence is fixed by the start: it is played out on ``sim``
    (whose random draws only set the flags) and the flag programme gives the exact
    expectation over the listener's responses and leaving.

    Args:
        sim: A simulator right after ``reset`` (it is stepped ``max_steps`` times).

    Returns:
        ``(values, p)``: (B,) exact expected returns and (B, T) listen probabilities.
    """
    return played_values(sim, lambda s: s.opt_action.copy())


def played_values(sim: BatchSimulator, tracks) -> tuple[np.ndarray, np.ndarray]:
    """Exact expected return of an open-loop play-out: ``tracks(sim)`` at every step.

    ``tracks`` must not depend on the listener's responses (the tracks played so far and
    the window's artists only, as the greedy oracle; or a fixed sequence): ``sim`` is
    stepped ``max_steps`` times, and the listen probabilities and satisfaction moves it
    gives are valued by :func:`state_values` (exact over the responses and leaving).

    Returns:
        ``(values, p)``: (B,) exact expected returns and (B, T) listen probabilities.
    """
    require_listen(sim)
    start = SessionStart.from_simulator(sim)
    k = sim.params.leave.skip_window
    p = np.empty((len(start), sim.max_steps))
    delta = np.zeros((len(start), sim.max_steps), dtype=np.int64)
    for t in range(sim.max_steps):
        actions = np.asarray(tracks(sim), dtype=np.int64)
        repeated = (sim.hist == actions[:, None]).any(axis=1)
        delta[:, t] = np.where(repeated, -1, sim.track_kind[actions])
        p[:, t] = sim.step(actions).expected_reward
    levels = satisfaction_levels(sim)
    if levels == 0:
        code0 = flag_code(start.win_listened[:, WINDOW - k :])
        return flag_values(p, code0, survival_table(sim, start.user)), p
    x0 = state_index(sim, start.win_listened[:, WINDOW - k :], np.zeros(len(start)))
    return state_values(p, delta, x0, state_survival(sim, start.user), levels), p
