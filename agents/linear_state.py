"""Saving and loading the linear bandits' ridge statistics and posterior (``agents.linear``).

A mixin so that ``agents.linear`` keeps to the model and its exploration rules; the
state is plain named arrays (``Agent.save`` writes them to an ``.npz``), checked on
loading against the bound agent's shapes, with messages that name the array.
"""

from __future__ import annotations

import copy
import json

import numpy as np

from musicrec_gym.errors import ConfigError


class RidgeStateIO:
    """``state`` and ``set_state`` of ``LinearBanditAgent``: statistics, posterior, RNG.

    Reads and writes the agent's ridge statistics (``A``, ``b``, ``track_d``,
    ``track_c``, ``track_B``), sets the posterior through the agent's ``_use_estimate``.
    """

    def state(self) -> dict[str, np.ndarray]:
        """Ridge statistics, the posterior in use, step counts and the exploration RNG.

        The posterior in use is saved beside the statistics because with
        ``refresh_every > 1`` it may lag them by a few steps.
        """
        return {
            "A": self.A.copy(),
            "b": self.b.copy(),
            "track_d": self.track_d.copy(),
            "track_c": self.track_c.copy(),
            "track_B": self.track_B.copy(),
            "cov": self.cov.copy(),
            "beta": self.beta.copy(),
            "theta": self.theta.copy(),
            "proj": self.proj.copy(),
            "track_var": self.track_var.copy(),
            "steps": np.array(self.steps, dtype=np.int64),
            "since_refresh": np.array(self._since_refresh, dtype=np.int64),
            "rng": np.array(json.dumps(self.rng.bit_generator.state)),
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore ``state()``'s output (the agent must be bound to the same world shape)."""
        if not isinstance(state, dict):
            raise ConfigError(f"{self.name}: saved state must be a dict of arrays")
        current = self.state()
        missing = set(current) - set(state)
        if missing:
            raise ConfigError(f"{self.name}: saved state lacks {sorted(missing)}")
        n = self.context.n_tracks
        for key, now in current.items():
            if key == "rng":
                continue
            shape = np.shape(now)
            if np.shape(state[key]) != shape:
                raise ConfigError(
                    f"{self.name}: saved {key} has shape {np.shape(state[key])}, but this "
                    f"agent expects {shape} (D = {self.dim} shared features, {n} tracks); "
                    "was it saved on another world or with other feature options?"
                )
        f64: dict[str, np.ndarray] = {}
        for key, value in state.items():
            if key == "rng" or key not in current:
                continue
            try:
                f64[key] = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError) as err:
                raise ConfigError(f"{self.name}: saved {key} is not numeric: {err}") from err
            if not np.isfinite(f64[key]).all():
                raise ConfigError(
                    f"{self.name}: saved {key} holds NaN or infinite values; the state is corrupted"
                )
        for key in ("steps", "since_refresh"):
            if not (float(f64[key]).is_integer() and f64[key] >= 0):
                raise ConfigError(
                    f"{self.name}: saved {key} must be an int >= 0, got {state[key]!r}"
                )
        rng = copy.deepcopy(self.rng.bit_generator.state)
        try:
            self.rng.bit_generator.state = json.loads(str(state["rng"]))
        except (ValueError, TypeError, KeyError) as err:
            self.rng.bit_generator.state = rng
            raise ConfigError(
                f"{self.name}: saved rng is not a {type(self.rng.bit_generator).__name__} "
                f"state: {err}"
            ) from err
        self.A, self.b = f64["A"].copy(), f64["b"].copy()
        self.track_d, self.track_c = f64["track_d"].copy(), f64["track_c"].copy()
        self.track_B = f64["track_B"].copy()
        self.steps = int(state["steps"])
        theta = f64["theta"] if self.per_track_bias else None
        self._use_estimate(f64["cov"], f64["beta"], theta, f64["proj"], f64["track_var"])
        self._since_refresh = int(state["since_refresh"])
