"""The leave model: when a listener ends the session."""

from __future__ import annotations

import numpy as np

from musicrec_gym.errors import ArtifactError
from musicrec_gym.sim.params import LeaveParams


class LeaveModel:
    """Hazard ``1 - exp(-(1/patience_u + per_skip * recent_skips))`` after each recommendation.

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

    def hazard(self, users: np.ndarray, recent_listened: np.ndarray) -> np.ndarray:
        """Leave probability given the listen flags of the last plays, shape (B, skip_window)."""
        skips = self.params.skip_window - recent_listened.sum(axis=1)
        return 1.0 - np.exp(-(self.base_rate[users] + self.params.per_skip * skips))
