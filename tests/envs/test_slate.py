"""``MusicRecSlate-v0``: checkers, single == vector, the choice model, the optimum, bad input."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

import musicrec_gym
from musicrec_gym.envs.factory import make_vector_env
from musicrec_gym.envs.slate import SlateEnv, SlateVectorEnv
from musicrec_gym.errors import ArgumentError, ConfigError, EpisodeEndedError, InvalidActionError
from musicrec_gym.slate_choice import optimal_slates

K = 5


def random_slates(rng: np.random.Generator, n: int, k: int = K, n_tracks: int = 1000):
    """``n`` slates of ``k`` distinct tracks."""
    return np.argsort(rng.random((n, n_tracks)), axis=1)[:, :k]


def test_registered_and_equal_to_music_rec_with_slate():
    assert musicrec_gym.ENV_ID_KWARGS[musicrec_gym.SLATE_ENV_ID] == {"slate": K}
    env = gym.make("MusicRecSlate-v0")
    assert isinstance(env.unwrapped, SlateEnv) and env.unwrapped.setting == "slate"
    assert env.action_space == gym.spaces.MultiDiscrete([1000] * K)
    other = gym.make("MusicRec-v0", slate=3)
    assert other.action_space.shape == (3,)
    a, ia = env.reset(seed=5)
    b, ib = gym.make("MusicRec-v0", slate=K).reset(seed=5)
    assert np.array_equal(a, b) and np.array_equal(ia["optimal_action"], ib["optimal_action"])
    venv = gym.make_vec("MusicRecSlate-v0", num_envs=3)
    assert isinstance(venv.unwrapped, SlateVectorEnv)
    assert venv.single_action_space.shape == (K,)


def test_checkers_pass():
    check_env(SlateEnv())
    check_env(SlateEnv(slate=2, reward="event"))
    sb3_check_env(gym.make("MusicRecSlate-v0"))


def test_same_seed_same_trajectory():
    def run(seed: int) -> list:
        env = SlateEnv()
        out = []
        obs, info = env.reset(seed=seed)
        rng = np.random.default_rng(1)
        for _ in range(40):
            obs, r, te, tr, info = env.step(random_slates(rng, 1)[0])
            out.append((obs.tobytes(), r, te, tr, info["picked"], info["expected_reward"]))
            if te or tr:
                obs, info = env.reset()
        return out

    assert run(3) == run(3)
    assert run(3) != run(4)


@pytest.mark.parametrize("policy", ["random", "optimal"])
def test_slots_equal_single_envs(policy: str):
    """Slot ``i`` of the vector env is the single env seeded ``seed + i``, through restarts.

    Picks, plays, rewards and ends are identical; the expected rewards agree to the last
    bits of a matrix product.
    """
    n, seed = 5, 70
    venv = SlateVectorEnv(num_envs=n)
    singles = [SlateEnv() for _ in range(n)]
    obs, vinfo = venv.reset(seed=seed)
    infos = []
    for i, env in enumerate(singles):
        o, inf = env.reset(seed=seed + i)
        assert np.allclose(o, obs[i], atol=1e-6, rtol=0)
        assert np.array_equal(inf["optimal_action"], vinfo["optimal_action"][i])
        infos.append(inf)
    rng = np.random.default_rng(0)
    ends = 0
    for _ in range(80):
        if policy == "random":
            slates = random_slates(rng, n)
        else:
            slates = np.stack([inf["optimal_action"] for inf in infos])
        obs, reward, term, trunc, vinfo = venv.step(slates)
        for i, env in enumerate(singles):
            o, r, te, tr, inf = env.step(slates[i])
            assert (r, te, tr) == (reward[i], term[i], trunc[i])
            for key in ("picked", "track", "listened", "step"):
                assert inf[key] == vinfo[key][i], key
            ended_info = vinfo["final_info"] if te or tr else vinfo  # same-step autoreset
            assert inf["user"] == ended_info["user"][i]
            # the catalog's expected rewards come from a BLAS matrix product, whose last
            # bits may depend on the batch size
            for key in ("optimal_reward", "expected_reward"):
                assert inf[key] == pytest.approx(vinfo[key][i], rel=1e-12, abs=1e-15), key
            if te or tr:
                ends += 1
                assert np.allclose(o, vinfo["final_obs"][i], atol=1e-6, rtol=0)
                o, inf = env.reset()
                assert np.array_equal(inf["optimal_action"], vinfo["optimal_action"][i])
            infos[i] = inf
            assert np.allclose(o, obs[i], atol=1e-6, rtol=0)
    assert ends > 3


def test_info_keys_and_optimal_slate_has_no_regret():
    venv = SlateVectorEnv(num_envs=64, string_ids=True)
    obs, info = venv.reset(seed=1)
    keys = list(info)
    assert "picked" in keys and info["optimal_action"].shape == (64, K)
    assert (info["picked"] == -1).all() and (info["track"] == -1).all()
    for _ in range(10):
        slates = info["optimal_action"]
        obs, reward, term, trunc, info = venv.step(slates)
        assert [k for k in info if not k.startswith("_") and "final" not in k] == [
            k for k in keys if not k.startswith("_")
        ]
        np.testing.assert_allclose(info["regret"], 0.0, atol=1e-12)
        none = info["picked"] < 0
        assert (reward[none] == 0).all() and term[none].all() and (info["track"][none] == -1).all()
        assert (info["track_id"][none] == "").all()
        rows = np.flatnonzero(~none)
        assert np.array_equal(info["track"][rows], slates[rows, info["picked"][rows]])
        assert not (term & trunc).any()


def test_regret_is_nonnegative_and_exact():
    """The env's optimum beats random slates and equals ``optimal_slates`` on its own numbers."""
    venv = SlateVectorEnv(num_envs=128)
    _, info = venv.reset(seed=2)
    rng = np.random.default_rng(2)
    core = venv.core
    for _ in range(8):
        best, value = optimal_slates(core.utilities, core.rewards, K, core.choice.no_pick)
        np.testing.assert_allclose(value, core.opt_value, rtol=1e-12)
        _, _, _, _, info = venv.step(random_slates(rng, 128))
        assert (info["regret"] >= -1e-12).all() and info["regret"].mean() > 0.1


