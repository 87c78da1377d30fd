"""Results tables: t-intervals over seeds, n/a with one seed, sorting by normalised score.

And the columns of Agarwal et al. (2021) (estimators: ``tests/experiments/test_statistics``):
IQM, probability of improvement over the best linear bandit, seconds to 0.9, in the
summary, ``results.md``, ``results.csv`` and ``results_per_seed.csv`` of a run.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from experiments.cells import CellResult, EvalSummary
from experiments.config import parse_config
from experiments.report import Stat, markdown_table, summary_table, write_report
from experiments.runner import plan_cells
from experiments.statistics import THRESHOLD_WINDOW
from experiments.tblog import CURVE_COLUMNS, TrainingLogger


def test_t_interval_over_seeds() -> None:
    stat = Stat.of([1.0, 2.0, 3.0])
    assert stat.mean == 2.0 and stat.n == 3
    assert stat.ci95 == pytest.approx(4.302653 * 1.0 / math.sqrt(3), rel=1e-6)  # t(0.975, 2)
    assert stat.format("{:.2f}") == "2.00 ± 2.48"


def test_one_seed_has_no_interval() -> None:
    stat = Stat.of([0.5])
    assert math.isnan(stat.ci95)
    assert stat.format("{:.2f}") == "0.50 ± n/a"
    assert Stat.of([]).format("{:.2f}") == "–"


def _rows(agent: str, kind: str, scores: list[float]) -> list[dict]:
    return [
        {
            "agent": agent,
            "type": kind,
            "seed": seed,
            "normalised_score": score,
            "return": score,
            "fraction_of_optimal": score,
            "listen_rate": score,
            "session_length": 1.0,
            "train_regret": math.nan,
            "train_steps": 0,
            "train_time_s": 0.0,
            "cpu_time_s": 0.0,
        }
        for seed, score in enumerate(scores)
    ]


def test_summary_is_sorted_by_normalised_score_and_shows_na() -> None:
    per_seed = pd.DataFrame(
        _rows("random", "random", [0.0]) + _rows("oracle", "oracle", [1.0])
        + _rows("Pop", "popularity", [0.3])
    )  # fmt: skip
    summary = summary_table(per_seed, ["random", "oracle", "Pop"])
    assert list(summary["agent"]) == ["oracle", "Pop", "random"]
    config = parse_config(
        "name: t\nseeds: [0]\nbudget: {train_steps: 1, eval_episodes: 1}\n"
        "agents: [{name: Pop, type: popularity}]\n"
    )
    text = markdown_table(config, summary)
    assert "| Pop | popularity | 1 | 0.300 ± n/a |" in text
    assert "| – | – | – |" in text  # fixed policies: no training regret, steps or time
    assert "| 0.300 [n/a] | – | – |" in text  # one seed: no interval; no bandit; no training


def test_training_logger_averages_the_episodes_of_a_window() -> None:
    class Writer:
        def __init__(self) -> None:
            self.points: list[tuple[str, float, int]] = []

        def add_scalar(self, tag: str, value: float, step: int) -> None:
            self.points.append((tag, float(value), step))

    writer = Writer()
    logger = TrainingLogger(writer, lambda: 7.0, log_every=1)
    logger(8, 2.0, 4.0, 4, 2)
    logger(8, 4.0, 4.0, 2, 2)  # same step: averaged with the previous episode
    logger(16, 1.0, 2.0, 1, 1)
    logger.flush()
    returns = [(v, s) for t, v, s in writer.points if t == "charts/episode_return"]
    assert returns == [(3.0, 8), (1.0, 16)]
    fractions = [v for t, v, _ in writer.points if t == "charts/return_fraction_of_optimal"]
    assert fractions == [0.75, 0.5]
    assert logger.episodes == 3


def _result(cell, mean_return: float, train_s: float = 0.0) -> CellResult:
    learns = cell.agent.type not in ("random", "oracle")
    return CellResult(
        cell=cell.key,
        agent=cell.agent.name,
        type=cell.agent.type,
        seed=cell.seed,
        learns=learns,
        train_steps=cell.train_steps if learns else 0,
        train_episodes=2 * THRESHOLD_WINDOW if learns else 0,
        train_regret=100.0 if learns else None,
        train_time_s=train_s,
        eval_time_s=0.1,
        eval=EvalSummary(
            episodes=cell.eval_episodes,
            mean_return=mean_return,
            mean_optimal_return=10.0,
            fraction_of_optimal=mean_return / 10.0,
            listen_rate=0.5,
            mean_length=12.0,
            mean_regret=1.0,
        ),
        settings=cell.settings(),
    )


def _write_curve(path: Path, returns: np.ndarray, steps_per_episode: int) -> None:
    steps = (np.arange(len(returns)) + 1) * steps_per_episode
    curve = pd.DataFrame({"steps": steps, "episode_return": returns, "optimal_return": 10.0})
    for column in CURVE_COLUMNS[3:]:
        curve[column] = 1
    path.parent.mkdir(parents=True, exist_ok=True)
    curve.to_csv(path, index=False)


def test_a_run_reports_iqm_improvement_and_seconds_to_0_9(tmp_path: Path) -> None:
    config = parse_config(
        "name: t\nseeds: [0, 1]\nbudget: {train_steps: 10000, eval_episodes: 5}\n"
        "agents: [{name: UCB, type: linucb}, {name: Eps, type: epsilon_greedy}]\n"
    )
    cells = plan_cells(config)
    returns_of = {"random": 2.0, "oracle": 10.0, "UCB": 8.0, "Eps": 6.0}  # + 1 at seed 1
    results = {}
    n = 2 * THRESHOLD_WINDOW
    for cell in cells:
        learner = cell.agent.name in ("UCB", "Eps")
        mean_return = returns_of[cell.agent.name] + (cell.seed if learner else 0)
        results[cell.key] = _result(cell, mean_return, train_s=20.0)
        if learner:
            # The level is 2 + 0.9 * (10 - 2) = 9.2; from episode W on, UCB's training
            # returns are 10, Eps's 9.
            high = 10.0 if cell.agent.name == "UCB" else 9.0
            returns = np.where(np.arange(n) < THRESHOLD_WINDOW, 2.0, high)
            _write_curve(tmp_path / "cells" / cell.key / "curve.csv", returns, 10)
    text = write_report(tmp_path, config, cells, results)

    per_seed = pd.read_csv(tmp_path / "results_per_seed.csv").set_index(["agent", "seed"])
    # 9.2 is reached once 90% of the window are 10s: centred on episode 0.9 W + W / 2.
    episode = int(0.9 * THRESHOLD_WINDOW) + THRESHOLD_WINDOW // 2
    assert per_seed.loc[("UCB", 0), "steps_to_0.9"] == (episode + 1) * 10
    assert per_seed.loc[("UCB", 0), "seconds_to_0.9"] == pytest.approx(
        20.0 * (episode + 1) * 10 / 10000
    )
    assert per_seed.loc[("Eps", 0), "seconds_to_0.9"] == math.inf  # 9 < 9.2: never
    assert math.isnan(per_seed.loc[("oracle", 1), "seconds_to_0.9"])  # does not train

    summary = pd.read_csv(tmp_path / "results.csv").set_index("agent")
    assert summary.loc["UCB", "normalised_score_iqm"] == pytest.approx(
        np.mean([6 / 8, 7 / 8])  # two seeds: nothing trimmed
    )
    assert summary.loc["UCB", "prob_improvement_over"] == "UCB"  # the best bandit
    assert summary.loc["UCB", "prob_improvement"] == 0.5
    assert summary.loc["Eps", "prob_improvement"] == 0.0  # 4/8, 5/8 < 6/8, 7/8
    assert summary.loc["UCB", "seconds_to_0.9"] == per_seed.loc[("UCB", 1), "seconds_to_0.9"]
    assert summary.loc["Eps", "seeds_reaching_0.9"] == 0
    assert summary.loc["UCB", "seeds_reaching_0.9"] == 2
    for column in ("normalised_score_mean", "normalised_score_ci95", "train_time_s"):
        assert column in summary.columns  # the existing columns stay

    assert "| IQM [95% CI] | P(> UCB) [95% CI] | Seconds to 0.9 |" in text
    assert "| Eps | epsilon_greedy | 2 |" in text
    # Eps's resampled means: 4/8, 9/16 or 5/8; every resample of Eps is below UCB's.
    assert "| 0.562 [0.500, 0.625] | 0.00 [0.00, 0.00] | not reached (0/2) |" in text
    assert "| 14 s (2/2) |" in text  # 20 s x 7,010 / 10,000 steps, both seeds
    assert "Mann–Whitney U" in text and f"over {THRESHOLD_WINDOW} consecutive" in text
