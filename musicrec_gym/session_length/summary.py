"""Per-user session summary rows and their split by time.

One row per session: when it started, whose it was, the listener's profile, the length of
the previous session, the average length of all previous sessions, and the session's own
length (the target). Lengths are in seconds:

    length = start of the last play - start of the first play + duration of the last play

where the last play's duration is the track's duration when the caller knows it (the
synthetic world's catalog) and otherwise the *median gap between consecutive plays inside
sessions* of the whole history, our estimate of a typical track's duration (Last.fm-1K
has no durations). A one-play session is therefore one typical track long, never 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from musicrec_gym.data.sessionize import DEFAULT_GAP_MINUTES, sessionise
from musicrec_gym.errors import ConfigError, DataFormatError

PROFILE_COLUMNS = ("gender", "age", "country", "registered")
SUMMARY_COLUMNS = (
    "timestamp", "user_id", "session_id", "session_index", *PROFILE_COLUMNS,
    "n_plays", "prev_length", "avg_prev_length", "length", "split",
)  # fmt: skip
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SessionSummary:
    """Summary rows and how they were made.

    Attributes:
        rows: One row per session, ``SUMMARY_COLUMNS``, sorted by (user_id, timestamp).
            ``split`` is ``"first"`` for each user's first session (no previous session,
            so never a target) and train/val/test for the others.
        fallback_duration_s: Duration used for a last play of unknown duration.
        duplicates_dropped: Exact duplicate plays dropped by sessionisation.
        n_plays: Plays after dropping duplicates.
    """

    rows: pd.DataFrame
    fallback_duration_s: float
    duplicates_dropped: int
    n_plays: int

    def describe(self) -> str:
        """One line: plays, users, sessions, split sizes."""
        counts = self.rows["split"].value_counts()
        parts = ", ".join(f"{s} {int(counts.get(s, 0))}" for s in SPLITS)
        return (
            f"{self.n_plays} plays ({self.duplicates_dropped} duplicate(s) dropped), "
            f"{self.rows['user_id'].nunique()} users, {len(self.rows)} sessions "
            f"(targets: {parts}); median session {self.rows['length'].median() / 60:.1f} min"
        )


def session_lengths(
    plays: pd.DataFrame,
    durations: pd.Series | None = None,
    gap_minutes: float = DEFAULT_GAP_MINUTES,
) -> tuple[pd.DataFrame, float, int]:
    """Sessionise plays and measure every session.

    Args:
        plays: user_id, timestamp and (when ``durations`` is given) track_id per play.
        durations: Track duration in seconds, indexed by track_id (optional).
        gap_minutes: Session gap threshold (see ``sessionise``).

    Returns:
        ``(sessions, fallback_duration_s, duplicates_dropped)``: one row per session with
        user_id, session_id, session_index, timestamp (start), n_plays and length (s).
    """
    frame = sessionise(plays, gap_minutes=gap_minutes)
    dropped = int(frame.attrs.get("duplicates_dropped", 0))
    if frame.empty:
        raise DataFormatError("session_lengths: the history has no plays")
    seconds = frame["timestamp"].astype("int64").to_numpy() / 1e9
    if frame["timestamp"].dt.unit != "ns":
        seconds = frame["timestamp"].dt.as_unit("ns").astype("int64").to_numpy() / 1e9
    same = (frame["session_position"].to_numpy() > 1)[1:]
    gaps = np.diff(seconds)[same]
    fallback = float(np.median(gaps)) if len(gaps) else 180.0
    if durations is not None and len(durations):
        known = frame["track_id"].astype(str).map(durations) if "track_id" in frame else None
        last_duration = known.fillna(fallback).to_numpy(dtype=np.float64)
    else:
        last_duration = np.full(len(frame), fallback)
    frame = frame.assign(_t=seconds, _d=last_duration)
    groups = frame.groupby("session_id", sort=False)
    sessions = groups.agg(
        user_id=("user_id", "first"),
        timestamp=("timestamp", "first"),
        n_plays=("session_position", "max"),
        t0=("_t", "first"),
        t1=("_t", "last"),
        d_last=("_d", "last"),
    ).reset_index()
    sessions["length"] = sessions["t1"] - sessions["t0"] + sessions["d_last"]
    sessions["session_index"] = sessions["session_id"].str.rsplit(":", n=1).str[1].astype(np.int64)
    sessions = sessions.sort_values(["user_id", "session_index"], kind="stable")
    cols = ["user_id", "session_id", "session_index", "timestamp", "n_plays", "length"]
    return sessions[cols].reset_index(drop=True), fallback, dropped


def summarise(
    plays: pd.DataFrame,
    profiles: pd.DataFrame | None = None,
    durations: pd.Series | None = None,
    gap_minutes: float = DEFAULT_GAP_MINUTES,
    split: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> SessionSummary:
    """Build the per-user summary rows and split each user's sessions by time.

    Each user's sessions after the first are targets; the first ``round(0.7 n)`` of the
    user's ``n`` targets are train, the next up to ``round(0.85 n)`` validation, the rest
    test (with the default fractions), so every test session is later than every training
    session of the same user.

    Args:
        plays: Last.fm-style plays (user_id, timestamp, optionally track_id).
        profiles: user_id, gender, age, country, registered (optional; missing users
            and values stay empty).
        durations: Track durations in seconds by track_id (optional).
        gap_minutes: Session gap threshold.
        split: Train, validation and test fractions (sum 1).

    Returns:
        The summary.
    """
    if len(split) != 3 or min(split) < 0 or abs(sum(split) - 1.0) > 1e-6:
        raise ConfigError(f"`split` must be three fractions >= 0 summing to 1, got {split!r}")
    sessions, fallback, dropped = session_lengths(plays, durations, gap_minutes)
    by_user = sessions.groupby("user_id", sort=False)["length"]
    sessions["prev_length"] = by_user.shift(1)
    cum = by_user.cumsum() - sessions["length"]
    sessions["avg_prev_length"] = cum / sessions["session_index"].replace(0, np.nan)

    n_targets = sessions.groupby("user_id", sort=False)["session_index"].transform("max")
    rank = sessions["session_index"] - 1
    cut1 = np.round(split[0] * n_targets)
    cut2 = np.round((split[0] + split[1]) * n_targets)
    sessions["split"] = np.where(
        sessions["session_index"] == 0,
        "first",
        np.where(rank < cut1, "train", np.where(rank < cut2, "val", "test")),
    )
    if profiles is not None:
        prof = profiles.drop_duplicates("user_id").set_index("user_id")
        for col in PROFILE_COLUMNS:
            values = prof[col] if col in prof else pd.Series(dtype=object)
            sessions[col] = sessions["user_id"].map(values)
    else:
        for col in PROFILE_COLUMNS:
            sessions[col] = np.nan
    rows = sessions[list(SUMMARY_COLUMNS)].reset_index(drop=True)
    return SessionSummary(
        rows=rows,
        fallback_duration_s=fallback,
        duplicates_dropped=dropped,
        n_plays=int(len(plays) - dropped),
    )
