"""The leave model fed by session-length predictions: leave.npz in a world directory."""

import shutil

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.artifacts import default_world_dir, read_json
from musicrec_gym.envs.core import SessionCore
from musicrec_gym.errors import ArtifactError
from musicrec_gym.session_length.clusters import ClusterSpec
from musicrec_gym.session_length.grid import Cell, fit_cell
from musicrec_gym.session_length.leave import (
    expected_next_lengths,
    expected_tracks,
    listener_expected_tracks,
    write_leave_file,
)
from musicrec_gym.session_length.models import TrainConfig
from musicrec_gym.session_length.summary import summarise
from musicrec_gym.session_length.synthetic import SyntheticHistoryConfig, synthetic_histories
from musicrec_gym.sim.leave import LeaveModel
from musicrec_gym.sim.params import LeaveParams
from musicrec_gym.world import load_world


def test_base_rate_is_one_over_the_expected_length():
    model = LeaveModel.from_expected_lengths(np.array([2.0, 10.0, 0.5]), LeaveParams())
    np.testing.assert_allclose(model.base_rate, [0.5, 0.1, 1.0])
    no_skips = np.ones((3, 3))
    np.testing.assert_allclose(
        model.hazard(np.arange(3), no_skips), 1 - np.exp(-np.array([0.5, 0.1, 1.0]))
    )
    two_skips = np.array([[1.0, 0.0, 0.0]] * 3)
    assert (model.hazard(np.arange(3), two_skips) > model.hazard(np.arange(3), no_skips)).all()
    with pytest.raises(ArtifactError, match="finite numbers > 0"):
        LeaveModel.from_expected_lengths(np.array([1.0, np.nan]), LeaveParams())


def test_expected_tracks_arithmetic():
    out = expected_tracks(np.array([600.0, 60.0]), 120.0, warmup=2, median_to_mean=1.0)
    np.testing.assert_allclose(out, [3.0, 1.0])  # 5 - 2, floored at 1


def mean_session_steps(world_dir, n=600) -> float:
    """Mean recommendations per session under the logging policy, same seeds every time."""
    core = SessionCore(n, world=load_world(world_dir))
    sim = core.sim
    slots = np.arange(n)
    sim.seed(slots, slots + 12345)
    sim.reset(slots)
    steps = np.zeros(n)
    alive = np.ones(n, dtype=bool)
    for _ in range(sim.max_steps):
        result = sim.step(sim.logging_actions())
        steps += alive
        alive &= ~(result.terminated | result.truncated)
    return float(steps.mean())


@pytest.fixture
def two_worlds(tiny_world, tmp_path):
    n = len(pd.read_csv(tiny_world / "listeners.csv"))
    dirs = {}
    for name, length in (("short", 1.0), ("long", 1000.0)):
        dirs[name] = tmp_path / name
        shutil.copytree(tiny_world, dirs[name])
        write_leave_file(dirs[name], np.full(n, length), {"test": name})
    return dirs


def test_world_with_leave_file_gives_shorter_or_longer_sessions(tiny_world, two_worlds):
    short, long = (load_world(two_worlds[k]) for k in ("short", "long"))
    assert short.expected_lengths is not None and load_world(tiny_world).expected_lengths is None
    np.testing.assert_allclose(short.truth.patience, 1.0)
    assert "leave.npz" in read_json(two_worlds["long"] / "manifest.json")["files"]
    base = mean_session_steps(tiny_world)
    assert mean_session_steps(two_worlds["short"]) < 0.6 * base
    assert mean_session_steps(two_worlds["long"]) > base


def test_leave_file_is_checked(two_worlds):
    path = two_worlds["short"] / "leave.npz"
    np.savez(path, expected_length=np.full(3, 5.0))  # edited after the manifest
    with pytest.raises(ArtifactError, match=r"leave\.npz: sha256 does not match"):
        load_world(two_worlds["short"])
    with pytest.raises(ArtifactError, match="one per listener"):
        write_leave_file(two_worlds["long"], np.full(3, 5.0))


def test_builtin_world_is_never_written():
    with pytest.raises(ArtifactError, match="built-in world's files never change"):
        write_leave_file(default_world_dir(), np.ones(3))
    assert not (default_world_dir() / "leave.npz").exists()


def test_fitted_expected_lengths_follow_patience(tiny_world):
    world = load_world(tiny_world)
    hist = synthetic_histories(
        world, SyntheticHistoryConfig(n_listeners=40, sessions_per_listener=16, max_tracks=200,
                                      per_skip=0.0, seed=0)
    )  # fmt: skip
    summary = summarise(hist.plays, hist.profiles, hist.durations)
    labels = pd.Series(0, index=summary.rows["user_id"].unique())
    fitted = fit_cell(
        summary, Cell("gru", 0.0, ClusterSpec(), "on"), labels,
        TrainConfig(hidden=8, epochs=15, batch_size=8, chunk=16), 200, seed=0,
    )  # fmt: skip
    seconds = expected_next_lengths(fitted, summary)
    assert len(seconds) == 40 and (seconds > 0).all()
    tracks = listener_expected_tracks(world, fitted, summary)
    assert tracks.shape == (40,) and (tracks >= 1).all()
    assert np.corrcoef(tracks, world.truth.patience)[0, 1] > 0.5
