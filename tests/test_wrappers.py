"""The session-feature wrappers: hand-checked features and masks, the vector form, MaskablePPO."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)
from agents import AgentContext, make_agent
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError
from musicrec_gym.session_features import SessionPlays, standardized
from musicrec_gym.wrappers import SessionFeatures, SessionFeaturesVector

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "maskable_ppo.py"
NO_CONTRIB = importlib.util.find_spec("sb3_contrib") is None
DROPPED = [1, 3]  # warm-up positions shown as -1, as a fitted world's unknown tracks


class DropWarmup(gym.Wrapper):
    """Shows some warm-up tracks as -1, the way a fitted world shows tracks off its catalog."""

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        return obs, self._drop(info)

    def step(self, action):
        *out, info = self.env.step(action)
        return (*out, self._drop(info))

    @staticmethod
    def _drop(info):
        info["warmup_tracks"] = info["warmup_tracks"].copy()
        info["warmup_tracks"][DROPPED] = -1
        return info


def hand_features(emb, plays):
    """``[L / n, S / n]`` of a list of (track, listened) plays, by a plain loop."""
    listened, skipped = np.zeros(emb.shape[1]), np.zeros(emb.shape[1])
    for track, heard in plays:
        if heard:
            listened = listened + emb[track]
        else:
            skipped = skipped + emb[track]
    n = max(len(plays), 1)
    return np.concatenate([listened / n, skipped / n])


@pytest.mark.parametrize("drop", [False, True], ids=["warmup", "warmup-with-unknown-tracks"])
def test_features_and_mask_equal_a_hand_computation(tiny_world, drop):
    inner = gym.make("MusicRec-v0", world=tiny_world, max_steps=30)
    env = SessionFeatures(DropWarmup(inner) if drop else inner)
    emb = standardized(inner.unwrapped.world.embeddings)
    n_tracks, k = len(emb), inner.observation_space.shape[0]
    rng = np.random.default_rng(0)
    checked = 0
    for episode in range(12):
        obs, info = env.reset(seed=episode)
        plays = [
            (int(t), bool(h))
            for t, h in zip(info["warmup_tracks"], info["warmup_listened"], strict=True)
            if t >= 0
        ]
        assert len(plays) == 5 - (len(DROPPED) if drop else 0)
        done = False
        while not done:
            assert obs.shape == env.observation_space.shape and obs.dtype == np.float32
            assert np.allclose(obs[k:], hand_features(emb, plays), atol=1e-6)
            allowed = np.ones(n_tracks, dtype=bool)
            allowed[[t for t, _ in plays]] = False
            assert np.array_equal(info["action_mask"], allowed)
            assert np.array_equal(env.action_masks(), allowed)
            # mostly the best track, sometimes any (a repeat too: the mask is only a hint)
            action = rng.integers(n_tracks) if rng.random() < 0.3 else info["optimal_action"]
            obs, _, terminated, truncated, info = env.step(action)
            plays.append((int(action), bool(info["listened"])))
            done = terminated or truncated
            checked += 1
    assert checked > 10


def test_session_plays_ignores_unknown_warmup_tracks_and_unmasks_a_full_catalog():
    emb = np.arange(12.0).reshape(4, 3)
    plays = SessionPlays(emb, n_slots=2)
    plays.reset(np.array([0, 1]), np.array([[0, -1, 2], [-1, -1, 3]]), np.ones((2, 3), bool))
    assert np.allclose(plays.features(), [[*(emb[0] + emb[2]) / 2, 0, 0, 0], [*emb[3], 0, 0, 0]])
    plays.add(np.array([1, 1, 1]), np.array([0, 1, 2]), np.array([False, True, False]))
    assert plays.played[1].all() and plays.allowed()[1].all()  # nothing left: all allowed
    assert np.array_equal(plays.allowed()[0], [False, True, False, True])


def test_check_env_passes_on_the_wrapped_env(tiny_world):
    env = SessionFeatures(gym.make("MusicRec-v0", world=tiny_world))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "different from the unwrapped version"
        check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["action_mask"].dtype == np.bool_ and info["action_mask"].shape == (60,)
    assert set(info) == set(env.step(0)[-1])  # the same keys at reset and at a step


@pytest.mark.parametrize("mode", ["same_step", "next_step", "disabled"])
def test_vector_version_equals_single_wrapped_envs(tiny_world, mode):
    n = 4
    venv = SessionFeaturesVector(
        MusicRecVectorEnv(num_envs=n, world=tiny_world, max_steps=6, autoreset_mode=mode)
    )
    singles = [
        SessionFeatures(gym.make("MusicRec-v0", world=tiny_world, max_steps=6)) for _ in range(n)
    ]
    obs, info = venv.reset(seed=10)
    assert venv.observation_space.shape == (n, singles[0].observation_space.shape[0])
    assert venv.single_observation_space == singles[0].observation_space
    single = [env.reset(seed=10 + i) for i, env in enumerate(singles)]
    restart = np.zeros(n, dtype=bool)
    rng = np.random.default_rng(1)
    ends = 0
    for _ in range(25):
        for i, (o, inf) in enumerate(single):
            assert np.array_equal(obs[i], o), i
            assert np.array_equal(info["action_mask"][i], inf["action_mask"]), i
        assert np.array_equal(venv.action_masks(), info["action_mask"])
        if mode == "disabled" and restart.any():
            obs, info = venv.reset(options={"reset_mask": restart})
            single = [env.reset() if restart[i] else single[i] for i, env in enumerate(singles)]
            restart[:] = False
            continue
        actions = rng.integers(60, size=n)
        obs, _, terminated, truncated, info = venv.step(actions)
        done = terminated | truncated
        for i, env in enumerate(singles):
            if mode == "next_step" and restart[i]:
                single[i] = env.reset()
                continue
            o, _, term, trunc, inf = env.step(actions[i])
            assert (term, trunc) == (terminated[i], truncated[i])
            single[i] = (o, inf)
            if done[i] and mode == "same_step":
                assert np.array_equal(info["final_obs"][i], o)
                assert np.array_equal(info["final_info"]["action_mask"][i], inf["action_mask"])
                single[i] = env.reset()
        restart = done
        ends += int(done.sum())
    assert ends >= n


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP])
def test_vector_version_on_a_sync_vector_env_equals_it_on_the_native_env(tiny_world, mode):
    kwargs = {"world": tiny_world, "max_steps": 6}
    sync = SessionFeaturesVector(
        gym.make_vec(
            "MusicRec-v0",
            num_envs=3,
            vectorization_mode="sync",
            vector_kwargs={"autoreset_mode": mode},
            **kwargs,
        )
    )
    native = SessionFeaturesVector(MusicRecVectorEnv(num_envs=3, autoreset_mode=mode, **kwargs))
    assert np.array_equal(sync.reset(seed=4)[0], native.reset(seed=4)[0])
    rng = np.random.default_rng(2)
    ends = 0
    for _ in range(25):
        actions = rng.integers(60, size=3)
        obs, _, _, _, info = sync.step(actions)
        native_obs, _, terminated, truncated, native_info = native.step(actions)
        assert np.array_equal(obs, native_obs)
        assert np.array_equal(info["action_mask"], native_info["action_mask"])
        done = terminated | truncated
        ends += int(done.sum())
        if mode is AutoresetMode.SAME_STEP and done.any():
            final = np.stack([info["final_obs"][i] for i in np.flatnonzero(done)])
            assert np.array_equal(final, native_info["final_obs"][done])
    assert ends >= 3


def test_wrapper_features_are_the_bandits_features(tiny_world):
    """On one trajectory, LinUCB's session means are the wrapper's columns."""
    venv = SessionFeaturesVector(MusicRecVectorEnv(num_envs=8, world=tiny_world))
    agent = make_agent("linucb")
    context = AgentContext.from_env(venv.env)
    agent.bind(context)
    k, cols = context.obs_dim, 2 * context.track_features.shape[1]
    obs, info = venv.reset(seed=3)
    agent.episode_end(np.ones(8, dtype=bool))
    for _ in range(40):
        actions = agent.act(obs[:, :k], info)
        bandit = agent.state_x(obs[:, :k])[:, k : k + cols].astype(np.float32)
        assert np.array_equal(obs[:, k:], bandit)
        obs, _, terminated, truncated, info = venv.step(actions)
        agent.episode_end(terminated | truncated)


def test_wrappers_refuse_what_is_not_a_musicrec_env(tiny_world):
    with pytest.raises(ConfigError, match="wraps a MusicRec-v0 environment"):
        SessionFeatures(gym.make("CartPole-v1"))
    with pytest.raises(ConfigError, match="`standardize` must be a bool"):
        SessionFeatures(gym.make("MusicRec-v0", world=tiny_world), standardize="yes")


@pytest.mark.skipif(NO_CONTRIB, reason="sb3-contrib is not installed")
def test_maskable_ppo_runs_on_the_wrapped_env(tiny_world):
    from sb3_contrib import MaskablePPO
    from stable_baselines3.common.env_util import make_vec_env

    kwargs = {"world": tiny_world}
    env = make_vec_env("MusicRec-v0", 2, seed=0, env_kwargs=kwargs, wrapper_class=SessionFeatures)
    model = MaskablePPO("MlpPolicy", env, n_steps=150, batch_size=100, n_epochs=1, seed=0)
    model.learn(300)
    assert model.num_timesteps >= 300
    single = SessionFeatures(gym.make("MusicRec-v0", world=tiny_world))
    obs, info = single.reset(seed=0)
    for _ in range(10):
        action, _ = model.predict(obs, action_masks=single.action_masks(), deterministic=True)
        assert info["action_mask"][int(action)]
        obs, _, terminated, truncated, info = single.step(int(action))
        if terminated or truncated:
            obs, info = single.reset()


@pytest.mark.skipif(NO_CONTRIB, reason="sb3-contrib is not installed")
def test_maskable_ppo_example_runs():
    args = ["--steps", "256", "--n-envs", "2", "--n-steps", "128", "--eval-episodes", "2"]
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "MaskablePPO (256 steps): greedy return" in out.stdout
