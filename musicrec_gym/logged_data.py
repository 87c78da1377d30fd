"""The logged-dataset format: sessions a logging policy played, with exact propensities.

``musicrec log`` (``experiments.logged.log_sessions``) writes a :class:`LoggedDataset`;
the off-policy estimators and the offline-RL agents read it with :func:`load_dataset`.
A dataset directory holds two files, each written atomically (a temporary file, then
a rename), ``dataset.json`` last, so a directory is either complete or not a dataset:

- ``arrays.npz``: the arrays below (plain NumPy arrays, no pickles);
- ``dataset.json``: ``meta`` (what world, environment and policy logged it).

One row per logged step, every episode's rows together and in order. The ``truth_``
columns are what only the simulator knows (the chosen track's expected reward, the
best one available): estimators must not read them, the grading does. Everything
else is what a real service would have logged.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from musicrec_gym import __version__
from musicrec_gym.artifacts import default_world_dir, npz_bytes, sha256_file, write_bytes_atomic
from musicrec_gym.errors import ArtifactError, DataFormatError

ARRAYS_FILE = "arrays.npz"
META_FILE = "dataset.json"
FORMAT = "musicrec-logged-v1"
"""``meta["format"]``: the version of this layout."""
ROW_ARRAYS: dict[str, tuple[str, int]] = {
    "episode": ("i", 1),
    "step": ("i", 1),
    "obs": ("f", 2),
    "next_obs": ("f", 2),
    "action": ("i", 1),
    "reward": ("f", 1),
    "terminated": ("b", 1),
    "truncated": ("b", 1),
    "pscore": ("f", 1),
    "user": ("i", 1),
    "listened": ("b", 1),
    "truth_expected_reward": ("f", 1),
    "truth_optimal_reward": ("f", 1),
}
"""The arrays with one row per logged step: name -> (dtype kind, ndim)."""
EPISODE_ARRAYS: dict[str, tuple[str, int]] = {
    "warmup_tracks": ("i", 2),
    "warmup_listened": ("b", 2),
    "reset_seed": ("i", 1),
}
"""The arrays with one row per episode."""
DTYPES = {
    "episode": np.int64, "step": np.int64, "obs": np.float32, "next_obs": np.float32,
    "action": np.int64, "reward": np.float64, "terminated": np.bool_, "truncated": np.bool_,
    "pscore": np.float64, "user": np.int64, "listened": np.bool_,
    "warmup_tracks": np.int64, "warmup_listened": np.bool_, "reset_seed": np.int64,
    "truth_expected_reward": np.float64, "truth_optimal_reward": np.float64,
    "action_context": np.float32,
}  # fmt: skip
"""Every array's dtype as written and checked on loading."""
TRUTH_COLUMNS = ("truth_expected_reward", "truth_optimal_reward")
"""The columns only the simulator knows: for grading, never for estimating."""
META_KEYS = ("world", "world_sha", "env_kwargs", "policy", "seed", "n_episodes")
"""The keys ``meta`` must have (it may have more)."""


