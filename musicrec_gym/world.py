"""A world: catalog, listeners, hidden truth, simulator parameters, embeddings and encoder.

``load_world()`` reads a world directory (the built-in one by default), checks every
file against the manifest's sha256, and caches the result per directory so that making
many environments costs one load; ``make_simulator`` builds a world's simulator. It
is the one module that knows both kinds of world: synthetic (a hidden
truth, ``truth.npz``) and fitted to real logs (``kind: fitted`` in the manifest: the
learned models of :mod:`musicrec_gym.sim.fitted`, read by :func:`load_fitted_world`).
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym.artifacts import (
    default_world_dir,
    load_npz,
    read_json,
    read_manifest,
    verify_manifest,
)
from musicrec_gym.checks import is_int
from musicrec_gym.data.synthetic import WorldTruth
from musicrec_gym.encoder import NumpyEncoder
from musicrec_gym.errors import ArtifactError, ConfigError, DataFormatError
from musicrec_gym.sim.compiled import CompiledSimulator
from musicrec_gym.sim.constants import WINDOW
from musicrec_gym.sim.fitted import FittedModel, with_rare_row
from musicrec_gym.sim.fitted_compiled import CompiledFittedSimulator
from musicrec_gym.sim.fitted_response import FITTED_FORMAT, RESPONSE_SHAPES, TwoTowerResponse
from musicrec_gym.sim.leave import FittedLeave
from musicrec_gym.sim.params import SimulatorParams, is_finite
from musicrec_gym.sim.protocol import Simulator
from musicrec_gym.sim.response import ResponseModel
from musicrec_gym.sim.simulator import ListenerCandidates
from musicrec_gym.track_embeddings import TrackEmbeddings

CATALOG_COLUMNS = (
    "track_id", "title", "artist_id", "artist", "genre", "duration_s", "popularity", "plays",
)  # fmt: skip
LISTENER_COLUMNS = ("user_id", "age", "gender", "country", "registered")
REQUIRED_FILES = (
    "catalog.csv", "listeners.csv", "truth.npz", "simulator.json",
    "embeddings.csv", "encoder.npz",
)  # fmt: skip
TRACK_ARRAYS = ("track_factors", "pop_z")
"""``truth.npz``'s arrays with a row per track (the others have a row per listener)."""
PROFILE_FEATURES = ("age/100", "gender=m", "gender=f", "registered (0 = 2000, 1 = 2020)")
FITTED_FILES = (
    "catalog.csv", "listeners.csv", "embeddings.csv", "encoder.npz", "response.npz",
    "starts.npz", "fitted.json", "simulator.json",
)  # fmt: skip
"""The files of a fitted world (``musicrec fit``), besides its manifest."""


