"""A policy that plays one track over and over, against the oracle, on a fitted world.

    python benchmarks/fitted_repeats.py worlds/mssd     # about 10 s

Each session (seeds 0-299): the repeating policy plays the oracle's first track, then
that same track every step; the oracle plays ``info["optimal_action"]`` every step.
Printed: each policy's mean expected reward per step (``info["expected_reward"]``, no
sampling noise). The fitted world's repeat table (``docs/fitting.md``) decides the
repeating policy's figure.
"""

from __future__ import annotations

import argparse

import gymnasium as gym

import musicrec_gym  # noqa: F401  (registers MusicRec-v0)


def per_step(world: str, policy: str, sessions: int) -> tuple[float, int]:
    """Mean expected reward per step of ``policy`` (``oracle`` or ``repeat``), and the steps."""
    env = gym.make("MusicRec-v0", world=world)
    total, steps = 0.0, 0
    for seed in range(sessions):
        _, info = env.reset(seed=seed)
        first, done = None, False
        while not done:
            action = info["optimal_action"] if policy == "oracle" or first is None else first
            first = action if first is None else first
            _, _, terminated, truncated, info = env.step(int(action))
            total, steps = total + float(info["expected_reward"]), steps + 1
            done = terminated or truncated
    return total / steps, steps


def main() -> None:
    """Print both policies' figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("world", help="a world written by `musicrec fit`")
    parser.add_argument("--sessions", type=int, default=300)
    args = parser.parse_args()
    for policy in ("oracle", "repeat"):
        value, steps = per_step(args.world, policy, args.sessions)
        print(f"{policy:<7} expected reward per step {value:.3f} ({steps} steps)")


if __name__ == "__main__":
    main()
