"""Logged datasets (``musicrec log``): exact propensities, the format, replay, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)
from experiments.logged import SEED_STRIDE, log_sessions, reset_seeds
from musicrec_gym.cli import main
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ArtifactError, ConfigError, DataFormatError
from musicrec_gym.logged_data import ARRAYS_FILE, META_FILE, LoggedDataset, load_dataset
from musicrec_gym.logging_policies import (
    epsilon_greedy_probabilities,
    parse_policy_spec,
    sample_actions,
    world_logging_probabilities,
)

ROOT = Path(__file__).resolve().parents[1]
MSSD = ROOT / "worlds" / "mssd"


@pytest.fixture(scope="module")
def logged() -> LoggedDataset:
    """200 sessions of the built-in world's logging policy."""
    return log_sessions(
        policy="world", sessions=200, seed=3, num_envs=64, progress=False, ref_sessions=40
    )


def _same_state_draws(env: MusicRecVectorEnv, slot: int, seed: int) -> tuple:
    """Copy ``slot``'s state to every slot; the logger's distribution there and N draws."""
    sim = env.core.sim
    ints, floats = sim.int_state[slot].copy(), sim.float_state[slot].copy()
    sim.int_state[:] = ints
    sim.float_state[:] = floats
    probs = world_logging_probabilities(sim)
    n = env.num_envs
    sim.seed(np.arange(n), np.arange(n, dtype=np.int64) + seed)
    return probs, sim.logging_actions()


def _check_frequencies(probs: np.ndarray, actions: np.ndarray) -> None:
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(probs, np.broadcast_to(probs[0], probs.shape))
    p, n = probs[0], len(actions)
    freq = np.bincount(actions, minlength=len(p)) / n
    assert not np.any(freq[p == 0]), "a track of probability 0 was drawn"
    sigma = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(freq - p) <= 4.5 * sigma + 1.0 / n)


@pytest.mark.parametrize("world", [None, MSSD], ids=["built-in", "fitted"])
def test_world_policy_distribution_matches_its_draws(world):
    if world is not None and not world.is_dir():
        pytest.skip(f"{world} not found")
    env = MusicRecVectorEnv(12000, world=world)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for steps in (0, 2):  # after the warm-up (its last play often in the pool); after steps
        for _ in range(steps):
            env.step(rng.integers(0, env.core.world.n_tracks, env.num_envs))
        probs, actions = _same_state_draws(env, slot=1 + steps, seed=10**6 * (steps + 1))
        _check_frequencies(probs, actions)


def test_sample_actions_follow_the_distribution_and_skip_zeros():
    rng = np.random.default_rng(1)
    p = rng.random(30)
    p[[0, 7, 29]] = 0.0
    p /= p.sum()
    probs = np.broadcast_to(p, (40000, 30))
    actions = sample_actions(probs, rng.random(40000))
    _check_frequencies(probs, actions)
    assert sample_actions(probs[:1], np.array([np.nextafter(1.0, 0.0)]))[0] == 28


