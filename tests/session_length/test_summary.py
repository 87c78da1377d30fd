"""Session lengths, summary rows and the per-user time split."""

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.errors import ConfigError
from musicrec_gym.session_length.summary import SUMMARY_COLUMNS, session_lengths, summarise

T0 = pd.Timestamp("2009-01-01", tz="UTC")


def frame(rows):
    return pd.DataFrame(
        [(u, T0 + pd.Timedelta(minutes=m), t) for u, m, t in rows],
        columns=["user_id", "timestamp", "track_id"],
    )


def test_length_uses_the_last_tracks_duration_when_known():
    plays = frame([("u", 0, "a"), ("u", 3, "b"), ("u", 7, "c"), ("u", 100, "a")])
    durations = pd.Series({"a": 180.0, "b": 200.0, "c": 300.0})
    sessions, fallback, dropped = session_lengths(plays, durations)
    assert sessions["length"].tolist() == [7 * 60 + 300.0, 180.0]
    assert sessions["n_plays"].tolist() == [3, 1]
    assert dropped == 0
    assert fallback == pytest.approx(210.0)  # median of the 3- and 4-minute gaps


def test_length_falls_back_to_the_median_gap_without_durations():
    plays = frame([("u", 0, "a"), ("u", 4, "b"), ("u", 8, "c"), ("u", 60, "x")])
    sessions, fallback, _ = session_lengths(plays)
    assert fallback == pytest.approx(240.0)
    assert sessions["length"].tolist() == [8 * 60 + 240.0, 240.0]


def test_summary_rows_previous_and_average(toy_summary):
    rows = toy_summary.rows
    assert list(rows.columns) == list(SUMMARY_COLUMNS)
    one = rows[rows["user_id"] == "user03"].reset_index(drop=True)
    assert np.isnan(one.loc[0, "prev_length"]) and one.loc[0, "split"] == "first"
    assert one.loc[1:, "prev_length"].tolist() == one.loc[: len(one) - 2, "length"].tolist()
    assert one.loc[3, "avg_prev_length"] == pytest.approx(one.loc[:2, "length"].mean())
    assert one.loc[0, "age"] == 50 and one.loc[0, "gender"] == "m"


def test_split_is_by_time_within_each_user(toy_summary):
    rows = toy_summary.rows
    order = {"first": 0, "train": 1, "val": 2, "test": 3}
    for _, user in rows.groupby("user_id"):
        codes = user.sort_values("timestamp")["split"].map(order).to_numpy()
        assert (np.diff(codes) >= 0).all()
        assert set(user["split"]) == {"first", "train", "val", "test"}
    counts = rows["split"].value_counts()
    assert counts["first"] == 12 and counts["train"] == 12 * 9  # round(0.7 * 13) = 9


def test_bad_split_is_a_config_error():
    with pytest.raises(ConfigError, match="split"):
        summarise(frame([("u", 0, "a")]), split=(0.5, 0.5, 0.5))


def test_describe_counts_sessions(toy_summary):
    text = toy_summary.describe()
    assert "12 users" in text and "168 sessions" in text
