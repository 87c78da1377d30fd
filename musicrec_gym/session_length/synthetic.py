"""Last.fm-style listening histories of the synthetic world, many sessions per listener.

The sessions are run by the world's own simulator (``BatchSimulator``, radio-like logging
policy, the world's response and leave models), so the session process is known: after
every play the listener leaves with probability
``1 - exp(-(1/patience_us + per_skip * recent_skips))``. ``patience_us`` is the listener's
hidden ``patience`` times a *mood* factor ``exp(m_us)``, where ``m`` follows a stationary
AR(1) process over the listener's successive sessions (``m_us = rho * m_u,s-1 +
sqrt(1 - rho**2) * sigma * eps``). With ``mood_sigma = 0`` the process is exactly the
simulator's; the mood gives the histories the serial correlation of real ones (a listener
in a long-session period stays in it for a while), which is what a sequence model can
learn beyond the user's running average.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from musicrec_gym.data.synthetic import WorldTruth
from musicrec_gym.errors import ConfigError
from musicrec_gym.sim.response import ResponseModel
from musicrec_gym.sim.simulator import BatchSimulator, ListenerCandidates


@dataclass(frozen=True)
class SyntheticHistoryConfig:
    """How the synthetic histories are drawn.

    Attributes:
        n_listeners: The world's first ``n_listeners`` listeners get a history.
        sessions_per_listener: Sessions per listener (one after another in time).
        max_tracks: Longest session, in plays (warm-up included).
        per_skip: Skip term of the leave hazard; ``None`` keeps the world's.
        mood_rho: Session-to-session autocorrelation of the mood, in [0, 1).
        mood_sigma: Standard deviation of the log-patience mood (0: no mood).
        seed: Seed of the simulator streams, the mood and the timestamps.
    """

    n_listeners: int = 300
    sessions_per_listener: int = 60
    max_tracks: int = 60
    per_skip: float | None = None
    mood_rho: float = 0.0
    mood_sigma: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        ints = {
            "n_listeners": (1, MAX_LISTENERS),
            "sessions_per_listener": (2, MAX_SESSIONS_PER_LISTENER),
            "max_tracks": (1, MAX_TRACKS_PER_SESSION),
            "seed": (0, 2**32 - 1),
        }
        for name, (low, high) in ints.items():
            value = getattr(self, name)
            if not _is_int(value) or not low <= value <= high:
                raise ConfigError(
                    f"`{name}` must be an int in [{low}, {high:,}], got {_shown(value)}"
                )
        floats = {
            "per_skip": (0.0, MAX_PER_SKIP, False),
            "mood_rho": (0.0, 1.0, True),
            "mood_sigma": (0.0, MAX_MOOD_SIGMA, False),
        }
        for name, (low, high, open_high) in floats.items():
            value = getattr(self, name)
            if name == "per_skip" and value is None:
                continue
            ok = _is_real(value) and low <= value and (value < high if open_high else value <= high)
            if not ok:
                bracket = ")" if open_high else "]"
                extra = " or null (the world's)" if name == "per_skip" else ""
                raise ConfigError(
                    f"`{name}` must be a finite number in [{low:g}, {high:g}{bracket}{extra}, "
                    f"got {_shown(value)}"
                )
        plays = self.n_listeners * self.sessions_per_listener * self.max_tracks
        if plays > MAX_SIMULATED_PLAYS:
            raise ConfigError(
                f"`n_listeners` x `sessions_per_listener` x `max_tracks` = {plays:,} plays at "
                f"most; the limit is {MAX_SIMULATED_PLAYS:,} (the simulator holds them all)"
            )


#: Limits of ``SyntheticHistoryConfig`` (the simulator holds every session at once).
MAX_LISTENERS = 1_000_000
MAX_SESSIONS_PER_LISTENER = 10_000
MAX_TRACKS_PER_SESSION = 10_000
MAX_SIMULATED_PLAYS = 200_000_000
#: A skip term past this leaves after the first skip anyway; a mood past this overflows.
MAX_PER_SKIP = 100.0
MAX_MOOD_SIGMA = 10.0


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value: object) -> bool:
    """An int or float, never a bool (the finite bounds of every range exclude NaN and inf)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}..."


@dataclass(frozen=True)
class SyntheticHistories:
    """Histories drawn from a world, with what a real dataset would not tell us.

    Attributes:
        plays: Last.fm-style plays: user_id, timestamp (UTC), artist_id, artist_name,
            track_id, track_name.
        profiles: user_id, gender, age, country, registered of the listeners drawn.
        durations: Track duration in seconds, indexed by track_id.
        patience: (n_listeners, sessions) patience of every session, in tracks (truth).
        lengths: (n_listeners, sessions) session lengths in plays (truth).
    """

    plays: pd.DataFrame
    profiles: pd.DataFrame
    durations: pd.Series
    patience: np.ndarray
    lengths: np.ndarray


