"""``musicrec realism``: how real is a fitted world? Replay held-out sessions and compare.

Each held-out session (one the fit never saw) is replayed under the fitted simulator:
its first five plays (tracks and listen flags) are the warm-up, then its logged next
tracks are the actions, one per step; the simulator samples the listens and decides
when the listener leaves, with a fixed seed per session. When a simulated session
outlives its logged one, the next tracks are drawn as a stand-in for the logging policy:
an earlier catalog track of the session (uniformly) with the training logs' share of
repeats from position 6, else a track by the training logs' play shares (the rare-track
row included).

Compared side by side with the real held-out sessions:

* skip rate overall (positions 6–20, the simulated ones; positions 1–5 are the
  logged warm-up in both) and by position 1–20 (``skip_by_position.png``);
* the session-length histograms and their two-sample KS statistic
  (``session_length.png``);
* the response model's AUC on the held-out plays from position 6 (each predicted
  from the true history, "teacher forcing") and its calibration (``reliability.png``);
* the correlation of per-track listen rates, real vs simulated, over tracks played at
  least ``min_track_plays`` times from position 6;
* repeats: the share of plays from position 6 whose track was played earlier in the same
  session, and the listen rate of those repeats (in the replay the repeats are the
  logged ones, plus the filler's repeats);
* policy groups (:mod:`musicrec_gym.realism_policy`): the sessions grouped by
  ``context_type`` and by shuffle, each group's skip rate and listens per session real vs
  simulated, and Kendall's tau between the real and simulated rankings of the groups
  (``policy_groups.png``).

A skip is a play not listened to, ``listened = not skip_2``, as in the fit. Track ids
of the held-out log go through :func:`musicrec_gym.csv_safety.csv_safe`, as the fit
stored them, so the original log and the world's ``heldout.csv.gz`` name the same
tracks.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym.artifacts import write_bytes_atomic, write_json
from musicrec_gym.csv_safety import csv_safe
from musicrec_gym.errors import ArtifactError, ConfigError, DataFormatError
from musicrec_gym.plays import Plays, encode_before, repeat_features, target_plays
from musicrec_gym.realism_plots import PNG_FILES, render_plots
from musicrec_gym.realism_policy import policy_fidelity, policy_lines, policy_markdown
from musicrec_gym.realism_records import RealismSummary, Replay
from musicrec_gym.session_context import session_features
from musicrec_gym.sim.fitted import WINDOW, FittedSimulator
from musicrec_gym.sim.response import sigmoid
from musicrec_gym.world import World, load_world

__all__ = [
    "PNG_FILES",
    "RealismSummary",
    "Replay",
    "predict_heldout",
    "realism_report",
    "replay",
    "summary_lines",
]

#: Repeat rates within this of each other count as a match (the report's target).
REPEAT_GAP_TARGET = 0.02
MAX_GROUP_REPLAYS = 100
"""Replays per held-out session the policy groups may average (each costs one replay)."""


def _rows(world: World, track_ids: np.ndarray) -> np.ndarray:
    index = {t: i for i, t in enumerate(world.catalog["track_id"].astype(str))}
    rare = world.n_tracks
    return np.array([index.get(csv_safe(t), rare) for t in track_ids], dtype=np.int64)


def replay(world: World, plays: Plays, seed: int = 0, session: np.ndarray | None = None) -> Replay:
    """Replay held-out sessions under the fitted simulator (see the module docstring).

    Args:
        world: A fitted world.
        plays: The held-out sessions with more than 5 plays.
        seed: Session ``i`` uses the random stream ``seed + i``.
        session: ``(S, G)`` the sessions' inputs (context type, shuffle:
            :func:`heldout_session_inputs`); ``None``: zeros.
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
    sim.start(np.arange(n_s), rows[first], plays.listened[first], session)
    rng = np.random.default_rng([seed, 7])
    cdf = np.cumsum(model.play_share) / model.play_share.sum()
    repeats = world.manifest.get("reports", {}).get("response", {}).get("repeats", {})
    repeat_share = float(repeats.get("late_share", 0.0))
    alive = np.ones(n_s, dtype=bool)
    sim_len = np.full(n_s, WINDOW, dtype=np.int64)
    sim_flags = np.full((n_s, max_len), np.nan)
    sim_flags[:, :WINDOW] = plays.listened[first]
    track_sim = np.full(len(rows), np.nan)
    play_key, fill_key = _track_keys(world, plays)
    # Which track each play is (repeats are equal keys); a negative key is unique.
    none = -1 - np.arange(n_s * max_len).reshape(n_s, max_len)
    sim_keys = none.copy()
    sim_keys[:, :WINDOW] = play_key[first]
    for t in range(sim.max_steps):
        pos = WINDOW + t  # 0-based position of this step's play
        logged = pos < plays.lengths
        fill = np.minimum(np.searchsorted(cdf, rng.random(n_s), side="right"), len(cdf) - 1)
        fill = _repeat_fill(sim.hist[:, :pos], sim.n_tracks, fill, repeat_share, rng)
        play_idx = plays.starts + np.minimum(pos, plays.lengths - 1)
        actions = np.where(logged, rows[play_idx], fill)
        result = sim.step(actions)
        sim_flags[alive, pos] = result.listened[alive]
        keys = np.where(logged, play_key[play_idx], fill_key[fill])
        sim_keys[alive, pos] = np.where(keys[alive] >= 0, keys[alive], none[alive, pos])
        hit = alive & logged
        track_sim[play_idx[hit]] = result.listened[hit]
        sim_len[alive] = pos + 1
        alive &= ~(result.terminated | result.truncated)
        if not alive.any():
            break
    real_flags = np.full((n_s, max_len), np.nan)
    real_keys = none.copy()
    for s, (start, n) in enumerate(zip(plays.starts, plays.lengths, strict=True)):
        real_flags[s, :n] = plays.listened[start : start + n]
        real_keys[s, :n] = play_key[start : start + n]
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
            real_flags=real_flags,
            sim_flags=sim_flags,
            real_repeat=_repeats(real_keys),
            sim_repeat=_repeats(sim_keys),
        )


