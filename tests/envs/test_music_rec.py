"""MusicRec-v0 on the built-in world: API conformance, determinism, bad input."""

import shutil
import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import musicrec_gym
from musicrec_gym.artifacts import default_world_dir
from musicrec_gym.errors import ArtifactError, ConfigError, EpisodeEndedError, InvalidActionError
from musicrec_gym.world import load_world

ENV_IDS = [spec.id for spec in gym.registry.values() if spec.id.startswith("MusicRec")]


def test_every_musicrec_id_is_registered_with_a_step_limit():
    assert "MusicRec-v0" in ENV_IDS
    for env_id in ENV_IDS:
        assert gym.spec(env_id).max_episode_steps == musicrec_gym.MAX_EPISODE_STEPS


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_gymnasium_check_env_passes_without_warnings(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)


def test_sb3_check_env_passes_without_warnings():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    env = gym.make("MusicRec-v0")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sb3_check_env(env.unwrapped, warn=True)


def test_spaces_and_info():
    env = gym.make("MusicRec-v0")
    world = env.unwrapped.world
    assert env.observation_space == gym.spaces.Box(-1, 1, (9,), np.float32)
    assert env.action_space == gym.spaces.Discrete(world.n_tracks)
    obs, info = env.reset(seed=0)
    assert obs.shape == (9,) and obs.dtype == np.float32
    assert isinstance(info["user"], np.integer) and "user_id" not in info
    obs, reward, terminated, truncated, info = env.step(info["optimal_action"])
    for key in ("optimal_reward", "expected_reward", "regret", "listened", "track", "user"):
        assert key in info
    assert info["regret"] == pytest.approx(0.0, abs=1e-12)
    assert reward in (0.0, 1.0)


def test_info_carries_the_warmup_plays_of_the_session():
    env = gym.make("MusicRec-v0")
    _, info = env.reset(seed=3)
    sim = env.unwrapped.core.sim
    assert info["warmup_tracks"].shape == (5,) and info["warmup_listened"].dtype == bool
    assert np.array_equal(info["warmup_tracks"], sim.hist[0, :5])
    assert np.array_equal(info["warmup_listened"], sim.hist_listened[0, :5].astype(bool))
    _, _, _, _, after = env.step(int(info["optimal_action"]))
    assert np.array_equal(after["warmup_tracks"], info["warmup_tracks"])


def test_random_policy_over_1000_episodes():
    env = gym.make("MusicRec-v0")
    env.action_space.seed(0)
    lengths = []
    for episode in range(1000):
        env.reset(seed=episode)
        done, steps = False, 0
        while not done:
            _, _, terminated, truncated, info = env.step(env.action_space.sample())
            assert info["expected_reward"] <= info["optimal_reward"] + 1e-12
            assert info["regret"] >= -1e-12
            steps += 1
            done = terminated or truncated
        lengths.append(steps)
    assert min(lengths) >= 1 and max(lengths) <= 20
    assert len(set(lengths)) > 5  # lengths vary: the leave model is doing something


def rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    out = [obs]
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        out.append(np.r_[obs, reward, terminated, truncated, info["optimal_reward"]])
        if terminated or truncated:
            break
    return np.concatenate(out)


def test_same_seed_same_trajectory_and_different_seed_differs():
    env = gym.make("MusicRec-v0")
    actions = np.random.default_rng(0).integers(0, env.action_space.n, 20)
    a = rollout(env, 7, actions)
    b = rollout(gym.make("MusicRec-v0"), 7, actions)
    c = rollout(env, 8, actions)
    assert np.array_equal(a, b)
    assert not np.array_equal(a[:9], c[:9])


def test_fast_path_equals_the_batch_path():
    """The single env's own kernels give what the batch machinery gives.

    Plain int actions take the fast path; 1-element arrays, the batch path. The
    observations, rewards, ends and every info value (and its type) are the same.
    """
    fast, batch = gym.make("MusicRec-v0").unwrapped, gym.make("MusicRec-v0").unwrapped
    rng = np.random.default_rng(4)
    for episode in range(12):
        obs_f, info_f = fast.reset(seed=episode)
        obs_b, info_b = batch.reset(seed=episode)
        reference = musicrec_gym.envs.core.first_slot(batch.core.reset_info())
        for info in (info_f, info_b):
            assert info.keys() == reference.keys()
            for key, value in reference.items():
                assert np.array_equal(info[key], value), key
        assert np.array_equal(obs_f, obs_b)
        done = False
        while not done:
            action = int(rng.integers(0, fast.action_space.n))
            out_f = fast.step(action)
            out_b = batch.step(np.array([action]))
            assert np.array_equal(out_f[0], out_b[0]) and out_f[1:4] == out_b[1:4]
            assert out_f[4].keys() == out_b[4].keys()
            for key, value in out_b[4].items():
                assert np.array_equal(out_f[4][key], value), key
                assert type(out_f[4][key]) is type(value), key
            done = out_f[2] or out_f[3]


