"""``musicrec session-length CONFIG``: a grid of session-length models from a YAML config.

Every cell (method x dropout x clusters x standardisation) trains one sequence model per
user cluster on the training sessions, and is scored on the test sessions (each user's
last ones): MAE in seconds, and MAE divided by the MAE of the *mean predictor* (the mean
training session length, one number for everyone; 1.0 = no better than the mean). Two
references are added: the mean itself and the user's running average of previous
session lengths. Standardisation: ``on`` z-scores a cluster's inputs and target with its
training rows' statistics, ``off`` keeps natural units (minutes, years), ``mixed``
standardises only the clusters with fewer than ``mixed_threshold`` users (docs/design.md §4).

The config and its schema: ``musicrec_gym.session_length.grid_config``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym.errors import ConfigError
from musicrec_gym.session_length.clusters import (
    cluster_users,
    diagnose,
    profile_matrix,
)
from musicrec_gym.session_length.grid_config import Cell, GridConfig
from musicrec_gym.session_length.models import (
    SequenceModel,
    TrainConfig,
    feature_frame,
    train_model,
)
from musicrec_gym.session_length.summary import SessionSummary, summarise

DEFAULT_RUN_ROOT = Path("runs") / "session-length"


# ------------------------------------------------------------------------------ running


@dataclass
class FittedSessionModel:
    """The models of one cell: one per user cluster, and which users are in which.

    Attributes:
        cell: The grid cell.
        cluster_of: Cluster of every user, indexed by user_id.
        models: Model per cluster (``None`` for a cluster with no training sessions,
            which is predicted by the mean training length).
        mean_length_s: Mean training session length (the mean predictor).
        age_fill: Age used where a profile has none.
    """

    cell: Cell
    cluster_of: pd.Series
    models: dict[int, SequenceModel | None]
    mean_length_s: float
    age_fill: float

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        """Predicted length in seconds of every summary row (whole users)."""
        features = feature_frame(rows, self.age_fill)
        pred = np.full(len(rows), self.mean_length_s)
        labels = rows["user_id"].map(self.cluster_of).fillna(-1).to_numpy()
        for label, model in self.models.items():
            sel = labels == label
            if model is None or not sel.any():
                continue
            part = rows.loc[sel]
            pred[sel] = model.predict(part, features.loc[sel])
        return np.where(np.isnan(pred), self.mean_length_s, pred)


def fit_cell(
    summary: SessionSummary,
    cell: Cell,
    labels: pd.Series,
    train: TrainConfig,
    mixed_threshold: int,
    seed: int,
) -> FittedSessionModel:
    """Train the models of one cell.

    Args:
        summary: Summary rows with the split.
        cell: Method, dropout, clusters and standardisation.
        labels: Cluster of every user (index user_id) for ``cell.clusters``.
        train: Training hyperparameters.
        mixed_threshold: ``mixed`` standardises clusters with fewer users than this.
        seed: Seed of the weights and batch order (cluster ``c`` uses ``seed + c``).
    """
    rows = summary.rows
    train_rows = rows["split"] == "train"
    ages = pd.to_numeric(rows.drop_duplicates("user_id")["age"], errors="coerce")
    age_fill = float(ages.median()) if ages.notna().any() else 30.0
    features = feature_frame(rows, age_fill)
    user_label = rows["user_id"].map(labels).to_numpy()
    models: dict[int, SequenceModel | None] = {}
    for label in sorted(set(labels.tolist())):
        sel = user_label == label
        if not (train_rows.to_numpy() & sel).any():
            models[int(label)] = None
            continue
        n_users = int((labels == label).sum())
        standardise = cell.standardisation == "on" or (
            cell.standardisation == "mixed" and n_users < mixed_threshold
        )
        models[int(label)] = train_model(
            rows.loc[sel],
            features.loc[sel],
            cell.method,
            cell.dropout,
            standardise,
            train,
            seed + int(label),
        )
    return FittedSessionModel(
        cell=cell,
        cluster_of=labels,
        models=models,
        mean_length_s=float(rows.loc[train_rows, "length"].mean()),
        age_fill=age_fill,
    )


@dataclass(frozen=True)
class GridResult:
    """What ``run_grid`` produced.

    Attributes:
        table: One row per cell plus the references (``results.csv``).
        summary: The session summary the grid ran on.
        best: The fitted models of the best cell: the lowest finite test MAE among the
            cells whose training did not diverge (``diverged`` column).
        run_dir: Where everything was written.
        markdown: ``results.md``'s table.
        elapsed_s: Wall time.
    """

    table: pd.DataFrame
    summary: SessionSummary
    best: FittedSessionModel
    run_dir: Path
    markdown: str
    elapsed_s: float


def load_histories(config: GridConfig, log=print):
    """The plays, profiles and durations the config names, and the world for synthetic.

    Returns:
        ``(plays, profiles, durations, world)``; ``durations`` and ``world`` are ``None``
        for Last.fm.
    """
    if config.source == "synthetic":
        from musicrec_gym.session_length.synthetic import synthetic_histories
        from musicrec_gym.world import load_world

        world = load_world(config.world)
        hist = synthetic_histories(world, config.synthetic)
        return hist.plays, hist.profiles, hist.durations, world
    from musicrec_gym.data.lastfm import read_lastfm_history, read_lastfm_profiles

    frames = []
    for path in config.plays:
        loaded = read_lastfm_history(path)
        log(f"  {path}: {_report_text(loaded.report)}")
        frames.append(loaded.frame)
    plays = pd.concat(frames, ignore_index=True)
    profiles = None
    if config.profiles is not None:
        loaded = read_lastfm_profiles(config.profiles)
        log(f"  {config.profiles}: {_report_text(loaded.report)}")
        profiles = loaded.frame
    return plays, profiles, None, None


def _report_text(report: Any) -> str:
    """A loader's ``LoadReport.summary()`` line (rows read, kept, dropped by reason)."""
    summary = getattr(report, "summary", None)
    return summary() if callable(summary) else str(report)


