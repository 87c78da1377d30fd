"""Parsers of the columns :func:`~musicrec_gym.data.table_reader.read_table` reads as text.

Each checks every value of one column and raises one
:class:`~musicrec_gym.errors.DataFormatError` for the first bad one, naming the file, its
line, the column and the value (cut by :func:`~musicrec_gym.data.loading.shown`), with
the count of further bad values. Identifiers longer than
:data:`~musicrec_gym.data.loading.MAX_ID_LENGTH` characters are refused
(:func:`parse_id`, :func:`check_ids`): such a value is a broken file (a lost quote or
line break), not an id, and a world whose CSV files held it could not be read back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from musicrec_gym.data.loading import LINE, MAX_ID_LENGTH, shown
from musicrec_gym.errors import DataFormatError

__all__ = [
    "blank_rows",
    "check_ids",
    "parse_bool",
    "parse_datetime",
    "parse_float",
    "parse_id",
    "parse_int",
]

#: The range of ``datetime64[ns]``, the type every loader returns dates and times in.
_TIME_RANGE = "between 1677-09-22 and 2262-04-11"

_TRUE = frozenset({"true", "1", "t", "yes"})
_FALSE = frozenset({"false", "0", "f", "no"})


def blank_rows(frame: pd.DataFrame) -> np.ndarray:
    """Rows whose every data column is empty (the blank lines of the file).

    Args:
        frame: Rows from :func:`read_table`.

    Returns:
        Bool mask, one entry per row.
    """
    cols = [c for c in frame.columns if c != LINE]
    blank = np.ones(len(frame), dtype=bool)
    for c in cols:  # each column only checks the rows still blank so far
        rows = np.flatnonzero(blank)
        if not len(rows):
            break
        values = frame[c].iloc[rows]
        if pd.api.types.is_string_dtype(values) or values.dtype == object:
            empty = values.fillna("").astype(str).to_numpy() == ""
        else:
            empty = values.isna().to_numpy()
        blank[rows[~empty]] = False
    return blank


def _fail(path: str | Path, frame: pd.DataFrame, bad: np.ndarray, column: str, expected: str):
    """Raise the error for the first bad value of ``column``."""
    rows = np.flatnonzero(bad)
    first = rows[0]
    value = frame[column].iloc[first]
    more = f" ({len(rows) - 1:,} more bad value(s) in this column)" if len(rows) > 1 else ""
    raise DataFormatError(
        f"{path}: line {int(frame[LINE].iloc[first])}: column {column!r} must be {expected}, "
        f"got {shown(value)}{more}"
    )


def _strings(frame: pd.DataFrame, column: str) -> pd.Series:
    return frame[column].fillna("").astype(str).str.strip()


def parse_id(frame: pd.DataFrame, column: str, path: str | Path) -> pd.Series:
    """Parse a required, non-empty identifier column (surrounding spaces stripped).

    Args:
        frame: Rows from :func:`read_table`.
        column: The column (strings).
        path: The file, for messages.

    Returns:
        The ids as strings, indexed like ``frame``.

    Raises:
        DataFormatError: On the first empty id, or one longer than :data:`MAX_ID_LENGTH`
            characters (file, line and column named).
    """
    text = _strings(frame, column)
    empty = (text == "").to_numpy(dtype=bool)
    if empty.any():
        _fail(path, frame, empty, column, "a non-empty id")
    check_ids(frame, text, column, path)
    return text


def check_ids(frame: pd.DataFrame, ids: pd.Series, column: str, path: str | Path) -> None:
    """Refuse ids longer than :data:`MAX_ID_LENGTH` characters.

    Args:
        frame: Rows from :func:`read_table` (for the line numbers).
        ids: The ids, one per row of ``frame`` (empty ones are allowed here).
        column: The column, for messages.
        path: The file, for messages.

    Raises:
        DataFormatError: On the first id that is too long (file, line and column named).
    """
    long = (ids.str.len() > MAX_ID_LENGTH).to_numpy(dtype=bool)
    if long.any():
        _fail(path, frame, long, column, f"an id of at most {MAX_ID_LENGTH:,} characters")


def parse_int(
    frame: pd.DataFrame, column: str, path: str | Path, *, minimum: int | None = None
) -> np.ndarray:
    """Parse a required integer column (``"3"``, ``"+3"`` and ``"3.0"`` are 3).

    Args:
        frame: Rows from :func:`read_table`.
        column: The column (strings).
        path: The file, for messages.
        minimum: Smallest allowed value, if any.

    Returns:
        Int64 values.

    Raises:
        DataFormatError: On the first value that is empty, not an integer or below
            ``minimum`` (file, line, column and value named).
    """
    text = _strings(frame, column)
    ok = text.str.fullmatch(r"[+-]?\d{1,18}(\.0*)?").to_numpy(dtype=bool)  # "3.0" is 3
    expected = "an integer" + (f" >= {minimum}" if minimum is not None else "")
    if not ok.all():
        _fail(path, frame, ~ok, column, expected)
    values = text.str.replace(r"\.0*$", "", regex=True).astype(np.int64).to_numpy()
    if minimum is not None and (values < minimum).any():
        _fail(path, frame, values < minimum, column, expected)
    return values


def parse_float(
    frame: pd.DataFrame,
    column: str,
    path: str | Path,
    *,
    allow_missing: bool = False,
    finite: bool = False,
    minimum: float | None = None,
) -> np.ndarray:
    """Parse a float column.

    Args:
        frame: Rows from :func:`read_table`.
        column: The column (strings).
        path: The file, for messages.
        allow_missing: An empty cell becomes NaN instead of an error.
        finite: Refuse ``nan``, ``inf`` and ``-inf`` written out (an empty cell is still
            allowed with ``allow_missing``).
        minimum: Smallest allowed value, if any (e.g. 0 for a duration).

    Returns:
        Float64 values.

    Raises:
        DataFormatError: On the first value that is not a number (or empty, unless
            allowed), not finite (with ``finite``) or below ``minimum``.
    """
    text = _strings(frame, column)
    empty = (text == "").to_numpy(dtype=bool)
    values = pd.to_numeric(text.replace("", np.nan), errors="coerce").to_numpy(dtype=np.float64)
    bad = np.isnan(values) & ~(text.str.lower().isin(["nan"]).to_numpy(dtype=bool))
    if finite:
        bad = bad | ~np.isfinite(values)
    if minimum is not None:
        bad = bad | (values < minimum)
    if allow_missing:
        bad = bad & ~empty
    if bad.any():
        expected = "a finite number" if finite else "a number"
        if minimum is not None:
            expected += f" >= {minimum:g}"
        _fail(path, frame, bad, column, expected + (" or empty" if allow_missing else ""))
    return values


def parse_bool(frame: pd.DataFrame, column: str, path: str | Path) -> np.ndarray:
    """Parse a required boolean column (``True/False``, ``true/false``, ``1/0``, ``t/f``).

    Args:
        frame: Rows from :func:`read_table`.
        column: The column (strings).
        path: The file, for messages.

    Returns:
        Bool values.

    Raises:
        DataFormatError: On the first value that is not one of those.
    """
    text = _strings(frame, column).str.lower()
    is_true = text.isin(_TRUE).to_numpy(dtype=bool)
    is_false = text.isin(_FALSE).to_numpy(dtype=bool)
    bad = ~(is_true | is_false)
    if bad.any():
        _fail(path, frame, bad, column, "a boolean (True/False, true/false or 1/0)")
    return is_true


def parse_datetime(
    frame: pd.DataFrame,
    column: str,
    path: str | Path,
    *,
    fmt: str = "ISO8601",
    utc: bool = False,
    allow_missing: bool = False,
    expected: str = "an ISO-8601 date or time",
) -> pd.Series:
    """Parse a date/time column to ``datetime64[ns]`` (``datetime64[ns, UTC]`` with ``utc``).

    Args:
        frame: Rows from :func:`read_table`.
        column: The column (strings).
        path: The file, for messages.
        fmt: A ``strftime`` format or ``"ISO8601"``.
        utc: Read as UTC (a ``Z`` suffix or offset is honoured) and return tz-aware values.
        allow_missing: An empty cell becomes NaT instead of an error.
        expected: How to describe the format in messages.

    Returns:
        The parsed values, indexed like ``frame``.

    Raises:
        DataFormatError: On the first value that does not parse (or is empty, unless
            allowed), or lies outside the range of ``datetime64[ns]`` (1677-09-22 to
            2262-04-11, e.g. a placeholder ``9999-12-31``).
    """
    text = _strings(frame, column)
    empty = (text == "").to_numpy(dtype=bool)
    values = pd.to_datetime(text.where(~empty), format=fmt, utc=utc, errors="coerce")
    bad = values.isna().to_numpy(dtype=bool)
    if allow_missing:
        bad = bad & ~empty
    if bad.any():
        _fail(path, frame, bad, column, expected + (" or empty" if allow_missing else ""))
    low, high = pd.Timestamp.min.ceil("s"), pd.Timestamp.max.floor("s")
    if utc:
        low, high = low.tz_localize("UTC"), high.tz_localize("UTC")
    outside = ((values < low) | (values > high)).to_numpy(dtype=bool)
    if outside.any():
        _fail(path, frame, outside, column, f"{expected} {_TIME_RANGE}")
    return values.astype("datetime64[ns, UTC]" if utc else "datetime64[ns]")
