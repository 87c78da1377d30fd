"""The slate agents (``agents.slate_agents``): valid slates, learning, the config, bad use."""

from pathlib import Path

import numpy as np
import pytest

from agents import AgentContext, make_agent
from agents.base import types_for_setting
from experiments.config import load_config
from musicrec_gym.envs.slate import SlateVectorEnv
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"
SLATE_TYPES = ("slate_popularity", "slate_topk", "slateq")
N = 16


def bound(key: str, env, seed: int = 0):
    agent = make_agent(key, {})
    agent.bind(AgentContext.from_env(env, seed))
    agent.attach(env)
    return agent


def mean_regret(agent, env, seed: int, episodes_of: int = 1) -> float:
    """Greedy mean regret per step of the first session of each slot."""
    obs, info = env.reset(seed=seed)
    agent.episode_end(np.ones(env.num_envs, dtype=bool))
    active = np.ones(env.num_envs, dtype=bool)
    regret, steps = 0.0, 0
    while active.any():
        obs, _, term, trunc, info = env.step(agent.act(obs, info, explore=False))
        regret += float(info["regret"][active].sum())
        steps += int(active.sum())
        done = term | trunc
        agent.episode_end(done)
        active &= ~done
    return regret / steps


def test_the_slate_config_covers_every_slate_agent_type():
    config = load_config(CONFIGS / "slate.yaml")
    assert config.env.id == "MusicRecSlate-v0"
    assert set(types_for_setting("slate")) >= set(SLATE_TYPES)
    assert {a.type for a in config.agents} == set(types_for_setting("slate"))


@pytest.mark.parametrize("key", SLATE_TYPES)
def test_slates_are_valid_and_never_repeat_a_play(key: str, tiny_world: Path):
    env = SlateVectorEnv(num_envs=N, slate=3, world=tiny_world)
    agent = bound(key, env)
    obs, info = env.reset(seed=1)
    agent.episode_end(np.ones(N, dtype=bool))
    played = [set(row) for row in info["warmup_tracks"].tolist()]
    for _ in range(40):
        slates = agent.act(obs, info, explore=True)
        assert slates.shape == (N, 3)
        for i, row in enumerate(slates.tolist()):
            assert len(set(row)) == 3 and not played[i] & set(row)
        next_obs, rewards, term, trunc, info = env.step(slates)
        agent.update(obs, slates, rewards, next_obs, term | trunc, info)
        done = term | trunc
        agent.episode_end(done)
        for i in range(N):
            if done[i]:
                played[i] = set(info["warmup_tracks"][i].tolist())
            elif info["track"][i] >= 0:
                played[i].add(int(info["track"][i]))
        obs = next_obs


@pytest.mark.parametrize("key", ["slate_topk", "slateq"])
def test_a_short_training_run_lowers_the_regret(key: str):
    """On the built-in world, 3,000 steps of training beat the untrained model."""
    env = SlateVectorEnv(num_envs=N)
    agent = bound(key, env)
    before = mean_regret(agent, env, seed=500)
    agent.learn(env, 3000)
    after = mean_regret(agent, env, seed=500)
    assert after < 0.8 * before, (before, after)
    assert agent.steps > 1000  # the picked plays were learned from


def test_slate_agents_refuse_other_settings_and_misuse():
    catalog = MusicRecVectorEnv(num_envs=2)
    for key in SLATE_TYPES:
        with pytest.raises(ConfigError, match="does not act in the 'catalog' setting"):
            make_agent(key, {}).bind(AgentContext.from_env(catalog, 0))
    with pytest.raises(ConfigError, match=r"`attraction_floor` must be a float in \[0, 0.5\]"):
        make_agent("slateq", {"attraction_floor": 0.7})
    env = SlateVectorEnv(num_envs=2)
    agent = make_agent("slateq", {})
    agent.bind(AgentContext.from_env(env, 0))
    obs, info = env.reset(seed=0)
    with pytest.raises(ConfigError, match="call attach"):
        agent.act(obs, info)
    with pytest.raises(ConfigError, match="choice model"):
        agent.attach(catalog)
    agent.attach(env)
    slates = agent.act(obs, info)
    with pytest.raises(ConfigError, match="must follow the act"):
        agent.update(obs, slates[::-1], np.zeros(2), obs, np.zeros(2, bool), info)
