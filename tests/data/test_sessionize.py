"""Sessionisation of listening histories: gap threshold, order, duplicates, users."""

import logging

import pandas as pd
import pytest

from musicrec_gym.data.sessionize import sessionise
from musicrec_gym.errors import ConfigError, DataFormatError

T0 = pd.Timestamp("2009-01-01 12:00:00", tz="UTC")


def plays(rows: list[tuple[str, float]]) -> pd.DataFrame:
    """A history from (user, minutes after T0) pairs, with a track column."""
    return pd.DataFrame(
        {
            "user_id": [u for u, _ in rows],
            "timestamp": [T0 + pd.Timedelta(minutes=m) for _, m in rows],
            "track_id": [f"t{i}" for i in range(len(rows))],
        }
    )


def test_gap_exactly_at_threshold_continues_the_session():
    out = sessionise(plays([("u", 0), ("u", 20), ("u", 40.0001)]), gap_minutes=20)
    assert out["session_id"].tolist() == ["u:0", "u:0", "u:1"]
    assert out["session_position"].tolist() == [1, 2, 1]


def test_gap_just_below_and_above_threshold():
    out = sessionise(plays([("u", 0), ("u", 9.99), ("u", 19.98)]), gap_minutes=10)
    assert out["session_id"].tolist() == ["u:0", "u:0", "u:0"]
    out = sessionise(plays([("u", 0), ("u", 10.01)]), gap_minutes=10)
    assert out["session_id"].tolist() == ["u:0", "u:1"]


def test_unsorted_input_is_sorted_by_user_then_time():
    rows = [("b", 100), ("a", 50), ("a", 0), ("b", 0), ("a", 5)]
    out = sessionise(plays(rows))
    assert out["user_id"].tolist() == ["a", "a", "a", "b", "b"]
    assert out["timestamp"].is_monotonic_increasing is False  # users restart the clock
    assert out.groupby("user_id")["timestamp"].apply(lambda s: s.is_monotonic_increasing).all()
    assert out["session_id"].tolist() == ["a:0", "a:0", "a:1", "b:0", "b:1"]
    assert out["session_position"].tolist() == [1, 2, 1, 1, 1]
    assert out.index.tolist() == list(range(5))


def test_exact_duplicates_are_dropped_and_counted(caplog):
    frame = plays([("u", 0), ("u", 3), ("u", 6)])
    frame = pd.concat([frame, frame.iloc[[1]], frame.iloc[[1]]], ignore_index=True)
    with caplog.at_level(logging.WARNING, logger="musicrec_gym.data.sessionize"):
        out = sessionise(frame)
    assert len(out) == 3
    assert out.attrs["duplicates_dropped"] == 2
    assert "dropped 2 exact duplicate" in caplog.text
    assert out["session_position"].tolist() == [1, 2, 3]


def test_same_time_different_track_is_not_a_duplicate():
    frame = plays([("u", 0), ("u", 0)])
    out = sessionise(frame)
    assert len(out) == 2
    assert out.attrs["duplicates_dropped"] == 0


def test_a_user_with_one_session():
    out = sessionise(plays([("solo", m) for m in (0, 4, 8, 12, 16)]))
    assert set(out["session_id"]) == {"solo:0"}
    assert out["session_position"].tolist() == [1, 2, 3, 4, 5]


def test_several_users_count_sessions_separately():
    rows = [("x", 0), ("x", 60), ("x", 61), ("y", 30), ("y", 200), ("y", 500), ("z", 1)]
    out = sessionise(plays(rows))
    assert out.groupby("user_id")["session_id"].nunique().to_dict() == {"x": 2, "y": 3, "z": 1}
    assert out.loc[out["user_id"] == "y", "session_id"].tolist() == ["y:0", "y:1", "y:2"]
    # a play close in time to another user's play never joins that user's session
    assert out.loc[out["user_id"] == "z", "session_id"].tolist() == ["z:0"]


def test_naive_and_string_timestamps():
    naive = plays([("u", 0), ("u", 30)])
    naive["timestamp"] = naive["timestamp"].dt.tz_localize(None)
    assert sessionise(naive)["session_id"].tolist() == ["u:0", "u:1"]
    strings = pd.DataFrame(
        {"user_id": ["u", "u"], "timestamp": ["2009-01-01T00:00:00Z", "2009-01-01T00:15:00Z"]}
    )
    assert sessionise(strings)["session_id"].tolist() == ["u:0", "u:0"]


@pytest.mark.parametrize(
    ("frame", "gap", "match"),
    [
        (pd.DataFrame({"user_id": ["u"]}), 20, "missing column"),
        (pd.DataFrame({"user_id": ["u"], "timestamp": ["not a time"]}), 20, "'timestamp'"),
        (pd.DataFrame({"user_id": ["u"], "timestamp": [pd.NaT]}), 20, "missing value"),
    ],
)
def test_bad_input_is_one_clear_error(frame, gap, match):
    with pytest.raises(DataFormatError, match=match):
        sessionise(frame, gap_minutes=gap)


@pytest.mark.parametrize("gap", [0, float("nan"), True])
def test_bad_gap_is_a_config_error(gap):
    with pytest.raises(ConfigError, match="gap_minutes"):
        sessionise(plays([("u", 0)]), gap_minutes=gap)


def test_empty_history_gives_empty_sessions():
    out = sessionise(plays([]))
    assert out.empty
    assert {"session_id", "session_position"} <= set(out.columns)
