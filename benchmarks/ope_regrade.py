"""Re-grade a `musicrec ope` run's session estimators against a more precise truth.

    python benchmarks/ope_regrade.py runs/ope/ope_builtin --chunks 20   # ~5 min, idle 2 cores

A run grades every session-level estimate against the target's mean return over
``truth_sessions`` on-policy sessions, whose own sampling error (about ±0.035 listens
at 50,000 sessions) enters every RMSE it reports. This plays ``chunks`` such batches
per target (reset seeds from ``TRUTH_SEED + c``; chunk 0 is the run's own truth, bit for
bit), averages them, and prints each session estimator's bias, RMSE and interval
coverage over the run's seeds against that truth, beside the run's own figures, then the
"DR RMSE <= IS RMSE" checks against either truth, as ``musicrec ope`` writes them.
Memory stays that of one chunk. Only runs that logged their own data (a ``log:``
section) are supported.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from experiments.ope import rmse
from experiments.ope_config import load_ope_config
from experiments.ope_run import VERDICT_HEADER, dr_verdicts
from experiments.ope_targets import TRUTH_SEED, session_truth


def precise_truths(run_dir: Path, chunks: int) -> tuple[dict[str, float], dict[str, float]]:
    """Each target's mean return over ``chunks`` truth batches, and its 95% half-width."""
    config = load_ope_config(run_dir / "config.yaml")
    if config.log is None:
        raise SystemExit(f"{run_dir}/config.yaml reads a dataset; only `log:` runs are supported")
    kwargs, world = config.log.env_kwargs(), config.log.world
    means, halves = {}, {}
    for spec in config.targets:
        values = [
            session_truth(spec, kwargs, config.truth_sessions, world, TRUTH_SEED + c).value
            for c in tqdm(range(chunks), desc=f"truth of {spec}", unit="chunk")
        ]
        means[str(spec)] = float(np.mean(values))
        halves[str(spec)] = 1.96 * float(np.std(values, ddof=1)) / math.sqrt(chunks)
    return means, halves


def regrade(seeds: pd.DataFrame, truth: dict[str, float]) -> pd.DataFrame:
    """Bias, RMSE and coverage of each (target, session estimator), old truth and new."""
    rows = []
    for (target, estimator), g in seeds[seeds["level"] == "session"].groupby(
        ["target", "estimator"], sort=False
    ):
        new, old = g["estimate"] - truth[target], g["estimate"] - g["truth"]
        covers = ((g["low"] <= truth[target]) & (truth[target] <= g["high"])).sum()
        rows.append(
            {
                "target": target,
                "estimator": estimator,
                "bias": new.mean(),
                "rmse": rmse(new.to_numpy()),
                "covered": f"{covers}/{len(g)}",
                "run bias": old.mean(),
                "run rmse": rmse(old.to_numpy()),
                "run covered": f"{int(g['covers'].sum())}/{len(g)}",
            }
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a `musicrec ope` run directory")
    parser.add_argument("--chunks", type=int, default=20, help="truth batches per target")
    args = parser.parse_args()
    if args.chunks < 2:
        parser.error(f"--chunks must be at least 2, got {args.chunks}")
    seeds = pd.read_csv(args.run_dir / "ope_seeds.csv")
    seeds = seeds[seeds["level"] == "session"]
    truth, half = precise_truths(args.run_dir, args.chunks)
    for target in truth:
        old = seeds.loc[seeds["target"] == target, "truth"]
        print(f"{target}: truth {truth[target]:.4f} ± {half[target]:.4f} (run: {old.iloc[0]:.4f})")
    table = regrade(seeds, truth)
    print("| " + " | ".join(table.columns) + " |\n|" + "---|" * len(table.columns))
    for row in table.itertuples(index=False):
        cells = (f"{v:+.4f}" if "bias" in c else f"{v:.4f}" if isinstance(v, float) else str(v)
                 for c, v in zip(table.columns, row, strict=True))  # fmt: skip
        print("| " + " | ".join(cells) + " |")
    # the checks as `musicrec ope` writes them (experiments.ope_run.dr_verdicts), new truth
    # then the run's
    errors = seeds["estimate"] - seeds["target"].map(truth)
    for label, table_rmse, seed_errors in (
        ("the precise truth", "rmse", errors),
        ("the run's truth", "run rmse", seeds["error"]),
    ):
        print(f"\nDR against IS, graded against {label}:\n{VERDICT_HEADER}")
        print("\n".join(dr_verdicts(
            table.assign(rmse=table[table_rmse]), seeds.assign(error=seed_errors)
        )))  # fmt: skip


if __name__ == "__main__":
    main()