def _repeat_fill(
    hist: np.ndarray, n_tracks: int, fill: np.ndarray, share: float, rng: np.random.Generator
) -> np.ndarray:
    """``fill``, but with probability ``share`` an earlier catalog track of the session."""
    catalog = (hist >= 0) & (hist < n_tracks)
    counts = catalog.sum(axis=1)
    u, pick = rng.random(len(fill)), rng.random(len(fill))
    k = np.minimum((pick * counts).astype(np.int64), np.maximum(counts - 1, 0))
    at = np.argmax(np.cumsum(catalog, axis=1) > k[:, None], axis=1)
    earlier = hist[np.arange(len(fill)), at]
    return np.where((u < share) & (counts > 0), earlier, fill)


def _track_keys(world: World, plays: Plays) -> tuple[np.ndarray, np.ndarray]:
    """An int per distinct track, of each logged play and of each row a filler can draw.

    The shared rare-track row gets -1: it stands for many tracks, so it repeats none.
    """
    catalog = world.catalog["track_id"].astype(str).to_numpy(dtype=object)
    ids = np.concatenate([[csv_safe(t) for t in plays.track_ids], catalog])
    codes = pd.factorize(pd.Series(ids, dtype=object))[0]
    return codes[: len(plays.track_ids)], np.append(codes[len(plays.track_ids) :], -1)


def _repeats(keys: np.ndarray) -> np.ndarray:
    """(S, L) keys -> whether each play's track was played earlier in its session."""
    out = np.zeros(keys.shape, dtype=bool)
    for pos in range(1, keys.shape[1]):
        out[:, pos] = (keys[:, :pos] == keys[:, pos : pos + 1]).any(axis=1)
    return out


def heldout_session_inputs(world: World, frame: pd.DataFrame, plays: Plays) -> np.ndarray:
    """The held-out sessions' inputs to the response model, as the fit made the training ones."""
    names = list(world.fitted.info.get("session_features", []))
    return session_features(frame, names, plays.session_ids)


