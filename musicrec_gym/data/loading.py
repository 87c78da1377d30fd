"""What every real-data loader shares: the typed result, the report of dropped rows.

A loader returns :class:`Loaded`: the parsed frame and a :class:`LoadReport` that counts
the rows read, kept and dropped (by reason), so nothing disappears without a count. Bad
input raises one :class:`~musicrec_gym.errors.DataFormatError` that names the file, the
1-based line number in the file (the header, when there is one, is line 1), the column and
the bad value: files are read by :func:`musicrec_gym.data.table_reader.read_table` and
their columns checked by the parsers of :mod:`musicrec_gym.data.column_parsers`.

Values quoted in messages are cut to :data:`MAX_SHOWN` characters (:func:`shown`), and
identifiers longer than :data:`MAX_ID_LENGTH` characters are refused.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from musicrec_gym.errors import ConfigError

__all__ = [
    "LINE",
    "MAX_ID_LENGTH",
    "LoadReport",
    "Loaded",
    "RowDropper",
    "as_path",
    "shown",
]

#: Name of the helper column that holds each row's 1-based line number in the file.
LINE = "_line"

#: Longest identifier (track, user, session, item id) a loader accepts, in characters.
MAX_ID_LENGTH = 1000

#: Characters of a bad value quoted in an error message, at most.
MAX_SHOWN = 80


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
