"""``musicrec build``: make the built-in world from its seed, stage by stage.

synthetic truth -> logged sessions (MSSD + Last.fm files) -> track embeddings (gensim
SGNS) -> LSTM session autoencoder (PyTorch) -> world directory with a manifest. Every
stage is seeded and single-threaded where threads would change the numbers, so two
builds with the same seed give files with the same sha256.
"""

from __future__ import annotations

import dataclasses
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym import __version__
from musicrec_gym.artifacts import write_json, write_manifest
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
) -> dict[str, Any]:
    """Build a synthetic world directory.

    Args:
        config: The build config.
        out_dir: Where the world's artifacts go (created).
        logs_dir: Where the logged sessions go (``sessions_mssd.csv``,
            ``history_lastfm.tsv``); not written when ``None``.
        tensorboard_dir: Where the encoder's training curves go; none when ``None``.
        progress: Show progress bars.
        log: Where progress lines go.

    Returns:
        The manifest written to ``out_dir/manifest.json``.
    """
    from musicrec_gym.encoder_train import export_numpy, save_state_dict, train_autoencoder

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
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
    if logs_dir is not None:
        logs = Path(logs_dir)
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
    manifest = write_manifest(out, meta)
    log(f"      world written to {out} in {time.perf_counter() - t0:.0f} s")
    return manifest


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
