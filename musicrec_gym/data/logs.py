"""Logged sessions of a simulated world, in the Spotify (MSSD) and Last.fm-1K schemas.

The sessions come from the simulator's logging policy (``musicrec_gym.sim.sessions``):
its radio-like warm-up policy (popularity mixed with the listener's taste), so the logs
look like what a production recommender records; the track embeddings and the session
encoder are then learned from these logs only. This module only writes them out.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_SESSION_TRACKS = 20
MSSD_COLUMNS = (
    "session_id", "session_position", "session_length", "track_id_clean",
    "skip_1", "skip_2", "skip_3", "not_skipped", "context_type", "date", "hour_of_day",
    "user_id",
)  # fmt: skip


def to_mssd(
    users: np.ndarray,
    lengths: np.ndarray,
    tracks: np.ndarray,
    listened: np.ndarray,
    track_ids: np.ndarray,
    user_ids: np.ndarray,
    seed: int,
) -> pd.DataFrame:
    """Lay simulated sessions out in the MSSD ``log_mini`` schema (one row per play).

    ``not_skipped`` is the listen outcome; a skipped play sets ``skip_3`` and, with
    decreasing probability, ``skip_2`` and ``skip_1`` (how early it was skipped).
    """
    rng = np.random.default_rng([seed, 1])
    n = len(users)
    rows_s, rows_p = np.nonzero(tracks >= 0)
    skipped = listened[rows_s, rows_p] == 0
    u = rng.random((len(rows_s), 2))
    skip_2 = skipped & (u[:, 0] < 0.8)
    skip_1 = skip_2 & (u[:, 1] < 0.5)
    day = rng.integers(0, 61, size=n)
    hour = rng.integers(0, 24, size=n)
    dates = (pd.Timestamp("2018-07-01") + pd.to_timedelta(day, unit="D")).strftime("%Y-%m-%d")
    return pd.DataFrame(
        {
            "session_id": np.char.add("s", np.char.zfill(rows_s.astype(str), 7)),
            "session_position": rows_p + 1,
            "session_length": lengths[rows_s],
            "track_id_clean": track_ids[tracks[rows_s, rows_p]],
            "skip_1": skip_1,
            "skip_2": skip_2,
            "skip_3": skipped,
            "not_skipped": ~skipped,
            "context_type": "radio",
            "date": np.asarray(dates)[rows_s],
            "hour_of_day": hour[rows_s],
            "user_id": user_ids[users[rows_s]],
        },
        columns=list(MSSD_COLUMNS),
    )


def to_lastfm(
    users: np.ndarray,
    tracks: np.ndarray,
    listened: np.ndarray,
    catalog: pd.DataFrame,
    user_ids: np.ndarray,
    seed: int,
) -> pd.DataFrame:
    """Lay simulated sessions out as Last.fm-1K histories (user, timestamp, artist, track).

    Each listener's sessions follow one another with gaps of at least an hour (mean about
    three days); within a session a listened track plays whole and a skipped one for
    10–30% of its duration.
    """
    rng = np.random.default_rng([seed, 2])
    n = len(users)
    order = np.lexsort((np.arange(n), users))
    gaps = 3600 + rng.exponential(3 * 86400, size=n)
    start = np.empty(n)
    sorted_users = users[order]
    cum = np.cumsum(gaps[order])
    first = np.r_[True, sorted_users[1:] != sorted_users[:-1]]
    offset = np.maximum.accumulate(np.where(first, cum - gaps[order], 0.0))
    start[order] = pd.Timestamp("2008-01-01").timestamp() + cum - offset
    rows_s, rows_p = np.nonzero(tracks >= 0)
    dur = catalog["duration_s"].to_numpy(dtype=np.float64)[tracks[rows_s, rows_p]]
    played = np.where(listened[rows_s, rows_p] == 1, dur, dur * rng.uniform(0.1, 0.3, len(dur)))
    # seconds since session start: cumulative plays before this one within the session
    cum_played = np.cumsum(played)
    session_first = np.r_[True, rows_s[1:] != rows_s[:-1]]
    base = np.maximum.accumulate(np.where(session_first, cum_played - played, 0.0))
    t = start[rows_s] + (cum_played - played - base)
    frame = pd.DataFrame(
        {
            "user_id": user_ids[users[rows_s]],
            "timestamp": pd.to_datetime(np.round(t), unit="s").strftime("%Y-%m-%dT%H:%M:%SZ"),
            "artist_id": catalog["artist_id"].to_numpy()[tracks[rows_s, rows_p]],
            "artist_name": catalog["artist"].to_numpy()[tracks[rows_s, rows_p]],
            "track_id": catalog["track_id"].to_numpy()[tracks[rows_s, rows_p]],
            "track_name": catalog["title"].to_numpy()[tracks[rows_s, rows_p]],
        }
    )
    return frame.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
