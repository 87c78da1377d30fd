"""Candidate-set mode (``candidates=K``): spaces, the retrieval rule, exact optima, bad input."""

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

import musicrec_gym  # noqa: F401
from musicrec_gym.envs.candidates import CANDIDATE_KEYS, CandidateEnv, CandidateVectorEnv
from musicrec_gym.envs.music_rec import MusicRecEnv
from musicrec_gym.errors import ArgumentError, ConfigError, EpisodeEndedError, InvalidActionError
from musicrec_gym.sim.retrieval_tables import source_counts

K = 50


@pytest.fixture(scope="module")
def venv():
    return CandidateVectorEnv(num_envs=16, candidates=K)


def test_spaces_and_info_keys(venv):
    obs, info = venv.reset(seed=0)
    assert venv.setting == "candidates"
    assert venv.single_action_space == gym.spaces.Discrete(K)
    assert obs["session"].shape == (16, 9) and obs["candidates"].shape == (16, K, 15)
    assert venv.observation_space.contains(obs)
    keys = [k for k in info if not k.startswith("_")]
    for key in CANDIDATE_KEYS:
        assert key in keys and "_" + key in info
    _, _, _, _, step_info = venv.step(np.zeros(16, np.int64))
    assert [k for k in step_info if not k.startswith("_") and not k.startswith("final")] == keys
    assert step_info["candidate_tracks"].shape == (16, K)
    assert info["optimal_action"].min() >= 0 and info["optimal_action"].max() < K
    # the shown sets are read-only views: writing to them cannot change what a step picks
    with pytest.raises(ValueError, match="read-only"):
        step_info["candidate_tracks"][0, 0] = -5


def test_gymnasium_and_sb3_check_env():
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    check_env(CandidateEnv(candidates=K))
    sb3_check_env(CandidateEnv(candidates=20), warn=False)


def test_single_env_equals_vector_slots():
    n, seed = 4, 7
    venv = CandidateVectorEnv(num_envs=n, candidates=K)
    singles = [CandidateEnv(candidates=K) for _ in range(n)]
    obs, info = venv.reset(seed=seed)
    for i, env in enumerate(singles):
        o, inf = env.reset(seed=seed + i)
        assert np.array_equal(o["candidates"], obs["candidates"][i])
        assert np.array_equal(inf["candidate_tracks"], info["candidate_tracks"][i])
    rng = np.random.default_rng(1)
    ends = 0
    for _ in range(60):
        actions = rng.integers(0, K, n)
        obs, reward, term, trunc, info = venv.step(actions)
        for i, env in enumerate(singles):
            o, r, te, tr, inf = env.step(int(actions[i]))
            assert (r, te, tr) == (reward[i], term[i], trunc[i])
            for key in ("optimal_reward", "regret", "catalog_optimal_reward", "retrieval_loss",
                        "expected_reward", "track"):  # fmt: skip
                assert inf[key] == info[key][i], key
            if te or tr:
                ends += 1
                assert np.allclose(o["session"], info["final_obs"]["session"][i], atol=1e-6)
                assert not o["candidates"].any() and not info["final_obs"]["candidates"][i].any()
                assert env.observation_space.contains(o)
                assert inf["optimal_action"] == info["final_info"]["optimal_action"][i] == -1
                assert (info["final_info"]["candidate_tracks"][i] == -1).all()
                o, inf = env.reset()  # continues the slot's stream, as autoreset does
            assert np.allclose(o["session"], obs["session"][i], atol=1e-6, rtol=0)
            assert np.array_equal(o["candidates"], obs["candidates"][i])
            assert np.array_equal(inf["candidate_tracks"], info["candidate_tracks"][i])
            assert inf["optimal_action"] == info["optimal_action"][i]
    assert ends > 0


def test_same_seed_same_trajectory():
    def run() -> list:
        env = CandidateVectorEnv(num_envs=8, candidates=K)
        obs, info = env.reset(seed=3)
        out = [info["candidate_tracks"].copy()]
        rng = np.random.default_rng(0)
        for _ in range(25):
            obs, reward, *_, info = env.step(rng.integers(0, K, 8))
            out += [reward.copy(), info["candidate_tracks"].copy(), obs["candidates"].copy()]
        return out

    for a, b in zip(run(), run(), strict=True):
        assert np.array_equal(a, b)


