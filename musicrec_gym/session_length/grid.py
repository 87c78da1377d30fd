"""``musicrec session-length CONFIG``: a grid of session-length models from a YAML config.

Every cell (method x dropout x clusters x standardisation) trains one sequence model per
user cluster on the training sessions, and is scored on the test sessions (each user's
last ones): MAE in seconds, and MAE divided by the MAE of the *mean predictor* (the mean
training session length, one number for everyone; 1.0 = no better than the mean). Two
references are added: the mean itself and the user's running average of previous
session lengths. Standardisation: ``on`` z-scores a cluster's inputs and target with its
training rows' statistics, ``off`` keeps natural units (minutes, years), ``mixed``
standardises only the clusters with fewer than ``mixed_threshold`` users (DESIGN.md §4).

Schema (unknown keys are errors naming the file, line and key)::

    name: synthetic                # required; run directory runs/session-length/<name>
    data:                          # required; exactly one of synthetic / lastfm
      synthetic:                   # histories of a synthetic world (session_length.synthetic)
        world: null                # world directory, null = built-in
        n_listeners: 200           # SyntheticHistoryConfig fields, all optional
        sessions_per_listener: 60
        max_tracks: 150
        per_skip: 0.0              # null = the world's
        mood_rho: 0.9
        mood_sigma: 0.8
      lastfm:                      # Last.fm-1K files (paths relative to the working dir)
        plays: [a.tsv, b.tsv]      # required; one or more 6-column play files
        profiles: userid-profile.tsv   # optional
    gap_minutes: 20                # optional; session gap (strictly greater starts anew)
    split: [0.7, 0.15, 0.15]       # optional; per-user time split train/val/test
    seed: 0                        # optional; seeds histories, clustering and training
    train: {hidden: 32, epochs: 40, batch_size: 32, lr: 0.005, patience: 8, chunk: 64}
    clustering:                    # optional
      columns: [age, gender, registered]   # profile columns clustered on
      k_range: [2, 8]              # k tried by the elbow / silhouette diagnostics
      mixed_threshold: 200         # `mixed` standardises clusters with fewer users
    grid:                          # required; the cells are the product of the lists
      method: [gru, lstm, lstm2]
      dropout: [0.0, 0.2]
      clusters: [none, "kmeans:3", "spectral:3"]
      standardisation: ["off", "on", mixed]
    baseline: {method: gru, dropout: 0.0, clusters: none, standardisation: "off"}
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym.errors import ConfigError, unknown_name_message
from musicrec_gym.session_length.clusters import (
    PROFILE_CLUSTER_COLUMNS,
    ClusterSpec,
    cluster_users,
    diagnose,
    profile_matrix,
)
from musicrec_gym.session_length.models import (
    METHODS,
    SequenceModel,
    TrainConfig,
    feature_frame,
    train_model,
)
from musicrec_gym.session_length.summary import SessionSummary, summarise
from musicrec_gym.session_length.synthetic import SyntheticHistoryConfig

STANDARDISATIONS = ("off", "on", "mixed")
GRID_KEYS = ("method", "dropout", "clusters", "standardisation")
DEFAULT_RUN_ROOT = Path("runs") / "session-length"
#: Most values of one ``grid`` key, and most cells of the grid (each trains a model per
#: cluster): checked before the grid is expanded.
MAX_GRID_VALUES = 100
MAX_GRID_CELLS = 1_000
#: Longest session gap, in minutes (30 days).
MAX_GAP_MINUTES = 43_200.0
#: Largest k of ``clustering.k_range`` (every k is clustered twice for the diagnostics).
MAX_K_RANGE = 50
#: Most Last.fm play files.
MAX_PLAY_FILES = 1_000


@dataclass(frozen=True)
class Cell:
    """One point of the grid."""

    method: str
    dropout: float
    clusters: ClusterSpec
    standardisation: str

    def label(self) -> str:
        """Short text for tables and progress bars."""
        return f"{self.method} d={self.dropout:g} {self.clusters} std={self.standardisation}"


@dataclass(frozen=True)
class GridConfig:
    """A validated ``session-length`` config."""

    name: str
    source: str
    synthetic: SyntheticHistoryConfig | None
    world: str | None
    plays: tuple[str, ...]
    profiles: str | None
    gap_minutes: float
    split: tuple[float, float, float]
    seed: int
    train: TrainConfig
    columns: tuple[str, ...]
    k_range: tuple[int, int]
    mixed_threshold: int
    cells: tuple[Cell, ...]
    baseline: Cell
    path: str = field(default="<config>", compare=False)


# ------------------------------------------------------------------------------ config


def load_config(path: str | Path) -> GridConfig:
    """Read and validate a ``session-length`` YAML config.

    Raises:
        ConfigError: naming the file, line and key of the first problem.
    """
    from experiments.config import MAX_SEED, _describe, _Located, _Validator, read_config_file

    path = Path(path)
    doc = _Located(read_config_file(path), str(path))
    v = _Validator(doc)
    top = v.mapping(
        doc.data,
        (),
        ("name", "data", "grid"),
        ("gap_minutes", "split", "seed", "train", "clustering", "baseline"),
        "settings",
    )
    name = v.name(top["name"], ("name",))

    seed = v.int_(top.get("seed", 0), ("seed",), 0, MAX_SEED)

    def number(value: Any, where: tuple, low: float, high: float) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not low <= value <= high:  # NaN fails both comparisons
            raise doc.error(
                where, f"must be a number in [{low:g}, {high:g}], got {_describe(value)}"
            )
        return float(value)

    data = v.mapping(top["data"], ("data",), (), ("synthetic", "lastfm"), "data sources")
    if len(data) != 1:
        raise doc.error(("data",), "give exactly one of 'synthetic' or 'lastfm'")
    source = next(iter(data))
    synthetic, world, plays, profiles = None, None, (), None
    if source == "synthetic":
        fields_ = [f.name for f in dataclasses.fields(SyntheticHistoryConfig) if f.name != "seed"]
        raw_block = data["synthetic"]
        block = v.mapping(
            {} if raw_block is None else raw_block,
            ("data", "synthetic"),
            (),
            ("world", *fields_),
            "settings",
        )
        world = block.get("world")
        if world is not None:
            v.path_text(world, ("data", "synthetic", "world"), "a directory or null")
        kwargs = {k: val for k, val in block.items() if k != "world"}
        try:
            synthetic = SyntheticHistoryConfig(**kwargs, seed=seed)
        except ConfigError as err:
            named = [k for k in kwargs if f"`{k}`" in str(err)]
            raise doc.error(("data", "synthetic", *named[:1]), str(err)) from err
    else:
        block = v.mapping(data["lastfm"], ("data", "lastfm"), ("plays",), ("profiles",), "files")
        raw = block["plays"]
        where_plays = ("data", "lastfm", "plays")
        listed = isinstance(raw, list)
        raw = [raw] if isinstance(raw, str) else raw
        if not isinstance(raw, list) or not raw or not all(isinstance(p, str) for p in raw):
            raise doc.error(where_plays, "must be a path or a list of paths")
        if len(raw) > MAX_PLAY_FILES:
            raise doc.error(
                where_plays, f"lists {len(raw):,} files; the limit is {MAX_PLAY_FILES:,}"
            )
        for i, play in enumerate(raw):
            at = (*where_plays, i) if listed else where_plays
            v.path_text(play, at, "a path")
            if play in raw[:i]:
                raise doc.error(at, f"{play!r} is listed twice (also item {raw.index(play)})")
        plays = tuple(raw)
        profiles = block.get("profiles")
        if profiles is not None:
            v.path_text(profiles, ("data", "lastfm", "profiles"), "a path")

    gap = number(top.get("gap_minutes", 20.0), ("gap_minutes",), 1e-6, MAX_GAP_MINUTES)
    split = top.get("split", [0.7, 0.15, 0.15])
    if (
        not isinstance(split, list)
        or len(split) != 3
        or not all(
            isinstance(s, int | float) and not isinstance(s, bool) and -1 <= s <= 2 for s in split
        )
        or min(split) < 0
        or abs(sum(split) - 1.0) > 1e-6
    ):
        raise doc.error(
            ("split",), f"must be three fractions >= 0 summing to 1, got {_describe(split)}"
        )
    train_fields = [f.name for f in dataclasses.fields(TrainConfig)]
    train_raw = top.get("train")
    train_block = v.mapping(
        {} if train_raw is None else train_raw,
        ("train",),
        (),
        tuple(train_fields),
        "training settings",
    )
    try:
        train = TrainConfig(**train_block)
    except ConfigError as err:
        named = [k for k in train_block if f"`{k}`" in str(err)]
        raise doc.error(("train", *named[:1]), str(err)) from err

    clus_raw = top.get("clustering")
    clus = v.mapping(
        {} if clus_raw is None else clus_raw,
        ("clustering",),
        (),
        ("columns", "k_range", "mixed_threshold"),
        "clustering settings",
    )
    columns = clus.get("columns", ["age", "gender", "registered"])
    if not isinstance(columns, list) or not columns:
        raise doc.error(("clustering", "columns"), "must be a non-empty list of profile columns")
    for i, col in enumerate(columns):
        if col not in PROFILE_CLUSTER_COLUMNS:
            msg = unknown_name_message("profile column", str(col), PROFILE_CLUSTER_COLUMNS)
            raise doc.error(("clustering", "columns", i), msg)
        if col in columns[:i]:
            raise doc.error(
                ("clustering", "columns", i),
                f"profile column {col!r} is listed twice (also item {columns.index(col)})",
            )
    k_range = clus.get("k_range", [2, 8])
    if (
        not isinstance(k_range, list)
        or len(k_range) != 2
        or not all(isinstance(k, int) and not isinstance(k, bool) for k in k_range)
        or not 2 <= k_range[0] <= k_range[1] <= MAX_K_RANGE
    ):
        raise doc.error(
            ("clustering", "k_range"),
            f"must be [low, high], 2 <= low <= high <= {MAX_K_RANGE}, got {_describe(k_range)}",
        )
    threshold = v.int_(
        clus.get("mixed_threshold", 200), ("clustering", "mixed_threshold"), 1, 10**9
    )

    grid = v.mapping(top["grid"], ("grid",), GRID_KEYS, (), "lists of values")
    n_cells = 1
    for key in GRID_KEYS:
        values = grid[key]
        if not isinstance(values, list) or not values:
            raise doc.error(("grid", key), f"must be a non-empty list, got {_describe(values)}")
        if len(values) > MAX_GRID_VALUES:
            raise doc.error(
                ("grid", key),
                f"lists {len(values):,} values; the limit is {MAX_GRID_VALUES} (MAX_GRID_VALUES)",
            )
        n_cells *= len(values)
    if n_cells > MAX_GRID_CELLS:
        sizes = " x ".join(f"{len(grid[k])} ({k})" for k in GRID_KEYS)
        raise doc.error(
            ("grid",),
            f"this grid has {n_cells:,} cells ({sizes}); the limit is {MAX_GRID_CELLS:,} "
            "(MAX_GRID_CELLS): list fewer values",
        )
    axes: dict[str, list[Any]] = {}
    for key in GRID_KEYS:
        axes[key] = []
        for i, val in enumerate(grid[key]):
            value = _cell_value(doc, key, val, ("grid", key, i))
            if value in axes[key]:
                raise doc.error(
                    ("grid", key, i),
                    f"value {_describe(val)} is listed twice (also item "
                    f"{axes[key].index(value)}); every cell would run twice",
                )
            axes[key].append(value)
    cells = tuple(Cell(*combo) for combo in itertools.product(*(axes[k] for k in GRID_KEYS)))

    base_raw = top.get(
        "baseline", {"method": "gru", "dropout": 0.0, "clusters": "none", "standardisation": "off"}
    )
    base = v.mapping(base_raw, ("baseline",), GRID_KEYS, (), "grid values")
    baseline = Cell(*(_cell_value(doc, k, base[k], ("baseline", k)) for k in GRID_KEYS))
    if baseline not in cells:
        raise doc.error(("baseline",), f"the baseline cell ({baseline.label()}) is not in the grid")
    return GridConfig(
        name=name,
        source=source,
        synthetic=synthetic,
        world=world,
        plays=plays,
        profiles=profiles,
        gap_minutes=gap,
        split=(float(split[0]), float(split[1]), float(split[2])),
        seed=seed,
        train=train,
        columns=tuple(columns),
        k_range=(k_range[0], k_range[1]),
        mixed_threshold=threshold,
        cells=cells,
        baseline=baseline,
        path=str(path),
    )


def _cell_value(doc, key: str, value: Any, where: tuple) -> Any:
    """Validate one grid value (YAML's bare on/off are read as the strings 'on'/'off')."""
    if key == "method":
        if value not in METHODS:
            raise doc.error(where, unknown_name_message("method", str(value), METHODS))
        return value
    if key == "dropout":
        if not isinstance(value, int | float) or isinstance(value, bool) or not 0 <= value < 1:
            raise doc.error(where, f"dropout must be a number in [0, 1), got {value!r}")
        return float(value)
    if key == "clusters":
        try:
            return ClusterSpec.parse(value)
        except ConfigError as err:
            raise doc.error(where, str(err)) from err
    if isinstance(value, bool):
        value = "on" if value else "off"
    if value not in STANDARDISATIONS:
        raise doc.error(
            where, unknown_name_message("standardisation", str(value), STANDARDISATIONS)
        )
    return value


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
