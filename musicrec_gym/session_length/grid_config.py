"""The ``musicrec session-length`` config: a YAML file validated into a ``GridConfig``.

The cells of the grid are ``Cell`` (method x dropout x clusters x standardisation);
``musicrec_gym.session_length.grid`` fits and scores them.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from musicrec_gym.errors import ConfigError, unknown_name_message
from musicrec_gym.session_length.clusters import PROFILE_CLUSTER_COLUMNS, ClusterSpec
from musicrec_gym.session_length.models import METHODS, TrainConfig
from musicrec_gym.session_length.synthetic import SyntheticHistoryConfig
from musicrec_gym.validation import MAX_SEED, Validator, describe
from musicrec_gym.yamlconfig import Located, read_config_file

STANDARDISATIONS = ("off", "on", "mixed")
GRID_KEYS = ("method", "dropout", "clusters", "standardisation")
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


def load_config(path: str | Path) -> GridConfig:
    """Read and validate a ``session-length`` YAML config.

    Raises:
        ConfigError: naming the file, line and key of the first problem.
    """
    path = Path(path)
    doc = Located(read_config_file(path), str(path))
    v = Validator(doc)
    top = v.mapping(
        doc.data,
        (),
        ("name", "data", "grid"),
        ("gap_minutes", "split", "seed", "train", "clustering", "baseline"),
        "settings",
    )
    name = v.name(top["name"], ("name",))

    seed = v.int_(top.get("seed", 0), ("seed",), 0, MAX_SEED)

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

    gap = v.number(top.get("gap_minutes", 20.0), ("gap_minutes",), 1e-6, MAX_GAP_MINUTES)
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
            ("split",), f"must be three fractions >= 0 summing to 1, got {describe(split)}"
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
            f"must be [low, high], 2 <= low <= high <= {MAX_K_RANGE}, got {describe(k_range)}",
        )
    threshold = v.int_(
        clus.get("mixed_threshold", 200), ("clustering", "mixed_threshold"), 1, 10**9
    )

    grid = v.mapping(top["grid"], ("grid",), GRID_KEYS, (), "lists of values")
    n_cells = 1
    for key in GRID_KEYS:
        values = grid[key]
        if not isinstance(values, list) or not values:
            raise doc.error(("grid", key), f"must be a non-empty list, got {describe(values)}")
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
                    f"value {describe(val)} is listed twice (also item "
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
