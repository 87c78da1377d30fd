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
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def _shown(value: Any) -> str:
    """``repr(value)``, cut short when long."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text):,} characters)"


def check_float(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    limit: float | None = None,
) -> None:
    """Require a finite real number (never a bool, NaN or infinity) in a range.

    Args:
        name: Field name, for the message.
        value: The value to check.
        low: Lower bound (``None``: none).
        high: Upper bound (``None``: none).
        low_open: The lower bound itself is not allowed.
        high_open: The upper bound itself is not allowed.
        limit: A sanity cap (``None``: none): past it the value is not plausible
            (it would not fit in memory or would not end), reported as such.

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
            f"`{name}` must be a float {_range_text(low, high, low_open, high_open)}, "
            f"got {_shown(value)}"
        )
    if limit is not None and value > limit:
        raise ConfigError(f"`{name}` must be <= {limit:g} (its limit), got {_shown(value)}")


def check_int(
    name: str,
    value: Any,
    low: int | None = None,
    high: int | None = None,
    limit: int | None = None,
) -> None:
    """Require an int (not a bool) in ``[low, high]``, and at most ``limit`` (a sanity cap).

    Raises:
        ConfigError: ``value`` is not an int in the range.
    """
    ok = _is_int(value)
    if ok and low is not None:
        ok = value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        raise ConfigError(f"`{name}` must be an int {_range_text(low, high)}, got {_shown(value)}")
    if limit is not None and value > limit:
        raise ConfigError(f"`{name}` must be an int <= {limit:,} (its limit), got {_shown(value)}")


def check_bool(name: str, value: Any) -> None:
    """Require a bool.

    Raises:
        ConfigError: ``value`` is not a bool.
    """
    if not isinstance(value, bool):
        raise ConfigError(f"`{name}` must be a bool, got {_shown(value)}")


def check_choice(name: str, value: Any, choices: Sequence[str]) -> None:
    """Require one of a few strings.

    Raises:
        ConfigError: ``value`` is not one of ``choices``.
    """
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"`{name}` must be one of {allowed}, got {_shown(value)}")


#: Most hidden layers, and the widest layer, of a network hyperparameter.
MAX_LAYERS = 16
MAX_LAYER_SIZE = 8192
#: Upper bound of step-count hyperparameters (10x the largest training budget).
MAX_STEP_COUNT = 1_000_000_000


def check_layers(name: str, value: Any) -> None:
    """Require a non-empty list of at most ``MAX_LAYERS`` ints in [1, ``MAX_LAYER_SIZE``].

    Raises:
        ConfigError: ``value`` is not such a list.
    """
    if not (
        isinstance(value, (list, tuple))
        and 0 < len(value) <= MAX_LAYERS
        and all(_is_int(v) and 1 <= v <= MAX_LAYER_SIZE for v in value)
    ):
        raise ConfigError(
            f"`{name}` must be a non-empty list of ints >= 1 (hidden layer sizes; at most "
            f"{MAX_LAYERS} layers of at most {MAX_LAYER_SIZE} units), got {_shown(value)}"
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
