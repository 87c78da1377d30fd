"""The simulator's parameters: what a researcher tunes to make listeners pickier or more patient.

Every field is checked when a parameter record is made (``__post_init__``, a
``ConfigError`` naming the field) and when ``simulator.json`` is read
(``SimulatorParams.from_dict``, an ``ArtifactError`` naming the file and the key), so
that a NaN, an infinity or an out-of-range value cannot reach the simulator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from musicrec_gym.checks import is_int, is_real
from musicrec_gym.errors import ArtifactError, ConfigError, unknown_name_message
from musicrec_gym.sim.constants import MAX_STEPS_LIMIT, REWARD_MODES, WINDOW

__all__ = [
    "MAX_STEPS_LIMIT",  # re-exported (sim.constants): the envs and configs import them here
    "REWARD_MODES",
    "LeaveParams",
    "ResponseParams",
    "RewardParams",
    "SatisfactionParams",
    "SimulatorParams",
    "is_finite",
    "is_int",  # re-exported (musicrec_gym.checks) for the modules that import it from here
    "is_real",
]


Rule = Callable[[Any], "str | None"]
"""A field's check: ``None`` if the value is allowed, else what is expected."""


def is_finite(value: Any) -> bool:
    """A finite real number (an int too large for a float is not)."""
    try:
        return is_real(value) and math.isfinite(value)
    except OverflowError:
        return False


def _real(low: float = -math.inf, high: float = math.inf) -> Rule:
    bounds = (
        "" if low == -math.inf and high == math.inf
        else f" >= {low:g}" if high == math.inf else f" in [{low:g}, {high:g}]"
    )  # fmt: skip

    def rule(value: Any) -> str | None:
        if is_finite(value) and low <= value <= high:
            return None
        return f"must be a finite number{bounds}"

    return rule


def _int(low: int, high: int | None = None) -> Rule:
    bounds = f" >= {low}" if high is None else f" in [{low}, {high}]"

    def rule(value: Any) -> str | None:
        if is_int(value) and low <= value and (high is None or value <= high):
            return None
        return f"must be an int{bounds}"

    return rule


def _bool(value: Any) -> str | None:
    return None if isinstance(value, bool) else "must be a bool (true or false)"


def _interval(value: Any) -> str | None:
    expected = "must be a pair [low, high] of finite numbers with low <= high"
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        return expected
    lo, hi = value
    if not all(is_finite(v) for v in value) or lo > hi:
        return expected
    return None


RULES: dict[str, dict[str, Rule]] = {
    "ResponseParams": {
        "bias": _real(),
        "taste": _real(),
        "pop": _real(),
        "repeat": _real(0.0),
        "artist": _real(0.0),
    },
    "LeaveParams": {
        "per_skip": _real(0.0),
        "skip_window": _int(1, WINDOW),
        "max_steps": _int(1, MAX_STEPS_LIMIT),
    },
    "RewardParams": {
        "time_listened": _interval,
        "time_skipped": _interval,
        "p_like": _real(0.0, 1.0),
        "p_add": _real(0.0, 1.0),
    },
    "SatisfactionParams": {
        "enabled": _bool,
        "weight": _real(0.0),
        "levels": _int(1, 100),
        "popular_share": _real(0.0, 1.0),
        "discovery_share": _real(0.0, 1.0),
    },
    "SimulatorParams": {
        "warmup": _int(1, WINDOW),
        "logging_pop_share": _real(0.0, 1.0),
        "logging_continuation_share": _real(0.0, 1.0),
        "logging_pool": _int(1),
        "continuation_pool": _int(1),
    },
}
"""Each record's field checks, by class name."""


def _check(record: Any) -> None:
    """Raise ``ConfigError`` for the first field of ``record`` its rules refuse."""
    for name, rule in RULES[type(record).__name__].items():
        value = getattr(record, name)
        problem = rule(value)
        if problem is not None:
            raise ConfigError(f"`{type(record).__name__}.{name}` {problem}, got {value!r}")


@dataclass(frozen=True)
class ResponseParams:
    """Listen probability: ``sigmoid(bias + b_u + taste*<θ_u, φ_i> + pop*z_i - fatigue)``.

    Fatigue is ``repeat`` if the track was already played this session, plus ``artist``
    for each of the last five tracks by the same artist (too-similar tracks bore).
    Every field is a finite number; ``repeat`` and ``artist`` are >= 0 (fatigue only
    lowers a logit, which the simulator's cached best tracks rely on).
    """

    bias: float = -2.5
    taste: float = 6.0
    pop: float = 0.6
    repeat: float = 4.0
    artist: float = 0.3

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class LeaveParams:
    """Leave hazard after each recommendation: ``1 - exp(-(1/patience_u + per_skip * skips))``.

    ``skips`` counts the skipped tracks among the last ``skip_window`` plays (1 to 5), so
    the hazard grows with a run of skips (``per_skip`` >= 0); a session never exceeds
    ``max_steps`` recommendations (1 to ``MAX_STEPS_LIMIT``).
    """

    per_skip: float = 0.12
    skip_window: int = 3
    max_steps: int = 20

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class RewardParams:
    """Reward scales (the reward itself: :mod:`musicrec_gym.sim.reward`).

    ``listen``: 1/0. ``time``: listening time on the 0–5 scale.

    ``event``: the event-strength scale of implicit-feedback logs (complete listen 1,
    like 1, add to library 2, skip -1), drawn with the probabilities below. The time
    ranges are ``[low, high]`` pairs of finite numbers; the probabilities are in [0, 1].
    """

    time_listened: tuple[float, float] = (4.0, 5.0)
    time_skipped: tuple[float, float] = (0.0, 1.5)
    p_like: float = 0.3
    p_add: float = 0.1

    def __post_init__(self) -> None:
        _check(self)


