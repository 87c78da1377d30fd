"""``musicrec run`` end to end on a tiny world: outputs, TensorBoard, resume, refusal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from musicrec_gym.cli import main

TAGS = (
    "charts/episode_return",
    "charts/return_fraction_of_optimal",
    "charts/cumulative_regret",
    "charts/listen_rate",
)

CONFIG = """\
# A tiny experiment for the tests.
name: tiny
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
    params: {{epsilon: 0.2}}
  - name: Popularity
    type: popularity
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from musicrec_gym.build import BuildConfig, build_world
    from musicrec_gym.data.synthetic import SyntheticConfig
    from musicrec_gym.embeddings import EmbeddingConfig
    from musicrec_gym.encoder import EncoderConfig

    out = tmp_path_factory.mktemp("world")
    config = BuildConfig(
        world=SyntheticConfig(n_tracks=60, n_artists=20, n_listeners=40),
        n_sessions=3000,
        embedding=EmbeddingConfig(epochs=2),
        encoder=EncoderConfig(epochs=1),
        evaluate=False,
    )
    build_world(config, out, progress=False, log=lambda line: None)
    return out


@pytest.fixture(scope="module")
def first_run(world: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One parallel run (--jobs 2), shared by the tests below."""
    base = tmp_path_factory.mktemp("exp")
    config = base / "tiny.yaml"
    config.write_text(CONFIG.format(world=world), encoding="utf-8")
    out = base / "run"
    code = main(["run", str(config), "--out", str(out), "--jobs", "2", "--quiet"])
    return {"code": code, "config": config, "out": out}


def result_mtimes(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("cells/*/result.json")}


def test_run_writes_tables_plot_and_saved_config(first_run: dict, capsys) -> None:
    assert first_run["code"] == 0
    out, config = first_run["out"], first_run["config"]
    assert (out / "config.yaml").read_bytes() == config.read_bytes()
    assert (
        f"musicrec run {config} --out {out} --jobs 2 --quiet" in (out / "command.txt").read_text()
    )
    cells = sorted(p.name for p in (out / "cells").iterdir())
    assert cells == [
        f"{a}__seed{s}" for a in ("EpsGreedy", "Popularity", "oracle", "random") for s in (0, 1)
    ]
    table = pd.read_csv(out / "results.csv")
    assert set(table["agent"]) == {"EpsGreedy", "Popularity", "oracle", "random"}
    assert (table["n_seeds"] == 2).all()
    by = table.set_index("agent")
    assert by.loc["oracle", "normalised_score_mean"] == pytest.approx(1.0)
    assert by.loc["random", "normalised_score_mean"] == pytest.approx(0.0)
    assert list(table["normalised_score_mean"]) == sorted(table["normalised_score_mean"])[::-1]
    assert np.isfinite(by.loc["EpsGreedy", "train_regret_mean"])
    assert np.isnan(by.loc["Popularity", "train_regret_mean"])  # fixed policies do not train
    markdown = (out / "results.md").read_text()
    assert "| EpsGreedy | epsilon_greedy | 2 |" in markdown
    assert (out / "curves.png").stat().st_size > 10_000
    result = json.loads((out / "cells" / "EpsGreedy__seed0" / "result.json").read_text())
    assert result["train_steps"] >= 400 and result["eval"]["episodes"] == 12
    curve = pd.read_csv(out / "cells" / "EpsGreedy__seed0" / "curve.csv")
    assert len(curve) == result["train_episodes"] > 0


def test_every_agent_is_evaluated_on_the_same_episodes(first_run: dict) -> None:
    seeds = {
        cell.name: pd.read_csv(cell / "eval_episodes.csv")["reset_seed"].tolist()
        for cell in (first_run["out"] / "cells").iterdir()
        if cell.name.endswith("seed0")
    }
    assert len(seeds) == 4 and all(s == seeds["oracle__seed0"] for s in seeds.values())


def test_tensorboard_scalars_are_logged(first_run: dict) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb = first_run["out"] / "tb" / "MusicRec-v0__tiny__EpsGreedy__seed0"
    acc = EventAccumulator(str(tb))
    acc.Reload()
    scalars = acc.Tags()["scalars"]
    for tag in (*TAGS, "eval/return"):
        assert tag in scalars, (tag, scalars)
        assert len(acc.Scalars(tag)) > 0
    regret = [e.value for e in acc.Scalars("charts/cumulative_regret")]
    assert regret == sorted(regret) and regret[-1] > 0
    assert max(e.step for e in acc.Scalars("charts/episode_return")) <= 400 + 8


def test_rerun_resumes_only_the_killed_cell(first_run: dict, capsys) -> None:
    out, config = first_run["out"], first_run["config"]
    before = result_mtimes(out)
    killed = out / "cells" / "EpsGreedy__seed1"
    (killed / "result.json").unlink()  # as if the process died before the cell ended
    partial_tb = out / "tb" / "MusicRec-v0__tiny__EpsGreedy__seed1"
    (partial_tb / "events.out.tfevents.0.partial").write_bytes(b"half")
    capsys.readouterr()

    assert main(["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    after = result_mtimes(out)
    assert set(after) == set(before)
    changed = {k for k in after if after[k] != before.get(k)}
    assert changed == {"EpsGreedy__seed1"}
    assert not (partial_tb / "events.out.tfevents.0.partial").exists()
    assert "| EpsGreedy | epsilon_greedy | 2 |" in capsys.readouterr().out
    assert (out / "command.txt").read_text().count("musicrec run") == 2


def test_a_different_config_is_refused_unless_forced(first_run: dict, capsys) -> None:
    out, config = first_run["out"], first_run["config"]
    changed = config.with_name("changed.yaml")
    changed.write_text(
        config.read_text().replace("params: {epsilon: 0.2}", "params: {epsilon: 0.3}")
    )
    before = result_mtimes(out)
    capsys.readouterr()
    assert main(["run", str(changed), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "holds a run of a different config" in err
    assert "agents[0].params.epsilon: 0.2 -> 0.3" in err and "--force" in err
    assert result_mtimes(out) == before

    assert main(["run", str(changed), "--out", str(out), "--quiet", "--force"]) == 0
    after = result_mtimes(out)
    assert {k for k in after if after[k] != before[k]} == {"EpsGreedy__seed0", "EpsGreedy__seed1"}
    assert (out / "config.yaml").read_text() == changed.read_text()


def test_a_failing_cell_is_reported_and_the_others_still_run(
    world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    from dataclasses import dataclass

    from agents import base
    from agents.baselines import RandomAgent

    @dataclass
    class Explodes(RandomAgent):
        def update(self, *args: object) -> None:
            raise RuntimeError("boom")

    monkeypatch.setitem(base._REGISTRY, "explodes", Explodes)
    config = tmp_path / "bad.yaml"
    config.write_text(
        CONFIG.format(world=world)
        .replace("type: popularity", "type: explodes")
        .replace("seeds: [0, 1]", "seeds: [0]")
    )
    out = tmp_path / "run"
    assert main(["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"]) == 2
    assert "1 cell(s) failed: Popularity__seed0 (RuntimeError: boom)" in capsys.readouterr().err
    assert "boom" in (out / "cells" / "Popularity__seed0" / "error.txt").read_text()
    assert not (out / "cells" / "Popularity__seed0" / "result.json").exists()
    assert (out / "cells" / "EpsGreedy__seed0" / "result.json").exists()
    assert "EpsGreedy" in (out / "results.md").read_text()
