"""Histories of the synthetic world: seeded, sessionised back exactly, patience-driven."""

import numpy as np
import pytest

from musicrec_gym.data.sessionize import sessionise
from musicrec_gym.errors import ConfigError
from musicrec_gym.session_length.synthetic import SyntheticHistoryConfig, synthetic_histories
from musicrec_gym.world import load_world

SMALL = SyntheticHistoryConfig(
    n_listeners=20, sessions_per_listener=8, max_tracks=40, per_skip=0.0, seed=3
)


@pytest.fixture(scope="module")
def world(tiny_world):
    return load_world(tiny_world)


def test_same_seed_same_histories(world):
    a = synthetic_histories(world, SMALL)
    b = synthetic_histories(world, SMALL)
    assert a.plays.equals(b.plays)
    c = synthetic_histories(world, SyntheticHistoryConfig(**{**SMALL.__dict__, "seed": 4}))
    assert not a.plays.equals(c.plays)


def test_sessions_are_recovered_by_sessionise(world):
    hist = synthetic_histories(world, SMALL)
    out = sessionise(hist.plays)
    counts = out.groupby("user_id")["session_id"].nunique()
    assert (counts == 8).all() and len(counts) == 20
    lengths = out.groupby("session_id", sort=False).size()
    assert sorted(lengths) == sorted(hist.lengths.ravel())
    assert hist.lengths.max() <= 40
    assert set(hist.profiles["user_id"]) == set(hist.plays["user_id"])


def test_patience_drives_lengths_without_skips(world):
    hist = synthetic_histories(
        world, SyntheticHistoryConfig(n_listeners=40, sessions_per_listener=10, max_tracks=200,
                                      per_skip=0.0, seed=0)
    )  # fmt: skip
    corr = np.corrcoef(hist.patience.mean(axis=1), hist.lengths.mean(axis=1))[0, 1]
    assert corr > 0.5


def test_mood_varies_patience_between_sessions(world):
    still = synthetic_histories(world, SMALL).patience
    moody = synthetic_histories(
        world, SyntheticHistoryConfig(**{**SMALL.__dict__, "mood_rho": 0.5, "mood_sigma": 0.5})
    ).patience
    assert np.allclose(still, still[:, :1])
    assert not np.allclose(moody, moody[:, :1])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"mood_rho": 1.0}, "mood_rho"), ({"sessions_per_listener": 1}, "sessions_per_listener")],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SyntheticHistoryConfig(**kwargs)


def test_more_listeners_than_the_world_has(world):
    with pytest.raises(ConfigError, match="at most the world's 40"):
        synthetic_histories(world, SyntheticHistoryConfig(n_listeners=41))
