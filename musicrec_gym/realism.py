"""``musicrec realism``: how real is a fitted world? Replay held-out sessions and compare.

Each held-out session (one the fit never saw) is replayed under the fitted simulator:
its first five plays (tracks and listen flags) are the warm-up, then its logged next
tracks are the actions, one per step; the simulator samples the listens and decides
when the listener leaves, with a fixed seed per session. When a simulated session
outlives its logged one, the next tracks are drawn by the training logs' play shares
(the rare-track row included), a stand-in for the logging policy.

Compared side by side with the real held-out sessions:

* skip rate overall (positions 6–20, the simulated ones; positions 1–5 are the
  logged warm-up in both) and by position 1–20 (``skip_by_position.png``);
* the session-length histograms and their two-sample KS statistic
  (``session_length.png``);
* the response model's AUC on the held-out plays from position 6 (each predicted
  from the true history, "teacher forcing") and its calibration (``reliability.png``);
* the correlation of per-track listen rates, real vs simulated, over tracks played at
  least ``min_track_plays`` times from position 6.

A skip is a play not listened to, ``listened = not skip_2``, as in the fit. Track ids
of the held-out log go through :func:`musicrec_gym.csv_safety.csv_safe`, as the fit
stored them, so the original log and the world's ``heldout.csv.gz`` name the same
tracks.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym.artifacts import write_json
from musicrec_gym.csv_safety import csv_safe
from musicrec_gym.errors import ArtifactError, ConfigError, DataFormatError
from musicrec_gym.plays import Plays, encode_before, target_plays
from musicrec_gym.sim.fitted import WINDOW, FittedSimulator
from musicrec_gym.sim.response import sigmoid
from musicrec_gym.world import World, load_world

PNG_FILES = ("skip_by_position.png", "session_length.png", "reliability.png")


@dataclass(frozen=True)
class Replay:
    """Real and simulated held-out sessions.

    Attributes:
        real_lengths: (S,) logged session lengths.
        sim_lengths: (S,) simulated session lengths (warm-up included).
        real_skip: (max_length,) real skip rate by position (NaN where no play).
        sim_skip: (max_length,) simulated skip rate by position.
        real_plays: (max_length,) real plays by position.
        sim_plays: (max_length,) simulated plays by position.
        track_real: Per logged play from position 6: real listen flag.
        track_sim: Per logged play from position 6 the simulation reached: simulated flag
            (NaN where the simulated session had ended).
    """

    real_lengths: np.ndarray
    sim_lengths: np.ndarray
    real_skip: np.ndarray
    sim_skip: np.ndarray
    real_plays: np.ndarray
    sim_plays: np.ndarray
    track_real: np.ndarray
    track_sim: np.ndarray


@dataclass(frozen=True)
class RealismSummary:
    """The figures of the realism report (all measured on the held-out sessions).

    Attributes:
        sessions: Held-out sessions replayed (those with more than 5 plays).
        real_skip_rate: Real skip rate, positions 6 and later.
        sim_skip_rate: Simulated skip rate, positions 6 and later.
        skip_rate_gap: ``sim_skip_rate - real_skip_rate``.
        real_mean_length: Mean real session length.
        sim_mean_length: Mean simulated session length.
        length_ks: Two-sample KS statistic of the session lengths.
        auc: Response model's AUC on held-out plays from position 6 (teacher forced).
        popularity_auc: The popularity-only model's AUC, as measured by ``musicrec fit``
            on the same held-out sessions (``None`` if the manifest lacks it).
        calibration_error: Mean |observed - predicted| over the reliability bins
            (weighted by plays).
        track_corr: Pearson correlation of per-track listen rates, real vs simulated.
        track_corr_predicted: The same against the mean predicted listen probability.
        tracks_compared: Tracks in the correlation.
    """

    sessions: int
    real_skip_rate: float
    sim_skip_rate: float
    skip_rate_gap: float
    real_mean_length: float
    sim_mean_length: float
    length_ks: float
    auc: float
    popularity_auc: float | None
    calibration_error: float
    track_corr: float
    track_corr_predicted: float
    tracks_compared: int


def _rows(world: World, track_ids: np.ndarray) -> np.ndarray:
    index = {t: i for i, t in enumerate(world.catalog["track_id"].astype(str))}
    rare = world.n_tracks
    return np.array([index.get(csv_safe(t), rare) for t in track_ids], dtype=np.int64)


def replay(world: World, plays: Plays, seed: int = 0) -> Replay:
    """Replay held-out sessions under the fitted simulator (see the module docstring).

    Args:
        world: A fitted world.
        plays: The held-out sessions with more than 5 plays.
        seed: Session ``i`` uses the random stream ``seed + i``.
    """
    model = world.fitted
    max_len = model.max_length
    rows = _rows(world, plays.track_ids)
    n_s = len(plays.lengths)
    sim = FittedSimulator(
        model, world.encoder, world.params, n_s, reward_mode="listen", score_catalog=False
    )
    sim.seed(np.arange(n_s), seed + np.arange(n_s))
    first = plays.starts[:, None] + np.arange(WINDOW)
    sim.start(np.arange(n_s), rows[first], plays.listened[first])
    rng = np.random.default_rng([seed, 7])
    cdf = np.cumsum(model.play_share) / model.play_share.sum()
    alive = np.ones(n_s, dtype=bool)
    sim_len = np.full(n_s, WINDOW, dtype=np.int64)
    sim_flags = np.full((n_s, max_len), np.nan)
    sim_flags[:, :WINDOW] = plays.listened[first]
    track_sim = np.full(len(rows), np.nan)
    for t in range(sim.max_steps):
        pos = WINDOW + t  # 0-based position of this step's play
        logged = pos < plays.lengths
        fill = np.minimum(np.searchsorted(cdf, rng.random(n_s), side="right"), len(cdf) - 1)
        play_idx = plays.starts + np.minimum(pos, plays.lengths - 1)
        actions = np.where(logged, rows[play_idx], fill)
        result = sim.step(actions)
        sim_flags[alive, pos] = result.listened[alive]
        hit = alive & logged
        track_sim[play_idx[hit]] = result.listened[hit]
        sim_len[alive] = pos + 1
        alive &= ~(result.terminated | result.truncated)
        if not alive.any():
            break
    real_flags = np.full((n_s, max_len), np.nan)
    for s, (start, n) in enumerate(zip(plays.starts, plays.lengths, strict=True)):
        real_flags[s, :n] = plays.listened[start : start + n]
    with np.errstate(invalid="ignore"):
        return Replay(
            real_lengths=plays.lengths.copy(),
            sim_lengths=sim_len,
            real_skip=1 - np.nanmean(np.where(np.isnan(real_flags), np.nan, real_flags), axis=0),
            sim_skip=1 - np.nanmean(sim_flags, axis=0),
            real_plays=(~np.isnan(real_flags)).sum(axis=0),
            sim_plays=(~np.isnan(sim_flags)).sum(axis=0),
            track_real=plays.listened.astype(np.float64),
            track_sim=track_sim,
        )


def predict_heldout(world: World, plays: Plays) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Listen probability of every held-out play from position 6, given its true history.

    Returns:
        (play indices, probabilities, real listen flags).
    """
    model = world.fitted
    rows = _rows(world, plays.track_ids)
    idx = target_plays(plays, model.max_length)
    codes = encode_before(world.encoder, rows, plays.listened, idx)
    logits = model.response.logits(codes.astype(np.float64), plays.position[idx], rows[idx])
    return idx, sigmoid(logits), plays.listened[idx].astype(np.float64)


