"""``musicrec run`` twice with the same config: the same results on one machine.

The README's reproducibility contract: bit for bit, timings aside.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from musicrec_gym.cli import main

CONFIG = """\
name: same_twice
env:
  kwargs: {{world: {world}}}
  num_envs: 8
seeds: [3]
budget:
  train_steps: 512
  eval_episodes: 10
agents:
  - name: Popularity
    type: popularity
  - name: LinUCB
    type: linucb
  - name: PPO
    type: ppo
    params: {{n_steps: 32, batch_size: 64, n_epochs: 1}}
"""


def _results(world: Path, base: Path) -> dict[str, dict]:
    config = base / "same_twice.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(CONFIG.format(world=world), encoding="utf-8")
    out = base / "run"
    assert main(["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    results = {}
    for path in sorted(out.glob("cells/*/result.json")):
        result = json.loads(path.read_text())
        for volatile in ("train_time_s", "eval_time_s", "cpu_time_s", "finished", "started"):
            result.pop(volatile, None)
        results[path.parent.name] = result
    return results


@pytest.mark.slow
def test_same_config_same_results_on_one_machine(tiny_world, tmp_path):
    first = _results(tiny_world, tmp_path / "a")
    second = _results(tiny_world, tmp_path / "b")
    assert {"PPO", "LinUCB", "Popularity", "oracle", "random"} <= {
        name.split("__")[0] for name in first
    }
    assert first == second