@dataclass
class LoggedDataset:
    """Logged sessions: one row per step, all episodes concatenated in order.

    Attributes:
        episode: (n,) int64 episode index 0..E-1.
        step: (n,) int64 step within the episode, from 0 (Open Bandit Pipeline's
            ``position``).
        obs: (n, obs_dim) float32 observation the logger acted on.
        next_obs: (n, obs_dim) float32 observation after the step (the session's last
            one at its end).
        action: (n,) int64 catalog row played.
        reward: (n,) float64.
        terminated: (n,) bool: the listener left.
        truncated: (n,) bool: the session hit ``max_steps``; never both.
        pscore: (n,) float64 the logging policy's exact probability of ``action``.
        user: (n,) int64 listener row (a service knows who listens).
        listened: (n,) bool.
        warmup_tracks: (E, 5) int64 the warm-up plays that opened each episode.
        warmup_listened: (E, 5) bool.
        reset_seed: (E,) int64 each episode's env reset seed: resetting an env with it
            and playing the logged actions replays the session.
        truth_expected_reward: (n,) float64 TRUTH: expected reward of ``action``.
        truth_optimal_reward: (n,) float64 TRUTH: best immediate expected reward there.
        action_context: (n_tracks, d + 1) float32 track embedding and standardised
            ``log1p`` play count.
        meta: JSON-able: ``world`` (path or ``"built-in"``), ``world_sha`` (sha256 of
            its ``manifest.json``), ``env_kwargs``, ``policy`` (spec string),
            ``epsilon``, ``seed``, ``n_episodes``, ``ref_min_score`` (uniform random's
            mean return), ``ref_max_score`` (the upper reference's), ``created_by``.
    """

    episode: np.ndarray
    step: np.ndarray
    obs: np.ndarray
    next_obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    pscore: np.ndarray
    user: np.ndarray
    listened: np.ndarray
    warmup_tracks: np.ndarray
    warmup_listened: np.ndarray
    reset_seed: np.ndarray
    truth_expected_reward: np.ndarray
    truth_optimal_reward: np.ndarray
    action_context: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ queries
    @property
    def n_rows(self) -> int:
        """Logged steps."""
        return len(self.action)

    @property
    def n_episodes(self) -> int:
        """Logged sessions."""
        return len(self.reset_seed)

    @property
    def n_actions(self) -> int:
        """Catalog size."""
        return len(self.action_context)

    def episode_starts(self) -> np.ndarray:
        """(E + 1,) row offsets: episode ``e`` is rows ``starts[e]:starts[e + 1]``."""
        counts = np.bincount(self.episode, minlength=self.n_episodes)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def episode_returns(self, column: str = "reward") -> np.ndarray:
        """(E,) each episode's sum of ``column`` (``reward`` by default)."""
        values = np.asarray(getattr(self, column), dtype=np.float64)
        return np.bincount(self.episode, weights=values, minlength=self.n_episodes)

    def truth_columns(self) -> dict[str, np.ndarray]:
        """The simulator-only columns (:data:`TRUTH_COLUMNS`), for grading."""
        return {name: getattr(self, name) for name in TRUTH_COLUMNS}

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array by name (``meta`` aside), in the dtypes of :data:`DTYPES`."""
        return {
            f.name: np.asarray(getattr(self, f.name), dtype=DTYPES[f.name])
            for f in fields(self)
            if f.name != "meta"
        }

    # ------------------------------------------------------------------ writing
    def save(self, path_dir: str | Path) -> Path:
        """Write ``arrays.npz`` and ``dataset.json`` into ``path_dir``, atomically.

        The arrays are checked first (:func:`check_arrays`); a crash leaves no
        half-written file (``dataset.json`` is written last, so a directory without it
        is not a dataset).

        Returns:
            The directory.
        """
        directory = Path(path_dir)
        arrays = self.arrays()
        check_arrays(arrays, self.meta, directory / ARRAYS_FILE)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / META_FILE).unlink(missing_ok=True)
        write_bytes_atomic(directory / ARRAYS_FILE, npz_bytes(arrays))
        meta = {**self.meta, "format": FORMAT, "n_rows": self.n_rows}
        text = json.dumps(jsonable(meta), indent=2, sort_keys=True) + "\n"
        write_bytes_atomic(directory / META_FILE, text.encode())
        return directory


def jsonable(obj: Any) -> Any:
    """``obj`` with tuples as lists, NumPy scalars as Python numbers, paths as strings."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def world_sha(world: Any = None) -> str:
    """The sha256 of a world's ``manifest.json`` (a ``World``, a directory or ``None``)."""
    directory = getattr(world, "directory", None) or (
        default_world_dir() if world is None else Path(world)
    )
    manifest = Path(directory) / "manifest.json"
    if not manifest.is_file():
        raise ArtifactError(f"{manifest}: not found (is {directory} a world directory?)")
    return sha256_file(manifest)


def world_label(world: Any = None) -> str:
    """``"built-in"`` for the built-in world, else its directory as given."""
    directory = getattr(world, "directory", None) or world
    if directory is None:
        return "built-in"
    if Path(directory).resolve() == default_world_dir().resolve():
        return "built-in"
    return str(directory)


