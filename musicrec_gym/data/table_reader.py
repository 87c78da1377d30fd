"""Reading a CSV/TSV file (optionally gzip) for a loader: :func:`read_table`.

It turns every way a file can be unreadable (missing, not a file, empty, truncated or
corrupt gzip, not UTF-8, a row with too many or too few fields, a missing or repeated
column, a header without rows) into one :class:`~musicrec_gym.errors.DataFormatError`,
and reads the columns the loader validates as plain strings, with each row's line number
in the :data:`~musicrec_gym.data.loading.LINE` column, so that the parsers of
:mod:`musicrec_gym.data.column_parsers` can point at the exact line of a bad value. Line
numbers assume one record per physical line (no quoted line breaks), which holds for
every format read here.
"""

from __future__ import annotations

import csv
import gzip
import re
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from musicrec_gym.data.loading import LINE, as_path
from musicrec_gym.errors import DataFormatError

__all__ = ["read_table"]

_GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


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
