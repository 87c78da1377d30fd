"""PPO and DQN through the common interface: learn, report episodes, act, save/load."""

import numpy as np
import pytest

from agents import make_agent
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError

FAST = {
    "ppo": {"n_steps": 16, "batch_size": 64, "n_epochs": 1, "net_arch": [32]},
    "dqn": {"learning_starts": 64, "batch_size": 32, "buffer_size": 1000, "net_arch": [32]},
}


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_learn_reports_episodes_and_acts(key, tiny_world, context, tmp_path):
    env = MusicRecVectorEnv(num_envs=8, world=tiny_world)
    agent = make_agent(key, FAST[key])
    agent.bind(context)
    agent.set_log_dir(tmp_path / "tb")
    assert agent.learns_online
    episodes = []
    agent.learn(env, 400, callback=lambda *args: episodes.append(args))
    assert len(episodes) >= 5
    for steps, ret, opt, length, listens in episodes:
        assert 0 < steps <= 512 and 1 <= length <= 20 and ret == listens and opt > 0
    assert list((tmp_path / "tb").rglob("events.out.tfevents.*")), "no SB3 TensorBoard log"
    obs, info = env.reset(seed=1)
    for explore in (False, True):
        actions = agent.act(obs, info, explore=explore)
        assert actions.shape == (8,) and actions.dtype == np.int64
        assert actions.min() >= 0 and actions.max() < context.n_tracks


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_save_load_round_trip_gives_identical_actions(key, tiny_world, context, tmp_path):
    env = MusicRecVectorEnv(num_envs=8, world=tiny_world)
    agent = make_agent(key, FAST[key])
    agent.bind(context)
    agent.learn(env, 200)
    agent.save(tmp_path / "model.zip")
    twin = make_agent(key, FAST[key])
    twin.bind(context)
    twin.load(tmp_path / "model.zip")
    obs = np.random.default_rng(0).uniform(-1, 1, (32, context.obs_dim)).astype(np.float32)
    assert np.array_equal(agent.act(obs, {}, explore=False), twin.act(obs, {}, explore=False))
    clone = make_agent(key, FAST[key])
    clone.bind(context)
    clone.set_state(agent.state())
    assert np.array_equal(agent.act(obs, {}, explore=False), clone.act(obs, {}, explore=False))


def test_an_untrained_agent_can_act(context):
    agent = make_agent("dqn", {"net_arch": [8]})
    agent.bind(context)
    assert agent.act(np.zeros((3, context.obs_dim)), {}, explore=False).shape == (3,)


@pytest.mark.parametrize(
    ("key", "params", "match"),
    [
        ("ppo", {"learning_rate": 0}, r"`learning_rate` must be a float > 0, got 0"),
        ("ppo", {"net_arch": [64, 0]}, r"`net_arch` must be a non-empty list of ints >= 1"),
        ("ppo", {"gamma": 1.5}, r"`gamma` must be a float in \[0, 1\], got 1.5"),
        ("dqn", {"train_freq": 0}, r"`train_freq` must be an int >= 1, got 0"),
        ("dqn", {"device": "gpu"}, r"`device` must be one of 'cpu', 'cuda', 'auto', got 'gpu'"),
    ],
)
def test_invalid_hyperparameters_are_rejected(key, params, match):
    with pytest.raises(ConfigError, match=match):
        make_agent(key, params)


def test_learn_needs_a_musicrec_vector_env(context):
    agent = make_agent("ppo", FAST["ppo"])
    agent.bind(context)
    with pytest.raises(ConfigError, match="needs a MusicRecVectorEnv"):
        agent.learn(object(), 10)
