"""Last.fm-1K: listening histories and user profiles.

The dataset is Celma's (2010, "Music Recommendation and Discovery in the Long Tail").
The history is a tab-separated file without a header, one scrobble per line:
``user_id, timestamp (ISO 8601, UTC), artist mbid, artist name, track mbid, track name``.
Many rows have no MusicBrainz ids (a quarter of the shared sample has no track mbid), so
:func:`read_lastfm_history` adds ``track_key``: the track mbid when there is one, else
``"<artist_name> - <track_name>"``. Use ``track_key`` as the token of a track.

The profile file is a tab-separated file with the header
``#id, gender, age, country, registered`` (dates like ``Aug 13, 2006``); most fields may
be empty.

Sessions are not cut here: :func:`musicrec_gym.data.sessionize.sessionise` does that
(20-minute gap by default).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from musicrec_gym.data.column_parsers import (
    blank_rows,
    check_ids,
    parse_datetime,
    parse_float,
    parse_id,
)
from musicrec_gym.data.loading import LINE, Loaded, RowDropper, shown
from musicrec_gym.data.table_reader import read_table
from musicrec_gym.errors import DataFormatError

__all__ = [
    "HISTORY_COLUMNS",
    "PROFILE_COLUMNS",
    "read_lastfm_history",
    "read_lastfm_profiles",
]

#: The six columns of a Last.fm-1K history file, in file order (the file has no header).
HISTORY_COLUMNS = ("user_id", "timestamp", "artist_id", "artist_name", "track_id", "track_name")

#: Columns of the profile file (its header names the first one ``#id``).
PROFILE_COLUMNS = ("user_id", "gender", "age", "country", "registered")

_GENDERS = ("m", "f", "")


def read_lastfm_history(path: str | Path) -> Loaded:
    """Read a Last.fm-1K listening history (TSV, optionally ``.gz``), validated.

    Rows dropped, each counted in the report: blank lines, a header line (the original
    files have none, but a ``user_id<TAB>timestamp...`` line is recognised), exact
    duplicate rows (a scrobble sent twice), and rows with neither a track mbid nor a
    track name.

    Args:
        path: The history file.

    Returns:
        The frame, sorted by ``(user_id, timestamp)`` (ties keep file order) with a fresh
        index: ``user_id``, ``timestamp`` (``datetime64[ns, UTC]``), ``artist_id``,
        ``artist_name``, ``track_id``, ``track_name`` (str, ``""`` when missing) and
        ``track_key`` (the track mbid, else ``"<artist_name> - <track_name>"``); and the
        report.

    Raises:
        DataFormatError: The file is missing, empty, a truncated gzip, or a line does not
            have 6 tab-separated fields; or a user id is empty, an id (user, artist or
            track mbid) is longer than 1,000 characters, or a timestamp does not parse or
            lies outside 1677-09-22 .. 2262-04-11 (e.g. a placeholder ``9999-12-31``):
            file, line, column and value named. Like every other bad value, a bad
            timestamp stops the read rather than dropping the row: a history with a
            made-up time would cut sessions wrongly.
    """
    frame = read_table(
        path,
        HISTORY_COLUMNS,
        sep="\t",
        names=HISTORY_COLUMNS,
        what="Last.fm-1K history (6 tab-separated columns, no header)",
    )
    rows = RowDropper(frame)
    rows.drop(blank_rows(rows.frame), "blank line")
    header = (rows.frame["timestamp"].str.strip().str.lower() == "timestamp").to_numpy()
    rows.drop(header, "header line")
    rows.drop_duplicates(None, "exact duplicate row")
    frame = rows.frame
    out = frame.copy()
    out["user_id"] = parse_id(frame, "user_id", path)
    out["timestamp"] = parse_datetime(
        frame,
        "timestamp",
        path,
        utc=True,
        expected="an ISO-8601 time like 2009-05-04T23:08:57Z",
    )
    for column in ("artist_id", "artist_name", "track_id", "track_name"):
        out[column] = frame[column].str.strip().astype(str)
    for column in ("artist_id", "track_id"):
        check_ids(frame, out[column], column, path)
    rows.frame = out
    rows.drop(
        ((out["track_id"] == "") & (out["track_name"] == "")).to_numpy(),
        "no track mbid and no track name",
    )
    out = rows.frame
    out["track_key"] = out["track_id"].where(
        out["track_id"] != "", out["artist_name"] + " - " + out["track_name"]
    )
    out = out.sort_values(["user_id", "timestamp"], kind="stable")
    out = out[[*HISTORY_COLUMNS, "track_key"]].reset_index(drop=True)
    return Loaded(out, rows.report(path))


def read_lastfm_profiles(path: str | Path) -> Loaded:
    """Read the Last.fm-1K user profiles (TSV with a header, optionally ``.gz``), validated.

    Rows dropped, each counted in the report: blank lines and a repeated user id (the
    first row is kept).

    Args:
        path: The profile file (header ``#id, gender, age, country, registered``; ``user_id``
            is accepted for ``#id``).

    Returns:
        The frame in file order: ``user_id`` (str), ``gender`` (``"m"``, ``"f"`` or ``""``
        when missing; upper case is lowered), ``age`` (float, NaN when missing),
        ``country`` (str, ``""`` when missing), ``registered`` (``datetime64[ns]``, NaT when
        missing), then any other column as read; and the report.

    Raises:
        DataFormatError: The file is missing, empty, a truncated gzip, or lacks a column;
            or a user id is empty, a gender is not m/f/empty, an age is not a finite number
            or a registration date is not like ``Aug 13, 2006`` (or outside 1677-09-22 ..
            2262-04-11): file, line, column and value named.
    """
    frame = read_table(
        path,
        PROFILE_COLUMNS,
        sep="\t",
        aliases={"#id": "user_id", "id": "user_id"},
        what="Last.fm-1K profile file",
    )
    rows = RowDropper(frame)
    rows.drop(blank_rows(rows.frame), "blank line")
    frame = rows.frame
    out = frame.copy()
    out["user_id"] = parse_id(frame, "user_id", path)
    gender = frame["gender"].str.strip().str.lower()
    bad = ~gender.isin(_GENDERS).to_numpy(dtype=bool)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise DataFormatError(
            f"{path}: line {int(frame[LINE].iloc[first])}: column 'gender' must be 'm', 'f' "
            f"or empty, got {shown(frame['gender'].iloc[first])}"
        )
    out["gender"] = gender.astype(str)
    out["age"] = parse_float(frame, "age", path, allow_missing=True, finite=True)
    out["country"] = frame["country"].str.strip().astype(str)
    out["registered"] = parse_datetime(
        frame,
        "registered",
        path,
        fmt="%b %d, %Y",
        allow_missing=True,
        expected="a date like 'Aug 13, 2006'",
    )
    rows.frame = out
    rows.drop_duplicates(["user_id"], "duplicate user_id")
    others = [c for c in out.columns if c not in PROFILE_COLUMNS and c != LINE]
    out = rows.frame[[*PROFILE_COLUMNS, *others]].reset_index(drop=True)
    return Loaded(out, rows.report(path))
