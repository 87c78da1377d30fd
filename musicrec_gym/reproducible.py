"""CPU kernels that give the same floating-point results on every x86-64 machine.

PyTorch's CPU wheels pick their matrix kernels (MKL, oneDNN, ATen's vectorised loops)
by the processor's instruction set, so the same seeded training gives different
weights on an AVX-512 machine than on an AVX2 one. ``musicrec build`` must reproduce
the shipped world hash for hash on any machine, so the commands that train
(``build``, ``fit``) pin all three to their baseline code paths before PyTorch loads:
MKL's conditional numerical reproducibility (``MKL_CBWR=COMPATIBLE``), ATen's default
kernels and oneDNN's SSE4.1 path. Training is then about 1.4× slower (measured on the
default build: 58 s → 79 s on 2 cores).
"""

from __future__ import annotations

import os
import sys

PINNED_ENV = {
    "MKL_CBWR": "COMPATIBLE",
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
}


def pin_cpu_kernels() -> bool:
    """Select the baseline CPU kernels, if PyTorch has not been imported yet.

    Returns:
        True when the pinned kernels are in force: either this call set them, or the
        environment already had them when PyTorch was loaded.
    """
    if "torch" not in sys.modules:
        os.environ.update(PINNED_ENV)
        return True
    return kernels_pinned()


def kernels_pinned() -> bool:
    """True when the environment selects the pinned kernels (see ``PINNED_ENV``)."""
    return all(os.environ.get(key) == value for key, value in PINNED_ENV.items())
