"""``musicrec build``: make the built-in world from its seed, stage by stage.

synthetic truth -> logged sessions (MSSD + Last.fm files) -> track embeddings (gensim
SGNS) -> LSTM session autoencoder (PyTorch) -> world directory with a manifest. Every
stage is seeded and single-threaded where threads would change the numbers, so two
builds with the same seed give files with the same sha256.

Where a world is written (``build_world``, ``fit_world``; ``--out`` on the command line):

* a new or empty directory is written;
* a non-empty directory is replaced only when musicrec wrote it: it holds a
  ``manifest.json`` of the same kind (``synthetic`` for ``build``, ``fitted`` for
  ``fit``) and nothing but the files that manifest lists (and, for a fitted world, the
  ``realism/`` report directory), and only with ``force=True`` (``--force``). Any other
  non-empty directory is refused, with or without ``--force``: it may hold someone's
  files;
* a path inside the installed ``musicrec_gym`` package (the built-in world's folder
  among them) is always refused: ``gym.make`` would silently give the new world;
* an existing file is refused.

The world is written into a fresh hidden sibling directory
(``.<name>.partial-<random>``) and renamed into place when complete, so an interrupted
build never leaves half a world and the manifest hashes only files the build wrote. A
build killed outright may leave that sibling behind; it is never read and may be
deleted.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import secrets
import shutil
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym import __version__
from musicrec_gym.artifacts import FORMAT_VERSION, MANIFEST, write_json, write_manifest
from musicrec_gym.data.logs import (
    logging_simulator_factory,
    simulate_sessions,
    to_lastfm,
    to_mssd,
)
from musicrec_gym.data.synthetic import SyntheticConfig, generate_world
from musicrec_gym.embeddings import EmbeddingConfig, evaluate_completion, train_embeddings
from musicrec_gym.encoder import EncoderConfig, make_windows
from musicrec_gym.errors import ConfigError
from musicrec_gym.reproducible import kernels_pinned
from musicrec_gym.sim.params import SimulatorParams

#: The installed package: nothing is ever written inside it (``--out``, ``--logs`` ...).
PACKAGE_DIR = Path(__file__).resolve().parent

#: Entries besides the manifest's files that a world directory of each kind may hold
#: and that replacing it (``--force``) deletes: ``musicrec realism``'s default report.
WORLD_EXTRAS = {"synthetic": (), "fitted": ("realism",)}

#: Files ``build_world`` writes into ``logs_dir``.
LOG_FILES = ("sessions_mssd.csv", "history_lastfm.tsv", "profiles.tsv")


@dataclass(frozen=True)
class BuildConfig:
    """Everything that determines a synthetic world's artifacts.

    Attributes:
        world: Size and shape of the synthetic world (its ``seed`` seeds every stage).
        n_sessions: Logged sessions generated for learning embeddings and the encoder.
        embedding: Skip-gram hyperparameters.
        encoder: Autoencoder training hyperparameters.
        simulator: Simulator parameters written to ``simulator.json``.
        evaluate: Run the playlist-completion evaluation of the embeddings.
    """

    world: SyntheticConfig = SyntheticConfig()
    n_sessions: int = 150_000
    embedding: EmbeddingConfig = EmbeddingConfig()
    encoder: EncoderConfig = EncoderConfig()
    simulator: SimulatorParams = field(default_factory=SimulatorParams)
    evaluate: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.n_sessions, int) or self.n_sessions < 10:
            raise ConfigError(f"`n_sessions` must be an int >= 10, got {self.n_sessions!r}")

    def with_seed(self, seed: int) -> BuildConfig:
        """The same config with every stage seeded from ``seed``."""
        return dataclasses.replace(
            self,
            world=dataclasses.replace(self.world, seed=seed),
            embedding=dataclasses.replace(self.embedding, seed=seed),
            encoder=dataclasses.replace(self.encoder, seed=seed),
        )


def _versions() -> dict[str, str]:
    import gensim
    import torch

    return {
        "musicrec_gym": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "gensim": gensim.__version__,
        "torch": torch.__version__,
        "cpu_kernels": "pinned" if kernels_pinned() else "native (machine-specific)",
    }


def build_world(
    config: BuildConfig,
    out_dir: str | Path,
    logs_dir: str | Path | None = None,
    tensorboard_dir: str | Path | None = None,
    progress: bool = True,
    log=print,
    force: bool = False,
) -> dict[str, Any]:
    """Build a synthetic world directory.

    Args:
        config: The build config.
        out_dir: The world directory: new, empty, or (with ``force``) a synthetic world
            to replace (see the module docstring). Written whole or not at all.
        logs_dir: Where the logged sessions go (``sessions_mssd.csv``,
            ``history_lastfm.tsv``, ``profiles.tsv``); not written when ``None``.
        tensorboard_dir: Where the encoder's training curves go; none when ``None``.
        progress: Show progress bars.
        log: Where progress lines go.
        force: Replace the synthetic world at ``out_dir`` and overwrite the files of
            ``logs_dir``.

    Returns:
        The manifest written to ``out_dir/manifest.json``.

    Raises:
        ConfigError: ``out_dir``, ``logs_dir`` or ``tensorboard_dir`` may not be written
            (inside the package, a file, a directory of other files, an existing world
            without ``force``).
    """
    target = check_world_out(out_dir, "synthetic", force)
    logs = None
    if logs_dir is not None:
        logs = check_side_dir(logs_dir, "--logs", target, LOG_FILES, force)
    if tensorboard_dir is not None:
        check_side_dir(tensorboard_dir, "--tensorboard", target, (), force)
    t0 = time.perf_counter()
    with staged_world(out_dir, "synthetic", force) as stage:
        manifest = _build_into(config, stage, logs, tensorboard_dir, progress, log)
    log(f"      world written to {target} in {time.perf_counter() - t0:.0f} s")
    return manifest


def _build_into(
    config: BuildConfig,
    out: Path,
    logs: Path | None,
    tensorboard_dir: str | Path | None,
    progress: bool,
    log,
) -> dict[str, Any]:
    """The stages of :func:`build_world`, writing into the empty directory ``out``."""
    from musicrec_gym.encoder_train import export_numpy, save_state_dict, train_autoencoder

    seed = config.world.seed

    size = f"{config.world.n_tracks} tracks, {config.world.n_listeners} listeners"
    log(f"[1/4] synthetic world: {size}")
    catalog, listeners, truth = generate_world(config.world)
    artist = pd.factorize(catalog["artist_id"], sort=True)[0]
    factory = logging_simulator_factory(
        truth, artist, catalog["popularity"].to_numpy(), config.simulator
    )
    users, lengths, tracks, listened = simulate_sessions(
        factory, config.n_sessions, seed=seed, progress=progress
    )
    track_ids = catalog["track_id"].to_numpy(dtype=object)
    if logs is not None:
        logs.mkdir(parents=True, exist_ok=True)
        user_ids = listeners["user_id"].to_numpy(dtype=object)
        to_mssd(users, lengths, tracks, listened, track_ids, user_ids, seed).to_csv(
            logs / "sessions_mssd.csv", index=False
        )
        to_lastfm(users, tracks, listened, catalog, user_ids, seed).to_csv(
            logs / "history_lastfm.tsv", sep="\t", index=False, header=False
        )
        listeners.to_csv(logs / "profiles.tsv", sep="\t", index=False)
        log(f"      logs written to {logs}")

    log(f"[2/4] track embeddings (gensim skip-gram) over {config.n_sessions} sessions")
    sessions = [list(track_ids[row[:n]]) for row, n in zip(tracks, lengths, strict=True)]
    embeddings = train_embeddings(sessions, config.embedding)
    embeddings.to_csv(out / "embeddings.csv")
    reports: dict[str, Any] = {"logs": _log_report(lengths, listened)}
    if config.evaluate:
        scores = evaluate_completion(sessions, config.embedding)
        reports["embeddings"] = dataclasses.asdict(scores)
        log(
            f"      playlist completion: Hit@{scores.k} {scores.hit:.3f} "
            f"(popularity {scores.pop_hit:.3f}), NDCG@{scores.k} {scores.ndcg:.3f} "
            f"(popularity {scores.pop_ndcg:.3f})"
        )

    log("[3/4] LSTM session autoencoder (PyTorch)")
    vectors = embeddings.matrix_for(list(track_ids), missing="mean")
    rows = [r[:n] for r, n in zip(tracks, lengths, strict=True)]
    flags = [f[:n] for f, n in zip(listened, lengths, strict=True)]
    windows = make_windows(rows, flags, vectors)
    model, report = train_autoencoder(
        windows, config.encoder, log_dir=tensorboard_dir, progress=progress
    )
    save_state_dict(model, out / "encoder.pt")
    export_numpy(model, out / "encoder.npz")
    reports["encoder"] = dataclasses.asdict(report)
    log(
        f"      {report.n_train} training windows; held-out MSE {report.heldout_mse:.5f} "
        f"vs {report.mean_baseline_mse:.5f} for the mean window"
    )

    log("[4/4] simulator and manifest")
    plays = np.bincount(tracks[tracks >= 0], minlength=len(catalog))
    catalog = catalog.assign(plays=plays)
    catalog.to_csv(out / "catalog.csv", index=False)
    listeners.to_csv(out / "listeners.csv", index=False)
    np.savez(out / "truth.npz", **dataclasses.asdict(truth))
    write_json(out / "simulator.json", config.simulator.to_dict())
    meta = {
        "seed": seed,
        "kind": "synthetic",
        "config": _jsonable(dataclasses.asdict(config)),
        "versions": _versions(),
        "reports": _jsonable(reports),
    }
    return write_manifest(out, meta)


def _log_report(lengths: np.ndarray, listened: np.ndarray) -> dict[str, float]:
    plays = int(lengths.sum())
    return {
        "sessions": len(lengths),
        "plays": plays,
        "mean_session_length": float(lengths.mean()),
        "listen_rate": float(listened.sum() / plays),
    }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def outside_package(path: str | Path, option: str) -> Path:
    """``path`` resolved, refused when it is inside (or contains) the installed package.

    Args:
        path: A directory to write.
        option: Its name for messages, e.g. ``"--out"``.

    Returns:
        The absolute, resolved path.

    Raises:
        ConfigError: The path is in the ``musicrec_gym`` package (e.g. the built-in
            world's folder) or is a folder the package is in.
    """
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, TypeError) as err:
        raise ConfigError(f"{option} {path!r}: not a usable path ({err})") from err
    if resolved == PACKAGE_DIR or PACKAGE_DIR in resolved.parents:
        raise ConfigError(
            f"{option} {path}: inside the installed musicrec_gym package ({PACKAGE_DIR}); "
            "musicrec never writes there (it holds the built-in world that gym.make "
            "loads). Choose a directory outside the package"
        )
    if resolved in PACKAGE_DIR.parents:
        raise ConfigError(
            f"{option} {path}: this folder holds the installed musicrec_gym package "
            f"({PACKAGE_DIR}); choose a new directory for the output"
        )
    return resolved


def _own_manifest(directory: Path) -> dict[str, Any] | None:
    """The directory's manifest if musicrec wrote it (format, kind, files), else ``None``."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT_VERSION
        or not isinstance(manifest.get("files"), dict)
    ):
        return None
    return manifest


