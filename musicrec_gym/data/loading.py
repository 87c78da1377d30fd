"""What every real-data loader shares: the typed result, the report of dropped rows, checks.

A loader returns :class:`Loaded`: the parsed frame and a :class:`LoadReport` that counts
the rows read, kept and dropped (by reason), so nothing disappears without a count. Bad
input raises one :class:`~musicrec_gym.errors.DataFormatError` that names the file, the
1-based line number in the file (the header, when there is one, is line 1), the column and
the bad value.

Reading goes through :func:`read_table`, which turns every way a file can be unreadable
(missing, not a file, empty, truncated or corrupt gzip, not UTF-8, a row with too many
or too few fields, a missing or repeated column, a header without rows) into that one
error, and reads the columns the loader validates as plain strings so that the
``parse_*`` helpers can point at the exact line of a bad value. Line numbers assume one
record per physical line (no quoted line breaks), which holds for every format read here.

Values quoted in messages are cut to :data:`MAX_SHOWN` characters, and identifiers longer
than :data:`MAX_ID_LENGTH` characters are refused (:func:`parse_id`, :func:`check_ids`):
such a value is a broken file (a lost quote or line break), not an id, and a world whose
CSV files held it could not be read back.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from musicrec_gym.errors import ConfigError, DataFormatError

__all__ = [
    "LINE",
    "MAX_ID_LENGTH",
    "LoadReport",
    "Loaded",
    "RowDropper",
    "as_path",
    "blank_rows",
    "check_ids",
    "parse_bool",
    "parse_datetime",
    "parse_float",
    "parse_id",
    "parse_int",
    "read_table",
    "shown",
]

#: Name of the helper column that holds each row's 1-based line number in the file.
LINE = "_line"

#: Longest identifier (track, user, session, item id) a loader accepts, in characters.
MAX_ID_LENGTH = 1000

#: Characters of a bad value quoted in an error message, at most.
MAX_SHOWN = 80

#: The range of ``datetime64[ns]``, the type every loader returns dates and times in.
_TIME_RANGE = "between 1677-09-22 and 2262-04-11"

_TRUE = frozenset({"true", "1", "t", "yes"})
_FALSE = frozenset({"false", "0", "f", "no"})
_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


@dataclass(frozen=True)
class LoadReport:
    """What a loader read, kept and dropped.

    Attributes:
        path: The file read.
        rows_read: Data rows in the file (blank lines included, the header excluded).
        rows_kept: Rows in the returned frame.
        dropped: Reason -> number of rows dropped for it (empty when nothing was dropped);
            ``rows_read == rows_kept + sum(dropped.values())``.
    """

    path: str
    rows_read: int
    rows_kept: int
    dropped: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for a log or a CLI.

        Returns:
            E.g. ``"log.csv.gz: 70,030 rows, kept 70,000; dropped 30 (exact duplicate
            row)"``, or ``"...; nothing dropped"``.
        """
        head = f"{Path(self.path).name}: {self.rows_read:,} rows, kept {self.rows_kept:,}"
        if not self.dropped:
            return f"{head}; nothing dropped"
        parts = ", ".join(f"{n:,} ({reason})" for reason, n in self.dropped.items())
        return f"{head}; dropped {parts}"


@dataclass(frozen=True)
class Loaded:
    """A loaded file: the frame and the report of how it was read.

    Attributes:
        frame: The parsed rows, in the loader's documented columns and order.
        report: Rows read, kept and dropped.
    """

    frame: pd.DataFrame
    report: LoadReport


class RowDropper:
    """Drop rows of a frame and count them by reason, in the order the reasons occur.

    Args:
        frame: The frame to filter (rows keep their :data:`LINE` column).
    """

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.rows_read = len(frame)
        self.dropped: dict[str, int] = {}

    def drop(self, mask: np.ndarray | pd.Series, reason: str) -> None:
        """Drop the rows where ``mask`` is true and count them under ``reason``.

        Args:
            mask: Boolean, one entry per current row.
            reason: Why, e.g. ``"empty track_id_clean"``; nothing is recorded when no row
                matches.
        """
        mask = np.asarray(mask, dtype=bool)
        n = int(mask.sum())
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n
            self.frame = self.frame.loc[~mask]

    def drop_duplicates(self, subset: Sequence[str] | None, reason: str) -> None:
        """Drop repeats of earlier rows (all columns but :data:`LINE`, or ``subset``).

        Args:
            subset: Columns that define a repeat; ``None`` means every data column.
            reason: Why, for the report.
        """
        cols = [c for c in self.frame.columns if c != LINE] if subset is None else list(subset)
        self.drop(self.frame.duplicated(subset=cols, keep="first").to_numpy(), reason)

    def report(self, path: str | Path) -> LoadReport:
        """The report of everything dropped so far.

        Args:
            path: The file read.

        Returns:
            The report, with ``rows_kept`` the current number of rows.
        """
        return LoadReport(str(path), self.rows_read, len(self.frame), dict(self.dropped))