def test_choice_frequencies_match_the_model():
    """Over many seeded slots, each slate position is picked as often as the model says."""
    n = 4096
    venv = SlateVectorEnv(num_envs=n, slate=3)
    venv.reset(seed=11)
    core = venv.core
    rng = np.random.default_rng(5)
    slates = random_slates(rng, n, k=3)
    # a mix: each slate's first track one of the slot's best, so all outcomes are common
    slates[:, 0] = core.opt_slate[:, 0]
    slates[slates[:, 1] == slates[:, 0], 1] = (slates[slates[:, 1] == slates[:, 0], 0] + 1) % 1000
    slates[slates[:, 2] == slates[:, 0], 2] = (slates[slates[:, 2] == slates[:, 0], 0] + 2) % 1000
    rows = np.arange(n)[:, None]
    probs = core.choice.probabilities(core.utilities[rows, slates])
    expected_reward = (probs[:, :-1] * core.rewards[rows, slates]).sum(axis=1)
    _, reward, _, _, info = venv.step(slates)
    np.testing.assert_allclose(info["expected_reward"], expected_reward)
    for j, col in zip([0, 1, 2, -1], [0, 1, 2, 3], strict=True):
        count = int((info["picked"] == j).sum())
        mean, var = probs[:, col].sum(), (probs[:, col] * (1 - probs[:, col])).sum()
        assert abs(count - mean) < 5 * np.sqrt(var), (j, count, mean)
    # and the rewards average the slates' expected rewards
    assert abs(reward.sum() - expected_reward.sum()) < 5 * np.sqrt(n * 0.25)


def test_disabled_autoreset_and_factory():
    venv = make_vector_env(4, slate=2, autoreset_mode="disabled")
    assert isinstance(venv, SlateVectorEnv)
    obs, info = venv.reset(seed=0)
    for _ in range(100):
        obs, _, term, trunc, info = venv.step(info["optimal_action"])
        done = term | trunc
        if done.any():
            with pytest.raises(EpisodeEndedError, match="reset them first"):
                venv.step(np.tile([0, 1], (4, 1)))
            obs, info = venv.reset(options={"reset_mask": done})
            assert (info["optimal_action"][done] >= 0).all()
            break
    else:
        pytest.fail("no session ended")


BAD_SLATES = [
    ([1, 2, 3, 4, 4], "shows track 4 twice"),
    ([1, 2, 3, 4], "a slate of length 4"),
    ([1, 2, 3, 4, 5, 6], "a slate of length 6"),
    ([1, 2, 3, 4, 1000], "outside the action space"),
    ([1, 2, 3, 4, -1], "outside the action space"),
    ([1, 2, 3, 4, 5.5], "distinct integer track indices"),
    ([True, False, 2, 3, 4], "distinct integer track indices"),
    (7, "a scalar"),
    ("abcde", "distinct integer track indices"),
]