def run_grid(
    config: GridConfig,
    out: str | Path | None = None,
    progress: bool = True,
    log=print,
    command: list[str] | None = None,
) -> GridResult:
    """Run every cell of ``config`` and write the results.

    Writes to the run directory: ``results.csv``, ``results.md``, ``summary.csv`` (the
    per-user session rows), ``elbow.png``, ``silhouette.png``, ``config.yaml`` (a copy)
    and ``command.txt``. A cell whose training diverged (non-finite loss or weights,
    e.g. from a learning rate too large) is listed with no MAE and ``diverged`` noted,
    and is never the best cell.

    Raises:
        ConfigError: Every cell diverged (after the results are written), or the data
            has no test sessions.
    """
    import torch
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    run_dir = Path(out) if out is not None else DEFAULT_RUN_ROOT / config.name
    run_dir.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # same numbers on every run, and fair to a shared machine
    try:
        log(f"histories ({config.source})")
        plays, profiles, durations, _ = load_histories(config, log=log)
        summary = summarise(plays, profiles, durations, config.gap_minutes, config.split)
        log(f"  {summary.describe()}")
        if durations is None:
            log(
                f"  track durations unknown: a session's last play counts "
                f"{summary.fallback_duration_s:.0f} s (median gap between plays in sessions)"
            )
        rows = summary.rows
        summary.rows.to_csv(run_dir / "summary.csv", index=False)
        users = rows.drop_duplicates("user_id").set_index("user_id")
        x = profile_matrix(users, config.columns)
        diag = diagnose(x, config.k_range, run_dir, config.seed)
        log(
            f"  clustering diagnostics for k in {list(diag.ks)}: "
            f"{run_dir}/elbow.png, silhouette.png"
        )

        specs = sorted({c.clusters for c in config.cells}, key=str)
        labels = {s: pd.Series(cluster_users(x, s, config.seed), index=users.index) for s in specs}
        y = rows["length"].to_numpy(dtype=np.float64)
        test = (rows["split"] == "test").to_numpy()
        if not test.any():
            raise ConfigError(
                f"{config.path}: no test sessions (each user needs about 7 sessions for the "
                f"split {list(config.split)} to leave one for testing)"
            )
        mean_s = float(rows.loc[rows["split"] == "train", "length"].mean())
        mean_mae = float(np.abs(y[test] - mean_s).mean())
        records = [
            _record("mean", None, np.full(test.sum(), mean_s), y[test], mean_mae),
            _record(
                "user average", None, rows["avg_prev_length"].to_numpy()[test], y[test], mean_mae
            ),
        ]
        best, best_mae = None, np.inf
        bar = tqdm(config.cells, desc="session-length grid", disable=not progress, unit="cell")
        for cell in bar:
            bar.set_postfix_str(cell.label())
            fitted = fit_cell(
                summary, cell, labels[cell.clusters], config.train, config.mixed_threshold,
                config.seed,
            )  # fmt: skip
            pred = fitted.predict(rows)[test]
            rec = _record(cell.method, cell, pred, y[test], mean_mae)
            rec["baseline"] = cell == config.baseline
            rec["epochs"] = sum(m.epochs_run for m in fitted.models.values() if m is not None)
            # A diverged model's NaN predictions were replaced by the mean: its MAE would
            # be the mean predictor's, not the model's. It has no score and is never best.
            rec["diverged"] = any(m.diverged for m in fitted.models.values() if m is not None)
            if rec["diverged"]:
                rec["mae_s"] = rec["norm_mae"] = np.nan
            records.append(rec)
            if np.isfinite(rec["mae_s"]) and rec["mae_s"] < best_mae:
                best, best_mae = fitted, rec["mae_s"]
        bar.close()
    finally:
        torch.set_num_threads(threads)
    table = pd.DataFrame(records)
    table["baseline"] = table["baseline"].fillna(False).astype(bool)
    table["diverged"] = table["diverged"].fillna(False).astype(bool)
    table["best"] = False
    scored = (table["clusters"] != "-") & np.isfinite(table["mae_s"]) & ~table["diverged"]
    if scored.any():
        table.loc[table.loc[scored, "mae_s"].idxmin(), "best"] = True
    table.to_csv(run_dir / "results.csv", index=False)
    markdown = results_markdown(table, summary, mean_s)
    (run_dir / "results.md").write_text(markdown)
    Path(run_dir / "config.yaml").write_text(Path(config.path).read_text())
    if command:
        (run_dir / "command.txt").write_text(" ".join(command) + "\n")
    if best is None:
        raise ConfigError(
            f"{config.path}: train.lr: no cell of the grid has a finite test MAE: training "
            f"diverged (non-finite loss) in every cell with lr {config.train.lr:g}; lower "
            f"train.lr (the results are in {run_dir / 'results.md'})"
        )
    return GridResult(
        table=table,
        summary=summary,
        best=best,
        run_dir=run_dir,
        markdown=markdown,
        elapsed_s=time.perf_counter() - t0,
    )