# ------------------------------------------------------------------ checking


def _fail(path: Path, name: str, problem: str) -> DataFormatError:
    return DataFormatError(f"{path}: field {name!r}: {problem}")


def check_arrays(arrays: dict[str, np.ndarray], meta: dict[str, Any], path: Path) -> None:
    """Check a dataset's arrays: dtypes, shapes and the rules between them.

    Raises:
        DataFormatError: Naming ``path`` and the field: a missing array, a wrong dtype
            or shape, episode ids not contiguous from 0 or out of order, steps not
            0..L-1 within each episode, a ``pscore`` outside (0, 1], a row both
            terminated and truncated, an episode not ended exactly at its last row,
            an action outside the catalog, or a NaN.
    """
    for name, dtype in DTYPES.items():
        if name not in arrays:
            raise _fail(path, name, f"missing (the file has {sorted(arrays)})")
        arr = arrays[name]
        if arr.dtype != np.dtype(dtype):
            raise _fail(path, name, f"dtype {arr.dtype}, expected {np.dtype(dtype)}")
        if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
            raise _fail(path, name, "holds NaN or infinite values")
    n, n_eps = len(arrays["action"]), len(arrays["reset_seed"])
    obs_dim = arrays["obs"].shape[1] if arrays["obs"].ndim == 2 else -1
    for name, (_, ndim) in ROW_ARRAYS.items():
        arr = arrays[name]
        want = (n,) if ndim == 1 else (n, obs_dim)
        if arr.shape != want:
            raise _fail(path, name, f"shape {arr.shape}, expected {want} (one row per step)")
    for name, (_, ndim) in EPISODE_ARRAYS.items():
        arr = arrays[name]
        if arr.ndim != ndim or arr.shape[0] != n_eps:
            raise _fail(path, name, f"shape {arr.shape}, expected one row per episode ({n_eps})")
    if arrays["warmup_listened"].shape != arrays["warmup_tracks"].shape:
        raise _fail(path, "warmup_listened", "shape differs from warmup_tracks'")
    context = arrays["action_context"]
    if context.ndim != 2 or context.shape[0] < 1:
        raise _fail(path, "action_context", f"shape {context.shape}, expected (n_tracks, d + 1)")
    _check_episodes(arrays, n_eps, path)
    action = arrays["action"]
    if n and (action.min() < 0 or action.max() >= context.shape[0]):
        raise _fail(path, "action", f"outside the catalog [0, {context.shape[0]})")
    pscore = arrays["pscore"]
    bad = np.flatnonzero(~((pscore > 0) & (pscore <= 1)))
    if bad.size:
        raise _fail(
            path, "pscore", f"row {bad[0]} is {pscore[bad[0]]!r}: propensities must be in (0, 1]"
        )
    if "n_episodes" in meta and meta["n_episodes"] != n_eps:
        raise DataFormatError(
            f"{path}: meta n_episodes={meta['n_episodes']!r} but the arrays hold {n_eps} episodes"
        )


def _check_episodes(arrays: dict[str, np.ndarray], n_eps: int, path: Path) -> None:
    """Episode ids contiguous and in order, steps 0..L-1, one end at each last row."""
    episode, step = arrays["episode"], arrays["step"]
    terminated, truncated = arrays["terminated"], arrays["truncated"]
    n = len(episode)
    if n == 0:
        if n_eps:
            raise _fail(path, "episode", f"no rows for {n_eps} episodes")
        return
    if episode[0] != 0 or np.any(np.diff(episode) < 0) or np.any(np.diff(episode) > 1):
        raise _fail(path, "episode", "ids must run 0, 0, ..., 1, ... without gaps or going back")
    if episode[-1] != n_eps - 1:
        raise _fail(path, "episode", f"last id {episode[-1]}, expected {n_eps - 1} (E - 1)")
    first = np.concatenate([[True], episode[1:] != episode[:-1]])
    starts = np.flatnonzero(first)
    expected = np.arange(n) - np.repeat(starts, np.diff(np.append(starts, n)))
    bad = np.flatnonzero(step != expected)
    if bad.size:
        raise _fail(path, "step", f"row {bad[0]} is {step[bad[0]]}, expected {expected[bad[0]]}")
    both = np.flatnonzero(terminated & truncated)
    if both.size:
        raise _fail(path, "terminated", f"row {both[0]} is both terminated and truncated")
    last = np.append(first[1:], True)
    ended = terminated | truncated
    bad = np.flatnonzero(ended != last)
    if bad.size:
        raise _fail(
            path,
            "terminated",
            f"row {bad[0]}: an episode must end (terminated or truncated) at its last row "
            "and only there",
        )


