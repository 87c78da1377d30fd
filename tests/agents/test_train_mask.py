"""PPO and DQN trained with the repeat mask (``params: {train_mask: true}``)."""

import numpy as np
import pytest
import torch as th

from agents import AgentContext, make_agent
from agents.embedding_dqn import BLOCKED_Q, MaskedExplorationDQN
from agents.session_obs import MaskObservation, SessionObservation
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError

FAST = {
    "ppo": {"n_steps": 16, "batch_size": 64, "n_epochs": 1, "net_arch": [32]},
    "dqn": {"learning_starts": 64, "batch_size": 32, "buffer_size": 1000, "net_arch": [32]},
}
MASKED = {
    key: {**params, "head": "embedding", "session_features": True, "train_mask": True}
    for key, params in FAST.items()
}


def _training_env(artist_window=0):
    env = MusicRecVectorEnv(num_envs=4, autoreset_mode="same_step")
    return SessionObservation(AgentContext.from_env(env)).wrap(env, True, artist_window), env


def test_the_mask_wrapper_appends_the_session_features_action_mask():
    env, _ = _training_env()
    assert isinstance(env, MaskObservation)
    obs, info = env.reset(seed=0)
    n = env.single_action_space.n
    assert obs.shape == (4, env.single_observation_space.shape[0])
    assert np.array_equal(obs[:, -n:], info["action_mask"].astype(np.float32))
    assert (obs[:, -n:] == 0).any(axis=1).all()  # the warm-up's tracks are blocked
    ended = 0
    for _ in range(60):
        actions = np.where(info["action_mask"], np.arange(n), -1).max(axis=1)
        obs, _, terminated, truncated, info = env.step(actions)
        assert env.observation_space.contains(obs)
        assert np.array_equal(obs[:, -n:], info["action_mask"].astype(np.float32))
        done = terminated | truncated
        if done.any():
            final = info["final_obs"][done]
            assert np.array_equal(final[:, -n:], info["final_info"]["action_mask"][done])
            ended += int(done.sum())
    assert ended > 0


def test_the_mask_wrapper_blocks_the_artists_of_the_last_five_recommendations():
    env, base = _training_env(artist_window=5)
    artist = AgentContext.from_env(base).track_artist
    n = env.single_action_space.n
    obs, info = env.reset(seed=1)
    assert np.array_equal(obs[:, -n:], info["action_mask"].astype(np.float32))  # no picks yet
    recent = [[] for _ in range(4)]
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(80):
        allowed = obs[:, -n:] > 0.5
        actions = np.array([rng.choice(np.flatnonzero(row)) for row in allowed])
        for slot, track in enumerate(actions):
            recent[slot] = (recent[slot] + [track])[-5:]
        obs, _, terminated, truncated, info = env.step(actions)
        done = terminated | truncated
        for slot in range(4):
            # the ended session's last mask, or the running session's mask
            row = info["final_obs"][slot] if done[slot] else obs[slot]
            played = (
                info["final_info"]["action_mask"][slot] if done[slot] else info["action_mask"][slot]
            )
            expect = played & ~np.isin(artist, artist[recent[slot]])
            assert np.array_equal(row[-n:] > 0.5, expect)
            if done[slot]:  # a new session: only its warm-up is blocked
                assert np.array_equal(obs[slot, -n:] > 0.5, info["action_mask"][slot])
                recent[slot] = []
        ended += int(done.sum())
    assert ended > 0


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_avoiding_recent_artists_trains_and_acts_with_the_same_mask(key):
    env = MusicRecVectorEnv(num_envs=16)
    context = AgentContext.from_env(env, seed=0)
    agent = make_agent(key, {**MASKED[key], "avoid_recent_artists": True})
    agent.bind(context)
    agent.learn(env, 200)
    obs, info = env.reset(seed=5)
    artist = context.track_artist
    picks = []
    for _ in range(6):
        actions = agent.act(obs, info, explore=True)
        for earlier in picks[-5:]:
            assert (artist[actions] != artist[earlier]).all()
        picks.append(actions)
        obs, _, terminated, truncated, info = env.step(actions)
        agent.episode_end(terminated | truncated)
        picks = [] if (terminated | truncated).any() else picks


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_avoiding_recent_artists_needs_the_repeat_block(key):
    with pytest.raises(ConfigError, match="`avoid_recent_artists: true` needs `avoid_repeats"):
        make_agent(key, {"avoid_recent_artists": True, "avoid_repeats": False})


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_trains_with_the_mask_and_round_trips(key, tmp_path):
    env = MusicRecVectorEnv(num_envs=16)
    context = AgentContext.from_env(env, seed=0)
    agent = make_agent(key, MASKED[key])
    agent.bind(context)
    episodes = []
    agent.learn(env, 400, callback=lambda *args: episodes.append(args))
    assert len(episodes) >= 5
    policy = agent.model.policy
    assert policy.mask_dim == context.n_tracks
    if key == "dqn":
        assert isinstance(agent.model, MaskedExplorationDQN)

    # the policy's input: observation, session features, then 1 per allowed track
    obs, info = env.reset(seed=3)
    inputs = agent._observation(obs, info)
    assert inputs.shape == (16, agent._obs_dim())
    allowed = inputs[:, -context.n_tracks :] > 0.5
    assert not allowed.all(axis=1).any()  # each slot's warm-up is blocked
    with th.no_grad():
        tensor = th.as_tensor(inputs)
        if key == "ppo":
            probs = policy.get_distribution(tensor).distribution.probs.numpy()
            assert (probs[~allowed] == 0).all() and np.allclose(probs.sum(axis=1), 1)
        else:
            q_values = policy.q_net(tensor).numpy()
            assert (q_values[~allowed] == BLOCKED_Q).all() and (q_values[allowed] > BLOCKED_Q).all()
            agent.model.exploration_rate = 1.0  # every action a random exploratory one
            explored, _ = agent.model.predict(inputs, deterministic=False)
            assert allowed[np.arange(16), explored].all()

    agent.save(tmp_path / "model.zip")
    greedy = agent.act(obs, info, explore=False)
    twin = make_agent(key, MASKED[key])
    twin.bind(context)
    twin.load(tmp_path / "model.zip")
    assert twin.model.policy.mask_dim == context.n_tracks
    assert np.array_equal(twin.act(obs, info, explore=False), greedy)


@pytest.mark.parametrize("key", ["ppo", "dqn"])
@pytest.mark.parametrize(
    "params", [{"train_mask": True}, {"train_mask": True, "head": "embedding"}]
)
def test_the_mask_needs_the_embedding_head_and_the_session_features(key, params):
    with pytest.raises(ConfigError, match="`train_mask: true` needs `head: embedding`"):
        make_agent(key, params)


def test_recurrent_ppo_refuses_the_mask():
    with pytest.raises(ConfigError, match="recurrent_ppo: `train_mask` is not available"):
        make_agent("recurrent_ppo", {"train_mask": True})


@pytest.mark.parametrize("key", ["ppo", "dqn"])
def test_train_mask_must_be_a_bool(key):
    with pytest.raises(ConfigError, match="train_mask"):
        make_agent(key, {"train_mask": "yes"})
