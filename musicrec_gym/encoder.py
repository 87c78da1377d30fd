"""Session encoder: the environment's observation function, and its public names.

A session state is the last :data:`WINDOW` plays, oldest first, each play its track
embedding (``d`` dims) followed by the listener's feedback flag (1 listened, 0
skipped): a ``WINDOW x (d+1)`` matrix. An LSTM autoencoder (docs/design.md §3) compresses
it to a ``(d+1)``-vector. This module makes the training windows
(:func:`make_windows`) and gathers the encoder's names, imported from where they live:

* :class:`EncoderConfig` and :class:`EncoderReport`, the training stage's records
  (:mod:`musicrec_gym.encoder_records`);
* :class:`NumpyEncoder` and :data:`WEIGHT_KEYS`, batched NumPy inference of the encoder
  half (:mod:`musicrec_gym.numpy_encoder`);
* the PyTorch names (``SessionAutoencoder``, ``train_autoencoder``,
  ``save_state_dict``, ``load_state_dict``, ``export_numpy``) of
  :mod:`musicrec_gym.encoder_train`, loaded on first access, so that
  ``from musicrec_gym.encoder import NumpyEncoder`` never imports torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from musicrec_gym.checks import is_int
from musicrec_gym.encoder_records import EncoderConfig, EncoderReport
from musicrec_gym.errors import ConfigError, DataFormatError
from musicrec_gym.numpy_encoder import WEIGHT_KEYS, NumpyEncoder
from musicrec_gym.sim.constants import WINDOW  # plays in a session state

if TYPE_CHECKING:  # pragma: no cover
    from musicrec_gym.encoder_train import (
        SessionAutoencoder,
        export_numpy,
        load_state_dict,
        save_state_dict,
        train_autoencoder,
    )

__all__ = [
    "WEIGHT_KEYS",
    "WINDOW",
    "EncoderConfig",
    "EncoderReport",
    "NumpyEncoder",
    "SessionAutoencoder",
    "export_numpy",
    "load_state_dict",
    "make_windows",
    "save_state_dict",
    "train_autoencoder",
]


_TORCH_NAMES = frozenset(
    {
        "SessionAutoencoder",
        "train_autoencoder",
        "save_state_dict",
        "load_state_dict",
        "export_numpy",
    }
)


def __getattr__(name: str) -> Any:
    """Load the PyTorch half of the encoder on first use of one of its names (PEP 562)."""
    if name in _TORCH_NAMES:
        from musicrec_gym import encoder_train

        return getattr(encoder_train, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _TORCH_NAMES)


# --------------------------------------------------------------------------- windows


def _flat_int(parts: list[Any], what: str) -> np.ndarray:
    try:
        flat = np.concatenate(parts) if parts else np.zeros(0, np.int64)
    except ValueError as exc:
        raise DataFormatError(f"`{what}` must hold 1-D arrays, one per session: {exc}") from exc
    if flat.ndim != 1:
        raise DataFormatError(f"`{what}` must hold 1-D arrays, one per session, got {flat.ndim}-D")
    return flat


def make_windows(
    tracks: Sequence[np.ndarray],
    listened: Sequence[np.ndarray],
    vectors: np.ndarray,
    window: int = WINDOW,
) -> np.ndarray:
    """Every contiguous window of ``window`` plays in every session, as encoder inputs.

    Args:
        tracks: ``tracks[i]`` holds the track rows (indices into ``vectors``) of session
            ``i`` in play order.
        listened: ``listened[i]`` holds 1 (listened) or 0 (skipped) for each play of
            session ``i``.
        vectors: Track embeddings, ``(n_tracks, d)``.
        window: Plays per window. Sessions shorter than this give no window.

    Returns:
        float32 ``(N, window, d+1)``: for each window, oldest play first, the play's
        track vector followed by its listened flag. Windows are ordered by session,
        then by start position.

    Raises:
        ConfigError: ``window`` is not an int >= 1.
        DataFormatError: ``vectors`` is not a finite 2-D array; ``tracks`` and
            ``listened`` differ in length, or in the length of a session (the message
            names it); a track row is out of range or a flag is not 0/1 (names the
            session and position).
    """
    if not is_int(window) or window < 1:
        raise ConfigError(f"`window` must be an int >= 1, got {window!r}")
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.dtype.kind not in "iuf":
        raise DataFormatError(
            f"`vectors` must be a numeric 2-D array (n_tracks, d), got {vectors.dtype} "
            f"with shape {vectors.shape}"
        )
    if not np.isfinite(vectors).all():
        raise DataFormatError("`vectors` holds NaN or infinite values")
    if len(tracks) != len(listened):
        raise DataFormatError(
            f"`tracks` has {len(tracks)} sessions but `listened` has {len(listened)}"
        )
    n_tracks, dim = vectors.shape
    n_sessions = len(tracks)
    lengths = np.fromiter(map(len, tracks), np.int64, n_sessions)
    flag_lengths = np.fromiter(map(len, listened), np.int64, n_sessions)
    bad = np.flatnonzero(lengths != flag_lengths)
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(
            f"session {i}: tracks[{i}] has {lengths[i]} plays but listened[{i}] has "
            f"{flag_lengths[i]}"
        )
    kept = np.flatnonzero(lengths >= window)
    if kept.size == 0:
        return np.zeros((0, window, dim + 1), np.float32)
    flat_tracks = _flat_int([tracks[i] for i in kept], "tracks")
    flat_flags = _flat_int([listened[i] for i in kept], "listened")
    kept_lengths = lengths[kept]
    starts = np.cumsum(kept_lengths) - kept_lengths  # first play of each kept session

    def locate(position: int) -> str:
        j = int(np.searchsorted(starts, position, side="right")) - 1
        return f"session {int(kept[j])}, position {position - int(starts[j])}"

    if flat_tracks.dtype.kind not in "iu":
        raise DataFormatError(f"`tracks` must hold integer track rows, got {flat_tracks.dtype}")
    out_of_range = np.flatnonzero((flat_tracks < 0) | (flat_tracks >= n_tracks))
    if out_of_range.size:
        p = int(out_of_range[0])
        raise DataFormatError(
            f"{locate(p)}: track row {flat_tracks[p]} is out of range [0, {n_tracks})"
        )
    if flat_flags.dtype.kind not in "biuf":
        raise DataFormatError(f"`listened` must hold 0/1 flags, got {flat_flags.dtype}")
    not_flag = np.flatnonzero((flat_flags != 0) & (flat_flags != 1))
    if not_flag.size:
        p = int(not_flag[0])
        raise DataFormatError(f"{locate(p)}: listened flag {flat_flags[p]} is not 0 or 1")

    # One row per (track, flag) pair, so each play is a single gather.
    table = np.empty((n_tracks, 2, dim + 1), np.float32)
    table[:, :, :dim] = vectors[:, None, :]
    table[:, 0, dim] = 0.0
    table[:, 1, dim] = 1.0
    codes = flat_tracks.astype(np.int64) * 2 + flat_flags.astype(np.int64)
    n_windows = kept_lengths - window + 1
    first = np.repeat(starts - (np.cumsum(n_windows) - n_windows), n_windows)
    first += np.arange(first.size)
    return table.reshape(-1, dim + 1)[codes[first[:, None] + np.arange(window)]]
