"""The README's reproducibility contract on this machine and on a stand-in for another.

A different CPU model is stood in for by masking this one's features: numba compiles
the kernels for a generic x86-64 target and OpenBLAS runs another kernel set.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from musicrec_gym.reproducible import PINNED_ENV
from tests.conftest import MSSD_SAMPLE
from tests.envs.test_trajectories import assert_within_contract
from tests.envs.trajectory_cases import run_cases

ROOT = Path(__file__).resolve().parents[1]
# A small world through every stage of `musicrec build` (seconds, not minutes).
SMALL_BUILD = [
    *("--n-tracks", "60", "--n-listeners", "40", "--n-sessions", "400"),
    *("--embedding-epochs", "1", "--encoder-epochs", "1", "--no-eval", "--quiet"),
]
# OpenBLAS's Prescott kernels run on every x86-64 CPU and are not the pinned ones.
OTHER_BLAS = "Prescott"


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any pins, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in PINNED_ENV}
    env.pop("MUSICREC_PINNED_REEXEC", None)
    env["PYTHONPATH"] = str(ROOT)
    return {**env, **extra}


SMALL_FIT = [
    str(MSSD_SAMPLE),
    *("--embedding-epochs", "1", "--encoder-epochs", "1", "--epochs", "1", "--quiet"),
]
# Shells set up for this CPU's own kernels and for others: the commands must not care.
SHELLS = {
    "plain": {},
    "masked": {"OPENBLAS_CORETYPE": OTHER_BLAS, "ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AUTO"},
}


def _musicrec(command: str, args: list[str], out: Path, env: dict[str, str]) -> dict:
    cmd = [sys.executable, "-m", "musicrec_gym.cli", command, *args, "--out", str(out)]
    subprocess.run(cmd, check=True, capture_output=True, env=env, timeout=600)
    return json.loads((out / "manifest.json").read_text())


@pytest.mark.parametrize(("command", "args"), [("build", SMALL_BUILD), ("fit", SMALL_FIT)])
def test_training_commands_pin_the_kernels_whatever_the_caller_chose(command, args, tmp_path):
    """The command re-executes itself pinned: same hashes from differently set-up shells."""
    if command == "fit" and not MSSD_SAMPLE.is_file():
        pytest.skip(f"shared MSSD sample not found at {MSSD_SAMPLE}")
    manifests = {
        name: _musicrec(command, args, tmp_path / name, _clean_env(**extra))
        for name, extra in SHELLS.items()
    }
    assert {m["versions"]["cpu_kernels"] for m in manifests.values()} == {"pinned"}
    assert manifests["masked"]["files"] == manifests["plain"]["files"]


@pytest.mark.parametrize(
    ("env", "pinned"),
    [
        (dict(PINNED_ENV), True),  # set before the libraries load
        ({"OPENBLAS_CORETYPE": OTHER_BLAS}, False),  # OpenBLAS loaded with other kernels
        ({}, False),  # nothing pinned
    ],
)
def test_kernels_pinned_checks_the_loaded_blas_not_only_the_environment(env, pinned):
    """Setting the variables after NumPy loaded does not pin NumPy's OpenBLAS."""
    code = (
        "import os, numpy, scipy.linalg\n"
        "from musicrec_gym import reproducible as r\n"
        "before = r.kernels_pinned()\n"
        "os.environ.update(r.PINNED_ENV)\n"
        "print(before, r.kernels_pinned())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        env=_clean_env(**env),
        timeout=120,
    ).stdout.split()
    assert out == [str(pinned), str(pinned)]


@pytest.mark.slow
def test_trajectories_on_a_masked_cpu_keep_the_contract(tmp_path):
    """Generic x86-64 kernels and other BLAS kernels: the contract still holds.

    Same discrete trajectories, floats within the stated tolerance (about 40 s: numba
    compiles afresh).
    """
    out = tmp_path / "masked.npz"
    code = (
        "import sys, numpy as np\n"
        "from tests.envs.trajectory_cases import run_cases\n"
        "np.savez(sys.argv[1], **run_cases())\n"
    )
    env = _clean_env(
        NUMBA_CPU_NAME="generic",
        NUMBA_CACHE_DIR=str(tmp_path / "numba_cache"),
        OPENBLAS_CORETYPE=OTHER_BLAS,
    )
    subprocess.run(
        [sys.executable, "-c", code, str(out)],
        check=True,
        capture_output=True,
        env=env,
        cwd=ROOT,
        timeout=900,
    )
    with np.load(out) as masked:
        assert_within_contract({key: masked[key] for key in masked.files}, run_cases())
