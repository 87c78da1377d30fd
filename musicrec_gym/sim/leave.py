"""The leave model: when a listener ends the session."""

from __future__ import annotations

import numpy as np

from musicrec_gym.sim.params import LeaveParams


class LeaveModel:
    """Hazard ``1 - exp(-(1/patience_u + per_skip * recent_skips))`` after each recommendation.

    ``1/patience_u`` is the listener's base rate (a patient listener stays for about
    ``patience_u`` tracks when every track pleases); each skip among the last
    ``skip_window`` plays adds ``per_skip``, so a run of bad recommendations drives the
    listener away. Sessions are truncated after ``max_steps`` recommendations.

    Args:
        patience: (n_listeners,) patience of each listener, in tracks.
        params: Leave parameters.
    """

    def __init__(self, patience: np.ndarray, params: LeaveParams) -> None:
        self.params = params
        self.base_rate = 1.0 / np.maximum(patience.astype(np.float64), 1.0)

    def hazard(self, users: np.ndarray, recent_listened: np.ndarray) -> np.ndarray:
        """Leave probability given the listen flags of the last plays, shape (B, skip_window)."""
        skips = self.params.skip_window - recent_listened.sum(axis=1)
        return 1.0 - np.exp(-(self.base_rate[users] + self.params.per_skip * skips))
