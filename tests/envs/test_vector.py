"""The native vector environment: equals the single env, autoresets, trains SB3."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import musicrec_gym  # noqa: F401
from musicrec_gym.envs import MusicRecVectorEnv
from musicrec_gym.envs.sb3 import MusicRecSB3VecEnv
from musicrec_gym.errors import ConfigError, InvalidActionError


def test_make_vec_reaches_the_native_env():
    env = gym.make_vec("MusicRec-v0", num_envs=8)
    assert isinstance(env.unwrapped, MusicRecVectorEnv)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, info = env.reset(seed=0)
    assert obs.shape == (8, 9) and env.observation_space.contains(obs)
    assert env.single_action_space == gym.spaces.Discrete(1000)


def test_slots_equal_single_envs_with_same_seeds_and_actions():
    """Rewards, ends and optima are bit-identical; observations agree to float32 rounding.

    (The NumPy encoder may use different BLAS kernels for different batch sizes.)
    """
    n, seed = 6, 40
    venv = MusicRecVectorEnv(num_envs=n)
    singles = [gym.make("MusicRec-v0") for _ in range(n)]
    obs, _ = venv.reset(seed=seed)
    single_obs = [e.reset(seed=seed + i)[0] for i, e in enumerate(singles)]
    assert np.allclose(obs, np.stack(single_obs), atol=1e-6, rtol=0)
    rng = np.random.default_rng(0)
    for _ in range(60):
        actions = rng.integers(0, 1000, n)
        obs, reward, term, trunc, info = venv.step(actions)
        for i, env in enumerate(singles):
            o, r, te, tr, inf = env.step(int(actions[i]))
            assert r == reward[i] and te == term[i] and tr == trunc[i]
            assert inf["optimal_reward"] == info["optimal_reward"][i]
            if te or tr:
                assert np.allclose(o, info["final_obs"][i], atol=1e-6, rtol=0)
                o, _ = env.reset()  # continues the slot's stream, as autoreset does
            assert np.allclose(o, obs[i], atol=1e-6, rtol=0)


def test_autoreset_marks_final_obs_and_info():
    venv = MusicRecVectorEnv(num_envs=64)
    venv.reset(seed=0)
    seen_done = False
    for _ in range(30):
        _, _, term, trunc, info = venv.step(np.zeros(64, dtype=np.int64))
        done = term | trunc
        if done.any():
            seen_done = True
            assert np.array_equal(info["_final_obs"], done)
            assert np.array_equal(info["final_info"]["_user"] & done, done)
            # State keys describe the new session in a reset slot, the old one elsewhere.
            sim = venv.core.sim
            assert np.array_equal(info["warmup_tracks"], sim.hist[:, :5])
            ended = np.flatnonzero(done)
            before = info["final_info"]["warmup_tracks"][ended]
            assert not np.array_equal(before, info["warmup_tracks"][ended])
    assert seen_done


def test_vector_bad_input():
    venv = MusicRecVectorEnv(num_envs=4)
    with pytest.raises(ConfigError, match="before reset"):
        venv.step(np.zeros(4, dtype=int))
    venv.reset(seed=0)
    with pytest.raises(InvalidActionError, match="expected 4 integer"):
        venv.step(np.zeros(3, dtype=int))
    with pytest.raises(InvalidActionError, match="outside the action space"):
        venv.step(np.array([0, 1, 2, 1000]))
    with pytest.raises(ConfigError, match="num_envs"):
        MusicRecVectorEnv(num_envs=0)


def test_sb3_ppo_learns_on_the_native_vector_env():
    from stable_baselines3 import PPO
    from stable_baselines3.common.vec_env import VecMonitor

    env = VecMonitor(MusicRecSB3VecEnv(num_envs=16, seed=0))
    model = PPO("MlpPolicy", env, n_steps=32, batch_size=128, n_epochs=1, seed=0, device="cpu")
    model.learn(total_timesteps=16 * 64)
    assert model.num_timesteps >= 16 * 64
    assert len(model.ep_info_buffer) > 0
