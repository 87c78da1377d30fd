"""The native vector environment: equals the single env, autoresets, trains SB3."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

import musicrec_gym  # noqa: F401
from musicrec_gym.envs import MusicRecVectorEnv
from musicrec_gym.envs.sb3 import MusicRecSB3VecEnv
from musicrec_gym.errors import ConfigError, EpisodeEndedError, InvalidActionError
from musicrec_gym.world import load_world


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


def _reference(n, autoreset_mode, **kwargs):
    """Gymnasium's own ``SyncVectorEnv`` of single envs: the reference semantics."""
    return gym.vector.SyncVectorEnv(
        [lambda: gym.make("MusicRec-v0", **kwargs) for _ in range(n)],
        autoreset_mode=autoreset_mode,
    )


def _assert_same(out, ref):
    """Two vector env outputs are the same: arrays, then every info key."""
    np.testing.assert_allclose(out[0], ref[0], atol=1e-6, rtol=0)
    for got, expected in zip(out[1:-1], ref[1:-1], strict=True):
        np.testing.assert_array_equal(got, expected)
    info, ref_info = out[-1], ref[-1]
    assert info.keys() == ref_info.keys()
    for key, value in ref_info.items():
        if key.startswith("_") or "_" + key not in ref_info:  # masks, final_info
            np.testing.assert_array_equal(info[key], value, err_msg=key)
        else:  # only the masked entries have a value
            mask = ref_info["_" + key]
            np.testing.assert_array_equal(info[key][mask], value[mask], err_msg=key)


def _assert_same_steps(env, reference, n, steps, seed, n_tracks=1000, masked_resets=False):
    """Step both with the same actions: everything identical, infos included.

    With ``masked_resets``, reset the ended slots (and every 7th step a random few) with
    a ``reset_mask``, as autoreset-disabled users do.
    """
    _assert_same(env.reset(seed=seed), reference.reset(seed=seed))
    rng, ends = np.random.default_rng(seed), 0
    for t in range(steps):
        actions = rng.integers(0, n_tracks, n)
        out = env.step(actions)
        _assert_same(out, reference.step(actions))
        done = out[2] | out[3]
        ends += int(done.sum())
        if masked_resets:
            mask = done | ((rng.random(n) < 0.3) if t % 7 == 0 else False)
            if mask.any():
                options = {"reset_mask": mask}
                _assert_same(env.reset(options=options), reference.reset(options=dict(options)))
    return ends


@pytest.mark.parametrize("kwargs", [{}, {"profile_features": True, "string_ids": True}])
def test_next_step_autoreset_equals_gymnasiums_sync_vector_env(kwargs):
    """Observations, rewards, ends and every info, step for step, autoresets included."""
    n = 5
    env = gym.make_vec("MusicRec-v0", num_envs=n, autoreset_mode="next_step", **kwargs)
    reference = _reference(n, AutoresetMode.NEXT_STEP, **kwargs)
    assert _assert_same_steps(env, reference, n, steps=150, seed=11) > 20


def test_next_step_autoreset_on_a_fitted_world(fitted_mssd_world):
    n, world = 3, load_world(fitted_mssd_world)  # loaded once, shared by every env
    env = MusicRecVectorEnv(num_envs=n, world=world, autoreset_mode=AutoresetMode.NEXT_STEP)
    reference = _reference(n, AutoresetMode.NEXT_STEP, world=world)
    n_tracks = env.single_action_space.n
    assert _assert_same_steps(env, reference, n, steps=40, seed=3, n_tracks=n_tracks) > 3


@pytest.mark.parametrize("mode", [AutoresetMode.DISABLED, AutoresetMode.NEXT_STEP])
def test_reset_masks_equal_gymnasiums_sync_vector_env(mode):
    n = 4
    env = MusicRecVectorEnv(num_envs=n, autoreset_mode=mode, string_ids=True)
    reference = _reference(n, mode, string_ids=True)
    ends = _assert_same_steps(env, reference, n, steps=80, seed=5, masked_resets=True)
    assert ends > 10


def test_disabled_autoreset_refuses_to_step_an_ended_session():
    env = gym.make_vec("MusicRec-v0", num_envs=8, autoreset_mode="disabled", max_steps=1)
    env.reset(seed=0)
    *_, terminated, truncated, info = env.step(np.zeros(8, dtype=np.int64))
    assert (terminated | truncated).all() and "final_obs" not in info
    with pytest.raises(EpisodeEndedError, match=r"slots \[0, 1, 2, 3, 4, 5, 6, 7\] ended"):
        env.step(np.zeros(8, dtype=np.int64))
    mask = np.zeros(8, dtype=bool)
    mask[:3] = True
    obs, info = env.reset(options={"reset_mask": mask})
    assert np.array_equal(info["_user"], mask) and obs.shape == (8, 9)
    with pytest.raises(EpisodeEndedError, match=r"slots \[3, 4, 5, 6, 7\] ended"):
        env.step(np.zeros(8, dtype=np.int64))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"reset_mask": [True, False]}, "`reset_mask` must be a bool array of shape"),
        ({"reset_mask": np.zeros(2, dtype=bool)}, "with a True"),
        ({"reset_mask": np.ones(3, dtype=bool)}, r"shape \(2,\)"),
        ({"reset_mask": np.ones(2, dtype=bool), "user": 1}, "not supported"),
    ],
)
def test_bad_reset_masks(options, match):
    env = MusicRecVectorEnv(num_envs=2)
    with pytest.raises(ConfigError, match="before the first reset"):
        env.reset(options={"reset_mask": np.ones(2, dtype=bool)})
    env.reset(seed=0)
    with pytest.raises(ConfigError, match=match):
        env.reset(options=options)