@dataclass(frozen=True)
class World:
    """Everything an environment needs, loaded from one directory.

    Attributes:
        directory: Where it was loaded from.
        catalog: One row per track, in action order (action ``i`` is row ``i``).
        listeners: One row per listener (the public profile).
        truth: The hidden truth (taste vectors, biases, patience).
        params: Simulator parameters.
        embeddings: (n_tracks, d) learned track embeddings, in catalog order.
        encoder: The session encoder, bound to ``embeddings``.
        manifest: The directory's manifest.
        fitted: The learned models of a world fitted to real logs (``musicrec fit``);
            ``None`` for a synthetic world. A fitted world has no hidden truth
            (``truth`` is ``None``).
        expected_lengths: (n_listeners,) expected session lengths in tracks from the
            optional ``leave.npz`` (a fitted session-length model, ``musicrec
            session-length --leave-world``); when present, ``truth.patience`` holds these
            values, so the simulator's leave base rate is ``1 / expected_length``
            (``LeaveModel``). ``None`` otherwise (the built-in world).
    """

    directory: Path
    catalog: pd.DataFrame
    listeners: pd.DataFrame
    truth: WorldTruth | None
    params: SimulatorParams
    embeddings: np.ndarray
    encoder: NumpyEncoder
    manifest: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    fitted: FittedModel | None = field(default=None, repr=False, compare=False)
    expected_lengths: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def n_tracks(self) -> int:
        """Catalog size (the action space's size)."""
        return len(self.catalog)

    @property
    def n_listeners(self) -> int:
        """Number of listeners."""
        return len(self.listeners)

    @property
    def obs_dim(self) -> int:
        """Dimension of the encoded session state (embedding dim + 1)."""
        return self.encoder.feature_dim

    @functools.cached_property
    def artist_index(self) -> np.ndarray:
        """(n_tracks,) integer artist code of each track."""
        return pd.factorize(self.catalog["artist_id"], sort=True)[0].astype(np.int64)

    @functools.cached_property
    def popularity(self) -> np.ndarray:
        """(n_tracks,) play share of each track under a popularity-only policy."""
        return self.catalog["popularity"].to_numpy(dtype=np.float64)

    @functools.cached_property
    def candidates(self) -> ListenerCandidates:
        """Each listener's best tracks, shared by every simulator on this world."""
        return ListenerCandidates(ResponseModel(self.truth, self.params.response))

    @functools.cached_property
    def profile_features(self) -> np.ndarray:
        """(n_listeners, 4) profile features in [0, 1]: see ``PROFILE_FEATURES``."""
        lst = self.listeners
        registered = registered_dates(lst).dt.year.to_numpy(dtype=np.float64)
        return np.stack(
            [
                np.clip(lst["age"].to_numpy(dtype=np.float64) / 100.0, 0.0, 1.0),
                (lst["gender"] == "m").to_numpy(dtype=np.float64),
                (lst["gender"] == "f").to_numpy(dtype=np.float64),
                np.clip((registered - 2000.0) / 20.0, 0.0, 1.0),
            ],
            axis=1,
        ).astype(np.float32)


def make_simulator(
    world: World,
    n_slots: int,
    params: SimulatorParams | None = None,
    reward_mode: str = "listen",
) -> Simulator:
    """The simulator of ``n_slots`` sessions that fits ``world``: the one place that picks it.

    A synthetic world (a hidden truth) runs on the compiled simulator, a world fitted to
    logs on the fitted one; both are a :class:`~musicrec_gym.sim.protocol.Simulator`, so
    callers never branch on the kind.

    Args:
        world: A loaded world.
        n_slots: Concurrent sessions.
        params: Simulator parameters (default: the world's own).
        reward_mode: ``listen``, ``time`` or ``event``.
    """
    params = world.params if params is None else params
    if world.fitted is not None:
        return CompiledFittedSimulator(world.fitted, world.encoder, params, n_slots, reward_mode)
    return CompiledSimulator(
        world.truth,
        world.artist_index,
        world.popularity,
        params,
        n_slots,
        encoder=world.encoder,
        reward_mode=reward_mode,
        candidates=world.candidates,
    )


def registered_dates(listeners: pd.DataFrame) -> pd.Series:
    """The listeners' registration dates (``NaT`` where a value is not a date)."""
    return pd.to_datetime(listeners["registered"], format="mixed", errors="coerce")


def read_table(path: Path, columns: tuple[str, ...], numeric: tuple[str, ...] = ()) -> pd.DataFrame:
    """A world's CSV table (ids kept as strings), checked to have ``columns``.

    Args:
        path: The CSV file.
        columns: Columns it must have.
        numeric: Columns that must hold finite numbers >= 0 in every row.

    Raises:
        ArtifactError: Naming the file (and the column and line): unreadable, no rows,
            a missing column, or a value that is not a finite number >= 0.
    """
    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype={"track_id": str, "user_id": str})
    except Exception as err:
        raise ArtifactError(f"{path}: not a readable CSV file ({err})") from err
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ArtifactError(
            f"{path}: missing column(s) {missing}; expected columns {list(columns)}"
        )
    if frame.empty:
        raise ArtifactError(f"{path}: no rows; a world needs at least one")
    for column in numeric:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if bad.size:
            raise ArtifactError(
                f"{path}, line {bad[0] + 2}: column {column!r} must hold finite numbers >= 0, "
                f"got {frame[column].iloc[bad[0]]!r}"
            )
    return frame


