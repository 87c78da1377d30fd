"""Sessions of a loaded log as flat play arrays, and the windows before each play.

What fitting a world (:mod:`musicrec_gym.fit`) and grading it (:mod:`musicrec_gym.realism`)
share: the layout of the plays (:class:`Plays`), the seeded split by session, and the
encoded window of the :data:`~musicrec_gym.sim.fitted.WINDOW` plays before each play
the response model predicts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from musicrec_gym.errors import DataFormatError
from musicrec_gym.numpy_encoder import NumpyEncoder
from musicrec_gym.sim.fitted import WINDOW

__all__ = ["Plays", "encode_before", "split_sessions", "target_plays"]


@dataclass(frozen=True)
class Plays:
    """Sessions as flat play arrays (one entry per play, sessions contiguous, in order).

    Attributes:
        session_ids: (S,) session ids.
        starts: (S,) index of each session's first play.
        lengths: (S,) plays per session.
        track_ids: (N,) track id of each play.
        listened: (N,) 1 listened / 0 skipped.
        position: (N,) 1-based position in the session.
    """

    session_ids: np.ndarray
    starts: np.ndarray
    lengths: np.ndarray
    track_ids: np.ndarray
    listened: np.ndarray
    position: np.ndarray

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, max_length: int) -> tuple[Plays, int]:
        """Lay out a loaded MSSD frame; plays past ``max_length`` are cut (returns how many)."""
        pos = frame.groupby("session_id", sort=False).cumcount().to_numpy() + 1
        keep = pos <= max_length
        cut = int((~keep).sum())
        sub = frame.loc[keep]
        pos = pos[keep]
        sid = sub["session_id"].astype(str).to_numpy(dtype=object)
        first = np.flatnonzero(pos == 1)
        lengths = np.diff(np.append(first, len(pos)))
        return (
            cls(
                session_ids=sid[first],
                starts=first,
                lengths=lengths.astype(np.int64),
                track_ids=sub["track_id"].astype(str).to_numpy(dtype=object),
                listened=sub["listened"].to_numpy(dtype=bool).astype(np.int8),
                position=pos.astype(np.int64),
            ),
            cut,
        )

    def sessions(self) -> list[list[str]]:
        """Track ids of each session, in play order."""
        return [
            list(self.track_ids[s : s + n]) for s, n in zip(self.starts, self.lengths, strict=True)
        ]

    def split(self, values: np.ndarray) -> list[np.ndarray]:
        """``values`` (one per play) cut into one array per session."""
        return [values[s : s + n] for s, n in zip(self.starts, self.lengths, strict=True)]


def split_sessions(
    frame: pd.DataFrame, heldout_fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split a loaded log by session: the held-out sessions are a seeded random share.

    Args:
        frame: Loaded MSSD frame (``session_id`` column).
        heldout_fraction: Share of sessions held out, in (0, 1).
        seed: Seed of the draw.

    Returns:
        (training rows, held-out rows), each in the frame's order.

    Raises:
        DataFormatError: Fewer than 2 sessions, so one side would be empty.
    """
    ids = np.sort(frame["session_id"].astype(str).unique())
    if len(ids) < 2:
        raise DataFormatError(
            f"the log holds {len(ids)} session(s); fitting needs at least 2 (training and held out)"
        )
    n_held = min(len(ids) - 1, max(1, round(heldout_fraction * len(ids))))
    held = set(np.random.default_rng(seed).permutation(ids)[:n_held].tolist())
    mask = frame["session_id"].astype(str).isin(held).to_numpy()
    return frame.loc[~mask], frame.loc[mask]


def target_plays(plays: Plays, max_length: int) -> np.ndarray:
    """Indices of the plays the response model predicts: positions 6 .. max_length."""
    return np.flatnonzero((plays.position > WINDOW) & (plays.position <= max_length))


def encode_before(
    encoder: NumpyEncoder, rows: np.ndarray, flags: np.ndarray, idx: np.ndarray
) -> np.ndarray:
    """Codes of the windows of the five plays before each play in ``idx`` (batched).

    Args:
        encoder: The session encoder, bound to the catalog plus the rare row.
        rows: (N,) track row of every play.
        flags: (N,) listen flag of every play.
        idx: Plays at position 6 or later.
    """
    win = idx[:, None] + np.arange(-WINDOW, 0)
    out = np.empty((len(idx), encoder.code_dim), np.float32)
    for s in range(0, len(idx), 4096):
        out[s : s + 4096] = encoder.encode_ids(rows[win[s : s + 4096]], flags[win[s : s + 4096]])
    return out


def repeat_features(plays: Plays, rows: np.ndarray, rare: int) -> tuple[np.ndarray, np.ndarray]:
    """Per play: earlier plays of its track in its session, and whether the last was listened.

    What the fitted response model's repeat table reads (see
    :mod:`musicrec_gym.sim.fitted_response`), computed as the simulator does: by catalog
    row, with the rare-track row (``rare``) never a repeat.

    Returns:
        ``(count, last_listened)``: int64 and int8 arrays, one entry per play (0 where
        ``count`` is 0).
    """
    session = np.repeat(np.arange(len(plays.lengths)), plays.lengths)
    frame = pd.DataFrame({"s": session, "r": rows, "l": plays.listened})
    groups = frame.groupby(["s", "r"], sort=False)
    count = groups.cumcount().to_numpy(np.int64).copy()
    last = groups["l"].shift(1).fillna(0).to_numpy().astype(np.int8, copy=True)
    count[rows == rare] = 0
    last[count == 0] = 0
    return count, last
