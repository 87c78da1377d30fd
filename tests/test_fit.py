"""``musicrec fit``: a world fitted to MSSD logs by the real path, and MusicRec-v0 on it."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from gymnasium.utils.env_checker import check_env

import musicrec_gym  # noqa: F401
from musicrec_gym.artifacts import read_json
from musicrec_gym.data.mssd import read_mssd_log
from musicrec_gym.embeddings import EmbeddingConfig
from musicrec_gym.encoder import EncoderConfig
from musicrec_gym.envs import MusicRecVectorEnv
from musicrec_gym.errors import ArtifactError, ConfigError, DataFormatError
from musicrec_gym.fit import FitConfig, fit_leave, fit_world
from musicrec_gym.plays import Plays
from musicrec_gym.sim.fitted import ResponseConfig
from musicrec_gym.sim.fitted_compiled import CompiledFittedSimulator
from musicrec_gym.sim.simulator import BatchSimulator
from musicrec_gym.world import load_world

from .conftest import MSSD_SAMPLE

MSSD_HEADER = [
    "session_id",
    "session_position",
    "session_length",
    "track_id_clean",
    "skip_1",
    "skip_2",
    "skip_3",
    "not_skipped",
    "context_switch",
    "no_pause_before_play",
    "short_pause_before_play",
    "long_pause_before_play",
    "hist_user_behavior_n_seekfwd",
    "hist_user_behavior_n_seekback",
    "hist_user_behavior_is_shuffle",
    "hour_of_day",
    "date",
    "premium",
    "context_type",
    "hist_user_behavior_reason_start",
    "hist_user_behavior_reason_end",
]
TINY = FitConfig(
    min_track_count=3,
    embedding=EmbeddingConfig(epochs=2),
    encoder=EncoderConfig(epochs=2, batch_size=256),
    response=ResponseConfig(epochs=2),
)
QUIET = {"progress": False, "log": lambda *_: None}


def make_log(n_sessions: int = 80, n_tracks: int = 30, seed: int = 0) -> pd.DataFrame:
    """A small MSSD-format log: sessions of 8-20 plays, listens that follow the last one."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_sessions):
        length = int(rng.integers(8, 21))
        listened = rng.random() < 0.5
        for pos in range(1, length + 1):
            listened = rng.random() < (0.75 if listened else 0.3)
            skip_2 = not listened
            rows.append(
                [
                    f"s{s:04d}",
                    pos,
                    length,
                    f"t{int(rng.zipf(1.5)) % n_tracks:03d}",
                    skip_2 and rng.random() < 0.5,
                    skip_2,
                    skip_2,
                    listened,
                    0,
                    1,
                    0,
                    0,
                    0,
                    0,
                    False,
                    12,
                    "2018-07-15",
                    True,
                    "radio",
                    "trackdone",
                    "trackdone",
                ]
            )
    return pd.DataFrame(rows, columns=MSSD_HEADER)


@pytest.fixture(scope="module")
def small_log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("logs") / "log.csv"
    make_log().to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def small_world(tmp_path_factory, small_log) -> Path:
    out = tmp_path_factory.mktemp("small_world")
    fit_world(small_log, out, TINY, **QUIET)
    return out


# ----------------------------------------------------------------------------- the pipeline


def test_fit_on_the_real_sample_reports_auc_catalog_and_split(fitted_mssd_world):
    manifest = read_json(fitted_mssd_world / "manifest.json")
    assert manifest["kind"] == "fitted"
    rep = manifest["reports"]
    # The sequence model beats the popularity-only model on held-out sessions, even
    # with two epochs of everything.
    assert rep["response"]["heldout_auc"] > rep["response"]["popularity_auc"] + 0.05
    # The held-out file holds exactly the sessions that are not starting sessions.
    full = read_mssd_log(MSSD_SAMPLE).frame
    held = read_mssd_log(fitted_mssd_world / "heldout.csv.gz").frame
    starts = pd.read_csv(fitted_mssd_world / "listeners.csv", dtype={"user_id": str})
    held_ids, start_ids = set(held["session_id"]), set(starts["user_id"])
    assert not held_ids & start_ids
    assert held_ids | start_ids == set(full["session_id"])
    assert abs(len(held_ids) / full["session_id"].nunique() - 0.2) < 0.001
    # Catalog: the tracks played >= 5 times in the training sessions, recounted here.
    train = full[~full["session_id"].isin(held_ids)]
    counts = train["track_id"].value_counts()
    catalog = pd.read_csv(fitted_mssd_world / "catalog.csv", dtype={"track_id": str})
    assert set(catalog["track_id"]) == set(counts[counts >= 5].index)
    assert rep["catalog"]["tracks"] == len(catalog)