def _plots(out: Path, rep: Replay, y: np.ndarray, p: np.ndarray, s: RealismSummary) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.calibration import calibration_curve

    max_len = len(rep.real_skip)
    pos = np.arange(1, max_len + 1)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.axvspan(0.5, WINDOW + 0.5, color="0.92", label="warm-up (logged in both)")
    ax.plot(pos, rep.real_skip, "o-", color="tab:blue", label="real held-out sessions")
    ax.plot(pos, rep.sim_skip, "s--", color="tab:orange", label="fitted simulator (replay)")
    ax.set_xticks(pos)
    ax.set_xlim(0.5, max_len + 0.5)
    ax.set_ylim(0, 1)
    ax.set_xlabel("position in session")
    ax.set_ylabel("skip rate")
    ax.set_title(
        f"Skip rate by position (positions {WINDOW + 1}-{max_len}: real "
        f"{s.real_skip_rate:.3f}, simulated {s.sim_skip_rate:.3f})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "skip_by_position.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    bins = np.arange(0.5, max_len + 1.5)
    ax.hist(
        [rep.real_lengths, rep.sim_lengths],
        bins=bins,
        label=["real held-out", "simulated"],
        color=["tab:blue", "tab:orange"],
        density=True,
    )
    ax.set_xticks(np.arange(WINDOW + 1, max_len + 1))
    ax.set_xlim(WINDOW + 0.5, max_len + 0.5)
    ax.set_xlabel("session length (plays, warm-up included)")
    ax.set_ylabel("share of sessions")
    ax.set_title(
        f"Session length: real mean {s.real_mean_length:.2f}, simulated "
        f"{s.sim_mean_length:.2f}, KS = {s.length_ks:.3f}",
        fontsize=10,
    )
    ax.grid(alpha=0.3, axis="y")
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "session_length.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.2, 5.2), dpi=120)
    observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
    ax.plot([0, 1], [0, 1], ":", color="0.5", label="perfect calibration")
    ax.plot(predicted, observed, "o-", color="tab:green", label="response model (deciles)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("predicted listen probability")
    ax.set_ylabel("observed listen rate")
    ax.set_title(
        f"Reliability on held-out plays (AUC {s.auc:.3f},\nmean |gap| {s.calibration_error:.3f})",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "reliability.png")
    plt.close(fig)


def _markdown(s: RealismSummary, rep: Replay, world_dir: Path, heldout: Path, seed: int) -> str:
    def f(v: float | None) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.3f}"

    rows = [
        (
            "skip rate, positions 6–20",
            f(s.real_skip_rate),
            f(s.sim_skip_rate),
            f"gap {s.skip_rate_gap:+.3f} (target within ±0.02)",
        ),
        (
            "mean session length",
            f"{s.real_mean_length:.2f}",
            f"{s.sim_mean_length:.2f}",
            f"KS {s.length_ks:.3f} (target ≤ 0.1)",
        ),
        (
            "response-model AUC",
            "",
            f(s.auc),
            f"popularity-only {f(s.popularity_auc)} (target ≥ 0.75)",
        ),
        ("calibration, mean abs gap", "", f(s.calibration_error), "deciles of predictions"),
        (
            "per-track listen-rate r",
            "",
            f(s.track_corr),
            f"{s.tracks_compared} tracks; vs predicted p: {f(s.track_corr_predicted)}",
        ),
    ]
    lines = [
        "# Realism of a fitted world",
        "",
        f"World `{world_dir}`, held-out log `{heldout}`, {s.sessions} sessions replayed "
        f"(seed {seed}): warm-up = the first 5 logged plays, actions = the logged next tracks.",
        "",
        "| figure | real | simulated | note |",
        "|---|---|---|---|",
        *[f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows],
        "",
        "## Skip rate by position",
        "",
        "![skip rate by position](skip_by_position.png)",
        "",
        "| position | " + " | ".join(str(i) for i in range(1, len(rep.real_skip) + 1)) + " |",
        "|---" * (len(rep.real_skip) + 1) + "|",
        "| real | " + " | ".join(f(v) for v in rep.real_skip) + " |",
        "| simulated | " + " | ".join(f(v) for v in rep.sim_skip) + " |",
        "",
        "## Session lengths",
        "",
        "![session lengths](session_length.png)",
        "",
        "## Calibration of the response model",
        "",
        "![reliability curve](reliability.png)",
        "",
    ]
    return "\n".join(lines)


def realism_report(
    world_dir: str | Path,
    heldout: str | Path,
    out_dir: str | Path,
    seed: int = 0,
    min_track_plays: int = 5,
) -> RealismSummary:
    """Replay ``heldout`` under the fitted world and write ``realism.md``, JSON and PNGs.

    Args:
        world_dir: A world written by ``musicrec fit``.
        heldout: Held-out sessions in MSSD format (``heldout.csv.gz`` in the world).
        out_dir: Where the report goes (created).
        seed: Seed of the replay's random streams.
        min_track_plays: Plays from position 6 a track needs for the correlation.

    Raises:
        ArtifactError: ``world_dir`` is not a fitted world.
        ConfigError: ``out_dir`` is a file or inside the installed package, ``seed`` or
            ``min_track_plays`` is not a valid int.
        DataFormatError: The held-out log is malformed or has no session longer than 5.
    """
    from scipy.stats import ks_2samp, pearsonr
    from sklearn.metrics import roc_auc_score

    from musicrec_gym.data.mssd import read_mssd_log
    from musicrec_gym.world_output import outside_package

    for name, value, low in (("seed", seed, 0), ("min_track_plays", min_track_plays, 1)):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
            raise ConfigError(f"`{name}` must be an int >= {low}, got {value!r}")
    out = outside_package(out_dir, "--out")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out_dir}: is a file, not a directory for the report")
    world = load_world(world_dir)
    if world.fitted is None:
        raise ArtifactError(
            f"{world_dir}: a {world.manifest.get('kind', 'synthetic')} world; realism needs a "
            "world fitted to logs (`musicrec fit LOG --out WORLD`)"
        )
    max_len = world.fitted.max_length
    frame = read_mssd_log(heldout).frame
    plays, _ = Plays.from_frame(frame, max_len)
    keep = np.flatnonzero(plays.lengths > WINDOW)
    if len(keep) == 0:
        raise DataFormatError(f"{heldout}: no session has more than {WINDOW} plays to replay")
    ids = set(plays.session_ids[keep].tolist())
    plays, _ = Plays.from_frame(frame[frame["session_id"].astype(str).isin(ids)], max_len)

    rep = replay(world, plays, seed)
    idx, p, y = predict_heldout(world, plays)
    auc = float(roc_auc_score(y, p)) if 0 < y.mean() < 1 else float("nan")
    bins = np.quantile(p, np.linspace(0, 1, 11))
    which = np.clip(np.searchsorted(bins, p, side="right") - 1, 0, 9)
    gaps = [
        abs(y[which == b].mean() - p[which == b].mean()) * (which == b).sum()
        for b in range(10)
        if (which == b).any()
    ]
    late = plays.position > WINDOW
    tracks = pd.DataFrame(
        {"track": plays.track_ids[late], "real": rep.track_real[late], "sim": rep.track_sim[late]}
    )
    tracks["p"] = pd.Series(p, index=idx).reindex(np.flatnonzero(late)).to_numpy()
    per = tracks.groupby("track").agg(
        n=("real", "size"), real=("real", "mean"), sim=("sim", "mean"), p=("p", "mean")
    )
    per = per[(per["n"] >= min_track_plays) & per["sim"].notna()]
    corr = corr_p = float("nan")
    if len(per) >= 3 and per["real"].std() > 0:
        corr = float(pearsonr(per["real"], per["sim"])[0])
        corr_p = float(pearsonr(per["real"], per["p"])[0])
    real_late = 1 - plays.listened[late].mean()
    sim_late = float(np.nansum(rep.sim_skip[WINDOW:] * rep.sim_plays[WINDOW:]))
    sim_late /= max(int(rep.sim_plays[WINDOW:].sum()), 1)
    pop_auc = world.manifest.get("reports", {}).get("response", {}).get("popularity_auc")
    summary = RealismSummary(
        sessions=len(plays.lengths),
        real_skip_rate=float(real_late),
        sim_skip_rate=sim_late,
        skip_rate_gap=sim_late - float(real_late),
        real_mean_length=float(rep.real_lengths.mean()),
        sim_mean_length=float(rep.sim_lengths.mean()),
        length_ks=float(ks_2samp(rep.real_lengths, rep.sim_lengths).statistic),
        auc=auc,
        popularity_auc=pop_auc,
        calibration_error=float(sum(gaps) / len(p)),
        track_corr=corr,
        track_corr_predicted=corr_p,
        tracks_compared=len(per),
    )
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {out_dir}: cannot create the directory ({err})") from err
    _plots(out, rep, y, p, summary)
    (out / "realism.md").write_text(_markdown(summary, rep, Path(world_dir), Path(heldout), seed))
    write_json(out / "realism.json", _json_safe(asdict(summary)))
    return summary


def _json_safe(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}
