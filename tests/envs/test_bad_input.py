"""``max_steps`` in every entry point, seeds as Gymnasium takes them, and a table of bad input.

Every bad argument, seed, option or action is one of our errors (``ConfigError``,
``InvalidActionError``, ``ArtifactError``) whose message names what is wrong, never a
``TypeError``, ``OverflowError`` or ``KeyError`` from NumPy or Gymnasium. The cases run on
the tiny world of ``tests/conftest.py`` (or the built-in one where noted).
"""

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import musicrec_gym
from musicrec_gym.envs import MusicRecEnv, MusicRecVectorEnv
from musicrec_gym.errors import ArtifactError, ConfigError, InvalidActionError
from musicrec_gym.sim.params import MAX_STEPS_LIMIT


def oracle_lengths(env: gym.Env, episodes: int) -> list[tuple[int, bool]]:
    """(length, truncated) of oracle sessions, which listeners rarely leave."""
    out = []
    for seed in range(episodes):
        _, info = env.reset(seed=seed)
        steps, done = 0, False
        while not done:
            _, _, terminated, truncated, info = env.step(int(info["optimal_action"]))
            steps += 1
            done = terminated or truncated
        out.append((steps, truncated))
    return out


def vector_truncations(env: Any, steps: int) -> tuple[int, int]:
    """Oracle steps in a vector env: (longest session seen, length of every truncated one)."""
    _, info = env.reset(seed=0)
    age = np.zeros(env.num_envs, dtype=np.int64)
    longest, truncated_at = 0, set()
    for _ in range(steps):
        _, _, terminated, truncated, info = env.step(info["optimal_action"])
        age += 1
        longest = max(longest, int(age.max()))
        truncated_at.update(age[truncated].tolist())
        age[terminated | truncated] = 0
    assert len(truncated_at) == 1, truncated_at
    return longest, truncated_at.pop()


# ------------------------------------------------------------------------ max_steps


def test_max_steps_30_sessions_reach_step_30():
    """The registered TimeLimit used to truncate every session at 20 whatever max_steps said."""
    env = gym.make("MusicRec-v0", max_steps=30)
    lengths = oracle_lengths(env, 100)
    assert max(n for n, _ in lengths) == 30
    assert {n for n, truncated in lengths if truncated} == {30}
    assert sum(n > 20 for n, _ in lengths) > 10


def test_default_sessions_still_end_at_20():
    lengths = oracle_lengths(gym.make("MusicRec-v0"), 60)
    assert {n for n, truncated in lengths if truncated} == {20}


def test_registration_time_limit_never_cuts_before_the_env():
    assert gym.spec("MusicRec-v0").max_episode_steps == MAX_STEPS_LIMIT + 1
    assert musicrec_gym.MAX_EPISODE_STEPS == MAX_STEPS_LIMIT + 1


def test_gymnasium_max_episode_steps_still_limits_sessions():
    env = gym.make("MusicRec-v0", max_episode_steps=7, max_steps=30)
    assert env.spec.max_episode_steps == 7
    assert {n for n, truncated in oracle_lengths(env, 20) if truncated} == {7}
    venv = gym.make_vec("MusicRec-v0", num_envs=4, max_episode_steps=6, max_steps=30)
    assert vector_truncations(venv, 30) == (6, 6)
    unlimited = gym.make_vec("MusicRec-v0", num_envs=2, max_episode_steps=-1, max_steps=25)
    assert unlimited.unwrapped.core.sim.max_steps == 25


def test_make_vec_max_steps_truncates_at_10():
    """Used to raise TypeError: SessionCore() got multiple values for 'max_steps'."""
    venv = gym.make_vec("MusicRec-v0", num_envs=4, max_steps=10)
    assert isinstance(venv.unwrapped, MusicRecVectorEnv)
    assert vector_truncations(venv, 40) == (10, 10)


def test_vector_env_max_steps_directly(tiny_world):
    venv = MusicRecVectorEnv(num_envs=4, world=str(tiny_world), max_steps=10)
    assert vector_truncations(venv, 40) == (10, 10)
    capped = MusicRecVectorEnv(num_envs=4, world=str(tiny_world), max_steps=10, max_episode_steps=3)
    assert vector_truncations(capped, 20) == (3, 3)


