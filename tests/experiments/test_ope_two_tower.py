"""The two-tower Q-model (experiments.ope_two_tower, ``q_model: two_tower``): exact, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.ope import TargetDistribution
from experiments.ope_config import parse_ope_config
from experiments.ope_models import fit_models
from experiments.ope_two_tower import TwoTower
from musicrec_gym.errors import ConfigError


def _sessions(seed: int = 0, n_eps: int = 150, t: int = 4, k: int = 12):
    """Small logged sessions with a reward nonlinear in state and track, and a logger."""
    rng = np.random.default_rng(seed)
    n = n_eps * t
    episode = np.repeat(np.arange(n_eps), t)
    step = np.tile(np.arange(t), n_eps)
    obs = rng.normal(size=(n, 3))
    ctx = rng.normal(size=(k, 3))
    action = rng.integers(0, k, n)
    close = np.abs(obs - ctx[action]).sum(axis=1)
    reward = (rng.random(n) < 1 / (1 + np.exp(close - 2))).astype(float)
    picks = rng.integers(0, k, n)
    logger = TargetDistribution(np.full(n, 0.5), np.full(k, 1 / k), np.arange(n), picks,
                                np.full(n, 0.5))  # fmt: skip
    user = rng.integers(0, 5, n)
    return episode, step, obs, action, reward, ctx, logger, user


def _random_target(rng: np.random.Generator, n: int, k: int) -> TargetDistribution:
    """A shared part plus two sparse entries per row, one negative (a blocked track)."""
    rows = np.repeat(np.arange(n), 2)
    cols = np.stack([rng.integers(0, k, n), (rng.integers(0, k, n) + 1) % k], axis=1).ravel()
    weight = rng.uniform(0.2, 0.6, n)
    vals = np.stack([1 - weight, np.zeros(n)], axis=1).ravel()
    base = rng.dirichlet(np.ones(k))
    vals[1::2] = -np.minimum(weight * base[cols[1::2]], 0.01)  # takes back base mass
    vals[0::2] -= vals[1::2]  # and gives it to the first entry: rows still sum to 1
    return TargetDistribution(weight, base, rows, cols, vals)


def test_two_tower_target_mean_equals_the_explicit_sum_over_tracks():
    """``f(s)ᵀ E_π[g]`` = ``Σ_a π(a|s) f(s)ᵀ g(a)`` computed track by track."""
    rng = np.random.default_rng(3)
    n, k, d = 40, 9, 5
    state, psi = rng.normal(size=(n, d)), np.c_[np.ones(k), rng.normal(size=(k, 2))]
    tower = TwoTower(state, psi, seed=0)
    tower.fit(state, rng.integers(0, k, n), rng.normal(size=n))  # towers no longer 0
    dist = _random_target(rng, n, k)
    table = tower.table(state)
    assert np.abs(table).max() > 1e-3
    assert np.allclose(tower.target(state, dist), dist.mean_per_row(table))
    some = rng.normal(size=(k, 3))
    explicit = np.stack([dist.mean_per_row(np.broadcast_to(col, (n, k))) for col in some.T], 1)
    assert np.allclose(dist.mean_of(some), explicit)
    actions = rng.integers(0, k, n)
    assert np.allclose(tower.predict(state, actions), table[np.arange(n), actions])


def test_two_tower_q_model_with_a_delta_target_is_q_at_that_action():
    """A target that plays the logged action: V̂(s) = Q̂(s, a), the whole model included."""
    episode, step, obs, action, reward, ctx, logger, user = _sessions()
    n, k = len(episode), len(ctx)
    delta = TargetDistribution(np.zeros(n), np.full(k, 1 / k), np.arange(n), action, np.ones(n))
    models = fit_models(episode, step, obs, action, reward, ctx, delta, user=user,
                        logger=logger, q_model="two_tower")  # fmt: skip
    assert np.allclose(models.v_target, models.q_logged, atol=1e-9)
    assert models.q_logged.std() > 0.05


def test_two_tower_fit_is_deterministic_for_a_seed():
    episode, step, obs, action, reward, ctx, logger, user = _sessions(1)
    target = TargetDistribution.epsilon_greedy((action + 1) % len(ctx), 0.3, len(ctx))

    def fit(seed: int) -> np.ndarray:
        models = fit_models(episode, step, obs, action, reward, ctx, target, user=user,
                            logger=logger, q_model="two_tower", seed=seed)  # fmt: skip
        return np.r_[models.q_logged, models.v_target]

    first = fit(0)
    assert np.array_equal(fit(0), first)
    assert not np.allclose(fit(1), first)
    linear = fit_models(episode, step, obs, action, reward, ctx, target, user=user, logger=logger)
    assert not np.allclose(np.r_[linear.q_logged, linear.v_target], first)  # the towers add


def test_an_unknown_q_model_is_a_clear_error():
    episode, step, obs, action, reward, ctx, _, _ = _sessions(n_eps=5)
    target = TargetDistribution.epsilon_greedy(action, 0.3, len(ctx))
    with pytest.raises(ConfigError, match=r"unknown q_model 'mlp'.*Allowed: linear, two_tower"):
        fit_models(episode, step, obs, action, reward, ctx, target, q_model="mlp")
    good = "name: t\nlog:\n  policy: world\n  sessions: 100\ntargets: [uniform]\nseeds: [0]\n"
    assert parse_ope_config(good).q_model == "linear"
    assert parse_ope_config(good + "q_model: two_tower\n").q_model == "two_tower"
    with pytest.raises(ConfigError, match=r"line 7: q_model: .*Did you mean 'two_tower'"):
        parse_ope_config(good + "q_model: two-tower\n", "ope.yaml")
