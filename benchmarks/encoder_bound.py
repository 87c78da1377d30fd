"""How fast the NumPy session encoder alone lets the environment go on this machine.

The NumPy encoder (``NumpyEncoder.encode_ids``) serves worlds fitted to logs; a
synthetic world's env runs compiled kernels instead, whose costs
``benchmarks/step_bound.py`` measures part by part.

    python benchmarks/encoder_bound.py            # about 30 s
    python benchmarks/encoder_bound.py --quick    # about 10 s

Every step of the native batch env encodes one window per listener, plus one more per
session that ended (its final observation; the new session's first one is the slot's
regular row). The encoder's work per window is fixed by its shapes (docs/design.md §3): per
wave, one ``(B, H) x (H, 4H)`` matrix product (``H = H1 + H2``, both LSTM layers in one
wavefront) and a fixed number of ``tanh`` and arithmetic element operations. This
script counts them, measures what this machine attains for each kind of work, single
threaded (float32 and float64 matrix products at the encoder's shapes, float32 ``tanh``
and multiply per element), and prints:

* the encoder's FLOPs and element operations per window and per env step;
* the windows/s and env steps/s the NumPy encoder alone allows on one core and on
  every core (ideal);
* the measured ``encode_ids`` rate and, for comparison, the native env's steps/s at
  1,024 listeners on the built-in world (compiled, every core).

Figures are for this machine at this moment: on a loaded machine every figure is
depressed, so compare the ratios, which are measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)
from musicrec_gym.encoder import WINDOW
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.world import load_world

BATCH = 1024


def seconds_per_figure(doc: str) -> float:
    """The ``--seconds`` and ``--quick`` options of the bound scripts: wall time per figure."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="wall time per figure")
    parser.add_argument("--quick", action="store_true", help="0.5 s per figure")
    args = parser.parse_args()
    return 0.5 if args.quick else args.seconds


def best_rate(work: Callable[[], object], seconds: float, units: float) -> float:
    """``units`` per second of ``work``, the best of five timed slices of it."""
    work()
    best = float("inf")
    for _ in range(5):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 5:
            work()
            calls += 1
        best = min(best, elapsed / calls)
    return units / best


def single_threaded() -> object:
    """A context that keeps BLAS on one thread (threadpoolctl, a scikit-learn dependency)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def encoder_counts(h1: int, h2: int, window: int) -> dict[str, float]:
    """Work per window of ``NumpyEncoder.encode_ids`` (the gate-major path).

    Wave 0 (layer 1's first step) is a table lookup. Waves 1 .. T-1 run both layers:
    a ``H x 4H`` product, ``tanh`` over the 4H gates and H cell states, and 11H
    arithmetic element operations (scale and shift 3H, 2H products, H sum, H product,
    the 4H input projection added). The last wave runs layer 2 only (H2 wide).
    """
    h = h1 + h2
    waves = window - 1
    flops = 2 * waves * h * 4 * h + 2 * h * 4 * h2
    tanh = waves * 5 * h + 5 * h2
    arith = waves * (11 * h + 4 * h) + 15 * h2
    return {"flops": float(flops), "tanh": float(tanh), "arith": float(arith)}


def end_fraction(steps: int = 200) -> float:
    """Mean share of slots whose session ends per step with random actions."""
    env = MusicRecVectorEnv(num_envs=BATCH)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    ended = 0
    for _ in range(steps):
        _, _, term, trunc, _ = env.step(rng.integers(0, env.world.n_tracks, BATCH))
        ended += int((term | trunc).sum())
    return ended / (steps * BATCH)


def main() -> None:
    """Measure, count and print the bound."""
    seconds = seconds_per_figure(__doc__)
    cores = os.cpu_count() or 1

    world = load_world()
    enc = world.encoder
    h1, h2 = enc._h1, enc._h2
    h = h1 + h2
    counts = encoder_counts(h1, h2, WINDOW)
    rng = np.random.default_rng(0)

    rates: dict[str, float] = {}
    for dtype in (np.float32, np.float64):
        a = rng.random((BATCH, h)).astype(dtype)
        m = rng.random((h, 4 * h)).astype(dtype)
        out = np.empty((BATCH, 4 * h), dtype)
        with single_threaded():
            rates[f"gemm {dtype.__name__}"] = best_rate(
                lambda a=a, m=m, out=out: np.matmul(a, m, out=out), seconds, 2 * BATCH * h * 4 * h
            )
    x = rng.standard_normal((5, BATCH, h)).astype(np.float32)
    y = np.empty_like(x)
    rates["tanh float32"] = best_rate(lambda: np.tanh(x, out=y), seconds, x.size)
    rates["multiply float32"] = best_rate(lambda: np.multiply(x, x, out=y), seconds, x.size)

    per_window = (
        counts["flops"] / rates["gemm float32"]
        + counts["tanh"] / rates["tanh float32"]
        + counts["arith"] / rates["multiply float32"]
    )
    windows_bound = 1.0 / per_window
    ends = end_fraction()
    windows_per_step = 1.0 + ends

    tracks = rng.integers(0, world.n_tracks, (BATCH, WINDOW))
    flags = rng.integers(0, 2, (BATCH, WINDOW))
    codes = np.empty((BATCH, enc.code_dim), np.float32)
    encoder_rate = best_rate(lambda: enc.encode_ids(tracks, flags, out=codes), seconds, BATCH)
    env = MusicRecVectorEnv(num_envs=BATCH)
    env.reset(seed=0)
    actions = rng.integers(0, world.n_tracks, (64, BATCH))
    state = {"i": 0}

    def env_step() -> None:
        env.step(actions[state["i"] % 64])
        state["i"] += 1

    env_rate = best_rate(env_step, 2 * seconds, BATCH)

    step_bound = windows_bound / windows_per_step
    lines = [
        f"encoder: H1={h1}, H2={h2}, window {WINDOW}; per window {counts['flops']:,.0f} "
        f"FLOPs in matrix products, {counts['tanh']:,.0f} tanh, {counts['arith']:,.0f} "
        "other element operations",
        f"random actions end {100 * ends:.1f} % of sessions per step: "
        f"{windows_per_step:.2f} windows encoded per env step",
        "",
        "| attainable on one core (this run) | rate |",
        "|---|---:|",
        f"| float32 GEMM ({BATCH}x{h} @ {h}x{4 * h}) | {rates['gemm float32'] / 1e9:.1f} GFLOP/s |",
        f"| float64 GEMM ({BATCH}x{h} @ {h}x{4 * h}) | {rates['gemm float64'] / 1e9:.1f} GFLOP/s |",
        f"| float32 tanh | {rates['tanh float32'] / 1e9:.2f} G elements/s |",
        f"| float32 multiply | {rates['multiply float32'] / 1e9:.2f} G elements/s |",
        "",
        "| | windows/s | env steps/s (1,024 listeners) |",
        "|---|---:|---:|",
        f"| bound: encoder alone, 1 core | {windows_bound:,.0f} | {step_bound:,.0f} |",
        f"| bound: encoder alone, {cores} cores (ideal) | {cores * windows_bound:,.0f} | "
        f"{cores * step_bound:,.0f} |",
        f"| measured: encode_ids at {BATCH} | {encoder_rate:,.0f} "
        f"({encoder_rate / windows_bound:.2f} x 1-core bound) | |",
        f"| measured: native batch env | | {env_rate:,.0f} "
        f"({env_rate / step_bound:.2f} x 1-core bound) |",
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