def test_same_seed_same_hashes_other_seed_other_split(tmp_path, small_log, small_world):
    again = tmp_path / "again"
    fit_world(small_log, again, TINY, **QUIET)
    first = read_json(small_world / "manifest.json")["files"]
    assert read_json(again / "manifest.json")["files"] == first
    other = tmp_path / "other"
    fit_world(small_log, other, TINY.with_seed(1), **QUIET)
    assert read_json(other / "manifest.json")["files"]["heldout.csv.gz"] != first["heldout.csv.gz"]


def test_leave_model_reproduces_lengths_and_finds_a_skip_effect():
    rng = np.random.default_rng(0)
    frames = []
    for s in range(3000):
        flags = (rng.random(20) < 0.5).astype(bool)
        # End at the first skip after position 10 with probability 0.5, else at 20.
        length = 20
        for p in range(10, 20):
            if not flags[p - 1] and rng.random() < 0.5:
                length = p
                break
        frames.append(
            pd.DataFrame({"session_id": f"s{s:05d}", "track_id": "t", "listened": flags[:length]})
        )
    plays, _ = Plays.from_frame(pd.concat(frames, ignore_index=True), 20)
    leave, report = fit_leave(plays, 20, skip_window=1)
    assert report["per_skip"] > 2.0  # a skip is what ends a session here
    assert np.all(leave.hazard(np.arange(6, 10), np.zeros((4, 1))) == 0)  # never observed
    # Hazard after a skip at positions 10..19 is close to the true 0.5, after a listen ~0.
    h_skip = leave.hazard(np.arange(10, 20), np.zeros((10, 1)))
    h_listen = leave.hazard(np.arange(10, 20), np.ones((10, 1)))
    assert np.allclose(h_skip, 0.5, atol=0.06) and np.all(h_listen < 0.02)


# ----------------------------------------------------------------------------- the env


def test_check_env_and_sessions_follow_the_fitted_models(small_world, small_log):
    env = gym.make("MusicRec-v0", world=str(small_world), string_ids=True)
    check_env(env.unwrapped)
    world = env.unwrapped.world
    assert world.fitted is not None and world.truth is None
    log = read_mssd_log(small_log).frame
    first_five = {
        sid: (g["track_id"].tolist()[:5], g["listened"].tolist()[:5])
        for sid, g in log.groupby("session_id")
    }
    track_ids = world.catalog["track_id"].astype(str).to_numpy()
    sim = env.unwrapped.core.sim
    for seed in range(15):
        obs, info = env.reset(seed=seed)
        tracks, flags = first_five[info["user_id"]]  # a logged training session opens it
        shown = [track_ids[t] if t >= 0 else None for t in info["warmup_tracks"]]
        assert shown == [t if t in set(track_ids) else None for t in tracks]
        assert list(info["warmup_listened"]) == flags
        steps, done = 0, False
        while not done:
            best = sim.expected_rewards()[0]  # every catalog track, in the current state
            action = int(env.action_space.sample())
            obs, reward, term, trunc, info = env.step(action)
            assert info["optimal_reward"] == pytest.approx(best.max(), abs=1e-12)
            assert info["expected_reward"] == pytest.approx(best[action], abs=1e-12)
            assert info["optimal_reward"] >= info["expected_reward"]
            assert env.observation_space.contains(obs)
            steps, done = steps + 1, term or trunc
        assert 5 + steps <= 20  # the session cap counts the warm-up
        assert trunc == (5 + steps == 20)


def test_vector_env_equals_single_envs_on_a_fitted_world(small_world):
    n, seed = 4, 7
    venv = gym.make_vec(
        "MusicRec-v0", num_envs=n, vectorization_mode="vector_entry_point", world=str(small_world)
    )
    assert isinstance(venv.unwrapped, MusicRecVectorEnv)
    singles = [gym.make("MusicRec-v0", world=str(small_world)) for _ in range(n)]
    obs, _ = venv.reset(seed=seed)
    single = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(singles)])
    assert np.allclose(obs, single, atol=1e-6)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(40):
        actions = rng.integers(0, venv.unwrapped.world.n_tracks, n)
        obs, reward, term, trunc, info = venv.step(actions)
        assert np.all(info["optimal_reward"] >= info["expected_reward"])
        for i, env in enumerate(singles):
            _, r, te, tr, _ = env.step(int(actions[i]))
            assert (r, te, tr) == (reward[i], term[i], trunc[i])
            if te or tr:
                env.reset()
                ended += 1
        if ended:
            break
    assert ended > 0


def test_the_synthetic_world_still_uses_the_synthetic_simulator():
    env = gym.make("MusicRec-v0")
    assert env.unwrapped.world.fitted is None
    assert isinstance(env.unwrapped.core.sim, BatchSimulator)


