"""Cut Last.fm-style listening histories into sessions by the gap between plays.

A listener's plays form one session until the gap between the starts of two consecutive
plays is *strictly greater* than the threshold (default 20 minutes, the usual choice for
Last.fm-1K). A gap exactly equal to the threshold continues the session, so that a
threshold of ``g`` minutes means "at most ``g`` minutes of silence inside a session".
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from musicrec_gym.errors import ConfigError, DataFormatError

logger = logging.getLogger(__name__)

DEFAULT_GAP_MINUTES = 20.0
REQUIRED_COLUMNS = ("user_id", "timestamp")


def sessionise(history: pd.DataFrame, gap_minutes: float = DEFAULT_GAP_MINUTES) -> pd.DataFrame:
    """Add ``session_id`` and ``session_position`` to a listening history.

    Exact duplicate rows (every column equal, e.g. a scrobble sent twice) are dropped
    before cutting: the number dropped is logged as a warning and stored in
    ``result.attrs["duplicates_dropped"]``, so callers can report it.

    Args:
        history: One row per play with at least ``user_id`` and ``timestamp``
            (datetime64, tz-aware or naive; ISO strings are parsed as UTC). Row order
            does not matter.
        gap_minutes: Session gap threshold in minutes; a new session starts when the
            gap to the same user's previous play is strictly greater than this.

    Returns:
        A new frame sorted by ``(user_id, timestamp)`` (ties keep input order), with a
        fresh index and two more columns: ``session_id`` (str, ``"<user_id>:<k>"``, k
        counted from 0 per user in time order) and ``session_position`` (int, 1-based
        position of the play within its session).

    Raises:
        ConfigError: ``history`` is not a DataFrame, or ``gap_minutes`` is not a positive
            number.
        DataFormatError: A required column is missing, a user id is missing, a timestamp
            cannot be read, is a bare number (ambiguous unit) or is missing, or a column
            holds values rows cannot be compared by (lists, dicts).
    """
    if not isinstance(history, pd.DataFrame):
        raise ConfigError(
            f"sessionise: `history` must be a pandas DataFrame, got {type(history).__name__}"
        )
    missing = [c for c in REQUIRED_COLUMNS if c not in history.columns]
    if missing:
        raise DataFormatError(
            f"sessionise: history is missing column(s) {missing}; "
            f"expected at least {list(REQUIRED_COLUMNS)}, got {list(history.columns)}"
        )
    check_gap_minutes(gap_minutes)
    users = history["user_id"]
    if users.isna().any():
        rows = np.flatnonzero(users.isna().to_numpy())[:5].tolist()
        raise DataFormatError(
            f"sessionise: column 'user_id' has {int(users.isna().sum())} missing value(s) "
            f"(first rows {rows}); every play needs a user"
        )
    frame = history.copy()
    frame["timestamp"] = _as_datetime(frame["timestamp"])

    before = len(frame)
    try:
        frame = frame.drop_duplicates(keep="first")
    except TypeError as exc:  # a column of lists or dicts: rows cannot be compared
        raise DataFormatError(
            f"sessionise: cannot compare rows to drop exact duplicates ({exc}); columns "
            "must hold plain values (str, numbers, times), not lists or dicts"
        ) from exc
    dropped = before - len(frame)
    if dropped:
        logger.warning("sessionise: dropped %d exact duplicate row(s) of %d", dropped, before)

    frame = frame.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    if frame.empty:
        frame["session_id"] = pd.Series(dtype=str)
        frame["session_position"] = pd.Series(dtype=np.int64)
        frame.attrs["duplicates_dropped"] = dropped
        return frame

    user = frame["user_id"].to_numpy()
    new_user = np.r_[True, user[1:] != user[:-1]]
    seconds = _epoch_seconds(frame["timestamp"])
    gap = np.r_[np.inf, np.diff(seconds)]
    new_session = new_user | (gap > gap_minutes * 60.0)

    session_index = np.cumsum(new_session) - 1  # global session counter
    first_session_of_user = np.maximum.accumulate(np.where(new_user, session_index, 0))
    k = session_index - first_session_of_user
    start_row = np.maximum.accumulate(np.where(new_session, np.arange(len(frame)), 0))

    frame["session_id"] = frame["user_id"].astype(str) + ":" + pd.Series(k).astype(str)
    frame["session_position"] = (np.arange(len(frame)) - start_row + 1).astype(np.int64)
    frame.attrs["duplicates_dropped"] = dropped
    return frame


def check_gap_minutes(gap_minutes: object) -> None:
    """Refuse a session gap that is not a positive, finite number of minutes.

    Raises:
        ConfigError: Naming ``gap_minutes`` and the value.
    """
    number = isinstance(gap_minutes, int | float) and not isinstance(gap_minutes, bool)
    if not (number and np.isfinite(gap_minutes) and gap_minutes > 0):
        raise ConfigError(
            f"sessionise: `gap_minutes` must be a positive number of minutes, got {gap_minutes!r}"
        )


def _as_datetime(column: pd.Series) -> pd.Series:
    """Return ``column`` as datetime64, parsing strings as UTC; error on missing values."""
    if len(column) and (pd.api.types.is_numeric_dtype(column) or column.dtype == bool):
        raise DataFormatError(
            f"sessionise: column 'timestamp' must be datetime64 or ISO-8601 strings, got "
            f"{column.dtype} numbers (seconds? milliseconds?); convert them with "
            "pd.to_datetime(..., unit=...) first"
        )
    if not pd.api.types.is_datetime64_any_dtype(column):
        try:
            column = pd.to_datetime(column, utc=True)
        except (ValueError, TypeError) as exc:
            raise DataFormatError(
                f"sessionise: column 'timestamp' must be datetime64 or ISO-8601 strings; {exc}"
            ) from exc
    if column.isna().any():
        rows = np.flatnonzero(column.isna().to_numpy())[:5].tolist()
        raise DataFormatError(
            f"sessionise: column 'timestamp' has {int(column.isna().sum())} missing value(s) "
            f"(first rows {rows}); drop them before sessionising"
        )
    return column


def _epoch_seconds(column: pd.Series) -> np.ndarray:
    """Seconds since the epoch as float64 (tz-aware and naive times alike)."""
    values = column.dt.tz_convert("UTC").dt.tz_localize(None) if column.dt.tz else column
    # Microseconds hold any year a datetime can (nanoseconds stop in 2262).
    return values.dt.as_unit("us").to_numpy(dtype="datetime64[us]").astype(np.int64) / 1e6
