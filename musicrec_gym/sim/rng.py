"""Counter-based random numbers, one independent stream per listener slot.

Each slot of a batch owns a 64-bit key (from its seed) and a counter; a draw is the
SplitMix64 hash of (key, counter). A slot's numbers therefore depend only on its own
seed and on how many numbers it has drawn, never on which other slots share the batch,
so a batched environment and a single one give identical trajectories for the same
seeds. Drawing for 4,096 slots is a handful of vectorised integer operations;
:func:`draw` is the same draw for one slot, compiled for the kernels.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicrec_gym.sim.constants import (
    GOLDEN,
    JIT_OPTIONS,
    MIX1,
    MIX2,
    SEED_SALT,
    SHIFT11,
    SHIFT27,
    SHIFT30,
    SHIFT31,
    TO_UNIT,
)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of an unsigned 64-bit array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + GOLDEN
        z = (z ^ (z >> SHIFT30)) * MIX1
        z = (z ^ (z >> SHIFT27)) * MIX2
    return z ^ (z >> SHIFT31)


def seed_to_key(seed: int | np.ndarray) -> np.ndarray:
    """Map integer seed(s) to 64-bit stream keys (distinct seeds give unrelated keys)."""
    s = np.atleast_1d(np.asarray(seed, dtype=np.int64)).astype(np.uint64)
    return splitmix64(splitmix64(s) ^ SEED_SALT)


class SlotStreams:
    """Independent uniform streams for ``n`` slots.

    Args:
        n: Number of slots.
        state: Optional ``(n, 2)`` uint64 array to hold the keys and counters.
    """

    def __init__(self, n: int, state: np.ndarray | None = None) -> None:
        # (n, 2) uint64: key and counter per slot; the compiled kernels share it.
        self.state = np.zeros((n, 2), dtype=np.uint64) if state is None else state
        self.key = self.state[:, 0]
        self.counter = self.state[:, 1]

    def __getstate__(self) -> dict[str, np.ndarray]:
        # ``key`` and ``counter`` are views of ``state``, which pickle would copy apart.
        return {"state": self.state}

    def __setstate__(self, state: dict[str, np.ndarray]) -> None:
        self.__init__(len(state["state"]), state["state"])

    def seed(self, slots: np.ndarray, seeds: np.ndarray) -> None:
        """Restart the streams of ``slots`` from ``seeds``."""
        self.key[slots] = seed_to_key(seeds)
        self.counter[slots] = 0

    def uniform(self, slots: np.ndarray | slice, k: int) -> np.ndarray:
        """Draw ``k`` uniforms in [0, 1) for each of ``slots``; returns shape (len(slots), k)."""
        key = self.key[slots]
        ctr = self.counter[slots]
        offsets = np.arange(k, dtype=np.uint64)
        with np.errstate(over="ignore"):
            x = (key[:, None] ^ ((ctr[:, None] + offsets) * GOLDEN)) + key[:, None]
        self.counter[slots] = ctr + np.uint64(k)
        return (splitmix64(x) >> SHIFT11).astype(np.float64) * TO_UNIT


@njit(**JIT_OPTIONS)
def draw(rng: np.ndarray, s: int, k: int, out: np.ndarray) -> None:
    """``k`` uniforms of slot ``s``'s stream into ``out`` (``SlotStreams.uniform``, bit for bit).

    ``rng`` is ``SlotStreams.state``: a row (key, counter) per slot.
    """
    key, ctr = rng[s, 0], rng[s, 1]
    for j in range(k):
        x = (key ^ ((ctr + np.uint64(j)) * GOLDEN)) + key
        z = x + GOLDEN
        z = (z ^ (z >> SHIFT30)) * MIX1
        z = (z ^ (z >> SHIFT27)) * MIX2
        z = z ^ (z >> SHIFT31)
        out[j] = np.float64(z >> SHIFT11) * TO_UNIT
    rng[s, 1] = ctr + np.uint64(k)
