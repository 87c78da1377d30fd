"""How long ``musicrec log`` takes to log 10,000 sessions of the world's logging policy.

The target (issue 17): under 30 s on 2 cores for 10,000 sessions of the built-in
world, every propensity exact. Times the rollout (``log_sessions``, references
skipped), the references it adds by default (500 sessions each of uniform random and
the oracle) and writing the dataset directory::

    python benchmarks/log_export.py                 # 10,000 sessions
    python benchmarks/log_export.py --sessions 2000 # quicker

The first rollout in a process also compiles (or loads from numba's cache) the
simulator's kernels: a warm-up run of 256 sessions comes first and is not timed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

from experiments.logged import REF_SESSIONS, log_sessions


def main(argv: list[str] | None = None) -> None:
    """Time the export and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10000, help="sessions to log (10000)")
    parser.add_argument("--policy", default="world", help="logging policy spec (world)")
    parser.add_argument("--num-envs", type=int, default=256, help="concurrent sessions (256)")
    args = parser.parse_args(argv)

    log_sessions(policy=args.policy, sessions=256, progress=False, ref_sessions=0)  # warm-up
    start = time.perf_counter()
    dataset = log_sessions(
        policy=args.policy, sessions=args.sessions, num_envs=args.num_envs,
        progress=False, ref_sessions=0,
    )  # fmt: skip
    rollout = time.perf_counter() - start
    start = time.perf_counter()
    log_sessions(policy=args.policy, sessions=1, progress=False, ref_sessions=REF_SESSIONS)
    refs = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        dataset.save(os.path.join(tmp, "logs"))
        write = time.perf_counter() - start
    total = rollout + refs + write
    print(
        f"{args.sessions} sessions of {args.policy!r} ({dataset.n_rows} steps) on the built-in "
        f"world, {os.cpu_count()} cores: rollout {rollout:.2f} s "
        f"({dataset.n_rows / rollout:,.0f} steps/s), references ({REF_SESSIONS} + "
        f"{REF_SESSIONS} sessions) {refs:.2f} s, write {write:.2f} s; total {total:.2f} s "
        f"(target < 30 s)"
    )


if __name__ == "__main__":
    main()
