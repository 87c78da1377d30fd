"""The scripts in ``examples/``, each run as a researcher would, on a tiny budget.

An example whose library is not installed is skipped with the reason. The scripts
run in subprocesses with ``OMP_WAIT_POLICY=PASSIVE``: PyTorch's and numba's OpenMP
threads otherwise spin-wait against each other on a busy two-core machine, which
makes small networks up to ten times slower (``docs/libraries.md``).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"

# ``results_per_seed.csv`` of a real ``musicrec run`` (3 seeds, 2,000 training steps,
# 50 evaluation episodes per cell, the built-in world), as ``experiments/report.py``
# writes it.
PER_SEED = """\
agent,type,seed,normalised_score,return,optimal_return,fraction_of_optimal,listen_rate,\
session_length,eval_regret,train_regret,train_steps,train_time_s,cpu_time_s,eval_episodes
random,random,0,0,0.96,4.62119,0.207739,0.200837,4.78,3.45802,,0,0,0.048,50
random,random,1,0,0.94,4.54825,0.206673,0.2,4.7,3.54346,,0,0,0.363,50
random,random,2,0,1.36,4.8017,0.283233,0.276423,4.92,3.5102,,0,0,0.13,50
oracle,oracle,0,1,12.88,13.0166,0.989507,0.937409,13.74,3.55271e-17,,0,0,0.62,50
oracle,oracle,1,1,11.44,11.3991,1.00359,0.94859,12.06,4.88498e-17,,0,0,0.609,50
oracle,oracle,2,1,10.08,10.09,0.999008,0.952741,10.58,8.88178e-18,,0,0,0.024,50
Popularity,popularity,0,0.167785,2.96,6.31394,0.468804,0.453988,6.52,3.21658,,0,0,0.026,50
Popularity,popularity,1,0.137143,2.38,5.12208,0.464655,0.449057,5.3,2.61532,,0,0,0.025,50
Popularity,popularity,2,0.224771,3.32,5.95352,0.557653,0.542484,6.12,2.78132,,0,0,0.038,50
EpsGreedy,epsilon_greedy,0,0.511745,7.06,9.32124,0.75741,0.735417,9.6,2.27622,624.023,2000,2.191,2.892,50
EpsGreedy,epsilon_greedy,1,0.649524,7.76,8.79274,0.882546,0.854626,9.08,0.966358,570.954,2000,1.83,2.442,50
EpsGreedy,epsilon_greedy,2,0.607798,6.66,7.91782,0.84114,0.820197,8.12,1.23883,571.574,2000,1.761,2.359,50
LinUCB,linucb,0,0.614094,8.28,10.3274,0.801748,0.778195,10.64,1.84942,687.663,2000,2.083,2.604,50
LinUCB,linucb,1,0.794286,9.28,9.96299,0.931447,0.900971,10.3,0.796189,634.324,2000,2.904,2.243,50
LinUCB,linucb,2,0.610092,6.68,8.14156,0.820482,0.799043,8.36,1.48415,623.36,2000,2.092,2.533,50
"""


def run_example(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    """Run ``examples/<name>`` with ``args``; its stdout (fails with its stderr)."""
    environ = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", **(env or {})}
    out = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("--env", "gymnasium", "--steps", "128", "--n-envs", "2", "--n-steps", "64"),
        ("--env", "native", "--steps", "256", "--n-envs", "8", "--n-steps", "32"),
    ],
    ids=["make_vec_env", "native-adapter"],
)
def test_sb3_ppo(args):
    pytest.importorskip("stable_baselines3")
    out = run_example("sb3_ppo.py", *args, "--eval-episodes", "2")
    assert "greedy return" in out and "fraction of optimal" in out


def test_cleanrl_style_ppo(tmp_path):
    out = run_example(
        "cleanrl_ppo.py", "--steps", "1024", "--num-envs", "16", "--num-steps", "32",
        "--logdir", str(tmp_path),
    )  # fmt: skip
    assert "fraction of optimal" in out
    (run,) = tmp_path.iterdir()
    assert run.name.startswith("MusicRec-v0__cleanrl_ppo__0__")


def test_torchrl_ppo():
    pytest.importorskip("torchrl")
    out = run_example("torchrl_ppo.py", "--steps", "400", "--frames-per-batch", "200")
    assert "fraction of optimal" in out


def test_tianshou_dqn():
    pytest.importorskip("tianshou")
    out = run_example("tianshou_dqn.py", "--steps", "200", "--epochs", "1", "--eval-episodes", "2")
    assert "greedy return" in out


def test_minari_record(tmp_path):
    for module in ("minari", "h5py", "jax"):  # minari[hdf5,create]
        pytest.importorskip(module)
    out = run_example(
        "minari_record.py", "--episodes", "5", env={"MINARI_DATASETS_PATH": str(tmp_path)}
    )
    assert "5 sessions" in out and "'propensity'" in out and "'regret'" in out


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), EXAMPLES / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rliable_pivot_of_results_per_seed(tmp_path):
    import pandas as pd

    (tmp_path / "per_seed.csv").write_text(PER_SEED)
    scores = _load_example("rliable_scores.py").score_matrices(
        pd.read_csv(tmp_path / "per_seed.csv")
    )
    assert list(scores) == ["Popularity", "EpsGreedy", "LinUCB"]  # references left out
    assert all(matrix.shape == (3, 1) for matrix in scores.values())  # seeds x tasks


def test_rliable_scores(tmp_path):
    try:
        import rliable.library  # noqa: F401
    except Exception as err:  # rliable 1.2 with pandas 3: arch raises a TypeError
        pytest.skip(f"rliable does not import here: {type(err).__name__}: {err}")
    (tmp_path / "per_seed.csv").write_text(PER_SEED)
    out = run_example("rliable_scores.py", "--results", str(tmp_path / "per_seed.csv"),
                      "--reps", "500")  # fmt: skip
    assert "IQM" in out and "LinUCB" in out
