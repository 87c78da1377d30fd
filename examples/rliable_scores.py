"""Aggregate ``musicrec run`` results with rliable: IQM and mean with bootstrap CIs.

``musicrec run CONFIG`` writes ``runs/<name>/results_per_seed.csv``, one row per
(agent, seed) cell with its normalised score (agent - random) / (oracle - random)
(``experiments/report.py``). rliable (Agarwal et al., 2021, "Deep Reinforcement
Learning at the Edge of the Statistical Precipice") wants, per agent, a
``(runs, tasks)`` matrix: the pivot below, seeds as runs and, in a sweep over
environment settings (``env.*`` columns), each setting as a task::

    musicrec run experiments/configs/quickstart.yaml
    python examples/rliable_scores.py --results runs/quickstart/results_per_seed.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

REFERENCES = ("random", "oracle")
"""The reference cells' types: their scores are 0 and 1 by definition."""


def score_matrices(per_seed: pd.DataFrame) -> dict[str, np.ndarray]:
    """``{agent: (seeds, tasks) normalised scores}`` from ``results_per_seed.csv``."""
    frame = per_seed[~per_seed["type"].isin(REFERENCES)].copy()
    settings = [c for c in frame.columns if c.startswith("env.")]
    frame["task"] = frame[settings].astype(str).agg(" ".join, axis=1) if settings else "all"
    pivot = frame.pivot_table(index=["agent", "seed"], columns="task", values="normalised_score")
    agents = list(dict.fromkeys(frame["agent"]))  # in the run's order
    return {agent: pivot.loc[agent].to_numpy() for agent in agents}


def main(argv: list[str] | None = None) -> None:
    """Print the score matrices, then rliable's interval estimates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--results", type=Path, default=Path("runs/quickstart/results_per_seed.csv")
    )
    parser.add_argument("--reps", type=int, default=50_000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    scores = score_matrices(pd.read_csv(args.results))
    for agent, matrix in scores.items():
        print(f"{agent}: {matrix.shape[0]} seeds x {matrix.shape[1]} task(s)")
    try:
        from rliable import library as rly
        from rliable import metrics
    except Exception as err:  # rliable 1.2 with pandas 3: arch raises a TypeError
        raise SystemExit(f"rliable is not importable here ({type(err).__name__}: {err})") from err

    def aggregate(x: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)])

    point, interval = rly.get_interval_estimates(
        scores, aggregate, reps=args.reps, random_state=np.random.RandomState(args.seed)
    )
    print(f"{'agent':<12} {'IQM [95% CI]':>26} {'mean [95% CI]':>26}")
    for agent in scores:
        cells = [
            f"{point[agent][i]:.3f} [{interval[agent][0, i]:.3f}, {interval[agent][1, i]:.3f}]"
            for i in range(2)
        ]
        print(f"{agent:<12} {cells[0]:>26} {cells[1]:>26}")


if __name__ == "__main__":
    main()