def test_experiment_config_env_kwargs_max_steps_truncates_at_10(tiny_world):
    """``env.kwargs: {max_steps: 10}`` goes through the runner's own environment."""
    from agents.base import AgentContext, make_agent
    from experiments.config import parse_config
    from experiments.runner import evaluate, plan_cells

    text = f"""
name: maxsteps
env:
  kwargs: {{max_steps: 10, world: "{tiny_world}"}}
  num_envs: 4
seeds: [0]
budget:
  train_steps: 100
  eval_episodes: 12
agents:
  - name: Oracle
    type: oracle
"""
    config = parse_config(text, "maxsteps.yaml")
    cell = next(c for c in plan_cells(config) if c.agent.type == "oracle")
    assert cell.env.kwargs["max_steps"] == 10
    assert cell.limits().max_steps == 10
    agent = make_agent("oracle")
    agent.bind(AgentContext.from_env(MusicRecVectorEnv(num_envs=1, **cell.env.kwargs), 0))
    episodes = evaluate(agent, cell.env.kwargs, cell.env.num_envs, np.arange(12))
    assert episodes["length"].max() == 10


def test_experiment_config_refuses_max_steps_past_the_limit():
    from experiments.config import parse_config

    text = """
name: maxsteps
env:
  kwargs: {max_steps: 1000000000000000000000000000000}
seeds: [0]
budget: {train_steps: 100, eval_episodes: 4}
agents: [{name: Oracle, type: oracle}]
"""
    with pytest.raises(ConfigError, match=r"env\.kwargs\.max_steps.*<= 10,000"):
        parse_config(text, "maxsteps.yaml")


# ---------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("seed", [2**63, 2**64 - 1, 2**64, 2**100, np.uint64(2**64 - 1)])
def test_any_seed_gymnasium_takes_is_taken_and_deterministic(tiny_world, seed):
    """Seeds from 2**63 on used to raise OverflowError."""
    env = gym.make("MusicRec-v0", world=str(tiny_world))
    first, info = env.reset(seed=seed)
    again, info_again = env.reset(seed=seed)
    assert np.array_equal(first, again) and info["user"] == info_again["user"]
    venv = MusicRecVectorEnv(num_envs=3, world=str(tiny_world))
    obs, _ = venv.reset(seed=seed)
    assert np.array_equal(obs[0], first)


def test_large_seeds_give_their_own_streams(tiny_world):
    env = MusicRecEnv(world=str(tiny_world))
    users = {env.reset(seed=s)[1]["user"] for s in (2**63, 2**63 + 1, 2**64 - 1, 2**64, 2**65)}
    assert len(users) > 1
    small, _ = env.reset(seed=5)
    assert np.array_equal(env.reset(seed=np.int64(5))[0], small)


def test_vector_seed_list_may_leave_slots_unseeded(tiny_world):
    venv = MusicRecVectorEnv(num_envs=3, world=str(tiny_world))
    seeded, _ = venv.reset(seed=[7, 8, 9])
    mixed, _ = venv.reset(seed=[7, None, 9])
    assert np.array_equal(seeded[[0, 2]], mixed[[0, 2]])
    from_array, _ = venv.reset(seed=np.array([7, 8, 9], dtype=np.uint64))
    assert np.array_equal(from_array, seeded)


# -------------------------------------------------------------- the bad-input table

Make = Callable[[str], Any]


def make(**kwargs: Any) -> Make:
    return lambda world: gym.make("MusicRec-v0", **{"world": world, **kwargs})


def make_vec(num_envs: Any = 2, **kwargs: Any) -> Make:
    return lambda world: gym.make_vec(
        "MusicRec-v0", num_envs=num_envs, **{"world": world, **kwargs}
    )


def vector(num_envs: Any = 2, **kwargs: Any) -> Make:
    return lambda world: MusicRecVectorEnv(num_envs=num_envs, **{"world": world, **kwargs})


def reset(**kwargs: Any) -> Make:
    return lambda world: MusicRecEnv(world=world).reset(**kwargs)


def vector_reset(**kwargs: Any) -> Make:
    return lambda world: MusicRecVectorEnv(num_envs=3, world=world).reset(**kwargs)


def step(action: Any) -> Make:
    def run(world: str) -> Any:
        env = MusicRecEnv(world=world)
        env.reset(seed=0)
        return env.step(action)

    return run


def vector_step(actions: Any) -> Make:
    def run(world: str) -> Any:
        env = MusicRecVectorEnv(num_envs=3, world=world)
        env.reset(seed=0)
        return env.step(actions)

    return run


