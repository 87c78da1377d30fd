"""Every exception musicrec-gym raises on purpose, and the "did you mean" helper.

Each error message names the file, line, field or argument at fault and says what was
expected, so that a user can fix the input without reading our code.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MusicRecError(Exception):
    """Base class of all musicrec-gym errors."""


class ArtifactError(MusicRecError):
    """A world artifact (catalog, embeddings, weights, manifest) is missing or corrupted."""


class DataFormatError(MusicRecError, ValueError):
    """An input data file does not have the expected format (names file, line and field)."""


class ConfigError(MusicRecError, ValueError):
    """An experiment or pipeline config is invalid (names the key and what is allowed)."""


class ArgumentError(ConfigError, TypeError):
    """An unknown keyword argument or an unsupported ``render_mode`` of an environment.

    Also a ``TypeError``, what Python raises for an unexpected keyword argument: the RL
    libraries that try an argument and fall back without it (Stable-Baselines3's
    ``render_mode="rgb_array"``, TorchRL's ``frameskip``) catch exactly that.
    """


class InvalidActionError(MusicRecError, ValueError):
    """An action outside the environment's action space."""


class EpisodeEndedError(MusicRecError, RuntimeError):
    """``step`` was called after the episode ended and before ``reset``."""


class CellFailedError(MusicRecError):
    """One or more cells of a run raised; their tracebacks are in ``cells/<cell>/error.txt``."""


class RunDirLockedError(MusicRecError):
    """Another run (its pid in ``run.lock``) is using the run directory."""


class OutputWriteError(MusicRecError, OSError):
    """A final output of a run (a table, the plot) could not be written (names it)."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return a " Did you mean 'x'?" hint for a misspelled name, or an empty string.

    Args:
        name: The name the user wrote.
        choices: The names that are allowed.

    Returns:
        The hint, with a leading space, or ``""`` when nothing is close.
    """
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def unknown_name_message(kind: str, name: str, choices: Iterable[str]) -> str:
    """Build the standard message for an unknown name: what was given, the hint, what exists.

    Args:
        kind: What the name names ("agent", "keyword argument", ...).
        name: The name the user wrote.
        choices: The names that are allowed.

    Returns:
        A one-line message.
    """
    allowed = sorted(choices)
    return f"unknown {kind} {name!r}.{did_you_mean(name, allowed)} Allowed: {', '.join(allowed)}."
