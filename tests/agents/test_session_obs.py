"""``session_features``: deep agents act on the very numbers ``SessionFeaturesVector`` trains on."""

import numpy as np
import pytest

from agents import make_agent
from agents.history import EpisodeHistory
from agents.session_obs import SessionObservation
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.wrappers import SessionFeaturesVector

FAST = {
    "ppo": {"n_steps": 16, "batch_size": 64, "n_epochs": 1, "net_arch": [32]},
    "dqn": {"learning_starts": 64, "batch_size": 32, "buffer_size": 1000, "net_arch": [32]},
    "recurrent_ppo": {"n_steps": 8, "batch_size": 32, "n_epochs": 1, "lstm_hidden_size": 8},
}


def test_acting_features_equal_the_training_wrappers(tiny_world, context):
    """Same seeds and actions: the agent-side features equal the wrapper's, bit for bit."""
    plain = MusicRecVectorEnv(num_envs=6, world=tiny_world)
    wrapped = SessionFeaturesVector(MusicRecVectorEnv(num_envs=6, world=tiny_world))
    session = SessionObservation(context)
    history = EpisodeHistory(context.n_tracks)
    obs, info = plain.reset(seed=3)
    expected, _ = wrapped.reset(seed=3)
    history.end(np.ones(6, dtype=bool))
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(80):
        got = session.append(history, obs, info)
        history.blocked(6, info)
        assert got.shape == expected.shape == (6, session.dim)
        assert np.array_equal(got, expected)
        actions = rng.integers(0, context.n_tracks, 6)
        history.mark(actions)
        obs, _, term, trunc, info = plain.step(actions)
        expected, *_ = wrapped.step(actions)
        history.end(term | trunc)
        ended += int((term | trunc).sum())
    assert ended >= 6  # sessions ended and restarted along the way
    assert np.abs(expected[:, context.obs_dim :]).max() > 0


@pytest.mark.parametrize("key", ["ppo", "dqn", "recurrent_ppo"])
def test_agents_with_session_features_learn_and_round_trip(key, tiny_world, context, tmp_path):
    env = MusicRecVectorEnv(num_envs=8, world=tiny_world)
    params = {**FAST[key], "session_features": True, "head": "embedding"}
    agent = make_agent(key, params)
    agent.bind(context)
    agent.learn(env, 256)
    assert agent.model.observation_space.shape == (context.obs_dim + 2 * 8,)
    agent.save(tmp_path / "model.zip")
    twin = make_agent(key, params)
    twin.bind(context)
    twin.load(tmp_path / "model.zip")
    obs, info = env.reset(seed=5)
    for a in (agent, twin):
        a.episode_end(np.ones(8, dtype=bool))
    for _ in range(5):
        actions = agent.act(obs, info, explore=False)
        assert np.array_equal(actions, twin.act(obs, info, explore=False))
        obs, _, term, trunc, info = env.step(actions)
        for a in (agent, twin):
            a.episode_end(term | trunc)


def test_session_features_must_be_a_bool():
    from musicrec_gym.errors import ConfigError

    with pytest.raises(ConfigError, match="`session_features` must be a bool, got 'yes'"):
        make_agent("ppo", {"session_features": "yes"})
