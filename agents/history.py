"""Per-slot memory of the current session: what the agent recommended and how it went.

The listener penalises a track already played in the session (``repeat`` fatigue) and
an artist among the last five plays (``artist`` fatigue), so agents that rank tracks
must not recommend one twice and may avoid recent artists. ``EpisodeHistory`` holds,
per slot, a (B, n_tracks) mask of the tracks recommended this session, the last
``artist_window`` recommendations, and the recommendation whose outcome has not been
seen yet. ``AvoidsRepeats`` plugs it into an ``Agent``: ``act`` masks and marks,
``episode_end`` clears the slots whose session ended (see the call protocol in
``agents.base``).

The agent knows its *own* recommendations. The warm-up plays that open a session are
blocked too when the environment's info carries them as ``info["warmup_tracks"]``
((B, warmup) track indices of the session now in each slot, -1 for none); otherwise
they are visible only through the encoded observation.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents.base import AgentContext
from musicrec_gym.session_features import (
    WARMUP_KEY,
    WARMUP_LISTENED_KEY,
    SessionPlays,
    warmup_plays,
)

__all__ = [
    "ARTIST_WINDOW",
    "WARMUP_KEY",
    "AvoidsRepeats",
    "EpisodeHistory",
    "candidates_blocked",
    "masked_argmax",
    "random_allowed",
]

#: The listener's artist fatigue counts the last five plays: the window of
#: ``avoid_recent_artists``.
ARTIST_WINDOW = 5


class EpisodeHistory:
    """What each slot has been recommended since its session started.

    The batch size is taken from the first call; a call with another batch size starts
    every slot afresh (a new environment means new sessions).

    Args:
        n_tracks: Catalog size.
        track_artist: (n_tracks,) artist of each track; needed for ``artist_window > 0``.
            A negative artist means none (a missing ``artist_id``): such a track is never
            blocked for its artist, and recommending it blocks no other track.
        artist_window: Also block the artists of the last this many recommendations of
            the session (0: only exact repeats are blocked).
    """

    def __init__(
        self, n_tracks: int, track_artist: np.ndarray | None = None, artist_window: int = 0
    ) -> None:
        self.n_tracks = int(n_tracks)
        self.artist_window = int(artist_window)
        if self.artist_window and track_artist is None:
            raise ValueError("artist_window > 0 needs track_artist")
        self.track_artist = None if track_artist is None else np.asarray(track_artist)
        if self.artist_window:
            self._index_artists()
        self._ensure(0)

    # ----------------------------------------------------------------- queries
    def blocked(self, batch: int, info: dict[str, Any] | None = None) -> np.ndarray:
        """The (batch, n_tracks) mask of tracks not to recommend now (do not modify).

        Tracks already recommended in the session, plus (with ``artist_window``) the
        tracks of recently recommended artists (a track without an artist, see
        ``track_artist``, is never blocked for its artist nor blocks any). A slot left
        with no allowed track gets its artist block lifted, then its history cleared, so
        a catalog smaller than a session never leaves a slot without a choice.

        The artist block costs O(batch * window + tracks blocked): each recent artist's
        tracks are read from an index made once, not compared with the whole catalog.

        Args:
            batch: Number of slots.
            info: The latest info; its ``warmup_tracks``, if any, seed the history of
                the slots whose session has just started.
        """
        self._ensure(batch)
        if info is not None and self.fresh.any() and WARMUP_KEY in info:
            self._seed_warmup(np.asarray(info[WARMUP_KEY]))
        mask = self.mask
        if self.artist_window:
            block = self._recent_artist_block()
            if len(block):
                mask = mask.copy()
                mask.reshape(-1)[block] = True
                full = mask.all(axis=1)
                mask[full] = self.mask[full]
        full = mask.all(axis=1)
        if full.any():
            self.mask[full] = False
            mask[full] = False
        return mask

    def outcomes(self, info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The outcome of each slot's last recommendation, read once from the step's info.

        Args:
            info: The info of the step that followed the last ``mark``.

        Returns:
            ``(slots, tracks, listened)``: the slots whose last recommendation belongs
            to their current session and has an outcome in ``info``.
        """
        slots = np.flatnonzero(self.pending)
        self.pending[:] = False
        if "listened" not in info or not len(slots):
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=bool)
        listened = np.asarray(info["listened"], dtype=bool)
        if listened.shape != self.pending.shape:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, np.zeros(0, dtype=bool)
        return slots, self.last[slots].copy(), listened[slots]

    # ----------------------------------------------------------------- updates
    def mark(self, actions: np.ndarray) -> None:
        """Record that slot ``i`` was recommended ``actions[i]``."""
        actions = np.asarray(actions, dtype=np.int64)
        self._ensure(len(actions))
        self.mask[np.arange(len(actions)), actions] = True
        if self.artist_window:
            self.recent = np.concatenate([self.recent[:, 1:], actions[:, None]], axis=1)
        self.last = actions.copy()
        self.pending[:] = True
        self.fresh[:] = False

    def end(self, dones: np.ndarray) -> None:
        """Forget the sessions of the slots that ended."""
        dones = np.asarray(dones, dtype=bool)
        if self.mask.shape[0] != len(dones):
            self._ensure(len(dones))
            return
        self.mask[dones] = False
        self.recent[dones] = -1
        self.last[dones] = -1
        self.pending[dones] = False
        self.fresh[dones] = True

    def _index_artists(self) -> None:
        """Index the catalog by artist once: each artist's tracks, as rows of a CSR.

        ``_artist_row[t]`` is track ``t``'s row; the tracks of row ``r`` are
        ``_artist_tracks[_artist_start[r]:_artist_start[r] + _artist_count[r]]``. The last
        row is empty: the row of tracks without an artist, and (as ``_artist_row[-1]``)
        of the window's empty places (-1).
        """
        artist = self.track_artist
        if artist.shape != (self.n_tracks,):
            raise ValueError(f"track_artist must have shape ({self.n_tracks},), got {artist.shape}")
        has = artist >= 0
        tracks = np.flatnonzero(has)
        codes, row = np.unique(artist[has], return_inverse=True)
        row = row.reshape(-1)
        empty = len(codes)
        self._artist_row = np.full(self.n_tracks + 1, empty, dtype=np.int64)
        self._artist_row[tracks] = row
        self._artist_tracks = tracks[np.argsort(row, kind="stable")]
        self._artist_count = np.bincount(row, minlength=empty + 1)
        self._artist_start = np.cumsum(self._artist_count) - self._artist_count

    def _recent_artist_block(self) -> np.ndarray:
        """Flat indices into the (batch, n_tracks) mask of the recent artists' tracks.

        Each slot's window lists its artists' tracks once (an artist picked twice
        counts once); empty places and tracks without an artist list nothing.
        """
        rows = self._artist_row[self.recent]  # -1 (empty place) -> the empty row
        rows.sort(axis=1)
        count = self._artist_count[rows]
        count[:, 1:][rows[:, 1:] == rows[:, :-1]] = 0
        start = self._artist_start[rows].reshape(-1)
        count = count.reshape(-1)
        # listed track k of place p is _artist_tracks[start[p] + k - first[p]], where
        # first[p] = end[p] - count[p] is where place p's run begins in the list
        end = np.cumsum(count)
        at = np.arange(end[-1] if len(end) else 0) + np.repeat(start - end + count, count)
        slot = np.arange(len(rows)).repeat(rows.shape[1]) * self.n_tracks
        return np.repeat(slot, count) + self._artist_tracks[at]

    def _seed_warmup(self, played: np.ndarray) -> None:
        """Block the warm-up tracks of the fresh slots.

        Their artists are not blocked: warm-up plays lean to the listener's favourite
        artists, and blocking those cost LinUCB 0.06 of normalised score.
        """
        if played.ndim != 2 or played.shape[0] != len(self.fresh):
            return
        rows = np.flatnonzero(self.fresh)
        warm = played[rows]
        # the rule of musicrec_gym.wrappers.SessionFeatures' action mask (-1s dropped)
        slots, tracks, _ = warmup_plays(rows, warm, np.zeros(warm.shape, bool), self.n_tracks)
        self.mask[slots, tracks] = True
        self.fresh[rows] = False

    def _ensure(self, batch: int) -> None:
        if getattr(self, "mask", None) is None or self.mask.shape[0] != batch:
            self.mask = np.zeros((batch, self.n_tracks), dtype=bool)
            self.recent = np.full((batch, max(self.artist_window, 1)), -1, dtype=np.int64)
            self.last = np.full(batch, -1, dtype=np.int64)
            self.pending = np.zeros(batch, dtype=bool)
            self.fresh = np.ones(batch, dtype=bool)


