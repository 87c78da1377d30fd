"""The compiled prefetch hint: it compiles for every element type and changes nothing."""

from __future__ import annotations

import numpy as np
from numba import njit

from musicrec_gym.sim.prefetch import prefetch


@njit(cache=False)
def _sum_with_prefetch(values, ahead):
    total = 0.0
    for i in range(values.shape[0]):
        prefetch(values, i + ahead)  # past the end too: a hint never faults
        total += values[i]
    return total


def test_prefetch_compiles_for_each_dtype_and_leaves_results_alone():
    for dtype in (np.float64, np.float32, np.int64, np.int16):
        values = np.arange(1, 1001).astype(dtype)
        for ahead in (0, 8, 10_000_000):
            assert _sum_with_prefetch(values, ahead) == float(values.astype(np.float64).sum())
