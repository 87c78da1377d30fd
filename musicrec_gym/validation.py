"""Checks of parsed config values that report errors at a key path of a ``Located``.

``Validator`` checks mappings (unknown keys are errors with a "did you mean" hint,
required keys present), ints (never bools, never floats), numbers in a range, names and
paths; ``describe`` renders a bad value for a message.
"""

from __future__ import annotations

import re
from typing import Any

from musicrec_gym.checks import is_int
from musicrec_gym.errors import unknown_name_message
from musicrec_gym.yamlconfig import KeyPath, Located, dotted

#: What a name may contain: it becomes part of directory names.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
#: Longest name (names become parts of directory names).
MAX_NAME_LENGTH = 64
#: Longest path (a world directory, a data file).
MAX_PATH_LENGTH = 4096
#: Largest seed (seeds are 32-bit throughout).
MAX_SEED = 2**32 - 1


def describe(value: Any) -> str:
    """``repr(value)``, shortened past 60 characters, for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__} ({text[:40]}...)"


class Validator:
    """Checks values of a ``Located`` document; each failure is its ``error`` at the path."""

    def __init__(self, doc: Located) -> None:
        self.doc = doc

    def mapping(
        self,
        value: Any,
        path: KeyPath,
        required: tuple[str, ...],
        optional: tuple[str, ...],
        what: str,
    ) -> dict[str, Any]:
        """A mapping with every ``required`` key and no key outside ``required + optional``."""
        if value is None and not path:
            raise self.doc.error(
                path,
                "the config is empty; it must be a mapping with keys "
                f"{', '.join((*required, *optional))}",
            )
        if not isinstance(value, dict):
            name = dotted(path) or "the config"
            raise self.doc.error(path, f"{name} must be a mapping of {what}, got {describe(value)}")
        allowed = (*required, *optional)
        for key in value:
            if key not in allowed:
                raise self.doc.error(
                    (*path, key),
                    unknown_name_message("key", str(key), allowed),
                    key=True,
                )
        for key in required:
            if key not in value:
                raise self.doc.error(
                    path,
                    f"missing required key {key!r} (required: {', '.join(required)}; "
                    f"optional: {', '.join(optional) or 'none'})",
                    key=True,
                )
        return value

    def int_(self, value: Any, path: KeyPath, minimum: int, maximum: int | None = None) -> int:
        """An int (never a bool) in ``[minimum, maximum]``."""
        if not is_int(value) or value < minimum:
            bound = "> 0" if minimum == 1 else f">= {minimum}"
            raise self.doc.error(
                path, f"must be an int {bound}, got {describe(value)}{int_hint(value)}"
            )
        if maximum is not None and value > maximum:
            raise self.doc.error(
                path,
                f"must be an int <= {maximum:,} (the documented limit for this key), "
                f"got {describe(value)}",
            )
        return int(value)

    def number(self, value: Any, path: KeyPath, low: float, high: float) -> float:
        """A number (int or float, never a bool) in ``[low, high]`` (NaN never is)."""
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not low <= value <= high:  # NaN fails both comparisons
            raise self.doc.error(
                path, f"must be a number in [{low:g}, {high:g}], got {describe(value)}"
            )
        return float(value)

    def name(self, value: Any, path: KeyPath) -> str:
        """A name of at most ``MAX_NAME_LENGTH`` characters matching ``NAME_PATTERN``."""
        if isinstance(value, str) and len(value) > MAX_NAME_LENGTH:
            raise self.doc.error(
                path,
                f"must be a name of at most {MAX_NAME_LENGTH} characters (it becomes part "
                f"of directory names), got one of {len(value):,} characters "
                f"({value[:20]!r}...)",
            )
        if not isinstance(value, str) or not NAME_PATTERN.match(value):
            raise self.doc.error(
                path,
                "must be a name of letters, digits and _ . + - (starting with a letter or "
                f"digit; it becomes part of directory names), got {describe(value)}",
            )
        return value

    def path_text(self, value: Any, path: KeyPath, what: str) -> str:
        """A file or directory path: a non-empty string of at most ``MAX_PATH_LENGTH``."""
        if not isinstance(value, str) or not value:
            raise self.doc.error(path, f"must be {what}, got {describe(value)}")
        if len(value) > MAX_PATH_LENGTH or "\0" in value:
            raise self.doc.error(
                path,
                f"must be {what}: a path of at most {MAX_PATH_LENGTH} characters without NUL "
                f"characters, got {describe(value)}",
            )
        return value


_NUMERIC_TEXT = re.compile(r"^[-+]?(\d[\d_]*)?\.?\d*([eE][-+]?\d+)?$")


def int_hint(value: Any) -> str:
    """Why a number-like value is not an int, for the message."""
    if isinstance(value, str) and any(c.isdigit() for c in value) and _NUMERIC_TEXT.match(value):
        return (
            f" (YAML reads {value} as text, not a number; write a whole number with digits "
            "only, e.g. 200000)"
        )
    if isinstance(value, float):
        return " (a float; write a whole number with digits only, e.g. 200000)"
    return ""
