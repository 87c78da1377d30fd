"""What one native batch step costs, part by part, on one core of this machine.

    python benchmarks/step_bound.py            # about 45 s
    python benchmarks/step_bound.py --quick    # about 15 s

The native env's step (``CompiledSimulator.step_encode``, numba) does, per listener:
the step itself, its observation's encoding, and for a session that ended (about one
in 4.3 with random actions) the final observation's encoding and a restart with five
warm-up plays. This script times each part alone, single-threaded, in compiled loops
(no Python between calls), and prints:

* each part's cost per call and per env step, and their sum against the whole compiled
  step on one core and on every core;
* the encoder kernel's rate in its matrix products (FLOP/s) beside float32 GEMM's on
  this core (the encoder's own ceiling), and its ``tanh`` count;
* the single env's step and reset against CartPole-v1's step, with the compiled call
  alone.

Figures are for this machine at this moment; compare the ratios measured in one run.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gymnasium as gym
import numba
import numpy as np
from encoder_bound import best_rate, seconds_per_figure, single_threaded
from numba import njit

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)
from musicrec_gym.encoder import WINDOW
from musicrec_gym.encoder_kernel import BLOCK, aligned_empty, encode_block, encode_window
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.sim import kernels as kn
from musicrec_gym.sim.compiled import CompiledSimulator
from musicrec_gym.world import load_world

SLOTS = 1024


@njit
def _blocks(ce, lay, tracks, flags, out, work, reps):
    for _ in range(reps):
        for start in range(0, tracks.shape[0], BLOCK):
            end = start + BLOCK
            encode_block(ce, lay, tracks[start:end], flags[start:end], out[start:end], work)


@njit
def _windows(ce, lay, tracks, flags, out, work, reps):
    for _ in range(reps):
        for i in range(tracks.shape[0]):
            encode_window(ce, lay, tracks[i], flags[i], out[i], work)


@njit
def _resets(cf, ci, si, sf, rng, reps):
    u = np.empty(kn.RESET_DRAWS)
    sims = np.empty(2 * ci[kn.C_POOL])
    for _ in range(reps):
        for s in range(si.shape[0]):
            kn._reset_slot(cf, ci, si, sf, rng, s, -1, u, sims)


@njit
def _steps(cf, ci, si, sf, rng, actions, reps):
    """Steps (restarting ended sessions); returns the restarts done."""
    u = np.empty(kn.RESET_DRAWS)
    sims = np.empty(2 * ci[kn.C_POOL])
    restarts = 0
    for r in range(reps):
        row = actions[r % actions.shape[0]]
        for s in range(si.shape[0]):
            out = kn._step_slot(cf, ci, si, sf, rng, s, row[s], u)
            if out[4] or out[5]:
                kn._reset_slot(cf, ci, si, sf, rng, s, -1, u, sims)
                restarts += 1
    return restarts


def timed(run: Callable[[int], object], seconds: float) -> float:
    """Seconds per call of ``run(reps)``, with ``reps`` grown to fill ``seconds``."""
    run(1)
    reps = 1
    while True:
        start = time.perf_counter()
        run(reps)
        elapsed = time.perf_counter() - start
        if elapsed > seconds / 3:
            return elapsed / reps
        reps *= 4


def main() -> None:
    """Measure every part and print the tables."""
    seconds = seconds_per_figure(__doc__)
    cores = numba.get_num_threads()

    world = load_world()
    sim = CompiledSimulator(
        world.truth, world.artist_index, world.popularity, world.params, SLOTS,
        encoder=world.encoder, candidates=world.candidates,
    )  # fmt: skip
    slots = np.arange(SLOTS)
    sim.seed(slots, slots)
    sim.reset(slots)
    rng = np.random.default_rng(0)
    actions = rng.integers(0, world.n_tracks, (64, SLOTS))
    state = (sim.cf, sim.ci, sim.int_state, sim.float_state, sim.streams.state)
    ce, lay, work = sim.ce, sim.lay, aligned_empty(sim._work.shape[1])
    tracks = rng.integers(-1, world.n_tracks, (SLOTS, WINDOW))
    flags = rng.integers(0, 2, (SLOTS, WINDOW)).astype(np.float64)
    codes = np.empty((SLOTS, sim.code_dim), np.float32)

    numba.set_num_threads(1)
    per_block_window = (
        timed(lambda r: _blocks(ce, lay, tracks, flags, codes, work, r), seconds) / SLOTS
    )
    per_window = timed(lambda r: _windows(ce, lay, tracks, flags, codes, work, r), seconds) / SLOTS
    per_restart = timed(lambda r: _resets(*state, r), seconds) / SLOTS
    sim.reset(slots)
    counts = {}

    def steps(reps: int) -> None:
        counts["restarts"] = _steps(*state, actions, reps)
        counts["reps"] = reps

    per_step_and_restarts = timed(steps, seconds) / SLOTS
    ends = counts["restarts"] / (counts["reps"] * SLOTS)
    per_step = per_step_and_restarts - ends * per_restart
    sim.reset(slots)

    def whole(reps: int) -> None:
        for r in range(reps):
            sim.step_encode(actions[r % 64], autoreset=True)

    whole_one = timed(whole, seconds) / SLOTS
    numba.set_num_threads(cores)
    whole_all = timed(whole, seconds) / SLOTS
    env = MusicRecVectorEnv(num_envs=SLOTS)
    env.reset(seed=0)
    calls = {"i": 0}

    def env_step() -> None:
        env.step(actions[calls["i"] % 64])
        calls["i"] += 1

    env_rate = best_rate(env_step, seconds, SLOTS)

    # The encoder kernel's matrix products per window, and this core's float32 GEMM.
    h1, h2 = int(world.encoder._h1), int(world.encoder._h2)
    flops = 2 * (WINDOW - 1) * (4 * h1 * h1 + 4 * h2 * (h1 + h2))
    tanh = (WINDOW - 1) * (5 * h1 + 5 * h2)
    a = rng.random((SLOTS, h1 + h2)).astype(np.float32)
    m = rng.random((h1 + h2, 4 * (h1 + h2))).astype(np.float32)
    out = np.empty((SLOTS, 4 * (h1 + h2)), np.float32)
    with single_threaded():
        gemm = best_rate(
            lambda: np.matmul(a, m, out=out), seconds, 2 * SLOTS * (h1 + h2) * 4 * (h1 + h2)
        )

    parts = [
        ("encode the observation (blocks of 64)", per_block_window, 1.0),
        ("encode ended sessions' final observations", per_block_window, ends),
        ("restart ended sessions (5 warm-up plays)", per_restart, ends),
        ("the step (play, response, leave, optimum)", per_step, 1.0),
    ]
    total = sum(cost * freq for _, cost, freq in parts)
    us = 1e6
    lines = [
        f"random actions end {100 * ends:.1f} % of sessions per step "
        f"({1 / ends:.2f} steps per session); {SLOTS:,} listeners, one core",
        "",
        "| part | µs per call | calls per env step | µs per env step | share |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {cost * us:.3f} | {freq:.2f} | {cost * freq * us:.3f} | "
            f"{cost * freq / total:.0%} |"
            for name, cost, freq in parts
        ),
        f"| sum of the parts | | | {total * us:.3f} | 100% |",
        f"| whole compiled step, 1 core (measured) | | | {whole_one * us:.3f} | "
        f"{whole_one / total:.0%} |",
        f"| whole compiled step, {cores} cores (measured) | | | {whole_all * us:.3f} | "
        f"{whole_one / whole_all:.2f}x faster |",
        "",
        f"native batch env (`MusicRecVectorEnv.step`, {cores} cores): {env_rate:,.0f} steps/s; "
        f"sum of the parts on {cores} cores (ideal): {cores / total:,.0f} steps/s",
        "",
        f"encoder kernel: {flops:,} FLOPs in matrix products and {tanh} tanh per window; "
        f"{flops / per_block_window / 1e9:.1f} GFLOP/s counting the products alone "
        f"(blocks of 64), {flops / per_window / 1e9:.1f} one window at a time; float32 "
        f"GEMM on this core: {gemm / 1e9:.1f} GFLOP/s",
    ]
    # The single env against CartPole-v1.
    lines += ["", "| single env (`gym.make`, wrappers included, random actions) | "
              "CartPole-v1 | MusicRec-v0 |", "|---|---:|---:|"]  # fmt: skip
    figures = {}
    for name, n_actions in (("CartPole-v1", 2), ("MusicRec-v0", world.n_tracks)):
        env_one = gym.make(name)
        env_one.reset(seed=0)
        picks = rng.integers(0, n_actions, 4096).tolist()
        ends = {"n": 0}

        def cycle(env_one: gym.Env = env_one, picks: list = picks, ends: dict = ends) -> None:
            for pick in picks:
                _, _, terminated, truncated, _ = env_one.step(pick)
                if terminated or truncated:
                    env_one.reset()
                    ends["n"] += 1

        per_cycle = 1 / best_rate(cycle, seconds, len(picks))
        cycle()
        ends["n"] = 0
        cycle()
        per_reset = 1 / best_rate(env_one.reset, seconds, 1)
        length = len(picks) / max(ends["n"], 1)
        figures[name] = (per_cycle, per_reset, length)
    rows = [
        ("a step with its share of resets (µs)", lambda f: f"{f[0] * us:.2f}"),
        ("a reset (µs)", lambda f: f"{f[1] * us:.2f}"),
        ("steps per episode", lambda f: f"{f[2]:.1f}"),
        ("a step without resets (µs)", lambda f: f"{(f[0] - f[1] / f[2]) * us:.2f}"),
    ]
    lines += [
        f"| {label} | {show(figures['CartPole-v1'])} | {show(figures['MusicRec-v0'])} |"
        for label, show in rows
    ]
    lines.append(f"\none-window encoder kernel (in each step and reset): {per_window * us:.2f} µs")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