# ------------------------------------------------------------------ reading


def load_dataset(path_dir: str | Path, world: Any = None) -> LoggedDataset:
    """Read and check a dataset directory written by :meth:`LoggedDataset.save`.

    Args:
        path_dir: The directory.
        world: If given (a ``World``, a world directory, or ``"built-in"``), the world
            the dataset must come from: its ``manifest.json`` sha256 must be the one
            the dataset recorded.

    Raises:
        ArtifactError: The directory, ``dataset.json`` or ``arrays.npz`` is missing,
            truncated or corrupted (named).
        DataFormatError: A field breaks the format (named, see :func:`check_arrays`),
            or the dataset comes from another world than ``world``.
    """
    directory = Path(path_dir)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: no such dataset directory (write one with musicrec log)")
    meta_path, arrays_path = directory / META_FILE, directory / ARRAYS_FILE
    meta = _read_meta(meta_path)
    if world is not None:
        want = world_sha(None if world == "built-in" else world)
        if meta["world_sha"] != want:
            raise DataFormatError(
                f"{meta_path}: dataset from another world: it was logged on "
                f"{meta.get('world')!r} (manifest sha256 {meta['world_sha'][:12]}...), "
                f"not on {world_label(None if world == 'built-in' else world)!r} "
                f"({want[:12]}...)"
            )
    arrays = _read_arrays(arrays_path)
    check_arrays(arrays, meta, arrays_path)
    if meta.get("n_rows", len(arrays["action"])) != len(arrays["action"]):
        raise DataFormatError(
            f"{arrays_path}: {len(arrays['action'])} rows but {META_FILE} says {meta['n_rows']}"
        )
    return LoggedDataset(**arrays, meta=meta)


def _read_meta(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ArtifactError(
            f"{path}: not found: not a logged dataset, or its writing did not finish"
        )
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ArtifactError(f"{path}: not readable JSON, truncated or corrupted ({err})") from err
    if not isinstance(meta, dict):
        raise DataFormatError(f"{path}: expected a JSON object, got {type(meta).__name__}")
    if meta.get("format") != FORMAT:
        raise DataFormatError(
            f"{path}: key 'format' is {meta.get('format')!r}, expected {FORMAT!r}"
        )
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise DataFormatError(f"{path}: missing key(s) {', '.join(map(repr, missing))}")
    return meta


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise ArtifactError(f"{path}: not found (a logged dataset's arrays)")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files if name.isidentifier()}
    except Exception as err:  # zipfile.BadZipFile, ValueError, OSError, EOFError ...
        raise ArtifactError(
            f"{path}: not a readable NPZ file, truncated or corrupted ({err})"
        ) from err


def unused_path(directory: Path) -> Path:
    """A fresh temporary directory beside ``directory`` (for writing, then renaming)."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    umask = os.umask(0)  # mkdtemp makes it private (0700): the mode any new directory gets
    os.umask(umask)
    os.chmod(tmp, 0o777 & ~umask)
    return tmp


def replace_dir(tmp: Path, directory: Path) -> None:
    """Move the finished ``tmp`` directory to ``directory`` (an empty one is replaced)."""
    if directory.is_dir() and not any(directory.iterdir()):
        directory.rmdir()
    os.replace(tmp, directory)


CREATED_BY = f"musicrec-gym {__version__}"
"""``meta["created_by"]``."""
