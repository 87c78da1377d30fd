"""What a cell's numbers can be: an environment's reward range and session cap.

``out_of_range`` is the one range check of the numbers read back from ``result.json``.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from typing import Any

from musicrec_gym.envs.factory import make_vector_env
from musicrec_gym.errors import MusicRecError


@dataclass(frozen=True)
class EnvLimits:
    """What one step and one session of an environment can be worth.

    Attributes:
        reward_low: Lowest reward of a step.
        reward_high: Highest reward of a step.
        max_steps: Most recommendations in a session.
    """

    reward_low: float
    reward_high: float
    max_steps: int

    @property
    def returns(self) -> tuple[float, float]:
        """Range of an episode's return (and of a mean of them)."""
        cap = self.max_steps
        return min(self.reward_low, 0.0) * cap, max(self.reward_high, 0.0) * cap

    @property
    def step_spread(self) -> float:
        """Largest possible regret of one step (either sign)."""
        return self.reward_high - self.reward_low


@functools.lru_cache(maxsize=16)
def env_limits(kwargs_json: str) -> EnvLimits | None:
    """``EnvLimits`` of ``make_vector_env(**kwargs)`` (JSON), or ``None`` if it fails."""
    try:
        sim = make_vector_env(num_envs=1, **json.loads(kwargs_json)).core.sim
        low, high = sim.reward.bounds()
        return EnvLimits(low, high, int(sim.max_steps))
    except (MusicRecError, OSError, ValueError, TypeError, AttributeError):
        return None


def out_of_range(
    name: str, value: Any, low: float = -math.inf, high: float = math.inf, nan_ok: bool = False
) -> str | None:
    """Why ``value`` is not a number in ``[low, high]`` (``None`` when it is)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{name} is {value!r}, not a number"
    try:
        value = float(value)
    except OverflowError:  # an int too large for a float
        return f"{name} is {value!r}, not a finite number"
    if math.isnan(value):
        return None if nan_ok else f"{name} is NaN"
    if math.isinf(value):
        return f"{name} is {value}"
    slack = 1e-9 * max([1.0, *(abs(b) for b in (low, high) if math.isfinite(b))])
    if value < low - slack or value > high + slack:
        return f"{name} = {value:g} is outside [{low:g}, {high:g}]"
    return None