class AvoidsRepeats:
    """Mixin for agents that never recommend a track twice in a session.

    Put it before ``Agent`` in the bases. Subclasses pick with ``masked_argmax`` or
    ``random_allowed`` among ``self.history.blocked(B)`` and then call
    ``self.history.mark(actions)``. Override ``artist_window`` to also avoid the
    artists of the last recommendations.
    """

    history: EpisodeHistory
    artist_window: int = 0

    def bind(self, context: AgentContext) -> None:
        """Bind as ``Agent.bind`` does, plus an empty history."""
        super().bind(context)  # type: ignore[misc]
        self.history = EpisodeHistory(
            context.n_tracks, context.track_artist, artist_window=self.artist_window
        )

    def episode_end(self, dones: np.ndarray) -> None:
        """Clear the history of the slots whose session ended."""
        self.history.end(dones)


def follow_session(
    history: EpisodeHistory,
    session: SessionPlays,
    batch: int,
    info: dict[str, Any],
    features: bool = True,
) -> None:
    """Fold what each slot just saw into ``history`` and (``features``) ``session``.

    That is the outcome of the slot's last recommendation and, for a session that has
    just started, its warm-up plays (``info["warmup_tracks"]`` and
    ``info["warmup_listened"]``, when the environment gives them). Both are sized to
    ``batch`` first. The agents with session features (the linear bandits, offline RL)
    call it once per ``act``.
    """
    history.blocked(batch)  # sizes the history to the batch
    if session.n_slots != batch:
        session.resize(batch)
    fresh = np.flatnonzero(history.fresh)
    slots, tracks, listened = history.outcomes(info)
    if not features:
        return
    if len(fresh) and WARMUP_KEY in info and WARMUP_LISTENED_KEY in info:
        warm = np.asarray(info[WARMUP_KEY])[fresh]
        heard = np.asarray(info[WARMUP_LISTENED_KEY], dtype=bool)[fresh]
        session.reset(fresh, warm, heard)
    session.add(slots, tracks, listened)


