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

from musicrec_gym.errors import DataFormatError

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
        DataFormatError: A required column is missing, a timestamp cannot be read or
            is missing, or ``gap_minutes`` is not a positive number.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in history.columns]
    if missing:
        raise DataFormatError(
            f"sessionise: history is missing column(s) {missing}; "
            f"expected at least {list(REQUIRED_COLUMNS)}, got {list(history.columns)}"
        )
    if not (isinstance(gap_minutes, int | float) and np.isfinite(gap_minutes) and gap_minutes > 0):
        raise DataFormatError(
            f"sessionise: gap_minutes must be a positive number of minutes, got {gap_minutes!r}"
        )
    frame = history.copy()
    frame["timestamp"] = _as_datetime(frame["timestamp"])

    before = len(frame)
    frame = frame.drop_duplicates(keep="first")
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


def _as_datetime(column: pd.Series) -> pd.Series:
    """Return ``column`` as datetime64, parsing strings as UTC; error on missing values."""
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
    values = column.dt.tz_convert("UTC") if column.dt.tz is not None else column
    return values.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9
