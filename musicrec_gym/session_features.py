"""What a session has played so far, per slot: the features every agent may use.

``SessionPlays`` keeps, for each of ``B`` slots (one per concurrent session), the sums
of the embeddings of the tracks listened to and of those skipped this session, the
number of plays, and the set of tracks played. It is the one implementation behind
``musicrec_gym.wrappers.SessionFeatures`` (what any agent gets through a Gymnasium
wrapper) and the linear bandits' session features (``agents.linear``), so that both
see exactly the same numbers.

A session's plays are its warm-up plays (``info["warmup_tracks"]`` and
``info["warmup_listened"]``, the plays that opened it; a fitted world's warm-up tracks
outside the catalog are ``-1`` and ignored) followed by the recommended tracks with
their outcomes (``info["track"]``, ``info["listened"]``).

The features of a slot are ``[L / n, S / n]`` with ``L`` and ``S`` the sums of the
(standardised) embeddings of the listened and skipped plays and ``n = max(plays, 1)``:
the mean embedding of the session's plays, split by outcome (a skipped play counts
zero in the listened half and the other way round). They are 0 before any play.
"""

from __future__ import annotations

import numpy as np

WARMUP_KEY = "warmup_tracks"
"""Info key of the tracks played before the first recommendation of a session."""
WARMUP_LISTENED_KEY = "warmup_listened"
"""Info key of their listen flags."""


def standardized(embeddings: np.ndarray) -> np.ndarray:
    """Each column of ``embeddings`` standardised over the catalog (float64).

    So that the features have the same scale in every world. A constant column becomes 0.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    return (emb - emb.mean(axis=0)) / np.maximum(emb.std(axis=0), 1e-8)


def warmup_plays(
    slots: np.ndarray, warmup_tracks: np.ndarray, warmup_listened: np.ndarray, n_tracks: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The valid warm-up plays of ``slots``, flattened in play order.

    Args:
        slots: (k,) the slots the warm-up rows belong to.
        warmup_tracks: (k, w) catalog rows; ``-1`` (a track outside a fitted world's
            catalog) and anything out of ``[0, n_tracks)`` is dropped.
        warmup_listened: (k, w) their listen flags.
        n_tracks: Catalog size.

    Returns:
        ``(slots, tracks, listened)``, one entry per valid play, slot by slot, each
        slot's plays in order.
    """
    tracks = np.asarray(warmup_tracks, dtype=np.int64)
    heard = np.asarray(warmup_listened, dtype=bool)
    slots = np.asarray(slots, dtype=np.int64)
    valid = (tracks >= 0) & (tracks < n_tracks)
    rows = np.repeat(slots, tracks.shape[1]).reshape(tracks.shape)
    return rows[valid], tracks[valid], heard[valid]


class SessionPlays:
    """Per-slot sums of the listened and skipped track embeddings, and the played tracks.

    Args:
        embeddings: (n_tracks, d) track embeddings as the features should use them
            (``standardized(world.embeddings)`` in the wrapper and the bandits).
        n_slots: Initial number of slots (``resize`` changes it).

    Attributes:
        sums: (B, 2d + 1) float64: per slot, the sum of the listened plays' embeddings,
            the sum of the skipped plays' embeddings, and the number of plays.
        played: (B, n_tracks) bool: the tracks played this session, warm-up included.
    """

    def __init__(self, embeddings: np.ndarray, n_slots: int = 0) -> None:
        self.embeddings = np.asarray(embeddings, dtype=np.float64)
        if self.embeddings.ndim != 2:
            raise ValueError(f"embeddings must be (n_tracks, d), got {self.embeddings.shape}")
        self.n_tracks, self.dim = self.embeddings.shape
        self.resize(n_slots)

    @property
    def n_slots(self) -> int:
        """Number of slots B."""
        return self.sums.shape[0]

    @property
    def n_features(self) -> int:
        """Number of feature columns, ``2 d``."""
        return 2 * self.dim

    def resize(self, n_slots: int) -> None:
        """Use ``n_slots`` slots, every one empty (a new batch means new sessions)."""
        self.sums = np.zeros((n_slots, 2 * self.dim + 1))
        self.played = np.zeros((n_slots, self.n_tracks), dtype=bool)

    def clear(self, slots: np.ndarray) -> None:
        """Empty ``slots`` (an index array or a (B,) bool mask): their sessions ended."""
        self.sums[slots] = 0.0
        self.played[slots] = False

    def reset(
        self,
        slots: np.ndarray,
        warmup_tracks: np.ndarray | None = None,
        warmup_listened: np.ndarray | None = None,
    ) -> None:
        """Start new sessions in ``slots``, from their warm-up plays if given.

        Args:
            slots: (k,) slot indices.
            warmup_tracks: (k, w) the warm-up tracks of those slots' sessions
                (``info["warmup_tracks"][slots]``), or None for none.
            warmup_listened: (k, w) their listen flags.
        """
        slots = np.asarray(slots, dtype=np.int64)
        self.clear(slots)
        if warmup_tracks is not None and warmup_listened is not None and len(slots):
            self.add(*warmup_plays(slots, warmup_tracks, warmup_listened, self.n_tracks))

    def add(self, slots: np.ndarray, tracks: np.ndarray, listened: np.ndarray) -> None:
        """Add plays ``(slots[j], tracks[j], listened[j])``, in order, to their sessions."""
        slots = np.asarray(slots, dtype=np.int64)
        tracks = np.asarray(tracks, dtype=np.int64)
        listened = np.asarray(listened, dtype=bool)
        d = self.dim
        emb = self.embeddings[tracks]
        np.add.at(self.sums, (slots[listened], slice(0, d)), emb[listened])
        np.add.at(self.sums, (slots[~listened], slice(d, 2 * d)), emb[~listened])
        np.add.at(self.sums, (slots, -1), 1.0)
        self.played[slots, tracks] = True

    def features(self, slots: np.ndarray | None = None) -> np.ndarray:
        """``[L / n, S / n]`` of ``slots`` (all if None): (k, 2d) float64."""
        sums = self.sums if slots is None else self.sums[slots]
        return sums[:, :-1] / np.maximum(sums[:, -1:], 1.0)

    def allowed(self, slots: np.ndarray | None = None) -> np.ndarray:
        """The tracks not played this session, (k, n_tracks) bool (all if None).

        A slot that has played every track gets every track allowed again, so that a
        mask never leaves an agent without a choice.
        """
        allowed = ~(self.played if slots is None else self.played[slots])
        allowed[~allowed.any(axis=1)] = True
        return allowed

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Lowest and highest value of each feature column, (2d,) each.

        A feature is a sum over a subset of the session's plays divided by their
        number, so it lies between ``min(0, column min)`` and ``max(0, column max)``.
        """
        low = np.minimum(self.embeddings.min(axis=0), 0.0)
        high = np.maximum(self.embeddings.max(axis=0), 0.0)
        return np.tile(low, 2), np.tile(high, 2)
