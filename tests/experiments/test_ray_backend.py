"""``musicrec run --backend ray``: a grid as Ray Tune trials on a local Ray instance.

One Ray instance (``num_cpus=2``, no dashboard, ``RAY_ADDRESS`` unset) serves the whole
module and is shut down at the end; the teardown checks that it left no Ray process
behind.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pandas as pd
import pytest

from experiments.runner import CellFailedError, run_experiment
from musicrec_gym.cli import main

ray = pytest.importorskip("ray", reason='Ray Tune is not installed: pip install -e ".[ray]"')
tune = pytest.importorskip("ray.tune")

GRID = """\
name: grid
env:
  kwargs: {{world: {world}}}
  num_envs: 8
seeds: [0, 1]
budget:
  train_steps: 400
  eval_episodes: 12
agents:
  - name: EpsGreedy
    type: epsilon_greedy
sweep:
  agents.EpsGreedy.params.epsilon: [0.1, 0.3]
"""
#: The 4 cells of the grid (2 epsilons x 2 seeds); the references add 4 cheap cells.
GRID_CELLS = [f"EpsGreedy@epsilon={e}__seed{s}" for e in ("0.1", "0.3") for s in (0, 1)]
TIMES = ["train_time_s", "cpu_time_s", "seconds_to_0.9"]  # wall-clock figures


def _ray_pids() -> set[int]:
    """Pids of the Ray daemons running on this machine (read from /proc)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"raylet" in cmdline or b"gcs_server" in cmdline:
            pids.add(int(entry.name))
    return pids


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance of 2 CPUs for the module, shut down (and checked) at the end."""
    address = os.environ.pop("RAY_ADDRESS", None)
    before = _ray_pids()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    if address is not None:
        os.environ["RAY_ADDRESS"] = address
    deadline = time.monotonic() + 15
    while _ray_pids() - before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _ray_pids() - before, "ray.shutdown() left Ray processes running"


@pytest.fixture
def grid_config(tiny_world: Path, tmp_path: Path) -> Path:
    config = tmp_path / "grid.yaml"
    config.write_text(GRID.format(world=tiny_world), encoding="utf-8")
    return config


def _mtimes(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("cells/*/result.json")}


def test_grid_on_ray_writes_the_local_files_and_numbers(
    local_ray, grid_config: Path, tmp_path: Path
) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    on_ray = tmp_path / "ray"
    args = ["run", str(grid_config), "--out", str(on_ray), "--quiet"]
    assert main([*args, "--backend", "ray"]) == 0
    per_seed = pd.read_csv(on_ray / "results_per_seed.csv")
    grid_rows = per_seed[per_seed["type"] == "epsilon_greedy"]
    assert len(grid_rows) == 4
    assert sorted(zip(grid_rows["params.epsilon"], grid_rows["seed"], strict=True)) == [
        (0.1, 0), (0.1, 1), (0.3, 0), (0.3, 1),
    ]  # fmt: skip
    table = pd.read_csv(on_ray / "results.csv").set_index("agent")
    assert table.loc["EpsGreedy@epsilon=0.3", "n_seeds"] == 2
    assert table.loc["EpsGreedy@epsilon=0.3", "params.epsilon"] == 0.3
    assert (
        "| EpsGreedy@epsilon=0.1 | epsilon_greedy | 0.1 | 2 |"
        in (on_ray / "results.md").read_text()
    )
    for cell in GRID_CELLS:
        tb = on_ray / "tb" / f"MusicRec-v0__grid__{cell}"
        assert list(tb.glob("events.out.tfevents.*")), tb
        acc = EventAccumulator(str(tb))
        acc.Reload()
        assert len(acc.Scalars("charts/episode_return")) > 0
        assert len(acc.Scalars("eval/return")) == 1

    local = tmp_path / "local"
    assert main(["run", str(grid_config), "--out", str(local), "--quiet", "--jobs", "1"]) == 0
    same = pd.read_csv(local / "results_per_seed.csv")
    assert sorted(os.listdir(local / "cells")) == sorted(os.listdir(on_ray / "cells"))
    pd.testing.assert_frame_equal(per_seed.drop(columns=TIMES), same.drop(columns=TIMES))
    ray_result = json.loads((on_ray / "cells" / GRID_CELLS[3] / "result.json").read_text())
    local_result = json.loads((local / "cells" / GRID_CELLS[3] / "result.json").read_text())
    assert ray_result["eval"] == local_result["eval"]
    assert ray_result["settings"] == local_result["settings"]


class _StopAfterFirstCell(tune.Callback):
    """Presses Ctrl-C (SIGINT to this process) once the first trial has completed."""

    def __init__(self) -> None:
        self.sent = False

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        if self.sent:
            return
        # Only while Tune's own handler is installed: never a bare KeyboardInterrupt.
        if signal.getsignal(signal.SIGINT) in (signal.default_int_handler, signal.SIG_DFL):
            return
        self.sent = True
        os.kill(os.getpid(), signal.SIGINT)


def test_stopped_ray_run_resumes_without_recomputing_finished_cells(
    local_ray, grid_config: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    stop = _StopAfterFirstCell()
    with pytest.raises(CellFailedError, match=r"the run was stopped before \d+ cell\(s\) finished"):
        run_experiment(
            grid_config, out=out, jobs=1, quiet=True, backend="ray", ray_callbacks=[stop]
        )
    assert stop.sent
    done = _mtimes(out)
    assert 1 <= len(done) < 8, done

    summary = run_experiment(grid_config, out=out, quiet=True, backend="ray")
    after = _mtimes(out)
    assert len(after) == 8
    assert {k: after[k] for k in done} == done  # finished cells were not recomputed
    assert sorted(summary.skipped) == sorted(done)
    assert sorted(summary.computed) == sorted(set(after) - set(done))
    assert len(pd.read_csv(out / "results_per_seed.csv")) == 8


def test_a_failing_cell_on_ray_is_reported_and_retried_on_rerun(
    local_ray, grid_config: Path, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    config = grid_config.read_text().replace("seeds: [0, 1]", "seeds: [0]")
    grid_config.write_text(config)
    # A file where the cell's TensorBoard directory goes: the cell raises on the worker.
    blocker = out / "tb" / "MusicRec-v0__grid__EpsGreedy@epsilon=0.3__seed0"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a directory")
    args = ["run", str(grid_config), "--out", str(out), "--quiet", "--backend", "ray"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 cell(s) failed: EpsGreedy@epsilon=0.3__seed0 (NotADirectoryError" in err
    assert (
        "NotADirectoryError"
        in (out / "cells" / "EpsGreedy@epsilon=0.3__seed0" / "error.txt").read_text()
    )
    done = _mtimes(out)
    assert len(done) == 3  # the other grid cell and the two references

    blocker.unlink()
    assert main(args) == 0
    after = _mtimes(out)
    assert {k: after[k] for k in done} == done
    assert set(after) - set(done) == {"EpsGreedy@epsilon=0.3__seed0"}