def expected_continuations(sim, slot: int, n_cont: int) -> list[int]:
    """Brute force: the pool tracks nearest the last play, unplayed, most similar first."""
    pool = sim.cand[slot, : sim.pool]
    last = sim.win_tracks[slot, -1]
    sims = sim.response.factors[pool] @ sim.response.factors[last]
    played = set(sim.hist[slot, : sim.hist_len[slot]].tolist())
    order = np.argsort(-sims, kind="stable")
    return [int(pool[q]) for q in order if int(pool[q]) not in played][:n_cont]


def test_candidates_are_distinct_unplayed_and_follow_the_rule(venv):
    sim, world = venv.core.sim, venv.world
    n_cont, n_pers, n_pop = source_counts(
        K, sim.params.logging_pop_share, sim.params.logging_continuation_share
    )
    assert (n_cont, n_pers, n_pop) == (20, 15, 15)
    obs, info = venv.reset(seed=11)
    rng = np.random.default_rng(2)
    d = world.embeddings.shape[1]
    for _ in range(15):
        tracks = info["candidate_tracks"]
        feats = obs["candidates"]
        for s in range(venv.num_envs):
            row = tracks[s].tolist()
            played = set(sim.hist[s, : sim.hist_len[s]].tolist())
            assert len(set(row)) == K and not played & set(row)
            assert row[:n_cont] == expected_continuations(sim, s, n_cont)
            cached = set(sim.cand[s].tolist())
            assert set(row[n_cont : n_cont + n_pers]) <= cached
            kinds = feats[s, :, d + 4 : d + 7].argmax(axis=1)
            assert (kinds == np.repeat([0, 1, 2], [n_cont, n_pers, n_pop])).all()
            assert np.array_equal(feats[s, :, :d], world.embeddings[tracks[s]])
            last_artist = world.artist_index[sim.win_tracks[s, -1]]
            continues = world.artist_index[tracks[s]] == last_artist
            assert np.array_equal(feats[s, :, d + 1], continues.astype(np.float32))
        obs, _, _, _, info = venv.step(rng.integers(0, K, venv.num_envs))


def test_optima_equal_brute_force(venv):
    sim = venv.core.sim
    obs, info = venv.reset(seed=5)
    rng = np.random.default_rng(3)
    for _ in range(20):
        every = sim.expected_rewards()  # (B, n_tracks): the catalog, brute force
        tracks = info["candidate_tracks"]
        cand = np.take_along_axis(every, tracks, axis=1)
        best = info["optimal_action"]
        assert np.allclose(cand[np.arange(len(best)), best], cand.max(axis=1), rtol=1e-12)
        actions = rng.integers(0, K, venv.num_envs)
        actions[::2] = best[::2]  # the candidate oracle in half of the slots
        obs, _, _, _, info = venv.step(actions)
        assert np.allclose(info["catalog_optimal_reward"], every.max(axis=1), rtol=1e-12)
        assert np.allclose(info["optimal_reward"], cand.max(axis=1), rtol=1e-12)
        chosen = cand[np.arange(len(actions)), actions]
        assert np.allclose(info["expected_reward"], chosen, rtol=1e-12)
        assert (info["regret"][::2] == 0).all() and (info["regret"] >= 0).all()
        assert np.array_equal(info["track"], tracks[np.arange(len(actions)), actions])
        loss = info["catalog_optimal_reward"] - info["optimal_reward"]
        assert np.allclose(info["retrieval_loss"], np.maximum(loss, 0), atol=1e-15)
        assert (info["retrieval_loss"] >= 0).all()


def test_catalog_trajectory_unchanged_by_the_retrieval():
    """The retrieval draws nothing from the simulator's streams: the same plays in MusicRec-v0."""
    cand, plain = CandidateEnv(candidates=K), MusicRecEnv()
    obs, info = cand.reset(seed=9)
    o, _ = plain.reset(seed=9)
    rng = np.random.default_rng(4)
    for _ in range(100):
        obs, r, te, tr, info = cand.step(int(rng.integers(0, K)))
        o, r2, te2, tr2, info2 = plain.step(int(info["track"]))
        assert (r, te, tr) == (r2, te2, tr2)
        assert np.array_equal(o, obs["session"])
        assert info["catalog_optimal_reward"] == info2["optimal_reward"]
        if te or tr:
            obs, info = cand.reset()
            plain.reset()


@pytest.mark.parametrize(
    ("k", "match"),
    [
        (0, "int K >= 1"),
        (-3, "int K >= 1"),
        (2.5, "int K >= 1"),
        (True, "int K >= 1"),
        ("50", "int K >= 1"),
        (1001, "larger than the catalog"),
        (990, "use K <= 975"),
    ],
)
def test_bad_k(k, match):
    with pytest.raises(ArgumentError, match=match):
        CandidateEnv(candidates=k)
    with pytest.raises(ArgumentError, match=match):
        CandidateVectorEnv(num_envs=2, candidates=k)