def candidates_blocked(
    history: EpisodeHistory, batch: int, info: dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Each slot's candidates (``info["candidate_tracks"]``) and which of them not to pick.

    For the candidate setting (``candidates=K``): ``history``'s block read at the
    candidates. Candidates are never played tracks, so this is the recent-artist block;
    it is lifted in a slot where it would block every candidate. Blank rows (-1, after a
    session's last step) come back as track 0, all allowed.

    Returns:
        ``(cands, blocked)``: (B, K) int64 catalog rows and (B, K) bool.
    """
    cands = np.asarray(info["candidate_tracks"], dtype=np.int64)
    blank = cands < 0
    cands = np.maximum(cands, 0)
    blocked = np.take_along_axis(history.blocked(batch, info), cands, axis=1) | blank
    full = blocked.all(axis=1)
    blocked[full] = blank[full] & ~blank[full].all(axis=1)[:, None]
    return cands, blocked


def masked_argmax(scores: np.ndarray, blocked: np.ndarray) -> np.ndarray:
    """Row-wise argmax of ``scores`` over the entries not ``blocked``: (B, n) -> (B,) int64."""
    return np.where(blocked, -np.inf, scores).argmax(axis=1).astype(np.int64)


def random_allowed(rng: np.random.Generator, blocked: np.ndarray) -> np.ndarray:
    """One uniformly random allowed track per row of ``blocked``: (B, n) -> (B,) int64."""
    batch, n = blocked.shape
    picks = rng.integers(0, n, size=batch)
    bad = blocked[np.arange(batch), picks]
    if bad.any():
        rows = np.flatnonzero(bad)
        keys = np.where(blocked[rows], -1.0, rng.random((len(rows), n)))
        picks[rows] = keys.argmax(axis=1)
    return picks.astype(np.int64)