def synthetic_histories(world, config: SyntheticHistoryConfig) -> SyntheticHistories:
    """Simulate ``sessions_per_listener`` sessions for each of the first listeners.

    Args:
        world: A synthetic ``World`` (``load_world()``); it needs its hidden truth.
        config: Sizes, mood and seed.

    Returns:
        The histories; the same config gives the same frames.

    Raises:
        ConfigError: The world has no hidden truth (a fitted world) or too few listeners.
    """
    if world.truth is None:
        raise ConfigError(f"{world.directory}: synthetic histories need a synthetic world")
    if config.n_listeners > world.n_listeners:
        raise ConfigError(
            f"`n_listeners` must be at most the world's {world.n_listeners}, "
            f"got {config.n_listeners}"
        )
    n_u, n_s = config.n_listeners, config.sessions_per_listener
    rng = np.random.default_rng([config.seed, 61])
    eps = rng.standard_normal((n_u, n_s))
    mood = np.empty((n_u, n_s))
    mood[:, 0] = config.mood_sigma * eps[:, 0]
    scale = np.sqrt(1.0 - config.mood_rho**2) * config.mood_sigma
    for s in range(1, n_s):
        mood[:, s] = config.mood_rho * mood[:, s - 1] + scale * eps[:, s]
    truth = world.truth
    patience = truth.patience[:n_u, None].astype(np.float64) * np.exp(mood)

    # One simulated "listener" per (listener, session) slot, carrying that session's patience.
    users = np.repeat(np.arange(n_u), n_s)
    slot_truth = WorldTruth(
        track_factors=truth.track_factors,
        pop_z=truth.pop_z,
        listener_taste=truth.listener_taste[users],
        listener_bias=truth.listener_bias[users],
        patience=patience.ravel().astype(np.float32),
    )
    params = world.params
    leave = replace(params.leave, max_steps=max(config.max_tracks - params.warmup, 1))
    if config.per_skip is not None:
        leave = replace(leave, per_skip=float(config.per_skip))
    params = replace(params, leave=leave)
    n = len(users)
    candidates = ListenerCandidates(ResponseModel(slot_truth, params.response))
    sim = BatchSimulator(
        slot_truth, world.artist_index, world.popularity, params, n, candidates=candidates
    )
    slots = np.arange(n)
    sim.seed(slots, np.int64(config.seed) * 10**9 + slots)
    sim.reset(slots, users=slots)
    lengths = np.full(n, params.warmup + sim.max_steps, dtype=np.int64)
    alive = np.ones(n, dtype=bool)
    for _ in range(sim.max_steps):
        result = sim.step(sim.logging_actions())
        after = alive & ~(result.terminated | result.truncated)
        lengths[alive & ~after] = sim.hist_len[alive & ~after]
        alive = after
        if not alive.any():
            break
    width = sim.hist.shape[1]
    mask = np.arange(width)[None, :] >= lengths[:, None]
    tracks = np.where(mask, -1, sim.hist)
    listened = np.where(mask, 0, sim.hist_listened)

    plays = _lay_out(users, tracks, listened, world, np.random.default_rng([config.seed, 62]))
    profiles = world.listeners.iloc[:n_u][["user_id", "gender", "age", "country", "registered"]]
    durations = pd.Series(
        world.catalog["duration_s"].to_numpy(dtype=np.float64),
        index=world.catalog["track_id"].astype(str),
        name="duration_s",
    )
    return SyntheticHistories(
        plays=plays,
        profiles=profiles.reset_index(drop=True),
        durations=durations,
        patience=patience,
        lengths=lengths.reshape(n_u, n_s),
    )


def _lay_out(users, tracks, listened, world, rng: np.random.Generator) -> pd.DataFrame:
    """Plays with timestamps: sessions of a listener in order, 1 h + Exp(3 days) apart.

    Like ``data.logs.to_lastfm`` (a listened track plays whole, a skipped one for 10-30%
    of its duration), except that the gap is counted from the *end* of the previous
    session, so long sessions never run into the next one.
    """
    catalog = world.catalog
    rows_s, rows_p = np.nonzero(tracks >= 0)
    played_tracks = tracks[rows_s, rows_p]
    dur = catalog["duration_s"].to_numpy(dtype=np.float64)[played_tracks]
    skipped = listened[rows_s, rows_p] == 0
    played = np.where(skipped, dur * rng.uniform(0.1, 0.3, len(dur)), dur)
    offset = np.cumsum(played) - played  # seconds since the first play of all
    first = np.r_[True, rows_s[1:] != rows_s[:-1]]
    within = offset - np.maximum.accumulate(np.where(first, offset, 0.0))
    n = tracks.shape[0]
    session_time = np.bincount(rows_s, weights=played, minlength=n)
    gaps = 3600.0 + rng.exponential(3 * 86400.0, size=n)
    new_user = np.r_[True, users[1:] != users[:-1]]
    step = gaps + np.r_[0.0, session_time[:-1]]
    step[new_user] = gaps[new_user]
    cum = np.cumsum(step)
    start = cum - np.maximum.accumulate(np.where(new_user, cum - step, 0.0))
    t = pd.Timestamp("2008-01-01", tz="UTC").timestamp() + start[rows_s] + within
    user_ids = world.listeners["user_id"].to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "user_id": user_ids[users[rows_s]],
            "timestamp": pd.to_datetime(np.round(t), unit="s", utc=True),
            "artist_id": catalog["artist_id"].to_numpy()[played_tracks],
            "artist_name": catalog["artist"].to_numpy()[played_tracks],
            "track_id": catalog["track_id"].to_numpy()[played_tracks],
            "track_name": catalog["title"].to_numpy()[played_tracks],
        }
    )