def test_epsilon_greedy_rows_sum_to_one():
    probs = epsilon_greedy_probabilities(np.array([3, 0]), 5, 0.2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs[0, 3] == pytest.approx(0.04 + 0.8) and probs[1, 1] == pytest.approx(0.04)


@pytest.mark.parametrize("policy", ["uniform", "oracle:0.2", "popularity:0.3", "planner:0.5"])
def test_softened_and_uniform_pscores(policy):
    data = log_sessions(policy=policy, sessions=12, num_envs=8, progress=False, ref_sessions=0)
    n = data.n_actions
    spec = parse_policy_spec(policy)
    if spec.epsilon is None:
        np.testing.assert_allclose(data.pscore, 1.0 / n)
    else:
        low, high = spec.epsilon / n, spec.epsilon / n + 1 - spec.epsilon
        assert np.all(np.isclose(data.pscore, low) | np.isclose(data.pscore, high))
        assert np.isclose(data.pscore, high).mean() > 0.3
    assert data.meta["policy"] == str(spec)


def test_replay_gives_the_same_session_and_pscores_are_the_distribution(logged):
    """A single MusicRec-v0 reset with an episode's seed and fed its actions replays it."""
    starts = logged.episode_starts()
    env = gym.make("MusicRec-v0")
    sim = env.unwrapped.core.sim
    for e in (0, 57, 199):
        lo, hi = starts[e], starts[e + 1]
        obs, info = env.reset(seed=int(logged.reset_seed[e]))
        assert logged.reset_seed[e] == 3 * SEED_STRIDE + e
        np.testing.assert_array_equal(info["warmup_tracks"], logged.warmup_tracks[e])
        assert info["user"] == logged.user[lo]
        for row in range(lo, hi):
            np.testing.assert_array_equal(obs, logged.obs[row])
            probs = world_logging_probabilities(sim)[0]
            assert probs[logged.action[row]] == logged.pscore[row]
            obs, reward, term, trunc, info = env.step(int(logged.action[row]))
            assert reward == logged.reward[row] and info["listened"] == logged.listened[row]
            assert (term, trunc) == (logged.terminated[row], logged.truncated[row])
            assert info["expected_reward"] == logged.truth_expected_reward[row]
            assert info["optimal_reward"] == logged.truth_optimal_reward[row]
            np.testing.assert_array_equal(obs, logged.next_obs[row])
        assert term or trunc


def test_format_and_references(logged):
    assert logged.n_episodes == 200 and logged.episode[-1] == 199
    assert logged.obs.dtype == np.float32 and logged.action.dtype == np.int64
    assert logged.action_context.shape == (logged.n_actions, logged.obs.shape[1])
    assert not np.any(logged.terminated & logged.truncated)
    meta = logged.meta
    assert meta["world"] == "built-in" and meta["ref_max_policy"] == "oracle"
    assert meta["ref_min_score"] < logged.episode_returns().mean() < meta["ref_max_score"]
    np.testing.assert_array_equal(logged.reset_seed, reset_seeds(3, 200))


def test_same_seed_same_dataset_whatever_num_envs(logged):
    again = log_sessions(
        policy="world", sessions=200, seed=3, num_envs=17, progress=False, ref_sessions=40
    )
    for name, arr in logged.arrays().items():
        np.testing.assert_array_equal(arr, again.arrays()[name], err_msg=name)
    assert again.meta == logged.meta
    other = log_sessions(policy="world", sessions=200, seed=4, progress=False, ref_sessions=0)
    assert not np.array_equal(other.action[:50], logged.action[:50])


def test_round_trip(logged, tmp_path):
    logged.save(tmp_path / "d")
    back = load_dataset(tmp_path / "d", world="built-in")
    for name, arr in logged.arrays().items():
        np.testing.assert_array_equal(arr, back.arrays()[name], err_msg=name)
        assert arr.dtype == back.arrays()[name].dtype
    assert back.meta["policy"] == "world" and back.meta["n_rows"] == logged.n_rows


def _edited(logged: LoggedDataset, tmp_path: Path, **changes) -> Path:
    arrays = logged.arrays()
    arrays.update(changes)
    out = tmp_path / "bad"
    out.mkdir()
    np.savez(out / ARRAYS_FILE, **arrays)
    meta = {**logged.meta, "format": "musicrec-logged-v1", "n_rows": len(arrays["action"])}
    (out / META_FILE).write_text(json.dumps(meta))
    return out


def _pscore_at(logged, row, value):
    p = logged.pscore.copy()
    p[row] = value
    return p


BAD_FIELDS = {
    "pscore 0": (lambda d: {"pscore": _pscore_at(d, 5, 0.0)}, "'pscore'.*row 5.*0, 1"),
    "pscore > 1": (lambda d: {"pscore": _pscore_at(d, 0, 1.5)}, "'pscore'"),
    "steps": (lambda d: {"step": d.step + 1}, "'step'.*row 0"),
    "both ends": (lambda d: {"truncated": d.terminated | d.truncated}, "both terminated"),
    "episode gap": (
        lambda d: {"episode": np.where(d.episode > 3, d.episode + 1, d.episode)},
        "'episode'",
    ),
    "dtype": (lambda d: {"obs": d.obs.astype(np.float64)}, "'obs'.*float64, expected float32"),
    "missing": (lambda d: {"pscore": None}, "'pscore'.*missing"),
    "action": (lambda d: {"action": d.action + d.n_actions}, "'action'.*outside"),
    "rows": (lambda d: {"reward": d.reward[:-1]}, "'reward'.*shape"),
}


@pytest.mark.parametrize("case", BAD_FIELDS, ids=list(BAD_FIELDS))
def test_bad_fields_are_named(logged, tmp_path, case):
    make, match = BAD_FIELDS[case]
    changes = make(logged)
    if changes.get("pscore", 0) is None:
        arrays = logged.arrays()
        del arrays["pscore"]
        out = _edited(logged, tmp_path)
        np.savez(out / ARRAYS_FILE, **arrays)
    else:
        out = _edited(logged, tmp_path, **changes)
    with pytest.raises(DataFormatError, match=match):
        load_dataset(out)


def test_truncated_corrupt_and_missing_files(logged, tmp_path):
    path = logged.save(tmp_path / "d")
    data = (path / ARRAYS_FILE).read_bytes()
    (path / ARRAYS_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ArtifactError, match=r"arrays.npz.*truncated or corrupted"):
        load_dataset(path)
    (path / META_FILE).write_text('{"format": ')
    with pytest.raises(ArtifactError, match=r"dataset.json.*truncated or corrupted"):
        load_dataset(path)
    (path / META_FILE).unlink()
    with pytest.raises(ArtifactError, match=r"dataset.json.*not found"):
        load_dataset(path)
    with pytest.raises(ArtifactError, match="no such dataset directory"):
        load_dataset(tmp_path / "nowhere")


def test_dataset_from_another_world(logged, tmp_path):
    if not MSSD.is_dir():
        pytest.skip(f"{MSSD} not found")
    path = logged.save(tmp_path / "d")
    with pytest.raises(DataFormatError, match="dataset from another world"):
        load_dataset(path, world=MSSD)


@pytest.mark.parametrize(
    ("spec", "match"),
    [("orcle", "Did you mean 'oracle'"), ("oracle:1.5", "in \\[0, 1\\]"),
     ("oracle:x", "epsilon"), ("world:0.1", "takes no epsilon")],
)  # fmt: skip
def test_bad_policy_specs(spec, match):
    with pytest.raises(ConfigError, match=match):
        parse_policy_spec(spec)


def test_cli_writes_the_dataset_and_obp_file(tmp_path):
    out = tmp_path / "logs" / "w"
    argv = ["log", "--sessions", "20", "--num-envs", "8", "--ref-sessions", "5", "--obp"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    data = load_dataset(out)
    assert data.n_episodes == 20 and data.meta["ref_sessions"] == 5
    with np.load(out / "bandit_feedback.npz") as obp:
        assert int(obp["n_rounds"]) == data.n_rows
        np.testing.assert_array_equal(obp["position"], data.step)
        np.testing.assert_array_equal(obp["pscore"], data.pscore)
        assert obp["context"].shape == data.obs.shape
    assert main([*argv, "--out", str(out), "--quiet"]) == 2  # not empty
    assert main([*argv, "--out", str(out), "--quiet", "--force", "--seed", "1"]) == 0
    assert load_dataset(out).meta["seed"] == 1
    assert [p.name for p in (tmp_path / "logs").iterdir()] == ["w"]  # no temporary left


@pytest.mark.parametrize(
    "args",
    [["--sessions", "0"], ["--sessions", "-3"], ["--policy", "orcle"],
     ["--policy", "oracle", "--epsilon", "1.5"], ["--long-term", "--world", str(MSSD)],
     ["--policy", "planner", "--world", str(MSSD)],
     ["--reward", "clicks"]],
)  # fmt: skip
def test_cli_bad_input_exits_2(tmp_path, capsys, args):
    code = main(["log", "--ref-sessions", "0", "--quiet", "--out", str(tmp_path / "o"), *args])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) >= 1 and err[-1].startswith("musicrec log: error:")
    assert not (tmp_path / "o").exists()


def test_minari_round_trip_with_infos(tmp_path, monkeypatch):
    minari = pytest.importorskip("minari")
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(tmp_path / "minari"))
    out = tmp_path / "d"
    argv = ["log", "--sessions", "15", "--ref-sessions", "10", "--quiet", "--out", str(out)]
    assert main([*argv, "--minari", "musicrec/test-v0"]) == 0
    data = load_dataset(out)
    loaded = minari.load_dataset("musicrec/test-v0")
    assert loaded.total_episodes == 15 and loaded.total_steps == data.n_rows
    assert loaded.storage.metadata["ref_min_score"] == pytest.approx(data.meta["ref_min_score"])
    assert loaded.storage.metadata["ref_max_score"] == pytest.approx(data.meta["ref_max_score"])
    starts = data.episode_starts()
    for e, episode in enumerate(loaded.iterate_episodes()):
        lo, hi = starts[e], starts[e + 1]
        np.testing.assert_array_equal(episode.actions, data.action[lo:hi])
        np.testing.assert_array_equal(episode.observations[1:], data.next_obs[lo:hi])
        np.testing.assert_array_equal(episode.infos["propensity"][1:], data.pscore[lo:hi])
        assert episode.infos["propensity"][0] == 1.0
        assert not np.any(episode.terminations & episode.truncations)
    assert main([*argv, "--force", "--minari", "musicrec/test-v0"]) == 0