@pytest.mark.parametrize(("slate", "match"), BAD_SLATES)
def test_bad_slates(slate, match):
    env = SlateEnv()
    env.reset(seed=0)
    with pytest.raises(InvalidActionError, match=match):
        env.step(slate)


def test_bad_vector_slates_and_arguments():
    venv = SlateVectorEnv(num_envs=2, slate=2)
    venv.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"\(slot 1\)"):
        venv.step([[0, 1], [3, 3]])
    with pytest.raises(InvalidActionError, match="shape \\(2, 2\\)"):
        venv.step([0, 1])
    with pytest.raises(ConfigError, match="larger than the catalog"):
        SlateEnv(slate=1001)
    with pytest.raises(ConfigError, match="`slate` must be an int >= 1"):
        SlateEnv(slate=0)
    with pytest.raises(ConfigError, match="`scale` must be a number > 0"):
        SlateEnv(choice_scale=-1.0)
    with pytest.raises(ArgumentError, match=r"Did you mean 'reward'.*no_pick_utility"):
        SlateEnv(rewrd="listen")
    with pytest.raises(ConfigError, match="not NEXT_STEP"):
        SlateVectorEnv(num_envs=2, autoreset_mode="next_step")
    with pytest.raises(ConfigError, match="cannot be combined"):
        gym.make("MusicRec-v0", slate=2, candidates=3)
    env = SlateEnv()
    with pytest.raises(EpisodeEndedError):
        env.step([0, 1, 2, 3, 4])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"reward": "time"},
        {"reward": "event", "long_term": True},
        {"profile_features": True, "string_ids": True, "max_steps": 7},
    ],
)
def test_options_keep_the_optimum_exact(kwargs: dict):
    """Every reward mode and option: the optimal slate has no regret, random ones some."""
    venv = SlateVectorEnv(num_envs=16, **kwargs)
    obs, info = venv.reset(seed=0)
    assert venv.single_observation_space.contains(obs[0])
    rng = np.random.default_rng(0)
    for t in range(12):
        slates = info["optimal_action"] if t % 2 else random_slates(rng, 16)
        obs, reward, term, trunc, info = venv.step(slates)
        assert (info["regret"] >= -1e-12).all()
        if t % 2:
            np.testing.assert_allclose(info["regret"], 0.0, atol=1e-12)
    check_env(SlateEnv(**kwargs))


def test_pickled_env_continues_the_same_session():
    cloudpickle = pytest.importorskip("cloudpickle")
    env = gym.make("MusicRecSlate-v0")
    _, info = env.reset(seed=5)
    _, _, term, trunc, info = env.step(info["optimal_action"])
    assert not (term or trunc)
    copy = cloudpickle.loads(cloudpickle.dumps(env))
    for _ in range(2):
        slate = info["optimal_action"]
        a, b = env.step(slate), copy.step(slate)
        assert np.array_equal(a[0], b[0]) and a[1:4] == b[1:4]
        assert a[4]["picked"] == b[4]["picked"]
        info = a[4]
        if a[2] or a[3]:
            break


def test_a_passed_over_slate_ends_the_session_with_nothing_played():
    env = SlateEnv(render_mode="ansi")
    rng = np.random.default_rng(3)
    for seed in range(50):
        obs, info = env.reset(seed=seed)
        while True:
            before = (env.core.sim.hist_len[0], env.render(), obs.copy())
            obs, reward, term, trunc, info = env.step(random_slates(rng, 1)[0])
            if info["picked"] == -1:
                assert term and not trunc and reward == 0.0 and info["track"] == -1
                assert not info["listened"] and (info["optimal_action"] == -1).all()
                assert env.core.sim.hist_len[0] == before[0] and env.render() == before[1]
                assert np.array_equal(obs, before[2])
                return
            if term or trunc:
                break
    pytest.fail("no slate was passed over")


def test_a_fitted_world_runs_slates(fitted_mssd_world):
    """The slate env reads the simulator only through its interface: fitted worlds work."""
    check_env(SlateEnv(world=fitted_mssd_world))
    venv = SlateVectorEnv(num_envs=8, world=fitted_mssd_world)
    _, info = venv.reset(seed=0)
    rng = np.random.default_rng(0)
    n_tracks = venv.world.n_tracks
    for t in range(10):
        slates = info["optimal_action"] if t % 2 else random_slates(rng, 8, n_tracks=n_tracks)
        _, _, _, _, info = venv.step(slates)
        assert (info["regret"] >= -1e-12).all()
