"""From a fitted session-length model to the simulator's leave model.

1. ``expected_next_lengths``: for every user of the histories, the model's prediction of
   the *next* session's length in seconds, given all of the user's sessions so far.
2. ``expected_tracks``: seconds to tracks. The model predicts the median length (L1
   loss); times 1/ln 2 it is the mean of a memoryless (geometric) length, the
   simulator's leave process. Divided by the listener's own seconds per play in the
   histories (skipped plays are short) and less the warm-up plays that a simulated
   session starts with (the hazard only applies after them), floored at one track.
3. ``write_leave_file``: writes ``leave.npz`` (``expected_length``, one value per
   listener of the world, in catalog-listener order) into a world directory and adds it
   to the manifest. ``load_world`` then sets the listeners' patience to these values, so
   the leave hazard's base rate is ``1 / expected_length`` (see ``sim.leave.LeaveModel``);
   the skip-driven term is unchanged.

Listeners of the world without a history get the median training session length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym.artifacts import default_world_dir, read_json, write_manifest
from musicrec_gym.errors import ArtifactError, ConfigError
from musicrec_gym.session_length.grid import FittedSessionModel
from musicrec_gym.session_length.summary import SessionSummary

LEAVE_FILE = "leave.npz"
#: Mean over median of a geometric (memoryless) length: 1 / ln 2.
MEDIAN_TO_MEAN = float(1.0 / np.log(2.0))


def expected_next_lengths(fitted: FittedSessionModel, summary: SessionSummary) -> pd.Series:
    """Predicted length (seconds) of each user's next session, indexed by user_id."""
    rows = summary.rows
    last = rows.groupby("user_id", sort=False).tail(1)
    totals = rows.groupby("user_id", sort=False)["length"].agg(["sum", "count"])
    nxt = last.copy()
    nxt["session_index"] = last["session_index"] + 1
    nxt["prev_length"] = last["length"].to_numpy()
    nxt["avg_prev_length"] = (
        totals.loc[last["user_id"], "sum"] / totals.loc[last["user_id"], "count"]
    ).to_numpy()
    nxt["length"] = np.nan
    nxt["split"] = "next"
    nxt["session_id"] = nxt["user_id"].astype(str) + ":next"
    both = pd.concat([rows, nxt], ignore_index=True)
    both = both.sort_values(["user_id", "session_index"], kind="stable").reset_index(drop=True)
    pred = fitted.predict(both)
    is_next = (both["split"] == "next").to_numpy()
    return pd.Series(pred[is_next], index=both.loc[is_next, "user_id"].to_numpy(), name="seconds")


def expected_tracks(
    seconds: np.ndarray,
    seconds_per_play: np.ndarray | float,
    warmup: int = 0,
    median_to_mean: float = MEDIAN_TO_MEAN,
) -> np.ndarray:
    """Expected session length in tracks after the warm-up.

    ``seconds * median_to_mean / seconds_per_play - warmup``, floored at 1 track (the
    leave model's smallest patience). The models minimise the L1 loss, so they predict
    the *median* length; under the simulator's constant leave hazard lengths are
    (nearly) geometric, whose mean is the median divided by ln 2, hence the default
    ``median_to_mean``. ``seconds_per_play`` is best taken from the listener's own
    history (``sum of session lengths / sum of plays``), which accounts for skipped
    plays being shorter than a whole track.
    """
    per_play = np.asarray(seconds_per_play, dtype=np.float64)
    if not np.all(np.isfinite(per_play) & (per_play > 0)):
        raise ConfigError("`seconds_per_play` must be finite numbers > 0")
    tracks = np.asarray(seconds, dtype=np.float64) * median_to_mean / per_play
    return np.maximum(tracks - warmup, 1.0)


def listener_expected_tracks(
    world, fitted: FittedSessionModel, summary: SessionSummary
) -> np.ndarray:
    """(n_listeners,) expected session length in tracks for every listener of ``world``.

    Listeners without a history get the median training session length and the
    seconds per play of all histories together.
    """
    rows = summary.rows
    seconds = expected_next_lengths(fitted, summary)
    sums = rows.groupby("user_id")[["length", "n_plays"]].sum()
    per_play = sums["length"] / sums["n_plays"]
    overall = float(sums["length"].sum() / sums["n_plays"].sum())
    ids = world.listeners["user_id"].astype(str)
    # a median, like the models' predictions (the median-to-mean factor applies to both)
    fallback = float(rows.loc[rows["split"] == "train", "length"].median())
    per_listener = ids.map(seconds).fillna(fallback).to_numpy(dtype=np.float64)
    listener_per_play = ids.map(per_play).fillna(overall).to_numpy(dtype=np.float64)
    return expected_tracks(per_listener, listener_per_play, world.params.warmup)


def write_leave_file(
    world_dir: str | Path, expected_length: np.ndarray, meta: dict[str, Any] | None = None
) -> Path:
    """Write ``leave.npz`` into a world directory and re-write its manifest with it.

    Args:
        world_dir: A world directory (not the built-in one, whose files never change).
        expected_length: (n_listeners,) expected session lengths in tracks.
        meta: Recorded under ``leave`` in the manifest (how the lengths were made).

    Returns:
        The path written.

    Raises:
        ArtifactError: The directory is the built-in world's or not a world directory,
            or the lengths do not fit its listeners.
    """
    directory = Path(world_dir)
    if directory.resolve() == default_world_dir().resolve():
        raise ArtifactError(
            f"{directory}: the built-in world's files never change; copy it "
            "(or `musicrec build --out DIR`) and write leave.npz there"
        )
    manifest = read_json(directory / "manifest.json")
    try:
        listeners = pd.read_csv(directory / "listeners.csv", keep_default_na=False)
    except (OSError, ValueError) as err:
        raise ArtifactError(f"{directory}: cannot read listeners.csv ({err})") from err
    lengths = np.asarray(expected_length, dtype=np.float64)
    if lengths.shape != (len(listeners),) or not np.all(np.isfinite(lengths)) or lengths.min() <= 0:
        raise ArtifactError(
            f"{directory}: expected_length must be {len(listeners)} finite numbers > 0 "
            f"(one per listener), got shape {lengths.shape}"
        )
    path = directory / LEAVE_FILE
    np.savez(path, expected_length=lengths)
    kept = {k: v for k, v in manifest.items() if k not in ("format", "files")}
    kept["leave"] = {"expected_length_mean": float(lengths.mean()), **(meta or {})}
    write_manifest(directory, kept)
    return path