def _open_error(path: Path, exc: BaseException) -> DataFormatError:
    if isinstance(exc, _GZIP_ERRORS):
        return DataFormatError(
            f"{path}: the gzip file is truncated or corrupt ({type(exc).__name__}: {exc}); "
            "copy or download it again"
        )
    if isinstance(exc, UnicodeDecodeError):
        return DataFormatError(
            f"{path}: not UTF-8 text ({exc.reason}); expected a UTF-8 "
            "CSV/TSV file, optionally gzip-compressed (.gz)"
        )
    return DataFormatError(f"{path}: cannot read the file: {exc}")


def shown(value: object) -> str:
    """``repr(value)``, cut to :data:`MAX_SHOWN` characters (with the full length) for messages.

    Args:
        value: The bad value.

    Returns:
        Its repr, e.g. ``"'abc'"`` or ``"'tttt...' (10,000,000 characters)"``.
    """
    text = repr(value)
    if len(text) <= MAX_SHOWN:
        return text
    size = f" ({len(value):,} characters)" if isinstance(value, str) else ""
    return f"{text[:MAX_SHOWN]}...{size}"


def as_path(path: object, what: str = "path") -> Path:
    """``path`` as a :class:`~pathlib.Path`, or a :class:`ConfigError` for another type.

    Args:
        path: A ``str`` or ``os.PathLike``.
        what: The argument's name, for the message.

    Returns:
        The path.

    Raises:
        ConfigError: ``path`` is not a string or a path (e.g. ``None`` or a number).
    """
    if isinstance(path, bytes) or not isinstance(path, str | os.PathLike):
        raise ConfigError(
            f"`{what}` must be a file path (str or pathlib.Path), got {type(path).__name__} "
            f"{shown(path)}"
        )
    return Path(path)


def _check_path(path: str | Path) -> Path:
    path = as_path(path)
    if not path.exists():
        raise DataFormatError(f"{path}: file not found")
    if not path.is_file():
        raise DataFormatError(f"{path}: not a file (a directory?)")
    return path


def _field_counts(path: Path, lines: set[int], sep: str, quoting: int) -> dict[int, int]:
    """Number of ``sep``-separated fields on the given 1-based lines.

    A blank line (nothing but spaces) counts 0 fields.
    """
    opener = gzip.open if path.suffix == ".gz" else open
    counts: dict[int, int] = {}
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep, quoting=quoting)
        for fields in reader:
            if reader.line_num in lines:
                blank = len(fields) <= 1 and not "".join(fields).strip()
                counts[reader.line_num] = 0 if blank else len(fields)
                if len(counts) == len(lines):
                    break
    return counts


