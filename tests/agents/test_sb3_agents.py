"""PPO and DQN through the common interface: learn, report episodes, act, save/load."""

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

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
    events = list((tmp_path / "tb").rglob("events.out.tfevents.*"))
    assert events, "no SB3 TensorBoard log"
    scalars = EventAccumulator(str(events[0].parent))
    scalars.Reload()
    tags = set(scalars.Tags()["scalars"])
    assert {"rollout/ep_rew_mean", "train/learning_rate"} <= tags, tags
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
    agent.episode_end(np.ones(32, dtype=bool))  # forget the recommendations made above
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
        ("dqn", {"avoid_repeats": "yes"}, r"`avoid_repeats` must be a bool, got 'yes'"),
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


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_avoid_repeats_masks_the_policy(key, env, context, rollout, session_tracks):
    agent = make_agent(key, FAST[key])
    agent.bind(context)
    for explore in (False, True):
        infos, _ = rollout(agent, env, 40, explore=explore)
        sessions = [s for slot in session_tracks(infos) for s in slot]
        assert max(len(s) for s in sessions) > 3
        assert all(len(s) == len(set(s)) for s in sessions)


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_without_avoid_repeats_act_is_model_predict(key, context):
    agent = make_agent(key, {**FAST[key], "avoid_repeats": False})
    agent.bind(context)
    obs = np.random.default_rng(0).uniform(-1, 1, (8, context.obs_dim)).astype(np.float32)
    actions = agent.act(obs, {}, explore=False)
    expected, _ = agent.model.predict(obs, deterministic=True)
    assert np.array_equal(actions, expected)
    masked = make_agent(key, FAST[key])
    masked.bind(context)
    masked.set_state(agent.state())
    assert np.array_equal(masked.act(obs, {}, explore=False), expected)  # nothing blocked yet