ENV_CASES: list[tuple[str, Make, type[Exception], str]] = [
    # constructor arguments, through gym.make, gym.make_vec and the class
    ("reward-int", make(reward=5), ConfigError,
     r"`reward` must be a reward mode, one of 'listen', 'time', 'event'; got int 5"),
    ("reward-list", make(reward=["listen"]), ConfigError, r"`reward`"),
    ("reward-typo", make(reward="lisen"), ConfigError, r"`reward`.*Did you mean 'listen'"),
    ("world-int", lambda w: gym.make("MusicRec-v0", world=12345), ConfigError,
     r"`world` must be a world directory .* got int 12345"),
    ("world-float", lambda w: gym.make("MusicRec-v0", world=2.5), ConfigError, r"`world`"),
    ("world-bytes", lambda w: gym.make("MusicRec-v0", world=w.encode()), ConfigError,
     r"`world` must be a world directory .* got bytes"),
    ("world-empty", lambda w: gym.make("MusicRec-v0", world=""), ConfigError,
     r"`world` is an empty string"),
    ("world-a-file", lambda w: gym.make("MusicRec-v0", world=f"{w}/catalog.csv"),
     ArtifactError, r"catalog.csv: is a file, expected a world directory"),
    ("world-missing", lambda w: gym.make("MusicRec-v0", world=f"{w}/nowhere"), ArtifactError,
     r"nowhere: world directory not found"),
    ("max-steps-huge", make(max_steps=10**30), ConfigError,
     r"`max_steps` must be an int in \[1, 10000\]"),
    ("max-steps-numpy-huge", make(max_steps=np.int64(2**62)), ConfigError, r"`max_steps`"),
    ("max-steps-bool", make(max_steps=True), ConfigError, r"`max_steps` .* got True"),
    ("max-steps-float", make(max_steps=10.0), ConfigError, r"`max_steps`"),
    ("max-steps-string", make(max_steps="10"), ConfigError, r"`max_steps`"),
    ("max-steps-zero", make(max_steps=0), ConfigError, r"`max_steps`"),
    ("profile-features-string", make(profile_features="yes"), ConfigError,
     r"`profile_features` must be a bool"),
    ("profile-features-int", make(profile_features=1), ConfigError, r"`profile_features`"),
    ("render-mode-human", lambda w: MusicRecEnv(world=w, render_mode="human"), ConfigError,
     r"`render_mode`"),
    ("render-mode-int", lambda w: MusicRecEnv(world=w, render_mode=5), ConfigError,
     r"`render_mode`"),
    ("unknown-kwarg", make(max_step=30), ConfigError,
     r"unknown keyword argument 'max_step'.*Did you mean 'max_steps'"),
    ("vec-max-steps-huge", make_vec(max_steps=10**30), ConfigError, r"`max_steps`"),
    ("vec-max-steps-bool", make_vec(max_steps=True), ConfigError, r"`max_steps`"),
    ("vec-reward-int", make_vec(reward=5), ConfigError, r"`reward`"),
    ("vec-world-int", lambda w: gym.make_vec("MusicRec-v0", num_envs=2, world=12345),
     ConfigError, r"`world`"),
    ("num-envs-huge", make_vec(num_envs=10**12), ConfigError,
     r"`num_envs`=1000000000000 .* more than the 2 GiB limit; use num_envs <= \d+"),
    ("num-envs-huge-class", vector(num_envs=10**12), ConfigError, r"`num_envs`"),
    ("num-envs-times-max-steps", vector(num_envs=200_000, max_steps=10_000), ConfigError,
     r"`num_envs`=200000 with max_steps=10000"),
    ("num-envs-bool", make_vec(num_envs=True), ConfigError, r"`num_envs` must be an int"),
    ("num-envs-float", vector(num_envs=2.0), ConfigError, r"`num_envs`"),
    ("num-envs-zero", vector(num_envs=0), ConfigError, r"`num_envs`"),
    ("max-episode-steps-bool", make_vec(max_episode_steps=True), ConfigError,
     r"`max_episode_steps` must be an int"),
    ("max-episode-steps-zero", vector(max_episode_steps=0), ConfigError, r"`max_episode_steps`"),
    ("max-episode-steps-string", make_vec(max_episode_steps="5"), ConfigError,
     r"`max_episode_steps`"),
    # reset: seeds and options
    ("seed-negative", reset(seed=-1), ConfigError, r"`seed` must be None or an int >= 0"),
    ("seed-float", reset(seed=1.5), ConfigError, r"`seed` .* got float 1.5"),
    ("seed-string", reset(seed="1"), ConfigError, r"`seed`"),
    ("seed-bool", reset(seed=True), ConfigError, r"`seed` .* got bool True"),
    ("options-a-list", reset(options=[1]), ConfigError, r"reset `options` must be None or a dict"),
    ("options-a-string", reset(options="user"), ConfigError, r"reset `options`"),
    ("options-unknown-key", reset(options={"usr": 1}), ConfigError,
     r"reset options: unknown key\(s\) \['usr'\]"),
    ("options-user-bool", reset(options={"user": True}), ConfigError, r"`user` .* got True"),
    ("options-user-float", reset(options={"user": 1.0}), ConfigError, r"`user`"),
    ("options-user-huge", reset(options={"user": 2**70}), ConfigError, r"`user`"),
    ("options-unknown-user", reset(options={"user": "nobody"}), ConfigError,
     r"unknown user id 'nobody'"),
    ("vec-seed-negative", vector_reset(seed=-3), ConfigError, r"`seed` must be None or an int"),
    ("vec-seed-float", vector_reset(seed=1.5), ConfigError, r"`seed` must be None, an int >= 0"),
    ("vec-seed-short-list", vector_reset(seed=[1, 2]), ConfigError, r"`seed` .* got 2 seeds"),
    ("vec-seed-negative-item", vector_reset(seed=[1, 2, -3]), ConfigError,
     r"`seed\[2\]` must be None or an int >= 0"),
    ("vec-seed-string-item", vector_reset(seed=[1, "2", 3]), ConfigError, r"`seed\[1\]`"),
    ("vec-seed-bool", vector_reset(seed=True), ConfigError, r"`seed`"),
    ("vec-seed-float-array", vector_reset(seed=np.array([1.0, 2.0, 3.0])), ConfigError,
     r"`seed\[0\]`"),
    ("vec-options", vector_reset(options={"user": 1}), ConfigError,
     r"reset options are not supported by the vector env"),
    # step: actions of the wrong type, shape or range
    ("action-none", step(None), InvalidActionError, r"expected one integer track index"),
    ("action-string", step("3"), InvalidActionError, r"expected one integer track index"),
    ("action-fraction", step(2.5), InvalidActionError, r"expected one integer track index"),
    ("action-nan", step(float("nan")), InvalidActionError, r"expected one integer track index"),
    ("action-bool", step(True), InvalidActionError, r"expected one integer track index"),
    ("action-two", step([1, 2]), InvalidActionError, r"expected one integer track index"),
    ("action-2d", step(np.array([[1]])), InvalidActionError, r"expected one integer track"),
    ("action-dict", step({"a": 1}), InvalidActionError, r"expected one integer track index"),
    ("action-huge-float", step(1e30), InvalidActionError,
     r"action 1e\+30 is outside the action space Discrete\(60\)"),
    ("action-uint64-max", step(np.uint64(2**64 - 1)), InvalidActionError,
     r"action 18446744073709551615 is outside the action space"),
    ("action-huge-int", step(2**70), InvalidActionError,
     r"action 1180591620717411303424 is outside"),
    ("action-negative", step(np.int8(-1)), InvalidActionError, r"action -1 is outside"),
    ("vec-action-short", vector_step([1, 2]), InvalidActionError,
     r"expected 3 integer track indices in \[0, 60\), shape \(3,\)"),
    ("vec-action-2d", vector_step([[1, 2, 3]]), InvalidActionError, r"expected 3 integer"),
    ("vec-action-ragged", vector_step([[1], [2, 3], 4]), InvalidActionError,
     r"expected 3 integer"),
    ("vec-action-bools", vector_step(np.array([True, False, True])), InvalidActionError,
     r"expected 3 integer"),
    ("vec-action-strings", vector_step(["a", "b", "c"]), InvalidActionError,
     r"expected 3 integer"),
    ("vec-action-nan", vector_step([np.nan, 1.0, 1.0]), InvalidActionError, r"expected 3 integer"),
    ("vec-action-huge-float", vector_step([1e30, 1.0, 1.0]), InvalidActionError,
     r"action 1e\+30 is outside the action space"),
    ("vec-action-scalar", vector_step(5), InvalidActionError, r"expected 3 integer"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [case[1:] for case in ENV_CASES],
    ids=[case[0] for case in ENV_CASES],
)
def test_bad_input_is_a_clear_error(tiny_world, call, error, match):
    with pytest.raises(error, match=match):
        call(str(tiny_world))


def test_no_case_id_is_repeated():
    ids = [case[0] for case in ENV_CASES]
    assert len(ids) == len(set(ids))
