"""The batched simulator: optimal reward, fatigue, leaving, seeding."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.data.synthetic import SyntheticConfig, generate_world
from musicrec_gym.sim.params import RewardParams, SimulatorParams
from musicrec_gym.sim.response import sigmoid
from musicrec_gym.sim.reward import RewardModel
from musicrec_gym.sim.rng import SlotStreams
from musicrec_gym.sim.simulator import BatchSimulator


@pytest.fixture(scope="module")
def small_world():
    catalog, listeners, truth = generate_world(
        SyntheticConfig(n_tracks=120, n_artists=40, n_listeners=60, seed=3)
    )
    artist = pd.factorize(catalog["artist_id"], sort=True)[0]
    return catalog, listeners, truth, artist


def make_sim(small_world, n=32, params=None, mode="listen"):
    catalog, _, truth, artist = small_world
    return BatchSimulator(
        truth, artist, catalog["popularity"].to_numpy(), params or SimulatorParams(), n, mode
    )


def test_streams_depend_only_on_own_seed():
    a, b = SlotStreams(4), SlotStreams(1)
    a.seed(np.arange(4), np.array([5, 6, 7, 8]))
    b.seed(np.arange(1), np.array([7]))
    assert np.array_equal(a.uniform(slice(None), 10)[2], b.uniform(slice(None), 10)[0])
    u = a.uniform(slice(None), 20000)
    assert 0.49 < u.mean() < 0.51 and u.min() >= 0.0 and u.max() < 1.0


def test_cached_optimum_equals_full_scoring(small_world):
    sim = make_sim(small_world, n=64)
    sim.seed(np.arange(64), np.arange(64))
    sim.reset(np.arange(64))
    rng = np.random.default_rng(0)
    for _ in range(15):
        full = sim.expected_rewards()
        assert np.allclose(full.max(axis=1), sim.reward.expected(sigmoid(sim.opt_logit)))
        assert np.array_equal(full.argmax(axis=1), sim.opt_action)
        # mostly greedy, with repeats forced in so fatigue pushes candidates below threshold
        actions = np.where(rng.random(64) < 0.5, sim.opt_action, sim.hist[:, 0])
        result = sim.step(actions)
        assert np.all(result.expected_reward <= result.optimal_reward + 1e-12)
        done = np.flatnonzero(result.terminated | result.truncated)
        sim.reset(done)


def test_repeat_and_same_artist_are_penalised(small_world):
    sim = make_sim(small_world, n=1)
    sim.seed(np.arange(1), np.array([1]))
    sim.reset(np.arange(1))
    track = int(sim.opt_action[0])
    before = sim.expected_rewards()[0, track]
    sim.step(np.array([track]))
    after = sim.expected_rewards()[0, track]
    params = sim.params.response
    # the track is now both a repeat and by an artist in the window
    expected = sigmoid(np.log(before / (1 - before)) - params.repeat - params.artist)
    assert after == pytest.approx(expected, rel=1e-9)


def test_leave_hazard_grows_with_skips(small_world):
    sim = make_sim(small_world, n=1)
    users = np.zeros(1, dtype=np.int64)
    calm = sim.leave.hazard(users, np.ones((1, 3)))
    angry = sim.leave.hazard(users, np.zeros((1, 3)))
    assert angry[0] > calm[0] > 0


def test_sessions_are_capped(small_world):
    params = SimulatorParams()
    params = dataclasses.replace(params, leave=dataclasses.replace(params.leave, per_skip=0.0))
    sim = make_sim(small_world, n=200, params=params)
    sim.seed(np.arange(200), np.arange(200))
    sim.reset(np.arange(200))
    lengths = np.zeros(200, dtype=int)
    alive = np.ones(200, dtype=bool)
    for t in range(params.leave.max_steps):
        r = sim.step(sim.opt_action.copy())
        ended = alive & (r.terminated | r.truncated)
        lengths[ended] = t + 1
        alive &= ~ended
    assert not alive.any()
    assert lengths.max() == params.leave.max_steps and lengths.min() >= 1


def test_same_seed_same_trajectory_regardless_of_batch(small_world):
    big = make_sim(small_world, n=8)
    one = make_sim(small_world, n=1)
    big.seed(np.arange(8), np.arange(100, 108))
    one.seed(np.arange(1), np.array([105]))
    big.reset(np.arange(8))
    one.reset(np.arange(1))
    for _ in range(5):
        acts = big.logging_actions()
        a1 = one.logging_actions()
        assert a1[0] == acts[5]
        rb, r1 = big.step(acts), one.step(a1)
        assert rb.reward[5] == r1.reward[0] and rb.terminated[5] == r1.terminated[0]


@pytest.mark.parametrize("mode", ["listen", "time", "event"])
def test_reward_modes_mean_matches_expected(mode):
    model = RewardModel(mode, RewardParams())
    rng = np.random.default_rng(0)
    p = 0.7
    listened = rng.random(200_000) < p
    draws = model.draw(listened, rng.random(200_000), rng.random(200_000))
    assert draws.mean() == pytest.approx(model.expected(np.array(p)), abs=0.02)


def test_personalisation_matters(small_world):
    """Greedy on the truth beats most-popular, which beats random."""
    catalog = small_world[0]
    pop_order = np.argsort(-catalog["popularity"].to_numpy())
    returns = {}
    for name in ("oracle", "popular", "random"):
        sim = make_sim(small_world, n=400)
        sim.seed(np.arange(400), np.arange(400))
        sim.reset(np.arange(400))
        rng = np.random.default_rng(1)
        total, alive = np.zeros(400), np.ones(400, dtype=bool)
        for t in range(sim.max_steps):
            if name == "oracle":
                acts = sim.opt_action.copy()
            elif name == "popular":
                acts = np.full(400, pop_order[t])
            else:
                acts = rng.integers(0, sim.n_tracks, 400)
            r = sim.step(acts)
            total += r.reward * alive
            alive &= ~(r.terminated | r.truncated)
        returns[name] = total.mean()
    assert returns["oracle"] > 1.5 * returns["popular"] > 1.5 * returns["random"]
