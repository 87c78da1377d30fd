"""The reward model of DM/DR and the Q-model of sequential DR, cross-fitted.

Both are linear in the outer product of a state's and an action's features, plus a
per-listener taste vector and a per-track offset:

``Q̂(s, a) = φ(s)ᵀ W ψ(a) + φ(s)ᵀ G o(s, a) + θ_uᵀ ψ(a) + b_a``, with
``φ(s) = [1, obs, t/T, (t/T)²]`` (the observation and the step ``t`` of ``T``, the longest
session: the value still to come depends on the steps left), ``ψ(a) = [1,
action_context[a]]`` (standardised) and, when the logging policy's distribution at the
logged states is given, ``o(s, a)``: whether ``a`` is one of the logger's own picks at
``s`` and how much (:func:`logger_features`; the built-in world's logger picks from the
listener's pool, which makes the tracks it picks far better than the catalog's average,
something ``ψ`` cannot tell). Both ``ψ`` and ``o`` enter linearly, so means under a
target stay exact.

``u`` being the step's listener (the logged ``user``: a service knows who listens).
``W`` is a ridge regression on the logged steps (``RIDGE``); ``θ_u`` a ridge regression
of what it leaves on ``ψ`` per listener (``USER_RIDGE``), and ``b`` what both leave, per
track, shrunk to 0 (``b_a = Σ residuals of a / (plays of a + BIAS_SHRINK)``); ``PASSES``
rounds of backfitting. Being linear in ``ψ``, the model's mean under any target
distribution is exact and cheap:
``Σ_a π(a|s) Q̂(s, a) = φ(s)ᵀ W E_π[ψ] + φ(s)ᵀ G E_π[o] + θ_uᵀ E_π[ψ] + E_π[b]``.

- Reward model ``r̂`` (``dm``, ``dr``): that regression on the immediate reward.
- Q-model (``sdr``, ``wdr``): the same form with a richer state, ``φ_Q(s) = [φ(s), h(s)]``,
  where ``h`` is what the session has logged so far (``history_features``): the skips
  among its last ``SKIP_WINDOW`` steps, its listen rate, and the mean embedding of its
  listened and of its skipped tracks (like the bandits' session features,
  ``musicrec_gym.session_features``, but from the logged steps only: warm-up plays are
  not logged). The listener's leave hazard grows with recent skips, so the value still
  to come depends on them. The reward model keeps ``φ``: with ``h`` in it, ``dr``'s
  RMSE for the uniform target on the built-in world rose above ``ips``'s. Fitted-Q
  evaluation of the
  target (Le, Voloshin & Yue, "Batch policy learning under constraints", ICML 2019):
  fit on the immediate reward, then ``T`` times refit on ``y_t = r_t + V̂(s_{t+1})``
  (0 after a session's last step; undiscounted), ``V̂(s) = Σ_a π_e(a|s) Q̂(s, a)``, the
  next state being the next logged step of the same session.

With ``q_model="two_tower"`` the Q-model adds a nonlinear term ``f(s)ᵀ g(a)``, an MLP of
``φ_Q(s)`` against an MLP of ``ψ(a)`` (``experiments.ope_two_tower``), backfitted with the
linear part; being linear in ``g(a)``, its mean under a target stays exact too.

Cross-fitting (Chernozhukov et al. 2018): the episodes are split in ``folds``; each
fold's predictions come from models fitted on the other folds only, so a step's own
reward never enters its model value (what DR's unbiasedness argument needs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from experiments.ope import TargetDistribution, episode_bounds
from musicrec_gym.errors import ConfigError, unknown_name_message

if TYPE_CHECKING:
    from experiments.ope_two_tower import TwoTower

#: Ridge penalty of ``W``.
RIDGE = 1.0
#: Shrinkage of the per-track offsets (pseudo-plays at offset 0).
BIAS_SHRINK = 20.0
#: Ridge penalty of the per-listener taste vectors ``θ_u``.
USER_RIDGE = 10.0
#: Backfitting rounds over ``W``, ``θ`` and ``b``.
PASSES = 2
#: Folds of the cross-fitting.
DEFAULT_FOLDS = 2
#: The Q-model's recent-skip count looks back this many logged steps (the simulator's
#: leave hazard counts the skips among the last 5 plays).
SKIP_WINDOW = 5
#: The Q-model's families: the linear model alone, or plus a two-tower term
#: ``f(s)ᵀ g(a)`` (``experiments.ope_two_tower``).
Q_MODELS = ("linear", "two_tower")
#: The default Q-model.
DEFAULT_Q_MODEL = "linear"


@dataclass(frozen=True)
class ModelValues:
    """Model predictions at every logged step (cross-fitted).

    Attributes:
        r_logged: ``r̂(s_i, a_i)``.
        r_target: ``Σ_a π_e(a|s_i) r̂(s_i, a)``.
        q_logged: ``Q̂(s_i, a_i)``.
        v_target: ``Σ_a π_e(a|s_i) Q̂(s_i, a)``.
    """

    r_logged: np.ndarray
    r_target: np.ndarray
    q_logged: np.ndarray
    v_target: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        """The four arrays by name (``experiments.ope.estimate``'s ``models``)."""
        return {
            "r_logged": self.r_logged,
            "r_target": self.r_target,
            "q_logged": self.q_logged,
            "v_target": self.v_target,
        }


def state_features(obs: np.ndarray, step: np.ndarray, horizon: int) -> np.ndarray:
    """``φ(s) = [1, obs, t/T, (t/T)²]``: (n, obs_dim + 3)."""
    t = np.asarray(step, dtype=np.float64)[:, None] / max(int(horizon), 1)
    obs = np.asarray(obs, dtype=np.float64)
    return np.concatenate([np.ones((len(obs), 1)), obs, t, t * t], axis=1)


def history_features(
    episode: np.ndarray, action: np.ndarray, reward: np.ndarray, psi_table: np.ndarray
) -> np.ndarray:
    """``h(s_t)``: what each step's session logged before it, (n, 2 + 2k).

    Columns: the skips (reward 0) among the session's last ``SKIP_WINDOW`` logged steps
    (divided by ``SKIP_WINDOW``), the listen rate of its earlier steps, and the mean
    ``[L / m, S / m]`` of the embeddings (``psi_table`` without its constant column) of its
    listened and skipped tracks, ``m`` its earlier steps (0 at a session's first step).
    Only steps before ``t`` of the same episode enter row ``t``: its own reward never.
    """
    n = len(episode)
    starts, lengths = episode_bounds(episode)
    first = np.repeat(starts, lengths)
    heard = (np.asarray(reward, dtype=np.float64) > 0).astype(np.float64)
    emb = psi_table[np.asarray(action, dtype=np.int64), 1:]
    mat = np.concatenate(
        [1.0 - heard[:, None], heard[:, None], emb * heard[:, None], emb * (1 - heard[:, None])],
        axis=1,
    )
    cum = np.concatenate([np.zeros((1, mat.shape[1])), np.cumsum(mat, axis=0)])
    rows = np.arange(n)
    before = cum[rows] - cum[first]  # sums over the episode's steps before each row
    plays = np.maximum(before[:, 0] + before[:, 1], 1.0)
    window = np.maximum(rows - SKIP_WINDOW, first)
    recent_skips = (cum[rows, 0] - cum[window, 0]) / SKIP_WINDOW
    return np.concatenate(
        [recent_skips[:, None], before[:, 1:2] / plays[:, None], before[:, 2:] / plays[:, None]],
        axis=1,
    )


def logger_features(
    logger: TargetDistribution, action: np.ndarray, target: TargetDistribution
) -> tuple[np.ndarray, np.ndarray]:
    """``o(s, a)`` at each logged action, and its exact mean under the target: (n, 2) each.

    ``o(s, a) = [1[the logger picks a on purpose at s], m(s, a) / m̄]``, where the
    logger's distribution is ``α_s base + sparse`` (``TargetDistribution``) and
    ``m(s, a) > 0`` is its sparse (own-pick) mass on ``a``; ``m̄`` is the mean of that
    mass. For the built-in world's logger, the own picks are the listener's pool and the
    continuations of the last play: what the service that logged chose for this listener
    and moment, beyond popularity. The mean under the target is
    ``Σ_{a: m(s,a) > 0} π_e(a|s) o(s, a)``, summed over the logger's sparse entries only.
    """
    n = logger.n
    mine = logger.vals > 0
    rows, cols, mass = logger.rows[mine], logger.cols[mine], logger.vals[mine]
    scale = float(mass.mean()) if len(mass) else 1.0
    own = TargetDistribution(np.zeros(n), logger.base, rows, cols, mass / scale)
    u_logged = np.zeros((n, 2))
    u_logged[:, 1] = own.sparse_at(np.arange(n), action)
    u_logged[:, 0] = u_logged[:, 1] > 0
    u_bar = np.zeros((n, 2))
    p_target = target.prob_at(rows, cols)
    np.add.at(u_bar[:, 0], rows, p_target)
    np.add.at(u_bar[:, 1], rows, p_target * mass / scale)
    return u_logged, u_bar


def action_features(action_context: np.ndarray) -> np.ndarray:
    """``ψ(a) = [1, standardised action_context[a]]``: (n_tracks, k + 1)."""
    ctx = np.asarray(action_context, dtype=np.float64)
    if ctx.ndim != 2:
        raise ConfigError(f"`action_context` must be (n_tracks, k), got shape {ctx.shape}")
    sd = ctx.std(axis=0)
    ctx = (ctx - ctx.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    return np.concatenate([np.ones((len(ctx), 1)), ctx], axis=1)


def _outer(phi: np.ndarray, psi: np.ndarray) -> np.ndarray:
    return np.einsum("ni,nj->nij", phi, psi).reshape(len(phi), -1)


class _LinearQ:
    """``φᵀ W ψ + θ_userᵀ ψ + b_a`` fitted on a set of rows (backfitted, ``PASSES`` rounds)."""

    def __init__(
        self, x: np.ndarray, psi: np.ndarray, users: np.ndarray, actions: np.ndarray, n_tracks: int
    ) -> None:
        self.x, self.psi, self.users, self.actions = x, psi, users, actions
        self.n_tracks = n_tracks
        self.inv = np.linalg.inv(x.T @ x + RIDGE * np.eye(x.shape[1]))
        self.plays = np.bincount(actions, minlength=n_tracks).astype(np.float64)
        self.n_users = int(users.max()) + 1 if len(users) else 1
        k = psi.shape[1]
        outer = (psi[:, :, None] * psi[:, None, :]).reshape(len(psi), -1)
        gram = np.stack(
            [np.bincount(users, weights=outer[:, j], minlength=self.n_users) for j in range(k * k)],
            axis=1,
        ).reshape(self.n_users, k, k)
        self.user_inv = np.linalg.inv(gram + USER_RIDGE * np.eye(k)[None])
        self.w = np.zeros(x.shape[1])
        self.theta = np.zeros((self.n_users, k))
        self.b = np.zeros(n_tracks)

    def fit(self, y: np.ndarray) -> None:
        for _ in range(PASSES):
            rest = y - self._user_part(self.psi, self.users) - self.b[self.actions]
            self.w = self.inv @ (self.x.T @ rest)
            rest = y - self.x @ self.w - self.b[self.actions]
            rhs_u = np.zeros_like(self.theta)
            for j in range(rhs_u.shape[1]):
                rhs_u[:, j] = np.bincount(
                    self.users, weights=self.psi[:, j] * rest, minlength=self.n_users
                )
            self.theta = np.einsum("ukl,ul->uk", self.user_inv, rhs_u)
            rest = y - self.x @ self.w - self._user_part(self.psi, self.users)
            sums = np.bincount(self.actions, weights=rest, minlength=self.n_tracks)
            self.b = sums / (self.plays + BIAS_SHRINK)

    def _user_part(self, psi: np.ndarray, users: np.ndarray) -> np.ndarray:
        known = users < self.n_users
        theta = np.where(known[:, None], self.theta[np.minimum(users, self.n_users - 1)], 0.0)
        return (theta * psi).sum(axis=1)

    def logged(
        self, x: np.ndarray, psi: np.ndarray, users: np.ndarray, actions: np.ndarray
    ) -> np.ndarray:
        return x @ self.w + self._user_part(psi, users) + self.b[actions]

    def target(
        self, x_bar: np.ndarray, psi_bar: np.ndarray, users: np.ndarray, dist: TargetDistribution
    ) -> np.ndarray:
        return (
            x_bar @ self.w + self._user_part(psi_bar, users) + dist.mean_of(self.b[:, None])[:, 0]
        )


def fit_models(
    episode: np.ndarray,
    step: np.ndarray,
    obs: np.ndarray,
    action: np.ndarray,
    reward: np.ndarray,
    action_context: np.ndarray,
    target: TargetDistribution,
    user: np.ndarray | None = None,
    horizon: int | None = None,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    fqe_iterations: int | None = None,
    logger: TargetDistribution | None = None,
    q_model: str = DEFAULT_Q_MODEL,
) -> ModelValues:
    """Cross-fitted reward and Q-model values at every logged step.

    Args:
        episode: (n,) episode ids, each episode's steps together and in order.
        step: (n,) step within the episode, from 0.
        obs: (n, d) observations.
        action: (n,) logged actions (rows of ``action_context``).
        reward: (n,) logged rewards.
        action_context: (n_tracks, k) features of every track.
        target: The target policy's distribution at every logged step.
        user: (n,) the listener of each step (``None``: no per-listener term).
        horizon: ``T`` of the step features (default: the longest logged session).
        folds: Episode folds (1: no cross-fitting, every model fitted on every step).
        seed: Seed of the fold assignment.
        fqe_iterations: Fitted-Q iterations (default: ``T``).
        logger: The logging policy's distribution at every logged step (``None``: the
            models do without :func:`logger_features`).
        q_model: The Q-model's family (``Q_MODELS``): ``linear``, or ``two_tower`` (the
            linear model plus ``f(s)ᵀ g(a)``, backfitted; ``experiments.ope_two_tower``).
            The reward model stays linear.

    Raises:
        ConfigError: Arrays of different lengths, a target of another length, a logged
            action outside the catalog, or an unknown ``q_model``.
    """
    if q_model not in Q_MODELS:
        raise ConfigError(unknown_name_message("q_model", str(q_model), Q_MODELS))
    episode = np.asarray(episode)
    n = len(episode)
    action = np.asarray(action, dtype=np.int64)
    reward = np.asarray(reward, dtype=np.float64)
    user = np.zeros(n, np.int64) if user is None else np.asarray(user, dtype=np.int64)
    arrays = (("step", step), ("obs", obs), ("action", action), ("reward", reward), ("user", user))
    for name, a in arrays:
        if len(a) != n:
            raise ConfigError(f"`{name}` has {len(a)} rows, `episode` {n}: one row per step")
    if target.n != n:
        raise ConfigError(f"the target distribution has {target.n} rows for {n} logged steps")
    if logger is not None and logger.n != n:
        raise ConfigError(f"the logger's distribution has {logger.n} rows for {n} logged steps")
    if n and user.min() < 0:
        raise ConfigError("`user` must hold listener rows >= 0")
    starts, lengths = episode_bounds(episode)
    horizon = int(horizon or lengths.max())
    iterations = horizon if fqe_iterations is None else int(fqe_iterations)
    psi_table = action_features(action_context)
    n_tracks = len(psi_table)
    if action.min() < 0 or action.max() >= n_tracks:
        raise ConfigError(f"logged actions must be in [0, {n_tracks}) (rows of action_context)")
    phi = state_features(obs, step, horizon)
    phi_q = np.concatenate([phi, history_features(episode, action, reward, psi_table)], axis=1)
    psi = psi_table[action]
    psi_bar = target.mean_of(psi_table)
    x, x_bar = _outer(phi, psi), _outer(phi, psi_bar)
    xq, xq_bar = _outer(phi_q, psi), _outer(phi_q, psi_bar)
    if logger is not None:
        u, u_bar = logger_features(logger, action, target)
        x = np.concatenate([x, _outer(phi, u)], axis=1)
        x_bar = np.concatenate([x_bar, _outer(phi, u_bar)], axis=1)
        xq = np.concatenate([xq, _outer(phi_q, u)], axis=1)
        xq_bar = np.concatenate([xq_bar, _outer(phi_q, u_bar)], axis=1)
    last = np.zeros(n, dtype=bool)
    last[starts + lengths - 1] = True
    nxt = np.minimum(np.arange(n) + 1, n - 1)

    rng = np.random.default_rng(seed)
    k = max(int(folds), 1)
    fold = np.repeat(rng.permutation(len(starts)) % k, lengths)
    out = {name: np.zeros(n) for name in ("r_logged", "r_target", "q_logged", "v_target")}
    for f in range(k):
        test = np.flatnonzero(fold == f)
        idx = np.flatnonzero(fold != f) if k > 1 else test
        pos = np.full(n, -1)
        pos[idx] = np.arange(len(idx))
        next_pos = pos[nxt[idx]]  # each training row's next step, in the training rows
        train_dist, test_dist = target.at_rows(idx), target.at_rows(test)
        model = _LinearQ(x[idx], psi[idx], user[idx], action[idx], n_tracks)
        model.fit(reward[idx])
        out["r_logged"][test] = model.logged(x[test], psi[test], user[test], action[test])
        out["r_target"][test] = model.target(x_bar[test], psi_bar[test], user[test], test_dist)
        q = _LinearQ(xq[idx], psi[idx], user[idx], action[idx], n_tracks)
        tower = None
        if q_model == "two_tower":
            from experiments.ope_two_tower import TwoTower

            tower = TwoTower(phi_q[idx], psi_table, seed=seed * 1000 + f)
        _fit_q(q, tower, reward[idx], xq[idx], phi_q[idx], psi[idx], user[idx], action[idx])
        done = last[idx]
        for _ in range(iterations):
            v = q.target(xq_bar[idx], psi_bar[idx], user[idx], train_dist)
            if tower is not None:
                v = v + tower.target(phi_q[idx], train_dist)
            y = reward[idx] + np.where(done, 0.0, v[next_pos])
            _fit_q(q, tower, y, xq[idx], phi_q[idx], psi[idx], user[idx], action[idx])
        out["q_logged"][test] = q.logged(xq[test], psi[test], user[test], action[test])
        out["v_target"][test] = q.target(xq_bar[test], psi_bar[test], user[test], test_dist)
        if tower is not None:
            out["q_logged"][test] += tower.predict(phi_q[test], action[test])
            out["v_target"][test] += tower.target(phi_q[test], test_dist)
    return ModelValues(**out)


def _fit_q(
    q: _LinearQ,
    tower: TwoTower | None,
    y: np.ndarray,
    xq: np.ndarray,
    phi_q: np.ndarray,
    psi: np.ndarray,
    user: np.ndarray,
    action: np.ndarray,
) -> None:
    """One (re)fit of the Q-model: the linear part, then the towers on what it leaves."""
    if tower is None:
        q.fit(y)
        return
    q.fit(y - tower.predict(phi_q, action))
    tower.fit(phi_q, action, y - q.logged(xq, psi, user, action))
