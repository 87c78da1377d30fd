"""MusicRecLongTerm-v0: the delayed-effects option (satisfaction drives the leave hazard)."""

import warnings

import gymnasium as gym
import numpy as np
import pytest

import musicrec_gym  # noqa: F401  (registers the ids)
from experiments.config import parse_config
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError
from musicrec_gym.sim.params import SatisfactionParams
from musicrec_gym.sim.satisfaction import (
    DISCOVERY,
    POPULAR,
    satisfaction_after,
    satisfaction_update,
    track_kinds,
)

LONG = "MusicRecLongTerm-v0"


def rollout(env, seed, actions):
    """Observations, rewards and ends of one seeded session under fixed actions."""
    obs, _ = env.reset(seed=seed)
    out = [obs.ravel()]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(int(a))
        out.append(np.concatenate([obs.ravel(), [reward, terminated, truncated, info["step"]]]))
        if terminated or truncated:
            break
    return np.concatenate(out)


def test_sb3_check_env_passes_without_warnings():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(gym.make(LONG).unwrapped, warn=True)


def test_same_seed_same_trajectory_and_vector_slots_equal_single_envs():
    actions = np.random.default_rng(0).integers(0, 1000, 20)
    a = rollout(gym.make(LONG), 7, actions)
    assert np.array_equal(a, rollout(gym.make(LONG), 7, actions))
    assert not np.array_equal(a[:9], rollout(gym.make(LONG), 8, actions)[:9])
    # the vector env's slot i is the single env reset with seed + i
    venv = gym.make_vec(LONG, num_envs=3)
    assert venv.core.long_term
    venv.reset(seed=5)
    singles = [gym.make(LONG) for _ in range(3)]
    for i, env in enumerate(singles):
        env.reset(seed=5 + i)
    done = np.zeros(3, bool)
    for t in range(20):
        batch = np.full(3, actions[t])
        _, r, term, trunc, _ = venv.step(batch)
        for i, env in enumerate(singles):
            if not done[i]:
                _, ri, ti, tri, _ = env.step(int(actions[t]))
                assert (ri, ti, tri) == (r[i], term[i], trunc[i])
        done |= term | trunc
        if done.all():
            break


def test_off_is_musicrec_v0_bit_for_bit_and_on_changes_the_sessions():
    actions = np.random.default_rng(1).integers(0, 1000, 20)
    base = [rollout(gym.make("MusicRec-v0"), s, actions) for s in range(30)]
    off = [rollout(gym.make("MusicRec-v0", long_term=False), s, actions) for s in range(30)]
    on = [rollout(gym.make(LONG), s, actions) for s in range(30)]
    assert all(np.array_equal(a, b) for a, b in zip(base, off, strict=True))
    # the same draws; the hazard differs, so some session ends at another step
    assert any(len(a) != len(b) for a, b in zip(base, on, strict=True))


def kind_policy(sim, lam):
    """Best unplayed track by listen logit + ``lam`` * kind (the simulator's truth)."""
    slots = np.arange(sim.n_slots)
    logits = sim._full_logits(slots)
    h = sim.hist
    rows = np.repeat(slots, h.shape[1])
    valid = h.ravel() >= 0
    logits[rows[valid], h.ravel()[valid]] = -np.inf
    return (logits + lam * sim.track_kind[None, :]).argmax(axis=1)


def mean_return(policy, n=256, seed=0):
    venv = MusicRecVectorEnv(num_envs=n, long_term=True)  # ended slots restart: masked
    _, info = venv.reset(seed=seed)
    total, alive = np.zeros(n), np.ones(n, bool)
    for _ in range(20):
        _, r, term, trunc, info = venv.step(policy(venv.core.sim, info))
        total += np.where(alive, r, 0.0)
        alive &= ~(term | trunc)
    return total.mean()


def test_planning_pays_the_greedy_oracle_is_far_from_a_discovery_policy():
    """The delayed effect is there: favouring discoveries beats the greedy oracle by > 25%."""
    greedy = mean_return(lambda sim, info: info["optimal_action"])
    discover = mean_return(lambda sim, info: kind_policy(sim, 1.0))
    assert discover > 1.25 * greedy, (greedy, discover)


def test_satisfaction_rules():
    pop = np.array([0.5, 0.1, 0.05, 0.3, 0.05])
    kinds = track_kinds(pop, SatisfactionParams(popular_share=0.2, discovery_share=0.4))
    assert kinds.tolist() == [POPULAR, 0, DISCOVERY, 0, DISCOVERY]  # ties by index
    s = np.array([0, 0, 3, -3, 1])
    kind = np.array([DISCOVERY, DISCOVERY, DISCOVERY, POPULAR, DISCOVERY])
    repeated = np.array([False, True, False, False, False])
    listened = np.array([True, True, True, True, False])
    after = satisfaction_update(s, kind, repeated, listened, 3)
    assert after.tolist() == [1, -1, 3, -3, 1]  # a repeat is over-familiar; a skip: as is
    for i in range(5):
        assert satisfaction_after(s[i], kind[i], repeated[i], listened[i], 3) == after[i]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"long_term": "yes"}, r"`long_term` must be a bool"),
        ({"long_term": 1}, r"`long_term` must be a bool"),
        ({"popular_share": 0.6, "discovery_share": 0.6}, r"popular_share.*<= 1"),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        if "long_term" in kwargs:
            gym.make("MusicRec-v0", **kwargs)
        else:
            SatisfactionParams(**kwargs)


def test_a_fitted_world_refuses_long_term(fitted_mssd_world):
    with pytest.raises(ConfigError, match=r"long_term=True.*synthetic world"):
        gym.make(LONG, world=str(fitted_mssd_world))


CONFIG = """
name: lt
env: {{id: MusicRecLongTerm-v0{kwargs}}}
seeds: [0]
budget: {{train_steps: 10, eval_episodes: 1}}
agents: [{{name: R, type: random}}]
"""


def test_experiment_configs_take_the_long_term_id():
    config = parse_config(CONFIG.format(kwargs=""), "lt.yaml")
    assert config.env.id == LONG and config.env.kwargs == {"long_term": True}
    with pytest.raises(ConfigError, match=r"lt.yaml.*env.kwargs.long_term.*long_term: True"):
        parse_config(CONFIG.format(kwargs=", kwargs: {long_term: false}"), "lt.yaml")