def test_bad_actions_and_kwargs():
    env = CandidateEnv(candidates=10)
    env.reset(seed=0)
    for bad in (10, -1, 2.5, "a", True, [1, 2]):
        with pytest.raises(InvalidActionError, match=r"Discrete\(10\)|candidate index"):
            env.step(bad)
    venv = CandidateVectorEnv(num_envs=3, candidates=10)
    venv.reset(seed=0)
    with pytest.raises(InvalidActionError, match=r"outside the action space Discrete\(10\)"):
        venv.step(np.array([0, 10, 1]))
    with pytest.raises(InvalidActionError, match=r"shape \(3,\)"):
        venv.step(np.zeros(4, np.int64))
    with pytest.raises(ArgumentError, match="unexpected keyword argument"):
        CandidateEnv(candidates=10, rewards="listen")
    with pytest.raises(ArgumentError, match="cannot be combined"):
        CandidateEnv(candidates=10, slate=5)


def test_fitted_world_is_refused(fitted_mssd_world):
    with pytest.raises(ConfigError, match="synthetic world"):
        CandidateEnv(world=fitted_mssd_world, candidates=5)


def test_step_after_end_raises():
    env = CandidateEnv(candidates=5, max_steps=1)
    env.reset(seed=0)
    env.step(0)
    with pytest.raises(EpisodeEndedError):
        env.step(0)


@pytest.mark.parametrize("mode", [AutoresetMode.NEXT_STEP, AutoresetMode.DISABLED])
def test_other_autoreset_modes_blank_ended_slots(mode):
    venv = CandidateVectorEnv(num_envs=8, candidates=10, autoreset_mode=mode, max_steps=1)
    venv.reset(seed=0)
    _, _, term, trunc, info = venv.step(np.zeros(8, np.int64))
    done = term | trunc
    assert done.all()
    assert (info["candidate_tracks"] == -1).all() and (info["optimal_action"] == -1).all()
    if mode is AutoresetMode.NEXT_STEP:
        obs, reward, _, _, info = venv.step(np.zeros(8, np.int64))
        assert (reward == 0).all() and (info["optimal_reward"] == 0).all()
        assert (info["candidate_tracks"] >= 0).all() and obs["candidates"].any()


def test_gym_make_and_make_vec_reach_candidate_mode():
    env = gym.make("MusicRec-v0", candidates=20)
    assert isinstance(env.unwrapped, CandidateEnv)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs) and info["candidate_tracks"].shape == (20,)
    obs, *_ = env.step(info["optimal_action"])
    venv = gym.make_vec("MusicRec-v0", num_envs=4, candidates=20)
    assert isinstance(venv.unwrapped, CandidateVectorEnv) and venv.unwrapped.setting == "candidates"
    obs, info = venv.reset(seed=0)
    assert obs["candidates"].shape == (4, 20, 15)


@pytest.mark.parametrize(
    "kwargs",
    [{"profile_features": True}, {"string_ids": True}, {"long_term": True}, {"reward": "time"}],
)
def test_musicrec_arguments_work_in_candidate_mode(kwargs):
    env = CandidateEnv(candidates=8, **kwargs)
    obs, info = env.reset(seed=1)
    assert env.observation_space.contains(obs)
    keys = list(info)
    obs, _, _, _, info = env.step(info["optimal_action"])
    assert list(info) == keys and env.observation_space.contains(obs)
    assert info["regret"] == 0.0
    if kwargs.get("string_ids"):
        assert info["track_id"] == env.world.catalog["track_id"].iloc[info["track"]]


@pytest.mark.parametrize("k", [1, 2])
def test_small_sets_where_a_source_gets_no_candidate(k):
    """K = 1 has no popular and no continuation candidate, K = 2 no personal one."""
    env = CandidateVectorEnv(num_envs=8, candidates=k)
    sim = env.core.sim
    counts = source_counts(k, sim.params.logging_pop_share, sim.params.logging_continuation_share)
    assert sum(counts) == k and 0 in counts
    obs, info = env.reset(seed=3)
    for _ in range(25):
        tracks = info["candidate_tracks"]
        for s in range(env.num_envs):
            played = set(sim.hist[s, : sim.hist_len[s]].tolist())
            assert len(set(tracks[s].tolist())) == k and not played & set(tracks[s].tolist())
        assert ((info["optimal_action"] >= 0) & (info["optimal_action"] < k)).all()
        obs, _, _, _, info = env.step(np.zeros(env.num_envs, np.int64))