def check_world_out(out_dir: str | Path, kind: str, force: bool) -> Path:
    """Check that a world of ``kind`` may be written at ``out_dir`` (see the module docstring).

    Args:
        out_dir: The world directory to write.
        kind: ``"synthetic"`` (``musicrec build``) or ``"fitted"`` (``musicrec fit``).
        force: Replace an existing world of the same kind (``--force``).

    Returns:
        The resolved directory.

    Raises:
        ConfigError: Naming ``--out`` and the path: inside the package, an existing file,
            a non-empty directory that is not a world of this kind written by musicrec
            (or holds files its manifest does not list), or a world without ``force``.
    """
    target = outside_package(out_dir, "--out")
    if target.exists() and not target.is_dir():
        raise ConfigError(
            f"--out {out_dir}: is a file, not a directory; give the world directory to write"
        )
    if not target.is_dir():
        return target
    try:
        entries = sorted(p.name for p in target.iterdir())
    except OSError as err:
        raise ConfigError(f"--out {out_dir}: cannot list the directory ({err})") from err
    if not entries:
        return target
    command = "build" if kind == "synthetic" else "fit"
    manifest = _own_manifest(target)
    found = None if manifest is None else manifest.get("kind", "synthetic")
    if found != kind:
        what = (
            f"holds a {found} world, not a {kind} one"
            if found is not None
            else f"is not a world written by musicrec (no {MANIFEST} of one)"
        )
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ConfigError(
            f"--out {out_dir}: the directory is not empty ({shown}) and {what}; `musicrec "
            f"{command}` only writes a new or empty directory or replaces a {kind} world "
            "(--force does not change this: nothing of yours is deleted). Choose another "
            "directory"
        )
    known = {MANIFEST, *manifest["files"], *WORLD_EXTRAS.get(kind, ())}
    extras = [name for name in entries if name not in known]
    if extras:
        raise ConfigError(
            f"--out {out_dir}: the {kind} world there also holds files its {MANIFEST} does "
            f"not list ({', '.join(extras[:5])}{', ...' if len(extras) > 5 else ''}); move "
            "them away first, or choose another directory (--force only replaces a world "
            "made of musicrec's own files)"
        )
    if not force:
        raise ConfigError(
            f"--out {out_dir}: holds a {kind} world already; pass --force (force=True) to "
            "replace it, or choose another directory"
        )
    return target