def load_world(directory: str | os.PathLike[str] | None = None) -> World:
    """Load (once per directory, then from a cache) the world at ``directory``.

    Args:
        directory: A world directory (a non-empty ``str`` or path); ``None`` for the
            built-in default world.

    Raises:
        ConfigError: ``directory`` is not a path (a number, bytes, an empty string).
        ArtifactError: The directory is missing or a file; a file is missing, corrupted
            (sha256 mismatch) or malformed (names the file and the key or column).
    """
    return _load_world(str(world_path(directory).resolve()))


def world_path(directory: Any, name: str = "directory") -> Path:
    """``directory`` as a ``Path`` (``None``: the built-in world), or a ``ConfigError``.

    Args:
        directory: What the caller passed.
        name: The argument's name, for the message.
    """
    if directory is None:
        return default_world_dir()
    if isinstance(directory, str) and not directory.strip():
        raise ConfigError(
            f"`{name}` is an empty string; pass a world directory, or None for the built-in world"
        )
    if not isinstance(directory, (str, os.PathLike)):
        raise ConfigError(
            f"`{name}` must be a world directory (a str or path) or None for the built-in "
            f"world, got {type(directory).__name__} {directory!r}"
        )
    try:
        return Path(directory)
    except TypeError as err:  # a PathLike that gives bytes
        raise ConfigError(f"`{name}` must be a str path, got {directory!r}") from err


def load_embeddings_and_encoder(
    path: Path, catalog: pd.DataFrame
) -> tuple[np.ndarray, NumpyEncoder]:
    """A world's track embeddings in catalog order and its (unbound) session encoder.

    Raises:
        ArtifactError: A file is malformed, or the encoder expects other embeddings.
    """
    try:
        table = TrackEmbeddings.from_csv(path / "embeddings.csv")
    except DataFormatError as err:  # a world's file: an artifact fault (names file and line)
        raise ArtifactError(str(err)) from err
    except OSError as err:
        raise ArtifactError(f"{path / 'embeddings.csv'}: cannot be read ({err})") from err
    embeddings = table.matrix_for(catalog["track_id"].astype(str).tolist(), missing="mean")
    encoder = NumpyEncoder.load(path / "encoder.npz")
    if encoder.feature_dim != embeddings.shape[1] + 1:
        raise ArtifactError(
            f"{path / 'encoder.npz'}: encoder expects {encoder.feature_dim - 1}-dim embeddings "
            f"but embeddings.csv has {embeddings.shape[1]}"
        )
    return embeddings, encoder


