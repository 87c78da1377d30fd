"""Implicit-feedback event logs: who did what to which song, with the strength of each event.

A log is a CSV file (optionally ``.gz``) with the header
``user_id, item_id, listening_time_in_scale_0-5, title, duration, event_type``, one event
per line. The log has no timestamp: file order is the only order of a user's events.
Each ``event_type`` maps to a signed strength (docs/design.md §1), the implicit rating that an
event-based reward or a weighted factorisation uses:

==========================  ========
event_type                  strength
==========================  ========
Listen it frequently        3
Download                    3
Add it to your music        2
Have listened it completely 1
Like                        1
View Song Information       1
Skip it                     -1
Not recommend it anymore    -2
Skip it frequently          -3
==========================  ========

Event types are matched ignoring case and repeated spaces; anything else is an error
that names the line, suggests the closest type and lists the allowed ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from musicrec_gym.data.column_parsers import blank_rows, check_ids, parse_float, parse_id
from musicrec_gym.data.loading import LINE, Loaded, RowDropper, shown
from musicrec_gym.data.table_reader import read_table
from musicrec_gym.errors import DataFormatError, unknown_name_message

__all__ = ["EVENT_COLUMNS", "EVENT_STRENGTHS", "LISTENING_TIME", "read_event_log"]

#: Signed strength of each event type (docs/design.md §1).
EVENT_STRENGTHS: dict[str, int] = {
    "Listen it frequently": 3,
    "Have listened it completely": 1,
    "Like": 1,
    "View Song Information": 1,
    "Download": 3,
    "Add it to your music": 2,
    "Skip it": -1,
    "Skip it frequently": -3,
    "Not recommend it anymore": -2,
}

#: The listening-time column: how much of the song was heard, on a 0-5 scale.
LISTENING_TIME = "listening_time_in_scale_0-5"

#: Columns an event log must have, in the usual file order.
EVENT_COLUMNS = ("user_id", "item_id", LISTENING_TIME, "title", "duration", "event_type")

_CANONICAL = {" ".join(name.split()).casefold(): name for name in EVENT_STRENGTHS}


def read_event_log(path: str | Path) -> Loaded:
    """Read an implicit-feedback event log, validated, with each event's strength.

    Rows dropped, each counted in the report: blank lines and events with an empty
    ``item_id``. Repeated identical rows are kept: without timestamps, two equal events
    are as likely to be two real events (a song liked, unliked and liked again) as a
    duplicate.

    Args:
        path: The CSV file (``.gz`` allowed).

    Returns:
        The events in file order: ``user_id``, ``item_id`` (str),
        ``listening_time_in_scale_0-5`` (float in [0, 5]), ``title`` (str),
        ``duration`` (float >= 0, NaN when empty), ``event_type`` (the canonical spelling of
        the table above), ``strength`` (int), then any other column as read; and the
        report.

    Raises:
        DataFormatError: The file is missing, empty, a truncated gzip, or lacks a column of
            :data:`EVENT_COLUMNS`; or a user id is empty, an id is longer than 1,000
            characters, a listening time is not a number in [0, 5], a duration is not a
            finite number >= 0 (or empty), or an event type is unknown (file,
            line, column and value named; unknown types get a "did you mean" and the list
            of allowed ones).
    """
    frame = read_table(path, EVENT_COLUMNS, what="implicit-feedback event log")
    rows = RowDropper(frame)
    rows.drop(blank_rows(rows.frame), "blank line")
    item = rows.frame["item_id"].str.strip()
    rows.drop((item == "").to_numpy(), "empty item_id")
    frame = rows.frame
    check_ids(frame, frame["item_id"].str.strip(), "item_id", path)
    listening = parse_float(frame, LISTENING_TIME, path)
    outside = ~((listening >= 0) & (listening <= 5))
    if outside.any():
        first = int(np.flatnonzero(outside)[0])
        raise DataFormatError(
            f"{path}: line {int(frame[LINE].iloc[first])}: column {LISTENING_TIME!r} must be a "
            f"number from 0 to 5, got {shown(frame[LISTENING_TIME].iloc[first])}"
        )
    typed = frame["event_type"].map(lambda s: " ".join(str(s).split()))
    canonical = typed.str.casefold().map(_CANONICAL)
    unknown = canonical.isna().to_numpy()
    if unknown.any():
        first = int(np.flatnonzero(unknown)[0])
        raise DataFormatError(
            f"{path}: line {int(frame[LINE].iloc[first])}: column 'event_type': "
            + unknown_name_message("event type", typed.iloc[first], EVENT_STRENGTHS)
        )
    out = pd.DataFrame(
        {
            "user_id": parse_id(frame, "user_id", path),
            "item_id": frame["item_id"].str.strip().astype(str),
            LISTENING_TIME: listening,
            "title": frame["title"].astype(str),
            "duration": parse_float(
                frame, "duration", path, allow_missing=True, finite=True, minimum=0
            ),
            "event_type": canonical.astype(str),
            "strength": canonical.map(EVENT_STRENGTHS).astype(np.int64),
        },
        index=frame.index,
    )
    others = [c for c in frame.columns if c not in EVENT_COLUMNS and c != LINE]
    out = pd.concat([out, frame[others]], axis=1).reset_index(drop=True)
    return Loaded(out, rows.report(path))