def check_side_dir(
    path: str | Path, option: str, world: Path, names: Sequence[str], force: bool
) -> Path:
    """Check a directory written next to a world (``--logs``, ``--tensorboard``).

    Args:
        path: The directory.
        option: Its option name, for messages.
        world: The resolved world directory (the side directory must not be in it).
        names: Files that will be written there; existing ones are only overwritten
            with ``force``.
        force: Overwrite them.

    Returns:
        The resolved directory.

    Raises:
        ConfigError: Inside the package or the world directory, an existing file, or
            holding one of ``names`` without ``force``.
    """
    resolved = outside_package(path, option)
    if resolved == world or world in resolved.parents or resolved in world.parents:
        raise ConfigError(
            f"{option} {path}: must be outside the world directory --out {world} (the "
            "world is written elsewhere and renamed into place)"
        )
    existing = next(p for p in (resolved, *resolved.parents) if p.exists())
    if not existing.is_dir():  # the directory itself, or the folder it would be made in
        raise ConfigError(f"{option} {path}: {existing} is a file, not a directory")
    present = [name for name in names if (resolved / name).exists()]
    if present and not force:
        raise ConfigError(
            f"{option} {path}: already holds {', '.join(present)}; pass --force "
            "(force=True) to overwrite, or choose another directory"
        )
    return resolved