@functools.lru_cache(maxsize=8)
def _load_world(directory: str) -> World:
    path = Path(directory)
    if read_manifest(path).get("kind") == "fitted":
        return load_fitted_world(path)
    manifest = verify_manifest(path, REQUIRED_FILES)
    catalog = read_table(path / "catalog.csv", CATALOG_COLUMNS, numeric=("popularity",))
    if catalog["popularity"].sum() <= 0:
        raise ArtifactError(f"{path / 'catalog.csv'}: column 'popularity' sums to 0")
    listeners = read_table(path / "listeners.csv", LISTENER_COLUMNS, numeric=("age",))
    registered = registered_dates(listeners)
    if registered.isna().any():
        row = int(np.flatnonzero(registered.isna().to_numpy())[0])
        raise ArtifactError(
            f"{path / 'listeners.csv'}, line {row + 2}: column 'registered' must hold a "
            f"date (YYYY-MM-DD), got {listeners['registered'].iloc[row]!r}"
        )
    n, m = len(catalog), len(listeners)
    truth_file = path / "truth.npz"
    arrays = load_npz(
        truth_file,
        {
            "track_factors": (None, None),
            "pop_z": (None,),
            "listener_taste": (None, None),
            "listener_bias": (None,),
            "patience": (None,),
        },
    )
    for key, arr in arrays.items():
        rows, table = (
            (n, "catalog.csv tracks") if key in TRACK_ARRAYS else (m, "listeners.csv listeners")
        )
        if arr.shape[0] != rows:
            raise ArtifactError(
                f"{truth_file}: array {key!r} has {arr.shape[0]} rows but there are {rows} "
                f"{table}; the files are not from the same world"
            )
    if arrays["track_factors"].shape[1] != arrays["listener_taste"].shape[1]:
        raise ArtifactError(
            f"{truth_file}: 'track_factors' has {arrays['track_factors'].shape[1]} columns but "
            f"'listener_taste' has {arrays['listener_taste'].shape[1]}; expected the same"
        )
    if n < 2:
        raise ArtifactError(f"{path / 'catalog.csv'}: a world needs at least 2 tracks, got {n}")
    truth = WorldTruth(**arrays)
    expected_lengths = _read_leave(path, manifest, m)
    if expected_lengths is not None:
        truth = dataclasses.replace(truth, patience=expected_lengths.astype(np.float32))
    params = SimulatorParams.from_dict(
        read_json(path / "simulator.json"), source=str(path / "simulator.json")
    )
    embeddings, encoder = load_embeddings_and_encoder(path, catalog)
    encoder.bind_tracks(embeddings)
    return World(
        directory=path,
        catalog=catalog,
        listeners=listeners,
        truth=truth,
        params=params,
        embeddings=embeddings.astype(np.float32),
        encoder=encoder,
        manifest=manifest,
        expected_lengths=expected_lengths,
    )


LEAVE_FILE = "leave.npz"


def _read_leave(path: Path, manifest: dict[str, Any], n_listeners: int) -> np.ndarray | None:
    """The optional per-listener expected session lengths (``leave.npz``), else ``None``."""
    if not (path / LEAVE_FILE).is_file() and LEAVE_FILE not in manifest.get("files", {}):
        return None
    verify_manifest(path, (LEAVE_FILE,))
    lengths = load_npz(path / LEAVE_FILE, {"expected_length": (n_listeners,)})["expected_length"]
    if not np.all(np.isfinite(lengths)) or np.any(lengths <= 0):
        raise ArtifactError(
            f"{path / LEAVE_FILE}: expected_length must hold finite numbers > 0 (tracks)"
        )
    return lengths


# --------------------------------------------------------------------------- fitted worlds