def _record(method: str, cell: Cell | None, pred, truth, mean_mae: float) -> dict[str, Any]:
    mae = float(np.abs(np.asarray(pred) - truth).mean())
    return {
        "method": method,
        "dropout": cell.dropout if cell else np.nan,
        "clusters": str(cell.clusters) if cell else "-",
        "standardisation": cell.standardisation if cell else "-",
        "mae_s": mae,
        "norm_mae": mae / mean_mae if mean_mae > 0 else np.nan,
        "baseline": False,
        "epochs": np.nan,
        "diverged": False,
    }


def results_markdown(table: pd.DataFrame, summary: SessionSummary, mean_s: float) -> str:
    """The results as a Markdown table, sorted by normalised MAE, with a header line."""
    n_test = int((summary.rows["split"] == "test").sum())
    lines = [
        f"Test split: {n_test} sessions of {summary.rows['user_id'].nunique()} users; "
        f"the mean predictor always predicts the mean training session, {mean_s / 60:.1f} "
        "min. Lower is better; normalised MAE 1.0 = the mean predictor's MAE.",
        "",
        "| method | dropout | clusters | standardisation | MAE (min) | normalised MAE | note |",
        "|---|---|---|---|---|---|---|",
    ]
    diverged = table["diverged"] if "diverged" in table else pd.Series(False, index=table.index)
    for i, r in table.sort_values("norm_mae", kind="stable").iterrows():
        flags = (("best", r["best"]), ("baseline", r["baseline"]), ("diverged", diverged[i]))
        note = ", ".join(n for n, on in flags if on)
        dropout = "-" if pd.isna(r["dropout"]) else f"{r['dropout']:g}"
        mae = "–" if not np.isfinite(r["mae_s"]) else f"{r['mae_s'] / 60:.2f}"
        norm = "–" if not np.isfinite(r["norm_mae"]) else f"{r['norm_mae']:.3f}"
        lines.append(
            f"| {r['method']} | {dropout} | {r['clusters']} | {r['standardisation']} | "
            f"{mae} | {norm} | {note} |"
        )
    return "\n".join(lines) + "\n"
