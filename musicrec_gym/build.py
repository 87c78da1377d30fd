"""``musicrec build``: make the built-in world from its seed, stage by stage.

synthetic truth -> logged sessions (MSSD + Last.fm files) -> track embeddings (gensim
SGNS) -> LSTM session autoencoder (PyTorch) -> world directory with a manifest. Every
stage is seeded and single-threaded where threads would change the numbers, so two
builds with the same seed give files with the same sha256.

Where the world may be written, and how it is written whole or not at all, is
:mod:`musicrec_gym.world_output`.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym.artifacts import jsonable, package_versions, write_json, write_manifest
from musicrec_gym.data.logs import to_lastfm, to_mssd
from musicrec_gym.data.synthetic import SyntheticConfig, generate_world
from musicrec_gym.embeddings import EmbeddingConfig, evaluate_completion, train_embeddings
from musicrec_gym.encoder import EncoderConfig, make_windows
from musicrec_gym.errors import ConfigError
from musicrec_gym.sim.params import SimulatorParams
from musicrec_gym.sim.sessions import logging_simulator_factory, simulate_sessions
from musicrec_gym.world_output import (
    check_side_dir,
    check_world_out,
    outside_package,
    staged_world,
)

__all__ = [
    "LOG_FILES",
    "BuildConfig",
    "build_world",
    "outside_package",  # lives in musicrec_gym.world_output; the CLI imports it from here
]

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
        "config": jsonable(dataclasses.asdict(config)),
        "versions": package_versions(),
        "reports": jsonable(reports),
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
