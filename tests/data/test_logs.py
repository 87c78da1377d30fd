"""Logged sessions of the synthetic world in the MSSD and Last.fm-1K schemas."""

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.data.logs import MAX_SESSION_TRACKS, MSSD_COLUMNS, to_lastfm, to_mssd
from musicrec_gym.data.synthetic import SyntheticConfig, generate_world
from musicrec_gym.errors import ConfigError
from musicrec_gym.sim.params import SimulatorParams
from musicrec_gym.sim.sessions import logging_simulator_factory, simulate_sessions


@pytest.fixture(scope="module")
def logged():
    catalog, listeners, truth = generate_world(
        SyntheticConfig(n_tracks=80, n_artists=30, n_listeners=50, seed=4)
    )
    artist = pd.factorize(catalog["artist_id"], sort=True)[0]
    factory = logging_simulator_factory(
        truth, artist, catalog["popularity"].to_numpy(), SimulatorParams()
    )
    sessions = simulate_sessions(factory, 500, seed=4, chunk=128, progress=False)
    return catalog, listeners, sessions


def test_sessions_hold_warmup_to_twenty_tracks(logged):
    _, _, (users, lengths, tracks, listened) = logged
    assert lengths.min() >= SimulatorParams().warmup + 1
    assert lengths.max() <= MAX_SESSION_TRACKS
    filled = (tracks >= 0).sum(axis=1)
    assert np.array_equal(filled, lengths)
    assert 0.2 < listened.sum() / lengths.sum() < 0.95


def test_chunking_does_not_change_sessions(logged):
    catalog, _, (users, lengths, tracks, _) = logged
    _, _, truth = generate_world(SyntheticConfig(n_tracks=80, n_artists=30, n_listeners=50, seed=4))
    artist = pd.factorize(catalog["artist_id"], sort=True)[0]
    factory = logging_simulator_factory(
        truth, artist, catalog["popularity"].to_numpy(), SimulatorParams()
    )
    again = simulate_sessions(factory, 500, seed=4, chunk=500, progress=False)
    assert np.array_equal(again[2], tracks) and np.array_equal(again[0], users)


def test_mssd_schema(logged):
    catalog, listeners, (users, lengths, tracks, listened) = logged
    frame = to_mssd(
        users, lengths, tracks, listened, catalog["track_id"].to_numpy(),
        listeners["user_id"].to_numpy(), seed=0,
    )  # fmt: skip
    assert tuple(frame.columns) == MSSD_COLUMNS
    assert len(frame) == lengths.sum()
    assert (frame["not_skipped"] == ~frame["skip_3"]).all()
    assert (frame["skip_1"] <= frame["skip_2"]).all() and (frame["skip_2"] <= frame["skip_3"]).all()
    per_session = frame.groupby("session_id")["session_position"].agg(["min", "max", "count"])
    assert (per_session["min"] == 1).all() and (per_session["max"] == per_session["count"]).all()


def test_lastfm_histories_are_ordered_and_sessions_are_gapped(logged):
    catalog, listeners, (users, lengths, tracks, listened) = logged
    frame = to_lastfm(users, tracks, listened, catalog, listeners["user_id"].to_numpy(), seed=0)
    assert list(frame.columns) == [
        "user_id", "timestamp", "artist_id", "artist_name", "track_id", "track_name",
    ]  # fmt: skip
    assert len(frame) == lengths.sum()
    times = pd.to_datetime(frame["timestamp"])
    for _, group in frame.assign(t=times).groupby("user_id"):
        gaps = group["t"].diff().dt.total_seconds().dropna()
        assert (gaps >= 0).all()
    # a listener's sessions are separated by at least an hour, plays within one by < 15 min
    user = users[0]
    mine = times[frame["user_id"] == listeners["user_id"].iloc[user]].diff().dt.total_seconds()
    big = (mine > 3600).sum()
    assert big == (users == user).sum() - 1


def test_synthetic_config_validation():
    with pytest.raises(ConfigError, match="n_genres"):
        SyntheticConfig(n_genres=40)