def load_fitted_world(path: Path) -> World:
    """Load a world directory written by ``musicrec fit`` (called by ``load_world``).

    Raises:
        ArtifactError: A file is missing, corrupted or malformed (names it).
    """
    manifest = verify_manifest(path, FITTED_FILES)
    catalog = read_table(
        path / "catalog.csv", ("track_id", "plays", "popularity"), numeric=("plays", "popularity")
    )
    listeners = read_table(path / "listeners.csv", ("user_id",))
    info = read_fitted_info(path / "fitted.json")
    params = SimulatorParams.from_dict(
        read_json(path / "simulator.json"), source=str(path / "simulator.json")
    )
    if params.warmup != WINDOW:
        raise ArtifactError(
            f"{path / 'simulator.json'}: key 'warmup' must be {WINDOW} in a fitted world (its "
            f"sessions start from {WINDOW} logged plays), got {params.warmup}"
        )
    n = len(catalog)
    embeddings, encoder = load_embeddings_and_encoder(path, catalog)
    vectors = with_rare_row(embeddings)
    encoder.bind_tracks(vectors)
    weights = load_npz(path / "response.npz", RESPONSE_SHAPES)
    if weights["track_vectors"].shape[0] != n + 1:
        raise ArtifactError(
            f"{path / 'response.npz'}: 'track_vectors' has {weights['track_vectors'].shape[0]} "
            f"rows, expected {n + 1} (catalog.csv's {n} tracks and the rare-track row)"
        )
    response = TwoTowerResponse(
        weights, encoder.code_dim, int(info["max_length"]), str(path / "response.npz")
    )
    starts = load_npz(
        path / "starts.npz",
        {"tracks": (None, WINDOW), "listened": (None, WINDOW), "features": (None, None)},
    )
    m = len(listeners)
    if starts["tracks"].shape[0] != m:
        raise ArtifactError(
            f"{path / 'starts.npz'}: {starts['tracks'].shape[0]} starting sessions but "
            f"listeners.csv has {m} rows"
        )
    if m == 0 or starts["tracks"].min() < 0 or starts["tracks"].max() > n:
        raise ArtifactError(f"{path / 'starts.npz'}: track rows must be in [0, {n}]")
    if not np.isin(starts["listened"], (0, 1)).all():
        raise ArtifactError(f"{path / 'starts.npz'}: 'listened' must hold 0 or 1 flags")
    features = starts["features"]
    names = info.get("session_features", [])
    if not isinstance(names, list) or len(names) != response.session_dim:
        raise ArtifactError(
            f"{path / 'fitted.json'}: key 'session_features' must list the response model's "
            f"{response.session_dim} session input(s), got {names!r}"
        )
    if features.shape != (m, response.session_dim):
        raise ArtifactError(
            f"{path / 'starts.npz'}: 'features' has shape {features.shape}, expected "
            f"({m}, {response.session_dim}): a row per starting session and a column per "
            "session input of the response model"
        )
    share = np.asarray(info.get("play_share_rare", 0.0), np.float64)
    play_share = np.append(catalog["popularity"].to_numpy(np.float64) * (1 - share), share)
    model = FittedModel(
        response=response,
        leave=FittedLeave.from_dict(info["leave"], str(path / "fitted.json")),
        start_tracks=starts["tracks"].astype(np.int64),
        start_listened=starts["listened"].astype(np.int8),
        start_features=features.astype(np.float64),
        rare_index=n,
        max_length=int(info["max_length"]),
        play_share=play_share,
        info=info,
    )
    return World(
        directory=path,
        catalog=catalog,
        listeners=listeners,
        truth=None,
        params=params,
        embeddings=embeddings.astype(np.float32),
        encoder=encoder,
        manifest=manifest,
        fitted=model,
    )


FITTED_INFO_RULES: dict[str, tuple[str, Any]] = {
    "max_length": (f"an int >= {WINDOW + 2}", lambda v: is_int(v) and v >= WINDOW + 2),
    "popularity_mean": ("a finite number", is_finite),
    "popularity_std": ("a finite number > 0", lambda v: is_finite(v) and v > 0),
    "rare_plays": ("a finite number >= 0", lambda v: is_finite(v) and v >= 0),
    "leave": ("an object (position_logit, per_skip, skip_window)", lambda v: isinstance(v, dict)),
}
"""``fitted.json``'s required keys: what each must be, and its check."""


def read_fitted_info(path: Path) -> dict[str, Any]:
    """``fitted.json``, checked: an object whose required keys hold allowed values.

    Raises:
        ArtifactError: Naming the file and the key that is missing or out of range.
    """
    info = read_json(path)
    if not isinstance(info, dict):
        raise ArtifactError(f"{path}: expected a JSON object, got {type(info).__name__}")
    version = info.get("format", 1)
    if version != FITTED_FORMAT:
        raise ArtifactError(
            f"{path}: a world fitted by another version of musicrec-gym (fitted-world format "
            f"{version!r}; this version reads format {FITTED_FORMAT}, whose response model is "
            "two towers with a repeat table). Fit it again from its log: "
            f"`musicrec fit LOG --out {path.parent} --force`"
        )
    for key, (expected, ok) in FITTED_INFO_RULES.items():
        if key not in info:
            raise ArtifactError(f"{path}: missing key {key!r} ({expected})")
        if not ok(info[key]):
            raise ArtifactError(f"{path}: key {key!r} must be {expected}, got {info[key]!r}")
    share = info.get("play_share_rare", 0.0)
    if not (is_finite(share) and 0.0 <= share <= 1.0):
        raise ArtifactError(
            f"{path}: key 'play_share_rare' must be a number in [0, 1], got {share!r}"
        )
    return info
