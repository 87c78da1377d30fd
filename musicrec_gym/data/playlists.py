"""Deezer playlist corpora (token arrays) and the Deezer carousel-bandit feature files.

Playlist arrays. Caselles-Dupré et al. (2018), "Word2vec applied to Recommendation:
Hyperparameters Matter", ship their music corpora as a NumPy ``.npy`` file of shape
``(n_playlists,)``, each entry a list of tokens ``['track_<id>', 'artist_<id>', ...]``
(track and artist tokens interleaved). :func:`read_playlist_array` reads such a file (or
a 2-D string array of equal-length playlists, or a ``.npz`` holding one such array) into
one row per playlist with its track tokens and artist tokens in order; the track tokens
are what the embeddings learn from (:func:`playlist_tokens`).

An object array is stored with Python's pickle, which can run code when loaded; like
``numpy.load``, the reader refuses it unless ``allow_pickle=True`` (``--allow-pickle`` on
the command line): pass it only for files you trust.

Carousel features. Bendada et al. (2020), "Carousel Personalization in Music Streaming
Apps with Contextual Bandits", publish 862 playlist embeddings (96 dimensions and a bias,
header ``dim_0..dim_95,96``) and user embeddings (a segment id and 96 dimensions);
:func:`read_carousel_playlists` and :func:`read_carousel_users` read them.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from musicrec_gym.data.column_parsers import blank_rows, parse_float, parse_int
from musicrec_gym.data.loading import LINE, Loaded, LoadReport, RowDropper
from musicrec_gym.data.table_reader import read_table
from musicrec_gym.errors import ConfigError, DataFormatError, unknown_name_message

__all__ = [
    "TOKEN_KINDS",
    "playlist_tokens",
    "read_carousel_playlists",
    "read_carousel_users",
    "read_playlist_array",
]

#: Token prefixes of a Deezer playlist array: ``track_<id>`` and ``artist_<id>``.
TOKEN_KINDS = ("track", "artist")
_TOKEN = re.compile(r"(track|artist)_(\S+)")
_DIM = re.compile(r"dim_(\d+)")
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"
_EMPTY_ZIP_MAGIC = b"PK\x05\x06"


def _load_array(path: Path, allow_pickle: bool) -> np.ndarray:
    """The playlist array stored in a ``.npy`` file or a ``.npz`` archive.

    The file must start like one: ``numpy.load`` would otherwise unpickle any other file
    (with ``allow_pickle``), or blame pickling for a file that is just not NumPy's.
    """
    try:
        fh = open(path, "rb")  # noqa: SIM115 (closed below, also when numpy.load fails)
    except OSError as exc:
        raise DataFormatError(f"{path}: cannot read the file: {exc}") from exc
    with fh:
        head = fh.read(len(_NPY_MAGIC))
        if not head.startswith((_NPY_MAGIC, _ZIP_MAGIC, _EMPTY_ZIP_MAGIC)):
            what = "the file is empty" if not head else f"it starts with {head!r}"
            raise DataFormatError(
                f"{path}: not a NumPy .npy or .npz file ({what}); expected an array saved "
                "with numpy.save or numpy.savez"
            )
        fh.seek(0)
        return _load_open_array(path, fh, allow_pickle)


def _load_open_array(path: Path, fh, allow_pickle: bool) -> np.ndarray:
    """``numpy.load`` of the open file ``fh``, every failure one :class:`DataFormatError`."""
    try:
        data = np.load(fh, allow_pickle=allow_pickle)
        if not isinstance(data, np.lib.npyio.NpzFile):
            return data
        with data:
            names = list(data.files)
            if not names:
                raise DataFormatError(f"{path}: the .npz archive holds no array")
            if len(names) > 1 and "playlists" not in names:
                raise DataFormatError(
                    f"{path}: the .npz archive holds {len(names)} arrays "
                    f"({', '.join(names)}); name the playlist array 'playlists'"
                )
            return data["playlists" if "playlists" in names else names[0]]
    except DataFormatError:
        raise
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise DataFormatError(
                f"{path}: the array holds Python objects (playlists of different lengths "
                "are stored with pickle, which can run code when loaded); if you trust the "
                "file, pass allow_pickle=True (--allow-pickle on the command line)"
            ) from exc
        raise DataFormatError(
            f"{path}: not a readable NumPy .npy/.npz file, or truncated/corrupt ({exc})"
        ) from exc
    except (OSError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as exc:
        raise DataFormatError(
            f"{path}: not a readable NumPy .npy/.npz file, or truncated/corrupt "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def read_playlist_array(path: str | Path, *, allow_pickle: bool = False) -> Loaded:
    """Read a Deezer-style playlist array (``.npy`` or ``.npz``), validated.

    Every token must be a string ``track_<id>`` or ``artist_<id>`` (the id without
    spaces). Playlists dropped, each counted in the report: empty playlists and
    playlists without any track token. Rows of the report are playlists.

    Args:
        path: The file: a 1-D array of playlists (lists, tuples or 1-D arrays of tokens,
            stored as an object array) or a 2-D string array, one playlist per row; a
            ``.npz`` must hold one array or one named ``playlists``.
        allow_pickle: Allow an object array (stored with pickle, which can run code when
            loaded: only for files you trust).

    Returns:
        One row per kept playlist: ``playlist`` (int, its index in the file), ``tracks``
        (list of ``track_<id>`` tokens in order), ``artists`` (list of ``artist_<id>``
        tokens in order), ``n_tracks`` (int); and the report.

    Raises:
        DataFormatError: The file is missing, not a NumPy file, truncated, an object array
            without ``allow_pickle``, not 1-D or 2-D, or a token is not a
            ``track_<id>``/``artist_<id>`` string (the playlist index and position named).
    """
    path = Path(path)
    if not path.is_file():
        problem = "file not found" if not path.exists() else "not a file"
        raise DataFormatError(f"{path}: {problem}")
    array = _load_array(path, allow_pickle)
    if array.ndim not in (1, 2):
        raise DataFormatError(
            f"{path}: expected a 1-D array of playlists or a 2-D array with one playlist per "
            f"row, got shape {array.shape}"
        )
    if array.size == 0 and array.shape[0] == 0:
        raise DataFormatError(f"{path}: the array holds no playlist")
    rows: list[tuple[int, list[str], list[str]]] = []
    dropped = {"empty playlist": 0, "no track token": 0}
    bar = tqdm(array, desc="reading playlists", unit="playlist", disable=len(array) < 50_000)
    for index, playlist in enumerate(bar):
        if isinstance(playlist, str) or not isinstance(playlist, list | tuple | np.ndarray):
            raise DataFormatError(
                f"{path}: playlist {index} (0-based): expected a sequence of tokens, got "
                f"{type(playlist).__name__} {str(playlist)[:60]!r}"
            )
        tokens = [str(t) if isinstance(t, str) else t for t in playlist]  # np.str_ -> str
        if not tokens:
            dropped["empty playlist"] += 1
            continue
        tracks: list[str] = []
        artists: list[str] = []
        for position, token in enumerate(tokens, start=1):
            match = _TOKEN.fullmatch(token) if isinstance(token, str) else None
            if match is None:
                raise DataFormatError(
                    f"{path}: playlist {index} (0-based), token {position}: expected a string "
                    f"'track_<id>' or 'artist_<id>', got {token!r}"
                )
            (tracks if match.group(1) == "track" else artists).append(token)
        if not tracks:
            dropped["no track token"] += 1
            continue
        rows.append((index, tracks, artists))
    frame = pd.DataFrame(rows, columns=["playlist", "tracks", "artists"])
    frame["playlist"] = frame["playlist"].astype(np.int64)
    frame["n_tracks"] = frame["tracks"].map(len).astype(np.int64)
    report = LoadReport(str(path), len(array), len(frame), {k: v for k, v in dropped.items() if v})
    return Loaded(frame, report)


def playlist_tokens(frame: pd.DataFrame, kind: str = "track") -> list[list[str]]:
    """The playlists of :func:`read_playlist_array` as token lists, for word2vec.

    Args:
        frame: The frame of :func:`read_playlist_array`.
        kind: ``"track"`` (the track tokens, what the playlist-completion evaluation
            uses) or ``"artist"``.

    Returns:
        One list of tokens per playlist, in order.

    Raises:
        ConfigError: If ``kind`` is not ``"track"`` or ``"artist"``.
    """
    if kind not in TOKEN_KINDS:
        raise ConfigError(unknown_name_message("token kind", str(kind), TOKEN_KINDS))
    column = "tracks" if kind == "track" else "artists"
    return [list(tokens) for tokens in frame[column]]


def _read_features(
    path: str | Path, leading: tuple[str, ...], what: str
) -> tuple[pd.DataFrame, list[str]]:
    """Read a carousel CSV as text and find its ``dim_0 .. dim_{d-1}`` columns (in order)."""
    frame = read_table(path, leading, what=what, all_text=True)
    header = [c for c in frame.columns if c != LINE]
    dims = [c for c in header if _DIM.fullmatch(c)]
    if not dims or dims != [f"dim_{i}" for i in range(len(dims))]:
        shown = ", ".join(header[:6]) + (", ..." if len(header) > 6 else "")
        raise DataFormatError(
            f"{path}: line 1: expected the columns dim_0, dim_1, ... (consecutive, in order) "
            f"in the header of this {what}, got {shown}"
        )
    return frame, dims


def read_carousel_playlists(path: str | Path) -> Loaded:
    """Read the Deezer carousel playlist features (``dim_0..dim_{d-1}`` and a bias).

    Rows dropped, each counted in the report: blank lines.

    Args:
        path: The CSV (``playlist_features.csv``: header ``dim_0,...,dim_95,96``, the last
            column, named by the number of dimensions or ``bias``, is the bias).

    Returns:
        One row per playlist: ``playlist`` (int, the 0-based row, the playlist's id in
        the carousel simulation), ``dim_0..dim_{d-1}`` and ``bias`` (float); and the
        report.

    Raises:
        DataFormatError: The file is missing, empty or truncated, the header has no
            consecutive ``dim_`` columns or no bias column, or a value is not a finite number
            (file, line, column and value named).
    """
    frame, dims = _read_features(path, (), "Deezer carousel playlist-features file")
    bias = next((c for c in (str(len(dims)), "bias") if c in frame.columns), None)
    if bias is None:
        raise DataFormatError(
            f"{path}: line 1: missing the bias column after {dims[-1]} (named "
            f"'{len(dims)}' or 'bias') in the header of this Deezer carousel "
            "playlist-features file"
        )
    rows = RowDropper(frame)
    rows.drop(blank_rows(rows.frame), "blank line")
    frame = rows.frame
    out = pd.DataFrame(
        {"playlist": frame[LINE].to_numpy() - 2}
        | {c: parse_float(frame, c, path, finite=True) for c in dims}
        | {"bias": parse_float(frame, bias, path, finite=True)}
    )
    return Loaded(out, rows.report(path))


def read_carousel_users(path: str | Path) -> Loaded:
    """Read Deezer carousel user features (``segment`` and ``dim_0..dim_{d-1}``).

    Rows dropped, each counted in the report: blank lines.

    Args:
        path: The CSV (``user_features*.csv``: header ``segment,dim_0,...,dim_95``).

    Returns:
        One row per user in file order: ``segment`` (int >= 0, the user's cluster) and
        ``dim_0..dim_{d-1}`` (float); and the report.

    Raises:
        DataFormatError: The file is missing, empty or truncated, lacks ``segment`` or the
            ``dim_`` columns, or a value is of the wrong type (file, line, column and value
            named).
    """
    frame, dims = _read_features(path, ("segment",), "Deezer carousel user-features file")
    rows = RowDropper(frame)
    rows.drop(blank_rows(rows.frame), "blank line")
    frame = rows.frame
    out = pd.DataFrame(
        {"segment": parse_int(frame, "segment", path, minimum=0)}
        | {c: parse_float(frame, c, path, finite=True) for c in dims}
    )
    return Loaded(out, rows.report(path))