@dataclass(frozen=True)
class SatisfactionParams:
    """The delayed effects of ``MusicRecLongTerm-v0``: satisfaction that drives the leave hazard.

    A listener's satisfaction is an integer in ``[-levels, levels]``, 0 when the
    recommendations start (the warm-up sets none). Each *listened* recommendation moves
    it: +1 for a discovery (a track among the ``discovery_share`` least played of the
    catalog), -1 for an over-familiar pick (among the ``popular_share`` most played, or
    any repeat), 0 otherwise; a skip leaves it (skips have their own hazard term). The
    leave hazard's rate becomes ``max(0, 1/patience_u + per_skip * skips - weight *
    satisfaction)``: satisfied listeners stay, over-served ones leave sooner. So the
    track of best immediate listen probability, usually a popular one, is not the best
    for the session. ``enabled`` is False in ``MusicRec-v0`` (today's dynamics, bit for
    bit); ``MusicRecLongTerm-v0`` turns it on. The shares sum to at most 1.
    """

    enabled: bool = False
    weight: float = 0.03
    levels: int = 3
    popular_share: float = 0.2
    discovery_share: float = 0.5

    def __post_init__(self) -> None:
        _check(self)
        if self.popular_share + self.discovery_share > 1.0:
            raise ConfigError(
                "`SatisfactionParams.popular_share` + `discovery_share` must be <= 1, got "
                f"{self.popular_share} + {self.discovery_share}"
            )


@dataclass(frozen=True)
class SimulatorParams:
    """All simulator parameters, stored in a world's ``simulator.json``.

    ``warmup``: logging-policy plays that open a session (1 to 5). The logging policy
    plays a popular track with probability ``logging_pop_share``, a continuation of the
    last play with probability ``logging_continuation_share`` (the two sum to at most
    1), else one of the listener's ``logging_pool`` best tracks; a continuation is one
    of the ``continuation_pool`` pool tracks most like the last play
    (``1 <= continuation_pool <= logging_pool``).
    """

    response: ResponseParams = ResponseParams()
    leave: LeaveParams = LeaveParams()
    reward: RewardParams = RewardParams()
    satisfaction: SatisfactionParams = SatisfactionParams()
    warmup: int = 5
    logging_pop_share: float = 0.3
    logging_continuation_share: float = 0.4
    logging_pool: int = 50
    continuation_pool: int = 3

    def __post_init__(self) -> None:
        for name, kind in PARTS.items():
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(
                    f"`SimulatorParams.{name}` must be a {kind.__name__}, "
                    f"got {getattr(self, name)!r}"
                )
        _check(self)
        shares = self.logging_pop_share + self.logging_continuation_share
        if shares > 1.0:
            raise ConfigError(
                "`logging_pop_share` + `logging_continuation_share` must be <= 1, got "
                f"{self.logging_pop_share} + {self.logging_continuation_share} = {shares:g}"
            )
        if self.continuation_pool > self.logging_pool:
            raise ConfigError(
                f"`continuation_pool` must be <= `logging_pool` ({self.logging_pool}), "
                f"got {self.continuation_pool}"
            )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "simulator.json") -> SimulatorParams:
        """Read back ``to_dict``'s output, checking every key and value.

        Args:
            data: The parsed JSON.
            source: Names the file in errors.

        Raises:
            ArtifactError: Naming ``source`` and the key: an unknown key, a value of the
                wrong type, or one out of range (NaN, an infinity, a negative
                probability, ...).
        """
        if not isinstance(data, dict):
            raise ArtifactError(
                f"{source}: expected a JSON object of simulator parameters, got "
                f"{type(data).__name__}"
            )
        kwargs: dict[str, Any] = {}
        allowed = {f.name for f in fields(cls)}
        for key, value in data.items():
            if key not in allowed:
                raise ArtifactError(f"{source}: {unknown_name_message('key', str(key), allowed)}")
            if key in PARTS:
                kwargs[key] = _part_from_dict(PARTS[key], key, value, source)
                continue
            problem = RULES[cls.__name__][key](value)
            if problem is not None:
                raise ArtifactError(f"{source}: key {key!r} {problem}, got {value!r}")
            kwargs[key] = value
        try:
            return cls(**kwargs)
        except ConfigError as err:  # a rule across keys
            raise ArtifactError(f"{source}: {err}") from err


def _part_from_dict(part: type, key: str, value: Any, source: str) -> Any:
    """One nested record of ``simulator.json`` (``response``, ``leave`` or ``reward``)."""
    if not isinstance(value, dict):
        raise ArtifactError(
            f"{source}: key {key!r} must be a JSON object of {part.__name__} fields, got {value!r}"
        )
    rules = RULES[part.__name__]
    out = {}
    for k, v in value.items():
        if k not in rules:
            msg = unknown_name_message(f"key in {key!r}", str(k), rules)
            raise ArtifactError(f"{source}: {msg}")
        problem = rules[k](v)
        if problem is not None:
            raise ArtifactError(f"{source}: key '{key}.{k}' {problem}, got {v!r}")
        out[k] = tuple(v) if isinstance(v, list) else v
    try:
        return part(**out)
    except ConfigError as err:  # a rule across the record's keys
        raise ArtifactError(f"{source}: key {key!r}: {err}") from err


PARTS: dict[str, type] = {
    "response": ResponseParams,
    "leave": LeaveParams,
    "reward": RewardParams,
    "satisfaction": SatisfactionParams,
}
