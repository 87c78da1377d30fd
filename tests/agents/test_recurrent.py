"""Recurrent PPO (sb3-contrib): learns, carries each slot's LSTM memory, saves and loads."""

import numpy as np
import pytest
from sb3_contrib import RecurrentPPO

from agents import make_agent
from agents.recurrent import EmbeddingRecurrentPolicy
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError

FAST = {"n_steps": 8, "batch_size": 32, "n_epochs": 1, "net_arch": [16], "lstm_hidden_size": 8}


@pytest.mark.parametrize("head", ["linear", "embedding"])
def test_learns_on_the_native_env_and_round_trips(head, tiny_world, context, tmp_path):
    env = MusicRecVectorEnv(num_envs=8, world=tiny_world)
    agent = make_agent("recurrent_ppo", {**FAST, "head": head})
    agent.bind(context)
    episodes = []
    agent.learn(env, 320, callback=lambda *args: episodes.append(args))
    assert isinstance(agent.model, RecurrentPPO) and episodes
    if head == "embedding":
        assert isinstance(agent.model.policy, EmbeddingRecurrentPolicy)
    agent.save(tmp_path / "model.zip")
    twin = make_agent("recurrent_ppo", {**FAST, "head": head})
    twin.bind(context)
    twin.load(tmp_path / "model.zip")
    obs = np.random.default_rng(0).uniform(-1, 1, (4, 6, context.obs_dim)).astype(np.float32)
    for pair in (agent, twin):
        pair.episode_end(np.ones(6, dtype=bool))
    for step in obs:  # the same memory, step after step
        assert np.array_equal(agent.act(step, {}, explore=False), twin.act(step, {}, explore=False))


def test_memory_is_carried_and_cleared_at_the_end_of_a_session(tiny_world, context):
    """The logits depend on the earlier steps of the session, and not on earlier sessions."""
    env = MusicRecVectorEnv(num_envs=8, world=tiny_world)
    agent = make_agent("recurrent_ppo", {**FAST, "avoid_repeats": False})
    agent.bind(context)
    agent.learn(env, 160)
    rng = np.random.default_rng(1)
    first, second = (rng.uniform(-1, 1, (64, context.obs_dim)).astype(np.float32) for _ in "ab")
    agent.episode_end(np.ones(64, dtype=bool))
    fresh = agent.act(second, {}, explore=False)
    states = agent._states[0].clone()
    agent.episode_end(np.ones(64, dtype=bool))
    agent.act(first, {}, explore=False)
    remembered = agent._states[0].clone()
    agent.act(second, {}, explore=False)
    assert not np.allclose(agent._states[0].numpy(), states.numpy())  # memory of `first`
    agent.episode_end(np.ones(64, dtype=bool))
    assert np.array_equal(agent.act(second, {}, explore=False), fresh)
    assert np.array_equal(agent._states[0].numpy(), states.numpy())
    assert not np.array_equal(remembered.numpy(), states.numpy())


def test_bad_hyperparameters(context):
    with pytest.raises(ConfigError, match=r"`lstm_hidden_size` must be an int >= 1, got 0"):
        make_agent("recurrent_ppo", {"lstm_hidden_size": 0})
    with pytest.raises(ConfigError, match="unknown"):
        make_agent("recurrent_ppo", {"lstm_size": 8})
