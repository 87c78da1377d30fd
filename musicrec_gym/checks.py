"""Type checks of config values, shared by the records of every pipeline stage.

A bool is never a count or a rate here, though Python makes ``True`` an ``int``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["is_int", "is_real"]


def is_int(value: Any) -> bool:
    """An integer (Python or NumPy), and not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """A real number (Python or NumPy int or float), and not a bool."""
    return is_int(value) or isinstance(value, (float, np.floating))