def predict_heldout(
    world: World, plays: Plays, session: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Listen probability of every held-out play from position 6, given its true history.

    A repeat of a catalog track earlier in the session reads the repeat table, as in the
    simulator; ``session``: the sessions' inputs (:func:`heldout_session_inputs`).

    Returns:
        (play indices, probabilities, real listen flags).
    """
    model = world.fitted
    rows = _rows(world, plays.track_ids)
    idx = target_plays(plays, model.max_length)
    codes = encode_before(world.encoder, rows, plays.listened, idx)
    count, last = repeat_features(plays, rows, world.n_tracks)
    of_play = np.repeat(np.arange(len(plays.lengths)), plays.lengths)[idx]
    inputs = None if session is None else session[of_play]
    logits = model.response.logits(
        codes.astype(np.float64), plays.position[idx], rows[idx], count[idx], last[idx], inputs
    )
    return idx, sigmoid(logits), plays.listened[idx].astype(np.float64)


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
        (
            "repeat rate, positions 6–20",
            f(s.real_repeat_rate),
            f(s.sim_repeat_rate),
            f"gap {s.repeat_rate_gap:+.3f} (target within ±{REPEAT_GAP_TARGET}: "
            f"{'met' if abs(s.repeat_rate_gap) <= REPEAT_GAP_TARGET else '**not met**'}); "
            "share of plays whose track was played earlier in the session",
        ),
        (
            "listen rate of repeats",
            f(s.real_repeat_listen_rate),
            f(s.sim_repeat_listen_rate),
            f"{s.real_repeats} real, {s.sim_repeats} simulated repeat plays",
        ),
        (
            "repeat rate, simulated plays past the logged session",
            "",
            f(s.sim_filler_repeats / s.sim_filler_plays if s.sim_filler_plays else math.nan),
            f"{s.sim_filler_repeats} of {s.sim_filler_plays} filler plays (tracks drawn by "
            "training play share); the other simulated plays are the logged tracks",
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
        *policy_markdown(s.policy_groups),
    ]
    return "\n".join(lines)


def realism_report(
    world_dir: str | Path,
    heldout: str | Path,
    out_dir: str | Path,
    seed: int = 0,
    min_track_plays: int = 5,
    min_group_sessions: int = 30,
    group_replays: int = 5,
) -> RealismSummary:
    """Replay ``heldout`` under the fitted world and write ``realism.md``, JSON and PNGs.

    Every figure and PNG is computed before anything is written; then the PNGs, the JSON
    and last ``realism.md`` are each written atomically, so an error leaves no half-written
    report file.

    Args:
        world_dir: A world written by ``musicrec fit``.
        heldout: Held-out sessions in MSSD format (``heldout.csv.gz`` in the world).
        out_dir: Where the report goes (created).
        seed: Seed of the replay's random streams.
        min_track_plays: Plays from position 6 a track needs for the correlation.
        min_group_sessions: Sessions a policy group needs to enter the Kendall tau
            (smaller groups are listed as "too few sessions").
        group_replays: Replays of each held-out session whose simulated figures the
            policy groups average (the first is the report's replay; the others use
            the next seeds' streams). One replay leaves a group's skip rate as noisy as
            the differences between groups (measured on the sample: 0.01-0.03).

    Raises:
        ArtifactError: ``world_dir`` is not a fitted world.
        ConfigError: ``out_dir`` is a file or inside the installed package, ``seed``,
            ``min_track_plays`` or ``min_group_sessions`` is not a valid int.
        DataFormatError: The held-out log is malformed or has no session longer than 5.
        (A log without ``context_type`` or ``hist_user_behavior_is_shuffle`` is not an
        error: the policy-groups section says it cannot be computed and why.)
    """
    from scipy.stats import ks_2samp, pearsonr
    from sklearn.metrics import roc_auc_score

    from musicrec_gym.data.mssd import read_mssd_log
    from musicrec_gym.world_output import outside_package

    for name, value, low in (
        ("seed", seed, 0),
        ("min_track_plays", min_track_plays, 1),
        ("min_group_sessions", min_group_sessions, 1),
        ("group_replays", group_replays, 1),
    ):
        if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < low:
            raise ConfigError(f"`{name}` must be an int >= {low}, got {value!r}")
    if group_replays > MAX_GROUP_REPLAYS:
        raise ConfigError(
            f"`group_replays` must be an int <= {MAX_GROUP_REPLAYS}, got {group_replays!r}"
        )
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
    frame = frame[frame["session_id"].astype(str).isin(ids)]
    plays, _ = Plays.from_frame(frame, max_len)

    inputs = heldout_session_inputs(world, frame, plays)
    rep = replay(world, plays, seed, inputs)
    n_s = len(plays.lengths)
    more = [replay(world, plays, seed + r * n_s, inputs) for r in range(1, group_replays)]
    idx, p, y = predict_heldout(world, plays, inputs)
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
    predicted = _by_position(plays, idx, p, max_len)
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
        **_repeat_figures(rep),
        policy_groups=policy_fidelity(
            frame,
            plays.session_ids,
            rep,
            predicted,
            int(min_group_sessions),
            seed,
            more,
            world.fitted.info.get("group_skip_rates"),
        ),
    )
    pngs = render_plots(rep, y, p, summary)
    text = _markdown(summary, rep, Path(world_dir), Path(heldout), seed)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"--out {out_dir}: cannot create the directory ({err})") from err
    for name in PNG_FILES:
        write_bytes_atomic(out / name, pngs[name])
    write_json(out / "realism.json", _json_safe(asdict(summary)))
    write_bytes_atomic(out / "realism.md", text.encode())
    return summary


def summary_lines(s: RealismSummary) -> list[str]:
    """The report's figures in a few lines of text (what ``musicrec realism`` prints)."""
    pop = "n/a" if s.popularity_auc is None else f"{s.popularity_auc:.3f}"
    return [
        f"skip rate (positions 6-20): real {s.real_skip_rate:.3f}, simulated "
        f"{s.sim_skip_rate:.3f} (gap {s.skip_rate_gap:+.3f})",
        f"session length: real mean {s.real_mean_length:.2f}, simulated "
        f"{s.sim_mean_length:.2f}, KS {s.length_ks:.3f}",
        f"response AUC {s.auc:.3f} (popularity only {pop}), calibration gap "
        f"{s.calibration_error:.3f}",
        f"per-track listen rate r = {s.track_corr:.3f} ({s.tracks_compared} tracks; vs "
        f"predicted {s.track_corr_predicted:.3f})",
        f"repeat rate (positions 6-20): real {s.real_repeat_rate:.3f}, simulated "
        f"{s.sim_repeat_rate:.3f} (gap {s.repeat_rate_gap:+.3f}, target within "
        f"±{REPEAT_GAP_TARGET}); listen rate of repeats real {s.real_repeat_listen_rate:.3f}, "
        f"simulated {s.sim_repeat_listen_rate:.3f}",
        *policy_lines(s.policy_groups),
    ]


def _by_position(plays: Plays, idx: np.ndarray, values: np.ndarray, max_len: int) -> np.ndarray:
    """(S, max_len) ``values`` of the plays ``idx`` at their session and position, else NaN."""
    out = np.full((len(plays.lengths), max_len), np.nan)
    session = np.repeat(np.arange(len(plays.lengths)), plays.lengths)
    out[session[idx], plays.position[idx] - 1] = values
    return out


def _repeat_figures(rep: Replay) -> dict[str, Any]:
    """Repeat rate and listen rate of repeats, real and simulated, positions 6 on."""
    figures: dict[str, Any] = {}
    for side, flags, repeat in (
        ("real", rep.real_flags, rep.real_repeat),
        ("sim", rep.sim_flags, rep.sim_repeat),
    ):
        played = ~np.isnan(flags[:, WINDOW:])
        repeats = repeat[:, WINDOW:] & played
        n = int(repeats.sum())
        figures[f"{side}_repeat_rate"] = n / max(int(played.sum()), 1)
        figures[f"{side}_repeat_listen_rate"] = (
            float(flags[:, WINDOW:][repeats].mean()) if n else math.nan
        )
        figures[f"{side}_repeats"] = n
    figures["repeat_rate_gap"] = figures["sim_repeat_rate"] - figures["real_repeat_rate"]
    pos = np.arange(rep.sim_flags.shape[1])
    filler = ~np.isnan(rep.sim_flags) & (pos >= rep.real_lengths[:, None]) & (pos >= WINDOW)
    figures["sim_filler_plays"] = int(filler.sum())
    figures["sim_filler_repeats"] = int((rep.sim_repeat & filler).sum())
    return figures


def _json_safe(value: Any) -> Any:
    """NaN becomes ``None`` (JSON has no NaN), in nested dicts and lists too."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value