def test_fitted_world_uses_the_fitted_simulator_and_refuses_profiles(small_world):
    env = gym.make("MusicRec-v0", world=str(small_world))
    assert isinstance(env.unwrapped.core.sim, CompiledFittedSimulator)
    with pytest.raises(ConfigError, match="profile_features"):
        gym.make("MusicRec-v0", world=str(small_world), profile_features=True)


# ----------------------------------------------------------------------------- bad input


def test_log_missing_a_column_is_a_clear_error(tmp_path):
    path = tmp_path / "log.csv"
    make_log(10).drop(columns=["skip_2"]).to_csv(path, index=False)
    with pytest.raises(DataFormatError, match="skip_2"):
        fit_world(path, tmp_path / "w", TINY, **QUIET)


def test_empty_log_is_a_clear_error(tmp_path):
    path = tmp_path / "log.csv"
    path.write_text(",".join(MSSD_HEADER) + "\n")
    with pytest.raises(DataFormatError, match=r"log\.csv"):
        fit_world(path, tmp_path / "w", TINY, **QUIET)


def test_log_of_short_sessions_is_a_clear_error(tmp_path):
    log = make_log(20)
    path = tmp_path / "short.csv"
    log[log["session_position"] <= 5].assign(session_length=5).to_csv(path, index=False)
    with pytest.raises(DataFormatError, match="more than 5 plays"):
        fit_world(path, tmp_path / "w", TINY, **QUIET)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [("heldout_fraction", 1.5, "heldout_fraction"), ("min_track_count", 0, "min_track_count")],
)
def test_bad_fit_config_names_the_field(field, value, match):
    with pytest.raises(ConfigError, match=match):
        FitConfig(**{field: value})


@pytest.mark.parametrize("name", ["response.npz", "starts.npz", "fitted.json"])
def test_world_missing_a_file_names_it(tmp_path, small_world, name):
    broken = tmp_path / "broken"
    shutil.copytree(small_world, broken)
    (broken / name).unlink()
    with pytest.raises(ArtifactError, match=name.replace(".", r"\.")):
        load_world(broken)


def test_edited_world_file_fails_its_hash(tmp_path, small_world):
    broken = tmp_path / "edited"
    shutil.copytree(small_world, broken)
    data = json.loads((broken / "fitted.json").read_text())
    data["max_length"] = 30
    (broken / "fitted.json").write_text(json.dumps(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_world(broken)


def test_cli_fit_help_and_error(tmp_path):
    cmd = [sys.executable, "-m", "musicrec_gym.cli", "fit"]
    help_text = subprocess.run([*cmd, "--help"], capture_output=True, text=True).stdout
    for option in (
        "--out",
        "--heldout-fraction",
        "--seed",
        "--min-track-count",
        "--epochs",
        "--encoder-epochs",
        "--embedding-epochs",
        "--dim",
        "--quiet",
    ):
        assert option in help_text
    missing = tmp_path / "nope.csv"
    run = subprocess.run(
        [*cmd, str(missing), "--out", str(tmp_path / "w")], capture_output=True, text=True
    )
    assert run.returncode == 2 and "nope.csv" in run.stderr


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 10**9}, r"`epochs` must be an int <= 10,000"),
        ({"batch_size": 10**12}, r"`batch_size` must be an int <= 1,000,000"),
        ({"hidden": 10**7}, r"`hidden` must be an int <= 4,096"),
        ({"hidden": True}, r"`hidden` must be an int >= 1"),
        ({"dim": 0}, r"`dim` must be an int >= 1"),
        ({"dim": 10**6}, r"`dim` must be an int <= 256"),
    ],
)
def test_response_config_refuses_sizes_that_would_exhaust_the_machine(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ResponseConfig(**kwargs)


def test_session_context_is_an_input_when_the_log_has_it_and_optional(small_world, tmp_path):
    """context_type and shuffle become the state tower's inputs; a log without them fits."""
    info = read_json(small_world / "fitted.json")
    world = load_world(small_world)
    names = info["session_features"]
    assert names[-1] == "shuffle" and all(n.startswith("context_type=") for n in names[:-1])
    assert world.fitted.response.session_dim == len(names)
    assert world.fitted.start_features.shape == (world.n_listeners, len(names))
    assert set(np.unique(world.fitted.start_features)) <= {0.0, 1.0}
    path = tmp_path / "plain.csv"
    make_log().drop(columns=["context_type", "hist_user_behavior_is_shuffle"]).to_csv(
        path, index=False
    )
    fit_world(path, tmp_path / "plain", TINY, **QUIET)
    plain = load_world(tmp_path / "plain")
    assert plain.fitted.response.session_dim == 0
    assert read_json(tmp_path / "plain" / "fitted.json")["group_skip_rates"] == {}
    env = gym.make("MusicRec-v0", world=str(tmp_path / "plain"))
    env.reset(seed=0)
    assert env.step(0)[4]["step"] == 1
