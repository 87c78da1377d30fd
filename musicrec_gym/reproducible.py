"""CPU kernels that give the same floating-point results on every x86-64 machine.

The numerical libraries pick their kernels by the processor's instruction set, so the
same seeded training gives other bits on an AVX-512 machine than on an AVX2 one:

- OpenBLAS (NumPy's and SciPy's; gensim's word2vec calls SciPy's ``sdot``/``saxpy``
  for every update) chooses a kernel per CPU model when it loads;
- PyTorch's CPU wheels choose MKL, oneDNN and ATen's vectorised loops the same way.

``musicrec build`` must reproduce the shipped world hash for hash on any machine, so
the commands that train (``build``, ``fit``) run with every one of them on its baseline
code path (:data:`PINNED_ENV`): OpenBLAS's Nehalem (SSE4.2) kernels on one thread,
MKL's conditional numerical reproducibility (``MKL_CBWR=COMPATIBLE``), ATen's default
kernels and oneDNN's SSE4.1 path. Every processor that runs NumPy 2 runs these: its
wheels need x86-64-v2 (SSE4.2) themselves.

The variables only act on a library loaded after they are set, and NumPy is loaded as
soon as ``musicrec_gym`` is (Gymnasium imports it). So ``musicrec build``/``fit`` from
the command line re-execute themselves once with the variables set
(:func:`reexec_pinned`), and :func:`kernels_pinned` checks the libraries actually
loaded, not only the environment. PyTorch's pins made the default build about 1.4x
slower when they came in (58 s -> 79 s on 2 cores).
"""

from __future__ import annotations

import os
import sys

PINNED_ENV = {
    "OPENBLAS_CORETYPE": "Nehalem",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_CBWR": "COMPATIBLE",
    "ATEN_CPU_CAPABILITY": "default",
    "ONEDNN_MAX_CPU_ISA": "SSE41",
}

BASELINE_OPENBLAS_CORES = frozenset({"Nehalem"})

# Set in the re-executed process, so that it never re-executes again.
_REEXEC_MARK = "MUSICREC_PINNED_REEXEC"


def pin_cpu_kernels() -> bool:
    """Select the baseline kernels for every library not loaded yet.

    Returns:
        True when the pinned kernels are in force for every library that matters:
        the environment selects them and every OpenBLAS already loaded runs its
        baseline kernels (see :func:`kernels_pinned`).
    """
    if "torch" not in sys.modules:
        os.environ.update(PINNED_ENV)
    return kernels_pinned()


def loaded_openblas_cores() -> list[str]:
    """The kernel set ("architecture") of every OpenBLAS loaded in this process."""
    from threadpoolctl import threadpool_info

    return [
        str(lib.get("architecture"))
        for lib in threadpool_info()
        if lib.get("internal_api") == "openblas"
    ]


def kernels_pinned() -> bool:
    """True when the environment selects the pinned kernels and the loaded BLAS obeys.

    An OpenBLAS loaded before :data:`PINNED_ENV` was set keeps the kernels it chose for
    this CPU, so the environment alone does not prove anything.
    """
    if not all(os.environ.get(key) == value for key, value in PINNED_ENV.items()):
        return False
    return all(core in BASELINE_OPENBLAS_CORES for core in loaded_openblas_cores())


def reexec_pinned(argv: list[str]) -> None:
    """Run ``musicrec ARGV`` again in this process's place, with :data:`PINNED_ENV` set.

    Does nothing when the kernels are already pinned, or in the re-executed process
    itself (a BLAS that ignores the variables must not loop). Only for the command
    line: it replaces the running program.

    Args:
        argv: The command's arguments, without the program name.
    """
    if kernels_pinned() or os.environ.get(_REEXEC_MARK) == "1":
        return
    env = {**os.environ, **PINNED_ENV, _REEXEC_MARK: "1"}
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, "-m", "musicrec_gym.cli", *argv], env)
