"""Logged sessions of a simulated world: the logging policy run for whole sessions.

The logging policy is the simulator's radio-like warm-up policy (popularity mixed with
the listener's taste); ``musicrec_gym.data.logs`` writes the sessions in the MSSD and
Last.fm-1K schemas.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from tqdm.auto import tqdm

from musicrec_gym.data.logs import MAX_SESSION_TRACKS
from musicrec_gym.sim.params import SimulatorParams
from musicrec_gym.sim.simulator import BatchSimulator


def simulate_sessions(
    sim_factory,
    n_sessions: int,
    seed: int,
    chunk: int = 20_000,
    progress: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run the logging policy for ``n_sessions`` sessions of at most 20 tracks.

    Args:
        sim_factory: ``n_slots -> BatchSimulator`` whose ``max_steps`` is 20 minus warm-up.
        n_sessions: Number of sessions.
        seed: Session ``i`` uses the random stream of seed ``seed * 10**9 + i``.
        chunk: Sessions simulated at once.
        progress: Show a progress bar.

    Returns:
        ``(users, lengths, tracks, listened)``: per session the listener and the length,
        and (n_sessions, 20) arrays of tracks (-1 padded) and listen flags.
    """
    users = np.zeros(n_sessions, dtype=np.int64)
    lengths = np.zeros(n_sessions, dtype=np.int64)
    tracks = np.full((n_sessions, MAX_SESSION_TRACKS), -1, dtype=np.int64)
    listened = np.zeros((n_sessions, MAX_SESSION_TRACKS), dtype=np.int8)
    bar = tqdm(total=n_sessions, desc="logging sessions", disable=not progress, unit="session")
    for start in range(0, n_sessions, chunk):
        ids = np.arange(start, min(start + chunk, n_sessions))
        sim: BatchSimulator = sim_factory(len(ids))
        slots = np.arange(len(ids))
        sim.seed(slots, np.int64(seed) * 10**9 + ids)
        sim.reset(slots)
        alive = np.ones(len(ids), dtype=bool)
        for _ in range(sim.max_steps):
            result = sim.step(sim.logging_actions())
            alive_after = alive & ~(result.terminated | result.truncated)
            lengths[ids[alive & ~alive_after]] = sim.hist_len[alive & ~alive_after]
            alive = alive_after
            if not alive.any():
                break
        users[ids] = sim.user
        tracks[ids] = sim.hist[:, :MAX_SESSION_TRACKS]
        listened[ids] = sim.hist_listened[:, :MAX_SESSION_TRACKS]
        bar.update(len(ids))
    bar.close()
    mask = np.arange(MAX_SESSION_TRACKS)[None, :] >= lengths[:, None]
    tracks[mask] = -1
    listened[mask] = 0
    return users, lengths, tracks, listened


def logging_simulator_factory(truth, artist, popularity, params: SimulatorParams):
    """A factory of simulators whose sessions hold at most 20 tracks, warm-up included."""
    params = replace(
        params, leave=replace(params.leave, max_steps=MAX_SESSION_TRACKS - params.warmup)
    )
    candidates = None

    def factory(n_slots: int) -> BatchSimulator:
        nonlocal candidates
        sim = BatchSimulator(truth, artist, popularity, params, n_slots, candidates=candidates)
        candidates = sim.candidates
        return sim

    return factory
