"""MusicRec-v0 as the RL libraries use it, unmodified.

Stable-Baselines3 builds its environments with ``render_mode="rgb_array"`` and retries
without it only on a ``TypeError``; TorchRL probes keyword arguments the same way;
subprocess runners pickle environments with cloudpickle.
"""

import pickle
import warnings

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)
from musicrec_gym.envs import MusicRecEnv
from musicrec_gym.envs.core import IMAGE_CELL
from musicrec_gym.errors import ArgumentError, ConfigError


def test_sb3_make_vec_env_and_ppo_learn():
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    venv = make_vec_env("MusicRec-v0", n_envs=2, seed=0)
    PPO("MlpPolicy", venv, n_steps=64, batch_size=64, seed=0).learn(256)
    assert venv.render_mode == "rgb_array"
    frame = venv.get_images()[0]
    assert frame.dtype == np.uint8 and frame.ndim == 3


def test_sb3_ppo_from_the_env_id():
    from stable_baselines3 import PPO

    PPO("MlpPolicy", "MusicRec-v0", n_steps=64, batch_size=64, seed=0).learn(128)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rewrd": "time"}, r"unknown keyword argument 'rewrd'.*Did you mean 'reward'"),
        # TorchRL's probe, which also looks for Python's words
        ({"frameskip": 4}, r"unknown keyword .* unexpected keyword argument 'frameskip'"),
        ({"render_mode": "rgb_arrays"}, r"`render_mode` must be .*Did you mean 'rgb_array'"),
    ],
)
@pytest.mark.filterwarnings("ignore:.*not in the possible render_modes")
def test_unknown_arguments_are_type_errors_and_config_errors(kwargs, match):
    for error in (TypeError, ConfigError, ArgumentError):
        with pytest.raises(error, match=match):
            gym.make("MusicRec-v0", **kwargs)


@pytest.mark.parametrize("mode", ["human", 5])
def test_unsupported_render_modes_are_type_errors(mode):
    # (``gym.make`` turns "human" into an "rgb_array" env inside ``HumanRendering``)
    with pytest.raises(TypeError, match=r"`render_mode` must be None, 'ansi' or 'rgb_array'"):
        MusicRecEnv(render_mode=mode)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rewrd": "time"}, r"unknown keyword argument 'rewrd'.*Did you mean 'reward'"),
        ({"render_mode": "rgb_array"}, r"does not render"),
    ],
)
def test_vector_env_unknown_arguments_are_type_errors(kwargs, match):
    for error in (TypeError, ConfigError):
        with pytest.raises(error, match=match):
            gym.make_vec("MusicRec-v0", num_envs=2, **kwargs)


def test_a_torchrl_style_probe_falls_back_without_the_argument():
    # What TorchRL's ``GymEnv`` does: try ``frameskip``, drop it on a TypeError that
    # says "unexpected keyword argument 'frameskip'", re-raise any other.
    kwargs = {"frameskip": 4}
    try:
        env = gym.make("MusicRec-v0", **kwargs)
    except TypeError as err:
        assert "unexpected keyword argument 'frameskip'" in str(err)
        kwargs.pop("frameskip")
        env = gym.make("MusicRec-v0", **kwargs)
    assert env.reset(seed=0)[0].shape == (9,)


def test_torchrl_gym_env_passes_check_env_specs_and_reads_infos():
    envs = pytest.importorskip("torchrl.envs")
    from torchrl.envs.libs.gym import default_info_dict_reader
    from torchrl.envs.utils import check_env_specs

    env = envs.GymEnv("MusicRec-v0")
    assert env.reset()["observation"].shape[-1] == 9
    check_env_specs(env)
    env.set_info_dict_reader(default_info_dict_reader())  # every info key, specs inferred
    check_env_specs(env)
    rollout = env.rollout(25, break_when_any_done=False)
    assert rollout["next", "regret"].shape == (25,)
    assert rollout["next", "warmup_tracks"].shape == (25, 5)


