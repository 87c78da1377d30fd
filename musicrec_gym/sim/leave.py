"""The leave model: when a listener ends the session.

Two models: a synthetic world's :class:`LeaveModel` and a fitted world's
:class:`FittedLeave` (a logistic hazard learned from logs). :class:`LeaveModel` is the
NumPy reference (``BatchSimulator`` and the tests use it); :func:`hazard_one` is its
formula for one slot, called by the numba kernels (:mod:`musicrec_gym.sim.kernels`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from musicrec_gym.checks import is_int
from musicrec_gym.errors import ArtifactError
from musicrec_gym.sim.constants import JIT_OPTIONS, WINDOW
from musicrec_gym.sim.params import LeaveParams, is_finite
from musicrec_gym.sim.response import sigmoid


class LeaveModel:
    """Hazard ``1 - exp(-(1/patience_u + per_skip * recent_skips))`` after each recommendation.

    The NumPy reference of :func:`hazard_one`.

    ``1/patience_u`` is the listener's base rate (a patient listener stays for about
    ``patience_u`` tracks when every track pleases); each skip among the last
    ``skip_window`` plays adds ``per_skip``, so a run of bad recommendations drives the
    listener away. Sessions are truncated after ``max_steps`` recommendations.

    Base rate from a fitted session-length model (``from_expected_lengths``): the
    listener's expected session length ``E[L_u]`` in tracks, as predicted by a model of
    the listener's past sessions (``musicrec_gym.session_length``), replaces
    ``patience_u``, so the base rate is ``1 / E[L_u]``; the skip-driven term is unchanged.
    A world directory opts in with a ``leave.npz`` (array ``expected_length``, one value
    per listener, listed in the manifest): ``load_world`` then gives the simulator these
    lengths instead of the hidden ``patience``. Because skips still add to the hazard,
    simulated sessions are somewhat shorter than ``E[L_u]`` when recommendations are
    skipped; with no skips they last ``E[L_u]`` tracks on average (about ``E[L_u] + 0.5``
    for the discrete-time hazard).

    Args:
        patience: (n_listeners,) patience of each listener, in tracks.
        params: Leave parameters.
    """

    def __init__(self, patience: np.ndarray, params: LeaveParams) -> None:
        self.params = params
        self.base_rate = 1.0 / np.maximum(patience.astype(np.float64), 1.0)

    @classmethod
    def from_expected_lengths(cls, expected_lengths: np.ndarray, params: LeaveParams) -> LeaveModel:
        """A leave model whose base rate is ``1 / expected_length`` per listener.

        Args:
            expected_lengths: (n_listeners,) expected session length of each listener in
                tracks (e.g. ``session_length.leave.expected_tracks``); values below 1 act
                as 1.
            params: Leave parameters (the skip term and ``max_steps`` are used as is).

        Raises:
            ArtifactError: A length is not a finite positive number.
        """
        lengths = np.asarray(expected_lengths, dtype=np.float64)
        if lengths.ndim != 1 or not np.all(np.isfinite(lengths)) or np.any(lengths <= 0):
            raise ArtifactError(
                "expected session lengths must be a 1-D array of finite numbers > 0 "
                f"(tracks per listener), got shape {lengths.shape}"
            )
        return cls(lengths, params)

    def hazard(
        self,
        users: np.ndarray,
        recent_listened: np.ndarray,
        satisfaction: np.ndarray | None = None,
        weight: float = 0.0,
    ) -> np.ndarray:
        """Leave probability given the listen flags of the last plays, shape (B, skip_window).

        With ``satisfaction`` (``MusicRecLongTerm-v0``), the rate is lowered by ``weight``
        per level and floored at 0 (:func:`hazard_satisfied_one`).
        """
        skips = self.params.skip_window - recent_listened.sum(axis=1)
        rate = self.base_rate[users] + self.params.per_skip * skips
        if satisfaction is not None:
            rate = np.maximum(rate - weight * satisfaction, 0.0)
        return 1.0 - np.exp(-rate)


class FittedLeave:
    """Leave hazard after the play at position ``p``: ``sigmoid(a_p + per_skip * skips)``.

    ``a_p`` is one logit per position (``-inf``, i.e. hazard 0, where the training logs
    have no session ending there); ``skips`` counts the skipped plays among the last
    ``skip_window``.

    Args:
        position_logit: ``(max_length + 1,)`` indexed by position; non-finite means 0.
        per_skip: Logit added per recent skip (positive: skips drive listeners away).
        skip_window: Plays counted.
    """

    def __init__(self, position_logit: np.ndarray, per_skip: float, skip_window: int) -> None:
        self.position_logit = np.asarray(position_logit, dtype=np.float64)
        self.per_skip = float(per_skip)
        self.skip_window = int(skip_window)

    def hazard(self, positions: np.ndarray, recent_listened: np.ndarray) -> np.ndarray:
        """Leave probability after the play at ``positions`` given the last listen flags.

        Args:
            positions: (B,) 1-based position of the play just made.
            recent_listened: (B, skip_window) listen flags of the last plays.
        """
        skips = self.skip_window - np.asarray(recent_listened, np.float64).sum(axis=1)
        pos = np.minimum(positions, len(self.position_logit) - 1)
        logit = self.position_logit[pos]
        with np.errstate(over="ignore", invalid="ignore"):
            h = sigmoid(logit + self.per_skip * skips)
        return np.where(np.isfinite(logit), h, 0.0)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``null`` for a position with hazard 0)."""
        return {
            "position_logit": [float(v) if np.isfinite(v) else None for v in self.position_logit],
            "per_skip": self.per_skip,
            "skip_window": self.skip_window,
        }

    @classmethod
    def from_dict(cls, data: Any, source: str = "fitted.json") -> FittedLeave:
        """Read :meth:`to_dict`'s output, checking every value.

        Raises:
            ArtifactError: Naming ``source`` and the key under ``leave`` that is missing
                or out of range.
        """
        if not isinstance(data, dict):
            raise ArtifactError(f"{source}: key 'leave' must be an object, got {data!r}")
        for key in ("position_logit", "per_skip", "skip_window"):
            if key not in data:
                raise ArtifactError(f"{source}: missing key 'leave.{key}'")
        logits = data["position_logit"]
        if (
            not isinstance(logits, list)
            or not logits
            or not all(v is None or is_finite(v) for v in logits)
        ):
            raise ArtifactError(
                f"{source}: key 'leave.position_logit' must be a non-empty list of finite "
                f"numbers or null (hazard 0), got {logits!r}"
            )
        if not is_finite(data["per_skip"]):
            raise ArtifactError(
                f"{source}: key 'leave.per_skip' must be a finite number, got {data['per_skip']!r}"
            )
        window = data["skip_window"]
        if not (is_int(window) and 1 <= window <= WINDOW):
            raise ArtifactError(
                f"{source}: key 'leave.skip_window' must be an int in [1, {WINDOW}], got {window!r}"
            )
        values = [-np.inf if v is None else float(v) for v in logits]
        return cls(np.array(values), float(data["per_skip"]), int(window))


@njit(**JIT_OPTIONS)
def hazard_one(base_rate: float, per_skip: float, skips: float) -> float:
    """``LeaveModel.hazard`` of one slot: ``1 - exp(-(base_rate + per_skip * skips))``."""
    return 1.0 - np.exp(-(base_rate + per_skip * skips))


@njit(**JIT_OPTIONS)
def hazard_satisfied_one(
    base_rate: float, per_skip: float, skips: float, weight: float, satisfaction: int
) -> float:
    """:func:`hazard_one` with satisfaction: the rate less ``weight * satisfaction``, >= 0."""
    rate = base_rate + per_skip * skips - weight * satisfaction
    return 1.0 - np.exp(-max(rate, 0.0))
