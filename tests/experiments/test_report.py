"""Results tables: t-intervals over seeds, n/a with one seed, sorting by normalised score."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from experiments.config import parse_config
from experiments.report import Stat, markdown_table, summary_table
from experiments.tblog import TrainingLogger


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