def test_torchrl_gym_env_with_num_envs_and_the_native_vector_env():
    envs = pytest.importorskip("torchrl.envs")
    from torchrl.envs.utils import check_env_specs

    # ``num_envs`` makes TorchRL start an AsyncVectorEnv: its workers import the package
    # through the module prefix of the id
    env = envs.GymEnv("musicrec_gym:MusicRec-v0", num_envs=2)
    try:
        check_env_specs(env)
        assert env.rollout(30, break_when_any_done=False).shape == (2, 30)
    finally:
        env.close()
    for mode in ("same_step", "disabled"):  # (TorchRL refuses next-step)
        native = envs.GymWrapper(gym.make_vec("MusicRec-v0", num_envs=4, autoreset_mode=mode))
        check_env_specs(native)
        rollout = native.rollout(40, break_when_any_done=False)
        assert rollout.shape == (4, 40) and rollout["next", "done"].any()


def test_gymnasium_vector_wrappers_take_the_next_step_native_env():
    from gymnasium.wrappers import vector as wrappers

    env = gym.make_vec("MusicRec-v0", num_envs=4, autoreset_mode="next_step")
    env = wrappers.NormalizeObservation(env)
    env = wrappers.TransformObservation(env, lambda o: np.clip(o, -5, 5), env.observation_space)
    env = wrappers.NormalizeReward(wrappers.RecordEpisodeStatistics(env))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.reset(seed=0)
        episodes = 0
        for _ in range(60):
            obs, _, _, _, info = env.step(np.zeros(4, dtype=np.int64))
            episodes += int(info.get("_episode", np.zeros(4, bool)).sum())
    assert obs.shape == (4, 9) and episodes > 0


def test_gymnasium_normalize_observation_refuses_same_step_autoreset():
    from gymnasium.wrappers.vector import NormalizeObservation

    with pytest.raises((AssertionError, ValueError), match="NEXT_STEP"):
        NormalizeObservation(gym.make_vec("MusicRec-v0", num_envs=2))


@pytest.mark.parametrize("mode", ["same_step", "next_step"])
def test_gymnasium_numpy_to_torch(mode):
    torch = pytest.importorskip("torch")
    pytest.importorskip("array_api_compat")  # gymnasium[torch]
    from gymnasium.wrappers.vector import NumpyToTorch

    env = NumpyToTorch(gym.make_vec("MusicRec-v0", num_envs=3, autoreset_mode=mode))
    obs, info = env.reset(seed=0)
    assert isinstance(obs, torch.Tensor) and obs.shape == (3, 9)
    obs, reward, terminated, _, info = env.step(torch.zeros(3, dtype=torch.int64))
    assert isinstance(reward, torch.Tensor) and terminated.dtype == torch.bool
    assert isinstance(info["regret"], torch.Tensor)


@pytest.mark.filterwarnings("ignore:`eval_env` is set to None")
def test_minari_data_collector_records_infos(tmp_path, monkeypatch):
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path))
    minari = pytest.importorskip("minari")
    pytest.importorskip("h5py")  # minari[hdf5]
    pytest.importorskip("jax")  # minari[create]

    env = minari.DataCollector(gym.make("MusicRec-v0"), record_infos=True)
    env.action_space.seed(0)
    steps = 0
    for episode in range(4):
        env.reset(seed=episode)
        done = False
        while not done:
            *_, terminated, truncated, _ = env.step(env.action_space.sample())
            done, steps = terminated or truncated, steps + 1
    dataset = env.create_dataset(
        dataset_id="musicrec/random-v0",
        algorithm_name="uniform random",
        description="a test",
        author="musicrec-gym tests",
        author_email="tests@example.org",
        code_permalink="https://example.org/musicrec-gym",
    )
    env.close()
    assert dataset.total_episodes == 4 and dataset.total_steps == steps
    episode = next(dataset.iterate_episodes())
    n = len(episode.rewards)
    assert episode.infos["regret"].shape == (n + 1,)  # the reset's info, then each step's
    assert episode.infos["warmup_tracks"].shape == (n + 1, 5)
    assert episode.infos["regret"][0] == 0.0 and (episode.infos["regret"][1:] >= 0).all()


def test_rgb_array_render_is_an_image_of_the_session():
    env = gym.make("MusicRec-v0", render_mode="rgb_array")
    env.reset(seed=0)
    before = env.render()
    assert before.dtype == np.uint8 and before.ndim == 3 and before.shape[2] == 3
    # the built-in world: 5 warm-up plays and 20 steps, one row of 25 cells
    assert before.shape == (IMAGE_CELL, 25 * IMAGE_CELL, 3)
    env.step(0)
    after = env.render()
    assert after.shape == before.shape and not np.array_equal(before, after)


