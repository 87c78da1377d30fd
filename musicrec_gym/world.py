"""A world: catalog, listeners, hidden truth, simulator parameters, embeddings and encoder.

``load_world()`` reads a world directory (the built-in one by default), checks every
file against the manifest's sha256, and caches the result per directory so that making
many environments costs one load.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym.artifacts import default_world_dir, load_npz, read_json, verify_manifest
from musicrec_gym.data.synthetic import WorldTruth
from musicrec_gym.encoder import NumpyEncoder
from musicrec_gym.errors import ArtifactError
from musicrec_gym.sim.params import SimulatorParams
from musicrec_gym.sim.response import ResponseModel
from musicrec_gym.sim.simulator import ListenerCandidates

CATALOG_COLUMNS = (
    "track_id", "title", "artist_id", "artist", "genre", "duration_s", "popularity", "plays",
)  # fmt: skip
LISTENER_COLUMNS = ("user_id", "age", "gender", "country", "registered")
REQUIRED_FILES = (
    "catalog.csv", "listeners.csv", "truth.npz", "simulator.json",
    "embeddings.csv", "encoder.npz",
)  # fmt: skip
PROFILE_FEATURES = ("age/100", "gender=m", "gender=f", "registered (0 = 2000, 1 = 2020)")


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
    fitted: Any = field(default=None, repr=False, compare=False)
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
        registered = pd.to_datetime(lst["registered"]).dt.year.to_numpy(dtype=np.float64)
        return np.stack(
            [
                np.clip(lst["age"].to_numpy(dtype=np.float64) / 100.0, 0.0, 1.0),
                (lst["gender"] == "m").to_numpy(dtype=np.float64),
                (lst["gender"] == "f").to_numpy(dtype=np.float64),
                np.clip((registered - 2000.0) / 20.0, 0.0, 1.0),
            ],
            axis=1,
        ).astype(np.float32)


def read_table(path: Path, columns: tuple[str, ...]) -> pd.DataFrame:
    """A world's CSV table (ids kept as strings), checked to have ``columns``."""
    try:
        frame = pd.read_csv(path, keep_default_na=False, dtype={"track_id": str, "user_id": str})
    except Exception as err:
        raise ArtifactError(f"{path}: not a readable CSV file ({err})") from err
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ArtifactError(
            f"{path}: missing column(s) {missing}; expected columns {list(columns)}"
        )
    return frame


def load_world(directory: str | Path | None = None) -> World:
    """Load (once per directory, then from a cache) the world at ``directory``.

    Args:
        directory: A world directory; ``None`` for the built-in default world.

    Raises:
        ArtifactError: A file is missing, corrupted (sha256 mismatch) or malformed.
    """
    path = Path(directory) if directory is not None else default_world_dir()
    return _load_world(str(path.resolve()))


def load_embeddings_and_encoder(
    path: Path, catalog: pd.DataFrame
) -> tuple[np.ndarray, NumpyEncoder]:
    """A world's track embeddings in catalog order and its (unbound) session encoder.

    Raises:
        ArtifactError: A file is malformed, or the encoder expects other embeddings.
    """
    from musicrec_gym.embeddings import TrackEmbeddings

    table = TrackEmbeddings.from_csv(path / "embeddings.csv")
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
    if path.is_dir() and read_json(path / "manifest.json").get("kind") == "fitted":
        from musicrec_gym.sim.fitted import load_fitted_world

        return load_fitted_world(path)
    manifest = verify_manifest(path, REQUIRED_FILES)
    catalog = read_table(path / "catalog.csv", CATALOG_COLUMNS)
    listeners = read_table(path / "listeners.csv", LISTENER_COLUMNS)
    n, m = len(catalog), len(listeners)
    arrays = load_npz(
        path / "truth.npz",
        {
            "track_factors": (n, None),
            "pop_z": (n,),
            "listener_taste": (m, None),
            "listener_bias": (m,),
            "patience": (m,),
        },
    )
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
