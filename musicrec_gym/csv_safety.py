"""Spreadsheet-safe text: ids and values of an untrusted log that would run as formulas.

A log is untrusted input, and a track or session id such as
``=HYPERLINK("http://evil", "x")`` would run as a formula when a user opens the world's
CSV files in a spreadsheet. Following OWASP's advice on CSV injection, every text value
that starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (and is not a
plain number such as ``-1``) is stored with a leading single quote (:func:`csv_safe`):
in ``catalog.csv``, ``listeners.csv``, ``embeddings.csv`` and ``heldout.csv.gz`` alike,
so the world's files agree with each other and load back unchanged. The world's track ids
are these stored ids; ``musicrec realism`` applies the same mapping to the held-out log
it reads, so the original log matches as well as ``heldout.csv.gz`` does. Two different
ids that become the same (``=x`` next to ``'=x``) are an error.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from musicrec_gym.errors import DataFormatError

__all__ = ["csv_safe", "csv_safe_frame"]

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def csv_safe(value: object) -> object:
    """A text value made safe to open in a spreadsheet (OWASP's advice on CSV injection).

    Args:
        value: A cell value; only strings are changed.

    Returns:
        ``"'" + value`` when ``value`` starts with ``=``, ``+``, ``-``, ``@``, a tab or a
        carriage return and is not a plain number (``-1``, ``+2.5e3``); else ``value``.
        Applying it twice changes nothing more.

    Example:
        >>> csv_safe("=SUM(A1:A9)"), csv_safe("t_12"), csv_safe("-1")
        ("'=SUM(A1:A9)", 't_12', '-1')
    """
    if (
        isinstance(value, str)
        and value.startswith(_FORMULA_START)
        and not _PLAIN_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def csv_safe_frame(frame: pd.DataFrame, source: str | Path) -> tuple[pd.DataFrame, int]:
    """Every text column of a loaded MSSD frame through :func:`csv_safe`.

    Args:
        frame: Loaded MSSD rows (``session_id``, ``track_id`` and other columns).
        source: The log, for messages.

    Returns:
        The frame with safe text, and how many distinct ids (track and session) changed.

    Raises:
        DataFormatError: Two different ids would become the same one.
    """
    out = frame.copy()
    quoted = 0
    for column in frame.columns:
        values = frame[column]
        if not (pd.api.types.is_string_dtype(values) or values.dtype == object):
            continue
        safe = values.map(csv_safe, na_action="ignore")
        if column in ("session_id", "track_id"):
            pairs = pd.DataFrame({"raw": values, "safe": safe}).drop_duplicates()
            quoted += int((pairs["raw"] != pairs["safe"]).sum())
            clash = pairs[pairs["safe"].duplicated(keep=False)]
            if len(clash):
                name = "track_id_clean" if column == "track_id" else column
                a, b = clash["raw"].iloc[0], clash["raw"].iloc[1]
                raise DataFormatError(
                    f"{source}: column {name!r}: the ids {a!r} and {b!r} would be stored as "
                    f"the same id {clash['safe'].iloc[0]!r} (ids starting with = + - @ get a "
                    "leading ' against spreadsheet formulas); rename one of them"
                )
        out[column] = safe
    return out, quoted
