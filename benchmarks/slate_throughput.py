"""Throughput of ``MusicRecSlate-v0``'s native vector env against ``MusicRec-v0``'s.

    python benchmarks/slate_throughput.py            # about 40 s on 2 cores
    python benchmarks/slate_throughput.py --quick    # shorter timings

Env steps per second (all listeners summed) of ``SlateVectorEnv`` with 1,024 listeners
(K = 5), showing uniformly random slates (short sessions, frequent resets) and the
optimal slates (long sessions), against ``MusicRecVectorEnv`` with 1,024 listeners and
random tracks, measured in the same run: the fastest of five slices of a fixed wall
time after a warm-up. A slate step costs more than a catalog step because it scores
the whole catalog for every listener (the expected rewards behind the choice model and
the exact optimal slate), O(n_tracks) per listener and step.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from musicrec_gym.envs.slate import SlateVectorEnv
from musicrec_gym.envs.vector import MusicRecVectorEnv

N_ENVS = 1024


def rate(step: Callable[[], None], n: int, seconds: float, slices: int = 5) -> float:
    """Steps per second (``n`` per call) of the fastest of ``slices`` timed slices."""
    step()  # warm-up: compiles and fills caches
    best = 0.0
    for _ in range(slices):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            step()
            calls += 1
        best = max(best, calls * n / elapsed)
    return best


def main() -> None:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter timed slices")
    args = parser.parse_args()
    seconds = 0.5 if args.quick else 2.0
    rng = np.random.default_rng(0)

    catalog = MusicRecVectorEnv(num_envs=N_ENVS)
    catalog.reset(seed=0)
    n_tracks = catalog.world.n_tracks
    catalog_rate = rate(lambda: catalog.step(rng.integers(0, n_tracks, N_ENVS)), N_ENVS, seconds)

    slate = SlateVectorEnv(num_envs=N_ENVS)
    k = slate.slate_size
    state = {"info": slate.reset(seed=0)[1]}

    def random_step() -> None:
        keys = rng.random((N_ENVS, n_tracks))
        state["info"] = slate.step(np.argpartition(keys, k - 1, axis=1)[:, :k])[4]

    def optimal_step() -> None:
        state["info"] = slate.step(state["info"]["optimal_action"])[4]

    rows = [
        ("MusicRec-v0, random tracks", catalog_rate),
        ("MusicRecSlate-v0, random slates", rate(random_step, N_ENVS, seconds)),
        ("MusicRecSlate-v0, optimal slates", rate(optimal_step, N_ENVS, seconds)),
    ]
    print(f"| env ({N_ENVS:,} listeners) | env steps/s | vs MusicRec-v0 |")
    print("|---|---:|---:|")
    for name, value in rows:
        print(f"| {name} | {value:,.0f} | {value / catalog_rate:.2f} |")


if __name__ == "__main__":
    main()
