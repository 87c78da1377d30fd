"""``info``: the same keys and types at reset and at every step, numbers unless asked.

Libraries that store or batch infos (Minari, TorchRL's info reader, Gymnasium's vector
envs) need one structure for the whole episode, and NumPy values.
"""

import gymnasium as gym
import numpy as np
import pytest

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)
from musicrec_gym.envs import MusicRecVectorEnv
from musicrec_gym.envs.core import INFO_KEYS, OUTCOME_KEYS, STATE_KEYS, STRING_ID_KEYS
from musicrec_gym.errors import ConfigError

NUMERIC_KEYS = tuple(k for k in INFO_KEYS if k not in STRING_ID_KEYS)


def test_every_info_key_is_an_outcome_a_state_or_an_id():
    assert sorted(INFO_KEYS) == sorted(OUTCOME_KEYS + STATE_KEYS + STRING_ID_KEYS)


def _structure(info):
    """Each value's type, dtype and shape: what must not change along an episode."""
    return {
        k: (type(v), None if isinstance(v, str) else np.asarray(v).dtype, np.shape(v))
        for k, v in info.items()
    }


def _episode_infos(env, seed, action=None):
    """The infos of one episode, reset included (``action``: fixed, else random ints)."""
    _, info = env.reset(seed=seed)
    infos, done = [info], False
    rng = np.random.default_rng(seed)
    while not done:
        act = int(rng.integers(0, 1000)) if action is None else action
        *_, terminated, truncated, info = env.step(act)
        infos.append(info)
        done = terminated or truncated
    return infos


@pytest.mark.parametrize("string_ids", [False, True])
@pytest.mark.parametrize("batch_path", [False, True])
def test_single_env_info_has_the_same_keys_and_types_at_reset_and_every_step(
    string_ids, batch_path
):
    env = gym.make("MusicRec-v0", string_ids=string_ids)
    keys = INFO_KEYS if string_ids else NUMERIC_KEYS
    for seed in range(5):
        # plain ints take the fast path, one-element arrays the batch path
        infos = _episode_infos(env, seed, np.array([3]) if batch_path else None)
        first = _structure(infos[0])
        assert tuple(infos[0]) == keys  # the documented order, too
        for info in infos[1:]:
            assert tuple(info) == keys
            assert _structure(info) == first


def test_info_values_are_numpy_numbers_by_default():
    env = gym.make("MusicRec-v0")
    for info in _episode_infos(env, 0):
        for key, value in info.items():
            assert isinstance(value, (np.generic, np.ndarray)), key
            assert np.asarray(value).dtype.kind in "biuf", key


def test_reset_placeholders():
    _, info = gym.make("MusicRec-v0", string_ids=True).reset(seed=0)
    assert info["optimal_reward"] == info["expected_reward"] == info["regret"] == 0.0
    assert info["listened"] is np.False_ and info["track"] == -1 and info["step"] == 0
    assert info["track_id"] == "" and info["user_id"].startswith("u")
    assert 0 <= info["optimal_action"] < 1000


def test_string_ids_are_the_catalog_and_listener_ids():
    env = gym.make("MusicRec-v0", string_ids=True)
    world = env.unwrapped.world
    _, info = env.reset(seed=1)
    *_, info = env.step(7)
    assert info["track_id"] == world.catalog["track_id"].iloc[7]
    assert info["user_id"] == world.listeners["user_id"].iloc[info["user"]]


@pytest.mark.parametrize("mode", ["same_step", "next_step"])
@pytest.mark.parametrize("string_ids", [False, True])
def test_vector_info_has_the_same_keys_at_reset_and_every_step(mode, string_ids):
    env = MusicRecVectorEnv(num_envs=8, autoreset_mode=mode, string_ids=string_ids)
    keys = INFO_KEYS if string_ids else NUMERIC_KEYS
    _, info = env.reset(seed=0)
    reset_structure = {k: (info[k].dtype, info[k].shape) for k in keys}
    assert [k for k in info if not k.startswith("_")] == list(keys)
    rng = np.random.default_rng(0)
    for _ in range(40):
        *_, info = env.step(rng.integers(0, 1000, 8))
        assert {k: (info[k].dtype, info[k].shape) for k in keys} == reset_structure
        assert all(info["_" + k].all() for k in keys)
        extra = set(info) - set(keys) - {"_" + k for k in keys}
        assert extra <= {"final_obs", "_final_obs", "final_info", "_final_info"}
    if not string_ids:
        assert all(info[k].dtype.kind in "biuf" for k in keys)


def test_vector_reset_info_has_the_placeholders():
    _, info = MusicRecVectorEnv(num_envs=3).reset(seed=0)
    assert not info["optimal_reward"].any() and not info["regret"].any()
    assert not info["listened"].any() and (info["track"] == -1).all()
    assert not info["step"].any()


@pytest.mark.parametrize("value", [1, "yes", None])
def test_string_ids_must_be_a_bool(value):
    with pytest.raises(ConfigError, match="`string_ids` must be a bool"):
        gym.make("MusicRec-v0", string_ids=value)