@contextmanager
def staged_world(out_dir: str | Path, kind: str, force: bool) -> Iterator[Path]:
    """Write a world in a fresh sibling directory, then rename it to ``out_dir``.

    The checks of :func:`check_world_out` run before (and again just before the
    rename). On any exception (Ctrl-C included) the sibling is deleted and ``out_dir``
    is left as it was.

    Args:
        out_dir: The world directory.
        kind: ``"synthetic"`` or ``"fitted"``.
        force: Replace an existing world of the same kind.

    Yields:
        The empty staging directory to write into.

    Raises:
        ConfigError: As :func:`check_world_out`, or the parent cannot be written.
    """
    target = check_world_out(out_dir, kind, force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stage = target.parent / f".{target.name}.partial-{secrets.token_hex(4)}"
        stage.mkdir()
    except OSError as err:
        raise ConfigError(f"--out {out_dir}: cannot create the directory ({err})") from err
    try:
        yield stage
        check_world_out(out_dir, kind, force)
        _swap_in(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _swap_in(stage: Path, target: Path) -> None:
    """Rename ``stage`` to ``target``, replacing an existing (checked) ``target``."""
    if not target.exists():
        os.rename(stage, target)
        return
    old = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
    os.rename(target, old)
    try:
        os.rename(stage, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
