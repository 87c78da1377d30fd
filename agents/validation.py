"""Checks for agent hyperparameters, with the house error messages.

Each check raises ``ConfigError`` with a message such as
"`alpha` must be a float > 0, got -1", naming the field and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from musicrec_gym.errors import ConfigError


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def check_float(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """Require a finite real number in a range.

    Args:
        name: Field name, for the message.
        value: The value to check.
        low: Lower bound (``None``: none).
        high: Upper bound (``None``: none).
        low_open: The lower bound itself is not allowed.
        high_open: The upper bound itself is not allowed.

    Raises:
        ConfigError: ``value`` is not a number in the range.
    """
    ok = _is_real(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        raise ConfigError(
            f"`{name}` must be a float {_range_text(low, high, low_open, high_open)}, got {value!r}"
        )


def check_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> None:
    """Require an int (not a bool) in ``[low, high]``.

    Raises:
        ConfigError: ``value`` is not an int in the range.
    """
    ok = _is_int(value)
    if ok and low is not None:
        ok = value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        raise ConfigError(f"`{name}` must be an int {_range_text(low, high)}, got {value!r}")


def check_bool(name: str, value: Any) -> None:
    """Require a bool.

    Raises:
        ConfigError: ``value`` is not a bool.
    """
    if not isinstance(value, bool):
        raise ConfigError(f"`{name}` must be a bool, got {value!r}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Require one of a few strings.

    Raises:
        ConfigError: ``value`` is not one of ``choices``.
    """
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"`{name}` must be one of {allowed}, got {value!r}")


def check_layers(name: str, value: Any) -> None:
    """Require a non-empty list of positive ints (hidden layer sizes).

    Raises:
        ConfigError: ``value`` is not such a list.
    """
    if not (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(_is_int(v) and v >= 1 for v in value)
    ):
        raise ConfigError(
            f"`{name}` must be a non-empty list of ints >= 1 (hidden layer sizes), got {value!r}"
        )


def _range_text(
    low: float | None, high: float | None, low_open: bool = False, high_open: bool = False
) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high}"
    return "(finite)"