def test_reset_without_seed_continues_the_stream():
    env = gym.make("MusicRec-v0")
    first, _ = env.reset(seed=3)
    second, _ = env.reset()
    assert not np.array_equal(first, second)


@pytest.mark.parametrize("bad", [-1, 10**6, 2.5, "3", [1, 2]])
def test_invalid_action_is_a_clear_error(bad):
    env = gym.make("MusicRec-v0")
    env.reset(seed=0)
    with pytest.raises((InvalidActionError, AssertionError), match=r"action|Discrete|track"):
        env.unwrapped.step(bad)


def test_step_after_the_end_requires_reset():
    env = gym.make("MusicRec-v0").unwrapped
    with pytest.raises(EpisodeEndedError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    done = False
    while not done:
        _, _, terminated, truncated, _ = env.step(0)
        done = terminated or truncated
    with pytest.raises(EpisodeEndedError, match="call reset"):
        env.step(0)


def test_unknown_keyword_is_a_clear_error():
    with pytest.raises(
        ConfigError, match=r"unknown keyword argument 'rewrd'.*Did you mean 'reward'"
    ):
        gym.make("MusicRec-v0", rewrd="time")
    with pytest.raises(ConfigError, match="reward mode"):
        gym.make("MusicRec-v0", reward="likes")


@pytest.mark.parametrize("mode", ["time", "event"])
def test_reward_modes_keep_the_optimum(mode):
    env = gym.make("MusicRec-v0", reward=mode)
    base = gym.make("MusicRec-v0")
    _, info = env.reset(seed=1)
    _, info_base = base.reset(seed=1)
    assert info["optimal_action"] == info_base["optimal_action"]
    _, reward, *_, info = env.step(info["optimal_action"])
    lo, hi = (0.0, 5.0) if mode == "time" else (-1.0, 4.0)
    assert lo <= reward <= hi and info["optimal_reward"] > lo


def test_profile_features_extend_the_observation():
    env = gym.make("MusicRec-v0", profile_features=True)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (13,) and env.observation_space.contains(obs)


def test_reset_with_a_chosen_listener():
    env = gym.make("MusicRec-v0", string_ids=True)
    _, info = env.reset(seed=0, options={"user": "u00042"})
    assert info["user_id"] == "u00042" and info["user"] == 42
    with pytest.raises(ConfigError, match="user"):
        env.reset(options={"user": 10**6})


def test_ansi_render_lists_the_session():
    env = gym.make("MusicRec-v0", render_mode="ansi")
    env.reset(seed=0)
    env.step(0)
    text = env.render()
    assert text.count("warm-up") == 5 and "step  1" in text
    assert ("listened" in text) or ("skipped" in text)


def test_make_with_module_prefix_in_a_fresh_interpreter():
    code = (
        "import gymnasium as gym; env = gym.make('musicrec_gym:MusicRec-v0'); "
        "obs, info = env.reset(seed=0); print(obs.shape)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "(9,)"


def test_corrupted_or_missing_artifacts_are_clear_errors(tmp_path):
    world = tmp_path / "world"
    shutil.copytree(default_world_dir(), world)
    with open(world / "catalog.csv", "a") as fh:
        fh.write("garbage\n")
    with pytest.raises(ArtifactError, match=r"catalog.csv: sha256 does not match"):
        load_world(world)
    (world / "catalog.csv").unlink()
    with pytest.raises(ArtifactError, match=r"catalog.csv: missing artifact"):
        load_world(world)
    with pytest.raises(ArtifactError, match="world directory not found"):
        load_world(tmp_path / "nowhere")


def test_shipped_world_is_small_and_has_no_code_objects():
    total = sum(p.stat().st_size for p in default_world_dir().iterdir())
    assert total < 5 * 2**20
    suffixes = {p.suffix for p in default_world_dir().iterdir()}
    assert suffixes <= {".csv", ".npz", ".json", ".pt"}