def test_next_step_semantics():
    """The step after an end: the new session's first observation, reward 0, no end."""
    env = MusicRecVectorEnv(num_envs=16, autoreset_mode="next_step")
    env.reset(seed=0)
    rng, pending, checked = np.random.default_rng(0), np.zeros(16, bool), 0
    for _ in range(60):
        obs, reward, term, trunc, info = env.step(rng.integers(0, 1000, 16))
        assert "final_obs" not in info
        assert not (reward[pending] != 0).any() and not (term | trunc)[pending].any()
        assert (info["step"][pending] == 0).all() and (info["track"][pending] == -1).all()
        checked += pending.sum()
        pending = term | trunc
    assert checked > 20


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("next_step", AutoresetMode.NEXT_STEP),
        ("NextStep", AutoresetMode.NEXT_STEP),
        (AutoresetMode.NEXT_STEP, AutoresetMode.NEXT_STEP),
        ("same_step", AutoresetMode.SAME_STEP),
        (AutoresetMode.SAME_STEP, AutoresetMode.SAME_STEP),
        ("disabled", AutoresetMode.DISABLED),
        ("Disabled", AutoresetMode.DISABLED),
    ],
)
def test_autoreset_mode_is_an_argument_and_in_the_metadata(mode, expected):
    env = gym.make_vec("MusicRec-v0", num_envs=2, autoreset_mode=mode)
    assert env.autoreset_mode is expected and env.metadata["autoreset_mode"] is expected
    assert MusicRecVectorEnv.metadata["autoreset_mode"] is AutoresetMode.SAME_STEP


@pytest.mark.parametrize(
    ("mode", "match"),
    [
        ("next-step", "Did you mean 'next_step'"),
        (1, "`autoreset_mode` must be an AutoresetMode"),
    ],
)
def test_bad_autoreset_modes(mode, match):
    with pytest.raises(ConfigError, match=match):
        MusicRecVectorEnv(num_envs=2, autoreset_mode=mode)


def _never_both(steps):
    """Run ``steps`` (a generator of step tuples); assert no step both ends and truncates."""
    ends = truncations = 0
    for _, _, terminated, truncated, _ in steps:
        assert not np.any(np.logical_and(terminated, truncated))
        ends += int(np.sum(terminated))
        truncations += int(np.sum(truncated))
    assert ends and truncations  # both kinds of end were seen


def _single_steps(env, n):
    env.reset(seed=0)
    for i in range(n):
        out = env.step(i % 1000)
        yield out
        if out[2] or out[3]:
            env.reset()


def _vector_steps(env, n):
    env.reset(seed=0)
    for i in range(n):
        out = env.step(np.full(env.num_envs, i % 1000))
        yield out
        done = out[2] | out[3]
        if env.autoreset_mode is AutoresetMode.DISABLED and done.any():
            env.reset(options={"reset_mask": done})


@pytest.mark.parametrize(
    "make",
    [
        lambda: _single_steps(gym.make("MusicRec-v0").unwrapped, 3000),
        lambda: _single_steps(gym.make("MusicRec-v0"), 3000),
        lambda: _single_steps(gym.make("MusicRec-v0", max_steps=3), 3000),
        lambda: _vector_steps(gym.make_vec("MusicRec-v0", num_envs=64), 60),
        lambda: _vector_steps(gym.make_vec("MusicRec-v0", 64, autoreset_mode="next_step"), 60),
        lambda: _vector_steps(gym.make_vec("MusicRec-v0", 64, max_episode_steps=3), 60),
        lambda: _vector_steps(MusicRecVectorEnv(64, max_steps=2, autoreset_mode="next_step"), 60),
        lambda: _vector_steps(MusicRecVectorEnv(64, max_steps=2, autoreset_mode="disabled"), 60),
    ],
    ids=[
        "env",
        "make",
        "make-max_steps",
        "vec",
        "vec-next",
        "vec-time-limit",
        "vec-next-2",
        "vec-disabled",
    ],
)
def test_terminated_and_truncated_are_never_both_true(make):
    _never_both(make())


def test_sb3_adapter_marks_time_limits_only_for_truncations():
    env = MusicRecSB3VecEnv(num_envs=64, seed=0, max_steps=3)
    native = MusicRecVectorEnv(num_envs=64, max_steps=3)  # the same sessions
    env.reset()
    native.reset(seed=0)
    seen = set()
    for _ in range(30):
        env.step_async(np.zeros(64, dtype=np.int64))
        _, _, dones, infos = env.step_wait()
        _, _, term, trunc, _ = native.step(np.zeros(64, dtype=np.int64))
        np.testing.assert_array_equal(dones, term | trunc)
        for i in np.flatnonzero(dones):
            seen.add(infos[i]["TimeLimit.truncated"])
            assert infos[i]["TimeLimit.truncated"] == trunc[i]
    assert seen == {True, False}


def test_sb3_adapter_refuses_next_step_autoreset():
    with pytest.raises(ConfigError, match="needs same-step autoreset"):
        MusicRecSB3VecEnv(env=MusicRecVectorEnv(num_envs=2, autoreset_mode="next_step"))
    with pytest.raises(ConfigError, match="needs same-step autoreset"):
        MusicRecSB3VecEnv(num_envs=2, autoreset_mode="next_step")
