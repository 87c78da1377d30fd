"""Paths to the real samples in ``../shared/data``; tests skip when the folder is absent."""

from pathlib import Path

import pytest

from tests.conftest import SHARED_DATA


def shared_file(relative: str) -> Path:
    """The shared sample at ``../shared/data/<relative>``, or skip the test if it is absent.

    Args:
        relative: Path inside ``../shared/data`` (see its README).

    Returns:
        The file's path.
    """
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"real data sample {path} not found (needs ../shared/data, see its README)")
    return path
