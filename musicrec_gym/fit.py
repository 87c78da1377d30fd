"""``musicrec fit``: fit a world to a real session log (MSSD format).

Pipeline (every stage seeded; same log and seed give files with the same sha256):

1. read the log (:func:`musicrec_gym.data.mssd.read_mssd_log`) and split it by session,
   80/20 by default; the held-out sessions are written to ``heldout.csv.gz`` in the
   world directory (MSSD format) for ``musicrec realism``;
2. catalog: the tracks played at least ``min_track_count`` times in the training
   sessions; rarer tracks share one rare-track row (see :mod:`musicrec_gym.sim.fitted`);
3. track embeddings: gensim skip-gram over the training sessions;
4. session encoder: the LSTM autoencoder on the training sessions' windows;
5. response model: two towers predicting listen/skip of each first play of a track from
   position 6 on, an inner product of the encoded state of the five plays before it (and
   the position) with the track's vector (from its embedding and popularity), and for
   repeats the listen rate the logs show by earlier plays and last flag
   (:mod:`musicrec_gym.sim.fitted_response`); its AUC on all held-out plays is
   reported next to a track-popularity-only logistic regression;
6. leave model: a logistic hazard per position, plus a skip term when the training
   logs support it (a positive coefficient);
7. the world directory with its manifest (``kind: fitted``).

The world directory is written whole or not at all, and never over someone's files:
see :mod:`musicrec_gym.world_output` for what ``out_dir`` may be and what ``force``
replaces.

Text values that would run as spreadsheet formulas are stored quoted: see
:mod:`musicrec_gym.csv_safety` (how many ids were changed is in the manifest,
``reports.logs.ids_quoted``).

The parts live by job: the play layout in :mod:`musicrec_gym.plays`, the response
calibration and the leave hazard in :mod:`musicrec_gym.fit_models`; this module holds
the config and the stages.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym.artifacts import (
    jsonable,
    npz_bytes,
    package_versions,
    write_bytes_atomic,
    write_json,
    write_manifest,
)
from musicrec_gym.csv_safety import csv_safe_frame
from musicrec_gym.data.mssd import read_mssd_log, write_mssd
from musicrec_gym.embeddings import EmbeddingConfig, train_embeddings
from musicrec_gym.encoder import EncoderConfig, NumpyEncoder, make_windows
from musicrec_gym.errors import ConfigError, DataFormatError
from musicrec_gym.fit_models import fit_leave, fit_repeats, recalibrate
from musicrec_gym.plays import Plays, encode_before, repeat_features, split_sessions, target_plays
from musicrec_gym.realism_policy import training_group_rates
from musicrec_gym.session_context import context_names, session_features
from musicrec_gym.sim.fitted import (
    WINDOW,
    ResponseConfig,
    popularity_z,
    train_response,
    with_rare_row,
)
from musicrec_gym.sim.fitted_response import FITTED_FORMAT, TwoTowerResponse, state_inputs
from musicrec_gym.sim.params import LeaveParams, SimulatorParams
from musicrec_gym.world_output import check_world_out, staged_world

HELDOUT_FILE = "heldout.csv.gz"


@dataclass(frozen=True)
class FitConfig:
    """Everything that determines a fitted world.

    Attributes:
        heldout_fraction: Share of sessions held out (by session, seeded).
        seed: Seeds the split and every training stage.
        min_track_count: Training plays a track needs to enter the catalog.
        max_length: Plays per session at most (MSSD sessions have at most 20).
        skip_window: Recent plays whose skips the leave model counts.
        embedding: Skip-gram hyperparameters (``min_count`` is set to ``min_track_count``).
        encoder: Session autoencoder hyperparameters.
        response: Response model (two towers) hyperparameters.
    """

    heldout_fraction: float = 0.2
    seed: int = 0
    min_track_count: int = 5
    max_length: int = 20
    skip_window: int = 3
    embedding: EmbeddingConfig = EmbeddingConfig()
    encoder: EncoderConfig = EncoderConfig(epochs=40)
    response: ResponseConfig = field(default_factory=ResponseConfig)

    def __post_init__(self) -> None:
        f = self.heldout_fraction
        if not isinstance(f, (int, float)) or not math.isfinite(f) or not 0 < f < 1:
            raise ConfigError(f"`heldout_fraction` must be a number in (0, 1), got {f!r}")
        for name, low in (("min_track_count", 1), ("max_length", WINDOW + 2), ("skip_window", 1)):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"`{name}` must be an int >= {low}, got {value!r}")
        if self.skip_window > WINDOW:
            raise ConfigError(f"`skip_window` must be <= {WINDOW}, got {self.skip_window}")
        if not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise ConfigError(f"`seed` must be an int in [0, 2**32), got {self.seed!r}")

    def with_seed(self, seed: int) -> FitConfig:
        """The same config with every stage seeded from ``seed``."""
        return dataclasses.replace(
            self,
            seed=seed,
            embedding=dataclasses.replace(self.embedding, seed=seed),
            encoder=dataclasses.replace(self.encoder, seed=seed),
            response=dataclasses.replace(self.response, seed=seed),
        )


def fit_world(
    log_path: str | Path,
    out_dir: str | Path,
    config: FitConfig = FitConfig(),
    progress: bool = True,
    log=print,
    force: bool = False,
) -> dict[str, Any]:
    """Fit a world to an MSSD-format session log and write it to ``out_dir``.

    Args:
        log_path: The session log (``read_mssd_log`` reads it).
        out_dir: The world directory: new, empty, or (with ``force``) a fitted world to
            replace (see :mod:`musicrec_gym.world_output`). Written whole or not at all.
        config: The fit config.
        progress: Show progress bars.
        log: Where progress lines and the summary go.
        force: Replace the fitted world at ``out_dir``.

    Returns:
        The manifest written (its ``reports`` hold every measured figure).

    Raises:
        ConfigError: ``out_dir`` may not be written (inside the package, a file, a
            directory of other files, an existing world without ``force``), or
            ``config`` is not a :class:`FitConfig`.
        DataFormatError: The log is unreadable, malformed or too small to fit.
    """
    if not isinstance(config, FitConfig):
        raise ConfigError(f"`config` must be a FitConfig, got {type(config).__name__}")
    target = check_world_out(out_dir, "fitted", force)
    t0 = time.perf_counter()
    with staged_world(out_dir, "fitted", force) as stage:
        manifest = _fit_into(log_path, stage, target, config, progress, log)
    log(f"      world written to {target} in {time.perf_counter() - t0:.0f} s")
    return manifest


def _fit_into(
    log_path: str | Path, out: Path, final: Path, config: FitConfig, progress: bool, log
) -> dict[str, Any]:
    """The stages of :func:`fit_world`, writing into the empty directory ``out``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from musicrec_gym.encoder_train import export_numpy, save_state_dict, train_autoencoder

    seed, max_len = config.seed, config.max_length

    log(f"[1/6] reading {log_path}")
    loaded = read_mssd_log(log_path)
    log("      " + loaded.report.summary().replace("\n", "\n      "))
    frame = loaded.frame
    if len(frame) == 0:
        raise DataFormatError(f"{log_path}: no plays left to fit on")
    frame, ids_quoted = csv_safe_frame(frame, log_path)
    if ids_quoted:
        log(
            f"      {ids_quoted} track/session id(s) start with = + - @ (spreadsheet "
            "formulas): stored with a leading ' (see musicrec_gym.fit)"
        )
    train_frame, held_frame = split_sessions(frame, config.heldout_fraction, seed)
    write_mssd(held_frame, out / HELDOUT_FILE)
    train, cut = Plays.from_frame(train_frame, max_len)
    held, cut_held = Plays.from_frame(held_frame, max_len)
    n_start = int((train.lengths > WINDOW).sum())
    if n_start == 0 or len(target_plays(train, max_len)) < 2:
        raise DataFormatError(
            f"{log_path}: no training session has more than {WINDOW} plays; the fitted world "
            f"starts from a session's first {WINDOW} plays and learns from the plays after them"
        )
    log(
        f"      {len(train.lengths)} training sessions ({len(train.track_ids)} plays), "
        f"{len(held.lengths)} held out ({len(held.track_ids)} plays) -> {final / HELDOUT_FILE}"
        + (f"; {cut + cut_held} plays past position {max_len} cut" if cut + cut_held else "")
    )

    # ------------------------------------------------------------------ catalog
    counts = pd.Series(train.track_ids).value_counts()
    kept = counts[counts >= config.min_track_count]
    if len(kept) < 2:
        raise DataFormatError(
            f"{log_path}: only {len(kept)} track(s) played >= {config.min_track_count} times "
            "in the training sessions; lower --min-track-count"
        )
    order = sorted(kept.items(), key=lambda kv: (-kv[1], kv[0]))
    cat_ids = np.array([k for k, _ in order], dtype=object)
    cat_plays = np.array([v for _, v in order], dtype=np.int64)
    n = len(cat_ids)
    index = {t: i for i, t in enumerate(cat_ids)}
    rows_train = np.array([index.get(t, n) for t in train.track_ids], dtype=np.int64)
    rows_held = np.array([index.get(t, n) for t in held.track_ids], dtype=np.int64)
    rare_mask = rows_train == n
    rare_share = float(rare_mask.mean())
    rare_plays = 1.0  # (no rare play: the rare row's popularity is never used in training)
    if rare_mask.any():
        rare_log = np.log1p(counts[train.track_ids[rare_mask]].to_numpy(np.float64))
        rare_plays = float(np.expm1(rare_log.mean()))
    log(
        f"[2/6] catalog: {n} tracks played >= {config.min_track_count} times "
        f"(of {len(counts)}; {1 - rare_share:.1%} of training plays)"
    )

    # ------------------------------------------------------------------ embeddings
    log("[3/6] track embeddings (gensim skip-gram) over the training sessions")
    emb_config = dataclasses.replace(config.embedding, min_count=config.min_track_count)
    table = train_embeddings(train.sessions(), emb_config)
    table.to_csv(out / "embeddings.csv")
    vectors = with_rare_row(table.matrix_for(list(cat_ids), missing="mean"))

    # ------------------------------------------------------------------ encoder
    log("[4/6] LSTM session autoencoder (PyTorch) on the training windows")
    windows = make_windows(train.split(rows_train), train.split(train.listened), vectors)
    model, enc_report = train_autoencoder(windows, config.encoder, progress=progress)
    save_state_dict(model, out / "encoder.pt")
    export_numpy(model, out / "encoder.npz")
    encoder = NumpyEncoder.load(out / "encoder.npz")
    encoder.bind_tracks(vectors)
    log(
        f"      {enc_report.n_train} windows; held-out MSE {enc_report.heldout_mse:.5f} vs "
        f"{enc_report.mean_baseline_mse:.5f} for the mean window"
    )

    # ------------------------------------------------------------------ response
    log("[5/6] response model: two towers (PyTorch) on first plays from position 6; repeats")
    logp = np.log1p(counts[train.track_ids].to_numpy(np.float64))
    pop_mean, pop_std = float(logp.mean()), float(max(logp.std(), 1e-6))
    plays_rows = np.append(cat_plays.astype(np.float64), rare_plays)
    features = np.concatenate(
        [vectors.astype(np.float64), popularity_z(plays_rows, pop_mean, pop_std)[:, None]], axis=1
    )

    names = context_names(train_frame)
    start_features = session_features(train_frame, names, train.session_ids)
    held_features = session_features(held_frame, names, held.session_ids)

    def inputs(plays: Plays, rows: np.ndarray, sessions: np.ndarray) -> dict[str, np.ndarray]:
        idx = target_plays(plays, max_len)
        count, last = repeat_features(plays, rows, n)
        of_play = np.repeat(np.arange(len(plays.lengths)), plays.lengths)
        return {
            "session": sessions[of_play[idx]],
            "codes": encode_before(encoder, rows, plays.listened, idx),
            "position": plays.position[idx],
            "rows": rows[idx],
            "y": plays.listened[idx].astype(np.float64),
            "count": count[idx],
            "last": last[idx],
            "all_count": count,
            "all_last": last,
        }

    tr = inputs(train, rows_train, start_features)
    first = tr["count"] == 0
    states = state_inputs(tr["codes"][first], tr["position"][first], max_len, tr["session"][first])
    weights, losses = train_response(
        states, features, tr["rows"][first], tr["y"][first], config.response, progress=progress
    )
    weights, (scale, shift) = recalibrate(
        weights,
        encoder.code_dim,
        max_len,
        tr["codes"][first],
        tr["position"][first],
        tr["rows"][first],
        tr["y"][first],
        tr["session"][first],
    )
    weights["repeat_logit"], repeats = fit_repeats(
        tr["all_count"], tr["all_last"], train.listened, train.position > WINDOW
    )
    response = TwoTowerResponse(weights, encoder.code_dim, max_len)
    write_bytes_atomic(out / "response.npz", npz_bytes(response.weights()))
    log(
        f"      repeats: {repeats['repeat_share']:.1%} of training plays, listen rate "
        f"{repeats['pooled_listen_rate']:.3f} (table by earlier plays and last flag)"
    )
    scores: dict[str, Any] = {
        "model": "two-tower",
        **response.summary(),
        "n_train": int(first.sum()),
        "epoch_losses": losses,
        "platt_scale": scale,
        "platt_shift": shift,
        "repeats": repeats,
    }
    he = inputs(held, rows_held, held_features)
    y_he = he["y"]
    if len(y_he) and 0 < y_he.mean() < 1:
        logit_he = response.logits(
            he["codes"], he["position"], he["rows"], he["count"], he["last"], he["session"]
        )
        p_he = 1 / (1 + np.exp(-logit_he))
        pop_tr = np.log1p(counts.reindex(train.track_ids[target_plays(train, max_len)]).to_numpy())
        pop_he = np.log1p(
            counts.reindex(held.track_ids[target_plays(held, max_len)]).fillna(0).to_numpy()
        )
        pop_model = LogisticRegression().fit(pop_tr[:, None], tr["y"])
        pop_p = pop_model.predict_proba(pop_he[:, None])[:, 1]
        scores.update(
            n_heldout=len(y_he),
            heldout_auc=float(roc_auc_score(y_he, p_he)),
            popularity_auc=float(roc_auc_score(y_he, pop_p)),
            heldout_listen_rate=float(y_he.mean()),
            heldout_mean_p=float(p_he.mean()),
        )
        log(
            f"      held-out AUC {scores['heldout_auc']:.3f} (popularity only "
            f"{scores['popularity_auc']:.3f}) on {len(y_he)} plays"
        )
    else:
        log("      no held-out plays from position 6 with both outcomes: AUC not measured")

    # ------------------------------------------------------------------ leave + world
    log("[6/6] leave model, catalog and manifest")
    leave, leave_report = fit_leave(train, max_len, config.skip_window)
    log(
        f"      skip coefficient as fitted {leave_report['per_skip_fitted']:+.3f} "
        f"(kept: {leave_report['per_skip']:+.3f})"
    )
    catalog = pd.DataFrame(
        {
            "track_id": cat_ids,
            "title": cat_ids,
            "artist_id": cat_ids,  # the logs have no artists: each track is its own
            "artist": "",
            "genre": "",
            "duration_s": 0,
            "popularity": cat_plays / cat_plays.sum(),
            "plays": cat_plays,
        }
    )
    catalog.to_csv(out / "catalog.csv", index=False)
    startable = train.lengths > WINDOW
    start_idx = train.starts[startable][:, None] + np.arange(WINDOW)
    listeners = pd.DataFrame(
        {"user_id": train.session_ids[startable], "session_length": train.lengths[startable]}
    )
    listeners.to_csv(out / "listeners.csv", index=False)
    write_bytes_atomic(
        out / "starts.npz",
        npz_bytes(
            {
                "tracks": rows_train[start_idx],
                "listened": train.listened[start_idx],
                "features": start_features[startable],
            }
        ),
    )
    write_json(
        out / "fitted.json",
        {
            "format": FITTED_FORMAT,
            "session_features": names,
            "group_skip_rates": training_group_rates(train_frame, train),
            "max_length": max_len,
            "min_track_count": config.min_track_count,
            "popularity_mean": pop_mean,
            "popularity_std": pop_std,
            "rare_plays": rare_plays,
            "play_share_rare": rare_share,
            "leave": leave.to_dict(),
        },
    )
    params = SimulatorParams(leave=LeaveParams(max_steps=max_len - WINDOW), warmup=WINDOW)
    write_json(out / "simulator.json", params.to_dict())
    reports = {
        "logs": {
            "rows_read": loaded.report.rows_read,
            "rows_kept": loaded.report.rows_kept,
            "dropped": dict(loaded.report.dropped),
            "train_sessions": len(train.lengths),
            "heldout_sessions": len(held.lengths),
            "starting_sessions": n_start,
            "train_listen_rate": float(train.listened.mean()),
            "plays_cut": cut + cut_held,
            "ids_quoted": ids_quoted,
        },
        "catalog": {
            "tracks": n,
            "tracks_in_logs": len(counts),
            "min_track_count": config.min_track_count,
            "play_share": 1 - rare_share,
        },
        "encoder": dataclasses.asdict(enc_report),
        "response": scores,
        "leave": leave_report,
    }
    meta = {
        "seed": seed,
        "kind": "fitted",
        "source": Path(log_path).name,
        "config": jsonable(dataclasses.asdict(config)),
        "versions": package_versions(),
        "reports": jsonable(reports),
    }
    return write_manifest(out, meta)
