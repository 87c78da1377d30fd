"""The simulator's parameters: what a researcher tunes to make listeners pickier or more patient."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from musicrec_gym.errors import ArtifactError, unknown_name_message

REWARD_MODES = ("listen", "time", "event")


@dataclass(frozen=True)
class ResponseParams:
    """Listen probability: ``sigmoid(bias + b_u + taste*<θ_u, φ_i> + pop*z_i - fatigue)``.

    Fatigue is ``repeat`` if the track was already played this session, plus ``artist``
    for each of the last five tracks by the same artist (too-similar tracks bore).
    """

    bias: float = -2.5
    taste: float = 6.0
    pop: float = 0.6
    repeat: float = 4.0
    artist: float = 0.3


@dataclass(frozen=True)
class LeaveParams:
    """Leave hazard after each recommendation: ``1 - exp(-(1/patience_u + per_skip * skips))``.

    ``skips`` counts the skipped tracks among the last ``skip_window`` plays, so the
    hazard grows with a run of skips; a session never exceeds ``max_steps`` recommendations.
    """

    per_skip: float = 0.12
    skip_window: int = 3
    max_steps: int = 20


@dataclass(frozen=True)
class RewardParams:
    """Reward scales. ``listen``: 1/0. ``time``: listening time on the 0–5 scale.

    ``event``: the event-strength scale of implicit-feedback logs (complete listen 1,
    like 1, add to library 2, skip -1), drawn with the probabilities below.
    """

    time_listened: tuple[float, float] = (4.0, 5.0)
    time_skipped: tuple[float, float] = (0.0, 1.5)
    p_like: float = 0.3
    p_add: float = 0.1

    def affine(self, mode: str) -> tuple[float, float]:
        """(a, b) such that a track listened with probability p has expected reward a + b p."""
        if mode == "listen":
            return 0.0, 1.0
        if mode == "time":
            skipped = sum(self.time_skipped) / 2
            return skipped, sum(self.time_listened) / 2 - skipped
        if mode == "event":
            return -1.0, 1.0 + self.p_like + 2 * self.p_add + 1.0
        raise ValueError(unknown_name_message("reward mode", mode, REWARD_MODES))


@dataclass(frozen=True)
class SimulatorParams:
    """All simulator parameters, stored in a world's ``simulator.json``."""

    response: ResponseParams = ResponseParams()
    leave: LeaveParams = LeaveParams()
    reward: RewardParams = RewardParams()
    warmup: int = 5
    logging_pop_share: float = 0.3
    logging_continuation_share: float = 0.4
    logging_pool: int = 50
    continuation_pool: int = 3

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "simulator.json") -> SimulatorParams:
        """Read back ``to_dict``'s output; unknown or mistyped keys name the key and the file."""
        parts = {"response": ResponseParams, "leave": LeaveParams, "reward": RewardParams}
        kwargs: dict[str, Any] = {}
        allowed = {f.name for f in fields(cls)}
        for key, value in data.items():
            if key not in allowed:
                raise ArtifactError(f"{source}: {unknown_name_message('key', key, allowed)}")
            if key in parts:
                sub = parts[key]
                sub_allowed = {f.name for f in fields(sub)}
                for k in value:
                    if k not in sub_allowed:
                        msg = unknown_name_message(f"key in {key!r}", k, sub_allowed)
                        raise ArtifactError(f"{source}: {msg}")
                value = {k: tuple(v) if isinstance(v, list) else v for k, v in value.items()}
                kwargs[key] = sub(**value)
            else:
                kwargs[key] = value
        return cls(**kwargs)