def test_rgb_array_render_of_a_long_session_keeps_its_size():
    env = gym.make("MusicRec-v0", render_mode="rgb_array", max_steps=500)
    env.reset(seed=0)
    assert env.render().shape == (4 * IMAGE_CELL, 25 * IMAGE_CELL, 3)


def test_record_video_records_sessions(tmp_path):
    pytest.importorskip("moviepy")
    from gymnasium.wrappers import RecordVideo

    env = gym.make("MusicRec-v0", render_mode="rgb_array")
    out = tmp_path / "videos"
    env = RecordVideo(env, str(out), episode_trigger=lambda _: True, disable_logger=True)
    env.reset(seed=0)
    done = False
    while not done:
        *_, terminated, truncated, _ = env.step(0)
        done = terminated or truncated
    env.close()
    assert [p.suffix for p in out.iterdir()] == [".mp4"]


def test_gymnasium_check_env_passes_with_rgb_array():
    env = gym.make("MusicRec-v0", render_mode="rgb_array")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped, skip_render_check=False)


def _rollout(env, actions):
    """Step ``env`` with ``actions`` (resetting, unseeded, when a session ends)."""
    out = []
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        out.append((obs.copy(), reward, terminated, truncated, info["optimal_reward"]))
        if terminated or truncated:
            out.append(env.reset()[0])
    return out


def _assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        if isinstance(x, np.ndarray):
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_array_equal(x[0], y[0])
            assert x[1:] == y[1:]


@pytest.mark.parametrize("steps", [0, 3])
def test_single_env_cloudpickles_and_continues_the_same_trajectory(steps):
    env = gym.make("MusicRec-v0", render_mode="rgb_array")
    env.reset(seed=5)
    _rollout(env, range(steps))
    clone = pickle.loads(cloudpickle.dumps(env))
    np.testing.assert_array_equal(clone.render(), env.render())
    actions = [int(a) for a in np.random.default_rng(0).integers(0, 1000, 60)]
    _assert_same(_rollout(clone, actions), _rollout(env, actions))


def test_single_env_cloudpickles_before_reset():
    env = gym.make("MusicRec-v0")
    clone = pickle.loads(cloudpickle.dumps(env))
    np.testing.assert_array_equal(clone.reset(seed=1)[0], env.reset(seed=1)[0])


@pytest.mark.parametrize("steps", [0, 4])
def test_vector_env_cloudpickles_and_continues_the_same_trajectory(steps):
    env = gym.make_vec("MusicRec-v0", num_envs=3)
    env.reset(seed=5)
    rng = np.random.default_rng(1)
    for _ in range(steps):
        env.step(rng.integers(0, 1000, 3))
    clone = pickle.loads(cloudpickle.dumps(env))
    for _ in range(40):  # autoresets included
        actions = rng.integers(0, 1000, 3)
        for x, y in zip(env.step(actions)[:4], clone.step(actions)[:4], strict=True):
            np.testing.assert_array_equal(x, y)


def test_a_fitted_world_env_cloudpickles_and_continues(fitted_mssd_world):
    env = gym.make("MusicRec-v0", world=str(fitted_mssd_world))
    env.reset(seed=2)
    _rollout(env, [1, 2])
    clone = pickle.loads(cloudpickle.dumps(env))
    actions = [int(a) for a in np.random.default_rng(2).integers(0, env.action_space.n, 30)]
    _assert_same(_rollout(clone, actions), _rollout(env, actions))


def _both_ends(env, episodes=400):
    """Episodes whose last step is both terminated and truncated."""
    both = 0
    for seed in range(episodes):
        env.reset(seed=seed)
        done = False
        while not done:
            *_, terminated, truncated, _ = env.step(0)
            done = terminated or truncated
        both += terminated and truncated
    return both


def test_max_steps_never_gives_both_ends_but_gymnasiums_time_limit_can():
    # The documented difference: Gymnasium's TimeLimit sets ``truncated`` whatever
    # ``terminated`` is; the environment's own ``max_steps`` never gives both.
    assert _both_ends(gym.make("MusicRec-v0", max_steps=2)) == 0
    assert _both_ends(gym.make("MusicRec-v0", max_episode_steps=2)) > 0
