"""The track embedding table: one vector per track id, looked up by id, stored as CSV.

The CSV file has the columns ``track_id,0,1,...,d-1`` (:meth:`TrackEmbeddings.to_csv` /
:meth:`TrackEmbeddings.from_csv`); :mod:`musicrec_gym.embeddings` trains the vectors.
"""

from __future__ import annotations

import contextlib
import csv
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from musicrec_gym.errors import ArtifactError, ConfigError, DataFormatError, unknown_name_message

__all__ = ["TrackEmbeddings"]

_MISSING_POLICIES = ("mean", "error")


@dataclass(frozen=True, eq=False)
class TrackEmbeddings:
    """A table of track vectors: row ``i`` of ``vectors`` belongs to ``track_ids[i]``.

    Instances compare by identity (``eq=False``); compare contents with ``np.array_equal``.

    Attributes:
        track_ids: Shape ``(n,)``, string dtype (object or ``<U``), unique track tokens.
        vectors: Shape ``(n, dim)``, float32.

    Raises:
        DataFormatError: If the shapes disagree, ``vectors`` is not 2-D with ``dim >= 1``,
            a track id is not a non-empty string, or a track id occurs twice.
    """

    track_ids: np.ndarray
    vectors: np.ndarray
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        track_ids = np.asarray(self.track_ids)
        if track_ids.dtype.kind not in "OU":
            track_ids = track_ids.astype(object)
        vectors = np.asarray(self.vectors, dtype=np.float32)
        if track_ids.ndim != 1:
            raise DataFormatError(f"`track_ids` must be 1-D, got shape {track_ids.shape}")
        if vectors.ndim != 2 or vectors.shape[1] < 1:
            raise DataFormatError(f"`vectors` must have shape (n, dim >= 1), got {vectors.shape}")
        if vectors.shape[0] != track_ids.shape[0]:
            raise DataFormatError(
                f"`track_ids` has {track_ids.shape[0]} entries but `vectors` has "
                f"{vectors.shape[0]} rows; they must match"
            )
        index: dict[str, int] = {}
        for row, track in enumerate(track_ids.tolist()):
            if not isinstance(track, str) or not track:
                raise DataFormatError(
                    f"`track_ids[{row}]` must be a non-empty string, got {track!r}"
                )
            if track in index:
                raise DataFormatError(
                    f"duplicate track id {track!r} at rows {index[track]} and {row}"
                )
            index[track] = row
        object.__setattr__(self, "track_ids", track_ids)
        object.__setattr__(self, "vectors", vectors)
        object.__setattr__(self, "_index", index)

    @property
    def dim(self) -> int:
        """Size of a track vector."""
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return int(self.track_ids.shape[0])

    def index(self) -> dict[str, int]:
        """Map each track id to its row.

        Returns:
            A new dict ``{track_id: row}``.
        """
        return dict(self._index)

    def matrix_for(self, track_ids: Sequence[str], missing: str = "mean") -> np.ndarray:
        """Stack the vectors of the given tracks, in the given order.

        Args:
            track_ids: The tracks wanted (repeats allowed).
            missing: What to do with a track that is not in the table: ``"mean"`` gives it
                the mean of all vectors, ``"error"`` raises.

        Returns:
            Float32 array of shape ``(len(track_ids), dim)``.

        Raises:
            ConfigError: If ``missing`` is not ``"mean"`` or ``"error"``.
            ArtifactError: If ``missing="error"`` and some tracks are not in the table (the
                message names up to 5 of them and the count).
        """
        if missing not in _MISSING_POLICIES:
            raise ConfigError(
                unknown_name_message("`missing` policy", str(missing), _MISSING_POLICIES)
            )
        rows = np.fromiter(
            (self._index.get(t, -1) for t in track_ids), dtype=np.int64, count=len(track_ids)
        )
        absent = rows < 0
        if not absent.any():
            return self.vectors[rows]
        if missing == "error":
            missing_ids = list(dict.fromkeys(track_ids[i] for i in np.flatnonzero(absent)))
            shown = ", ".join(repr(t) for t in missing_ids[:5])
            more = ", ..." if len(missing_ids) > 5 else ""
            raise ArtifactError(
                f"{len(missing_ids)} track id(s) not in the embedding table "
                f"({len(self)} tracks): {shown}{more}"
            )
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        out[~absent] = self.vectors[rows[~absent]]
        out[absent] = self.vectors.mean(axis=0, dtype=np.float64).astype(np.float32)
        return out

    def to_csv(self, path: str | Path) -> None:
        """Write the table as CSV: header ``track_id,0,1,...,dim-1``, one row per track.

        Floats are written with ``'%.9g'``, which round-trips every float32 exactly; the same
        table always gives the same bytes (UTF-8, Unix line endings).

        Args:
            path: Destination file (its directory must exist).
        """
        with open(path, "w", encoding="utf-8", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(["track_id", *(str(j) for j in range(self.dim))])
            for track, vec in zip(self.track_ids.tolist(), self.vectors.tolist(), strict=True):
                writer.writerow([track, *(f"{v:.9g}" for v in vec)])

    @classmethod
    def from_csv(cls, path: str | Path) -> TrackEmbeddings:
        """Read a table written by :meth:`to_csv` (or any CSV of the same format).

        Args:
            path: The CSV file.

        Returns:
            The embeddings, rows in file order.

        Raises:
            ArtifactError: If the file does not exist.
            DataFormatError: If the file is not UTF-8 CSV text (or has a field longer than
                the csv module's limit), the header is not ``track_id,0,...,d-1``, a row has
                the wrong number of fields, a value is not a finite number, a track id is
                empty or repeated, or there are no rows. Line numbers count the header as
                line 1.
        """
        path = Path(path)
        if not path.is_file():
            raise ArtifactError(
                f"embedding file {str(path)!r} not found; write one with "
                "train_embeddings(...).to_csv(path)"
            )
        with _unreadable_csv(path), open(path, encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            if not header:
                raise DataFormatError(
                    f"{path}: line 1: file is empty, expected the header 'track_id,0,1,...,d-1'"
                )
            dim = len(header) - 1
            expected = ["track_id", *(str(j) for j in range(dim))]
            if dim < 1 or header != expected:
                raise DataFormatError(
                    f"{path}: line 1: expected the header 'track_id,0,1,...,d-1' (track_id "
                    f"then the column numbers 0..d-1 in order), got {','.join(header)!r}"
                )
            ids: list[str] = []
            rows: list[list[float]] = []
            seen: dict[str, int] = {}
            for fields in reader:
                line = reader.line_num
                if len(fields) != dim + 1:
                    raise DataFormatError(
                        f"{path}: line {line}: expected {dim + 1} fields (track_id and {dim} "
                        f"values), got {len(fields)}"
                    )
                track = fields[0]
                if not track:
                    raise DataFormatError(f"{path}: line {line}: column 'track_id' is empty")
                if track in seen:
                    raise DataFormatError(
                        f"{path}: line {line}: duplicate track id {track!r} "
                        f"(first on line {seen[track]})"
                    )
                seen[track] = line
                values: list[float] = []
                for j, text in enumerate(fields[1:]):
                    try:
                        value = float(text)
                    except ValueError:
                        value = math.nan
                    if not math.isfinite(value):
                        raise DataFormatError(
                            f"{path}: line {line}: column '{j}': expected a finite number, "
                            f"got {text!r}"
                        )
                    values.append(value)
                ids.append(track)
                rows.append(values)
        if not ids:
            raise DataFormatError(f"{path}: has a header but no rows; expected one row per track")
        return cls(np.array(ids, dtype=object), np.array(rows, dtype=np.float32))


@contextlib.contextmanager
def _unreadable_csv(path: Path) -> Iterator[None]:
    """Turn the csv module's and the decoder's errors into one :class:`DataFormatError`."""
    try:
        yield
    except (csv.Error, UnicodeDecodeError) as err:  # e.g. a field over csv's size limit
        raise DataFormatError(
            f"{path}: not a readable embeddings CSV ({type(err).__name__}: {err}); expected "
            "UTF-8 text with the header 'track_id,0,1,...,d-1'"
        ) from err
