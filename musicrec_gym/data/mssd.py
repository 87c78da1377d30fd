"""Spotify Music Streaming Sessions Dataset (MSSD): the session log and the track features.

The session log (the ``log_mini`` / ``training_set`` schema of Brost et al., 2019, "The
Music Streaming Sessions Dataset") has one row per play: ``session_id,
session_position, session_length, track_id_clean, skip_1, skip_2, skip_3, not_skipped,
context_switch, ..., date, premium, context_type, hist_user_behavior_reason_start/end``.

What a listen is. The log has four nested outcome flags: ``skip_1`` (played very
briefly), ``skip_2`` (played briefly), ``skip_3`` (played most of it) and
``not_skipped`` (played to the end). The Spotify Sequential Skip Prediction Challenge
(WSDM Cup 2019) defines a *skip* as ``skip_2``; we follow it: ``listened = not skip_2``.
On the shared sample ``listened`` is true for about 48% of plays, ``not_skipped`` for
about 33%; a researcher who wants the stricter definition has ``not_skipped`` in the
frame.

Example:
    >>> loaded = read_mssd_log("PATH/TO/log_mini.csv")  # doctest: +SKIP
    >>> print(loaded.report.summary())  # doctest: +SKIP
    log_sample.csv.gz: 70,030 rows, kept 70,030; nothing dropped
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from musicrec_gym.data.column_parsers import (
    blank_rows,
    check_ids,
    parse_bool,
    parse_datetime,
    parse_float,
    parse_id,
    parse_int,
)
from musicrec_gym.data.loading import LINE, Loaded, RowDropper
from musicrec_gym.data.table_reader import read_table

__all__ = [
    "LOG_COLUMNS",
    "TRACK_FEATURE_COLUMNS",
    "read_mssd_log",
    "read_mssd_track_features",
    "write_mssd",
]

#: Columns an MSSD session log must have (all others are kept as read).
LOG_COLUMNS = (
    "session_id", "session_position", "session_length", "track_id_clean",
    "skip_1", "skip_2", "skip_3", "not_skipped", "date",
)  # fmt: skip
_SKIP_FLAGS = ("skip_1", "skip_2", "skip_3", "not_skipped")

#: Columns an MSSD track-features file must have (all others are kept as read).
TRACK_FEATURE_COLUMNS = ("track_id", "duration", *(f"acoustic_vector_{i}" for i in range(8)))


def read_mssd_log(path: str | Path) -> Loaded:
    """Read an MSSD session log (``.csv`` or ``.csv.gz``), validated.

    Rows dropped, each counted in the report: blank lines, exact duplicate rows, rows with
    an empty ``track_id_clean``, and a second row for the same ``(session_id,
    session_position)`` (the first is kept).

    Args:
        path: The log file.

    Returns:
        The frame, sorted by ``(session_id, session_position)`` with a fresh index; the
        columns ``session_id`` (str), ``session_position`` (int, 1-based),
        ``session_length`` (int), ``track_id`` (str, from ``track_id_clean``), ``skip_1``,
        ``skip_2``, ``skip_3``, ``not_skipped``, ``listened`` (bool; ``listened = not
        skip_2``, the skip definition of the Spotify Sequential Skip Prediction Challenge),
        ``date`` (datetime64), then every other column of the file as read; and the report.

    Raises:
        DataFormatError: The file is missing, empty, a truncated gzip, or lacks a column of
            :data:`LOG_COLUMNS`; or a value is of the wrong type (an empty session id, a
            position or length that is not an integer >= 1, a skip flag that is not a
            boolean, a date that does not parse or lies outside 1677-09-22 .. 2262-04-11, an
            id longer than 1,000 characters). The message names the file, line, column and
            value.
    """
    frame = read_table(path, LOG_COLUMNS, what="MSSD session log")
    rows = RowDropper(frame)
    rows.drop(blank_rows(rows.frame), "blank line")
    rows.drop_duplicates(None, "exact duplicate row")
    frame = rows.frame
    parsed = {
        "session_id": parse_id(frame, "session_id", path),
        "session_position": parse_int(frame, "session_position", path, minimum=1),
        "session_length": parse_int(frame, "session_length", path, minimum=1),
        "track_id": frame["track_id_clean"].str.strip().astype(str),
    }
    check_ids(frame, parsed["track_id"], "track_id_clean", path)
    for flag in _SKIP_FLAGS:
        parsed[flag] = parse_bool(frame, flag, path)
    parsed["listened"] = ~parsed["skip_2"]
    parsed["date"] = parse_datetime(
        frame, "date", path, expected="a date like 2018-07-15 (ISO 8601)"
    )
    others = [c for c in frame.columns if c not in LOG_COLUMNS and c != LINE]
    out = pd.DataFrame(parsed, index=frame.index)
    out = pd.concat([out, frame[others], frame[[LINE]]], axis=1)

    rows.frame = out
    rows.drop((out["track_id"] == "").to_numpy(), "empty track_id_clean")
    rows.drop_duplicates(
        ["session_id", "session_position"], "duplicate (session_id, session_position)"
    )
    out = rows.frame.sort_values(["session_id", "session_position"], kind="stable")
    out = out.drop(columns=[LINE]).reset_index(drop=True)
    return Loaded(out, rows.report(path))


def read_mssd_track_features(path: str | Path) -> Loaded:
    """Read an MSSD track-features file (``.csv`` or ``.csv.gz``), validated.

    Rows dropped, each counted in the report: blank lines, rows with an empty
    ``track_id``, and a repeated ``track_id`` (the first row is kept).

    Args:
        path: The file (``track_id, duration, ..., acoustic_vector_0..7``; a UTF-8 byte
            order mark is accepted).

    Returns:
        The frame in file order: ``track_id`` (str), ``duration`` (float seconds),
        ``acoustic_vector_0`` .. ``acoustic_vector_7`` (float), then every other column as
        read; and the report.

    Raises:
        DataFormatError: The file is missing, empty, a truncated gzip, or lacks a column of
            :data:`TRACK_FEATURE_COLUMNS`; or a duration is not a finite number >= 0 or an
            acoustic vector value is not a finite number (file, line, column and value
            named).
    """
    frame = read_table(path, TRACK_FEATURE_COLUMNS, what="MSSD track-features file")
    rows = RowDropper(frame)
    rows.drop(blank_rows(rows.frame), "blank line")
    frame = rows.frame
    track = frame["track_id"].str.strip().astype(str)
    rows.drop((track == "").to_numpy(), "empty track_id")
    frame = rows.frame
    parsed: dict[str, object] = {"track_id": frame["track_id"].str.strip().astype(str)}
    check_ids(frame, parsed["track_id"], "track_id", path)
    parsed["duration"] = parse_float(frame, "duration", path, finite=True, minimum=0)
    for column in TRACK_FEATURE_COLUMNS[2:]:
        parsed[column] = parse_float(frame, column, path, finite=True)
    others = [c for c in frame.columns if c not in TRACK_FEATURE_COLUMNS and c != LINE]
    out = pd.concat([pd.DataFrame(parsed, index=frame.index), frame[[*others, LINE]]], axis=1)
    rows.frame = out
    rows.drop_duplicates(["track_id"], "duplicate track_id")
    out = rows.frame.drop(columns=[LINE]).reset_index(drop=True)
    return Loaded(out, rows.report(path))


def write_mssd(frame: pd.DataFrame, path: Path) -> None:
    """Write loaded MSSD rows back in the MSSD file format (gzip with a fixed timestamp).

    ``track_id`` becomes ``track_id_clean`` again, the derived ``listened`` column is
    dropped and dates are written as ``YYYY-MM-DD``, so ``read_mssd_log`` reads it back.
    """
    out = frame.drop(columns=["listened"], errors="ignore").rename(
        columns={"track_id": "track_id_clean"}
    )
    if "date" in out and pd.api.types.is_datetime64_any_dtype(out["date"]):
        out = out.assign(date=out["date"].dt.strftime("%Y-%m-%d"))
    out.to_csv(path, index=False, compression={"method": "gzip", "mtime": 0})
