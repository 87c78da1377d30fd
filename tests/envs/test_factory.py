"""The setting seam: ``gym.make`` and ``make_vec`` pick the class the keyword arguments ask for."""

import gymnasium as gym
import pytest

import musicrec_gym  # noqa: F401  (registers the ids)
from musicrec_gym.envs.factory import env_setting, make_vector_env
from musicrec_gym.envs.music_rec import MusicRecEnv
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ArgumentError, ConfigError


def test_the_setting_of_keyword_arguments() -> None:
    assert env_setting({}) == "catalog"
    assert env_setting({"candidates": None, "slate": None}) == "catalog"
    assert env_setting({"candidates": 5}) == "candidates"
    assert env_setting({"slate": 5, "candidates": None}) == "slate"
    with pytest.raises(ConfigError, match="cannot be combined"):
        env_setting({"slate": 5, "candidates": 5})


def test_the_catalog_setting_builds_the_music_rec_classes(tiny_world) -> None:
    env = gym.make("MusicRec-v0", world=str(tiny_world), candidates=None)
    assert isinstance(env.unwrapped, MusicRecEnv)
    vec = gym.make_vec("MusicRec-v0", num_envs=2, world=str(tiny_world))
    assert isinstance(vec, MusicRecVectorEnv)
    assert isinstance(make_vector_env(3, world=str(tiny_world)), MusicRecVectorEnv)


def test_the_catalog_classes_point_other_settings_to_the_factory(tiny_world) -> None:
    with pytest.raises(ArgumentError, match=r"gym.make\('MusicRec-v0', slate=K\)"):
        MusicRecEnv(world=str(tiny_world), slate=3)
    with pytest.raises(ArgumentError, match="Did you mean 'candidates'"):
        MusicRecVectorEnv(num_envs=2, world=str(tiny_world), candidate=3)
