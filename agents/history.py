"""Per-slot memory of the tracks recommended in the current session.

The listener penalises a track already played in the session (``repeat`` fatigue), so
agents that rank tracks must not recommend one twice. ``EpisodeHistory`` holds a
(B, n_tracks) boolean mask; ``AvoidsRepeats`` plugs it into an ``Agent``: ``act`` masks
and marks, ``episode_end`` clears the slots whose session ended (see the call protocol
in ``agents.base``).
"""

from __future__ import annotations

import numpy as np

from agents.base import AgentContext


class EpisodeHistory:
    """Which tracks each slot has been recommended since its session started.

    The batch size is taken from the first call; a call with another batch size starts
    every slot afresh (a new environment means new sessions).

    Args:
        n_tracks: Catalog size.
    """

    def __init__(self, n_tracks: int) -> None:
        self.n_tracks = int(n_tracks)
        self.mask = np.zeros((0, self.n_tracks), dtype=bool)

    def blocked(self, batch: int) -> np.ndarray:
        """The (batch, n_tracks) mask of tracks already recommended (do not modify).

        A slot that has been recommended every track is cleared, so that a catalog
        smaller than a session never leaves a slot without an allowed track.
        """
        self._ensure(batch)
        full = self.mask.all(axis=1)
        if full.any():
            self.mask[full] = False
        return self.mask

    def mark(self, actions: np.ndarray) -> None:
        """Record that slot ``i`` was recommended ``actions[i]``."""
        self._ensure(len(actions))
        self.mask[np.arange(len(actions)), actions] = True

    def end(self, dones: np.ndarray) -> None:
        """Forget the recommendations of the slots whose session ended."""
        dones = np.asarray(dones, dtype=bool)
        if self.mask.shape[0] != len(dones):
            self._ensure(len(dones))
        else:
            self.mask[dones] = False

    def _ensure(self, batch: int) -> None:
        if self.mask.shape[0] != batch:
            self.mask = np.zeros((batch, self.n_tracks), dtype=bool)


class AvoidsRepeats:
    """Mixin for agents that never recommend a track twice in a session.

    Put it before ``Agent`` in the bases. Subclasses pick with ``masked_argmax`` or
    ``random_allowed`` and then call ``self.history.mark(actions)``.
    """

    history: EpisodeHistory

    def bind(self, context: AgentContext) -> None:
        """Bind as ``Agent.bind`` does, plus an empty history."""
        super().bind(context)  # type: ignore[misc]
        self.history = EpisodeHistory(context.n_tracks)

    def episode_end(self, dones: np.ndarray) -> None:
        """Clear the history of the slots whose session ended."""
        self.history.end(dones)


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