def _first_long_row(path: Path, sep: str, quoting: int, n_fields: int) -> tuple[int, int]:
    """The first (line, number of fields) with more than ``n_fields`` fields, or (0, 0)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep, quoting=quoting)
        for fields in reader:
            if len(fields) > n_fields:
                return reader.line_num, len(fields)
    return 0, 0


def _delimiter_hint(header: Sequence[str], sep: str) -> str:
    """A hint when a one-column header looks separated by another delimiter."""
    if len(header) != 1:
        return ""
    for other, name in ((";", "semicolons"), ("\t", "tabs"), (",", "commas"), ("|", "pipes")):
        if other != sep and other in str(header[0]):
            return f" (it looks separated by {name}; this file must use {sep!r})"
    return ""


def read_table(
    path: str | Path,
    required: Sequence[str],
    *,
    sep: str = ",",
    names: Sequence[str] | None = None,
    aliases: dict[str, str] | None = None,
    what: str = "file",
    all_text: bool = False,
) -> pd.DataFrame:
    r"""Read a CSV/TSV file (optionally ``.gz``) for a loader, or raise one clear error.

    The ``required`` columns are read as strings exactly as written (an empty cell is
    ``""``; ``"NA"`` stays ``"NA"``) so that the loader can validate them with the
    ``parse_*`` helpers; in every other column only an empty cell counts as missing, and
    pandas infers the type. Blank lines are kept as rows of empty strings, so that row
    ``i`` is line ``i + 2`` (``i + 1`` without a header); the line number of each row is in
    the column :data:`LINE`.

    Args:
        path: The file; a ``.gz`` suffix means gzip.
        required: Columns the loader needs.
        sep: Field separator; with ``"\\t"`` quotes are not special (Last.fm TSVs hold
            titles with stray quotes).
        names: Column names of a file without a header line (all its columns, in order);
            ``None`` means the first line is the header.
        aliases: Header names to rename on reading (e.g. ``{"#id": "user_id"}``).
        what: What the file should be, for messages (e.g. ``"MSSD session log"``).
        all_text: Read every column as strings, not only the required ones (for files
            whose columns the loader validates all, e.g. ``dim_0 .. dim_95``).

    Returns:
        The rows, with a :data:`LINE` column.

    Raises:
        DataFormatError: The file is missing or not a file, is empty, has a header but no
            rows, is a truncated or corrupt gzip, is not UTF-8, has a row with the wrong
            number of fields (line named), or lacks a required column (named, with the
            expected columns listed).
    """
    path = _check_path(path)
    quoting = csv.QUOTE_NONE if sep == "\t" else csv.QUOTE_MINIMAL
    common = dict(
        sep=sep, quoting=quoting, encoding="utf-8-sig", compression="infer", index_col=False
    )
    required = list(required)
    try:
        if names is None:
            raw = pd.read_csv(
                path, header=None, nrows=1, dtype=str, keep_default_na=False, **common
            )
            header = [str(c) for c in raw.iloc[0].tolist()] if len(raw) else []
            header = [(aliases or {}).get(c, c) for c in header]
            repeated = sorted({c for c in header if header.count(c) > 1})
            if repeated:
                raise DataFormatError(
                    f"{path}: line 1: column(s) {', '.join(map(repr, repeated))} appear more "
                    f"than once in the header of this {what}; every column needs its own name"
                )
            missing = [c for c in required if c not in header]
            if missing:
                shown_header = ", ".join(header)
                if len(shown_header) > 300:
                    shown_header = shown_header[:300] + "..."
                raise DataFormatError(
                    f"{path}: line 1: missing column(s) {', '.join(map(repr, missing))} in the "
                    f"header of this {what}; expected the columns {', '.join(required)} "
                    f"(others are kept), got {shown_header or 'nothing'}"
                    + _delimiter_hint(header, sep)
                )
            text_columns = header if all_text else required
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.ParserWarning)
                frame = pd.read_csv(
                    path,
                    dtype={c: str for c in text_columns},
                    keep_default_na=False,
                    na_values={c: [""] for c in header if c not in text_columns},
                    skip_blank_lines=False,
                    **common,
                )
            frame.columns = header
            first_line = 2
        else:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", pd.errors.ParserWarning)
                frame = pd.read_csv(
                    path,
                    header=None,
                    names=list(names),
                    dtype=str,
                    keep_default_na=False,
                    skip_blank_lines=False,
                    **common,
                )
            first_line = 1
        for w in caught:  # pass on what we do not handle (e.g. pandas' DtypeWarning)
            if not issubclass(w.category, pd.errors.ParserWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
            # pandas dropped the extra fields of a too-long row (index_col=False): find it.
            n_fields = len(names) if names is not None else len(header)
            line, saw = _first_long_row(path, sep, quoting, n_fields)
            raise DataFormatError(
                f"{path}: line {line or '?'}: expected {n_fields} fields separated by "
                f"{sep!r}, got {saw or 'more'}"
            )
    except DataFormatError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise DataFormatError(
            f"{path}: the file is empty; expected a {what} with the columns {', '.join(required)}"
        ) from exc
    except pd.errors.ParserError as exc:
        text = str(exc)
        match = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", text)
        if match:
            expected, line, saw = match.groups()
            raise DataFormatError(
                f"{path}: line {line}: expected {expected} fields separated by {sep!r}, got {saw}"
            ) from exc
        raise DataFormatError(f"{path}: not a readable {what}: {text}") from exc
    except (*_GZIP_ERRORS, UnicodeDecodeError, OSError, csv.Error) as exc:
        raise _open_error(path, exc) from exc
    if frame.empty and names is not None:
        raise DataFormatError(
            f"{path}: the file is empty; expected a {what} with the columns {', '.join(names)}"
        )
    if frame.empty:
        raise DataFormatError(
            f"{path}: the file has a header but no data rows; expected a {what} with at "
            "least one row"
        )
    frame[LINE] = np.arange(first_line, first_line + len(frame), dtype=np.int64)
    try:
        _check_short_rows(path, frame, list(names) if names is not None else header, sep, quoting)
    except (*_GZIP_ERRORS, UnicodeDecodeError, OSError, csv.Error) as exc:
        raise _open_error(path, exc) from exc
    return frame.reset_index(drop=True)


def _check_short_rows(
    path: Path, frame: pd.DataFrame, names: Sequence[str], sep: str, quoting: int
) -> None:
    """Find truly short rows among those ending empty (pandas pads short rows)."""
    last = frame.iloc[:, len(names) - 1]
    empty = last.isna().to_numpy(dtype=bool) | (last.astype(object) == "").to_numpy(dtype=bool)
    suspects = frame.loc[empty, LINE].tolist()
    if not suspects:
        return
    counts = _field_counts(path, set(suspects), sep, quoting)
    for line in suspects:
        n = counts.get(line, 0)
        if 0 < n < len(names):  # a blank line (n == 0, nothing on it) is dropped, not an error
            hint = ""
            if n == 1:
                text = str(frame.loc[frame[LINE] == line, names[0]].iloc[0])
                hint = _delimiter_hint([text], sep)
            raise DataFormatError(
                f"{path}: line {line}: expected {len(names)} fields separated by {sep!r} "
                f"({', '.join(names)}), got {n}{hint}"
            )


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
