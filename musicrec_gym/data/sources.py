"""Token sequences from any supported source, for word2vec and its playlist-completion test.

One function, :func:`token_sessions`, turns a file of any format the project reads into
the input :mod:`musicrec_gym.embeddings` expects: a list of sessions, each a list of track
tokens in play order. What a session is depends on the source:

==========  ===========================================================================
kind        one sequence is
==========  ===========================================================================
mssd        an MSSD session (rows of one ``session_id`` by ``session_position``);
            tokens are ``track_id`` (``track_id_clean``), skipped plays included
lastfm      a Last.fm listening session: a user's plays cut where the gap between two
            plays exceeds ``gap_minutes`` (default 20;
            :func:`musicrec_gym.data.sessionize.sessionise`); tokens are ``track_key``
            (the track mbid, else ``"artist - title"``)
playlists   a playlist of a Deezer-style array; tokens are its ``track_<id>`` tokens
            (artist tokens left out)
events      all of one user's events in file order (the log has no timestamps, so
            there is nothing to cut sessions by); tokens are ``item_id``, every event
            type included (a skip is still a co-occurrence)
==========  ===========================================================================

:func:`load_token_sessions` returns the same sessions with the loader's report (rows
dropped and why), which the ``musicrec embeddings`` command prints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from musicrec_gym.data.loading import LoadReport
from musicrec_gym.embeddings import EmbeddingConfig, sweep
from musicrec_gym.errors import ConfigError, unknown_name_message

__all__ = [
    "SOURCE_KINDS",
    "SWEEP_COLUMNS",
    "TokenSessions",
    "load_token_sessions",
    "sweep_markdown",
    "sweep_source",
    "token_sessions",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenSessions:
    """Token sequences of a source and how they were read.

    Attributes:
        kind: The source format (one of :data:`SOURCE_KINDS`).
        sessions: One list of track tokens per session/playlist/user, in order.
        report: The loader's report (rows read, kept, dropped by reason).
        note: What one sequence is, for printing (e.g. "Last.fm sessions, 20-minute gap").
    """

    kind: str
    sessions: list[list[str]]
    report: LoadReport
    note: str

    @property
    def n_tokens(self) -> int:
        """Total number of tokens (plays) over all sessions."""
        return sum(len(s) for s in self.sessions)

    @property
    def n_tracks(self) -> int:
        """Number of distinct tokens (tracks)."""
        return len({t for s in self.sessions for t in s})


def _split_runs(keys: np.ndarray, tokens: np.ndarray) -> list[list[str]]:
    """Cut ``tokens`` where ``keys`` changes (rows of one key must be contiguous)."""
    if len(keys) == 0:
        return []
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return [chunk.tolist() for chunk in np.split(tokens.astype(object), starts[1:])]


def _mssd(path: Path) -> TokenSessions:
    from musicrec_gym.data.mssd import read_mssd_log

    loaded = read_mssd_log(path)
    frame = loaded.frame  # sorted by (session_id, session_position)
    sessions = _split_runs(frame["session_id"].to_numpy(), frame["track_id"].to_numpy())
    return TokenSessions("mssd", sessions, loaded.report, "MSSD sessions")


def _lastfm(path: Path, gap_minutes: float = 20.0) -> TokenSessions:
    from musicrec_gym.data.lastfm import read_lastfm_history
    from musicrec_gym.data.sessionize import check_gap_minutes, sessionise

    check_gap_minutes(gap_minutes)  # before the (possibly long) read
    loaded = read_lastfm_history(path)
    frame = sessionise(loaded.frame, gap_minutes=gap_minutes)  # sorted by (user, time)
    sessions = _split_runs(frame["session_id"].to_numpy(), frame["track_key"].to_numpy())
    note = f"Last.fm sessions ({gap_minutes:g}-minute gap)"
    return TokenSessions("lastfm", sessions, loaded.report, note)


def _playlists(path: Path, allow_pickle: bool = False) -> TokenSessions:
    from musicrec_gym.data.playlists import playlist_tokens, read_playlist_array

    loaded = read_playlist_array(path, allow_pickle=allow_pickle)
    sessions = playlist_tokens(loaded.frame, "track")
    return TokenSessions("playlists", sessions, loaded.report, "playlists (track tokens)")


def _events(path: Path) -> TokenSessions:
    from musicrec_gym.data.events import read_event_log

    loaded = read_event_log(path)
    frame = loaded.frame
    order = pd.Index(frame["user_id"]).unique()  # users in order of first appearance
    grouped = frame.groupby("user_id", sort=False)["item_id"].agg(list)
    sessions = [list(grouped[u]) for u in order]
    return TokenSessions("events", sessions, loaded.report, "users' events in file order")


_READERS: dict[str, Callable[..., TokenSessions]] = {
    "mssd": _mssd,
    "lastfm": _lastfm,
    "playlists": _playlists,
    "events": _events,
}
_OPTIONS: dict[str, tuple[str, ...]] = {
    "mssd": (),
    "lastfm": ("gap_minutes",),
    "playlists": ("allow_pickle",),
    "events": (),
}

#: The source formats :func:`token_sessions` reads.
SOURCE_KINDS = tuple(_READERS)


def load_token_sessions(kind: str, path: str | Path, **options: Any) -> TokenSessions:
    """Read a source file and cut it into token sequences (see the module docstring).

    Args:
        kind: ``"mssd"``, ``"lastfm"``, ``"playlists"`` or ``"events"``.
        path: The file.
        **options: Format options: ``gap_minutes`` (lastfm, default 20) and
            ``allow_pickle`` (playlists, default False; object arrays need it).

    Returns:
        The sequences, the loader's report and a description. Rows the loader dropped
        are also logged as a warning.

    Raises:
        ConfigError: If ``kind`` is unknown or an option does not apply to it (with a
            "did you mean" hint and the allowed names).
        DataFormatError: As the format's loader.
    """
    if kind not in _READERS:
        raise ConfigError(unknown_name_message("source format", str(kind), SOURCE_KINDS))
    allowed = _OPTIONS[kind]
    for name in options:
        if name not in allowed:
            hint = unknown_name_message(f"option for {kind!r} sources", name, allowed)
            raise ConfigError(hint if allowed else f"{kind!r} sources take no option {name!r}")
    result = _READERS[kind](Path(path), **options)
    if result.report.dropped:
        logger.warning("%s", result.report.summary())
    return result


def token_sessions(kind: str, path: str | Path, **options: Any) -> list[list[str]]:
    """Token sequences of a source file, ready for :func:`musicrec_gym.embeddings.sweep`.

    Args:
        kind: ``"mssd"``, ``"lastfm"``, ``"playlists"`` or ``"events"``.
        path: The file.
        **options: See :func:`load_token_sessions`.

    Returns:
        One list of track tokens per session (see the table in the module docstring).

    Raises:
        ConfigError: If ``kind`` or an option is unknown.
        DataFormatError: As the format's loader.
    """
    return load_token_sessions(kind, path, **options).sessions


#: Columns of the table written by :func:`sweep_source`.
SWEEP_COLUMNS = (
    "ns_exponent", "hit", "ndcg", "pop_hit", "pop_ndcg", "n_queries", "n_sessions", "n_tracks",
)  # fmt: skip


def sweep_source(
    source: TokenSessions,
    ns_exponents: Sequence[float],
    base: EmbeddingConfig | None = None,
    k: int = 10,
    out_dir: str | Path | None = None,
) -> pd.DataFrame:
    """Playlist-completion scores of skip-gram embeddings of a source, one run per exponent.

    Reuses :func:`musicrec_gym.embeddings.sweep` (gensim training and the evaluation of
    docs/design.md §2: the last track of each sequence predicted from the one before, Hit@K and
    NDCG@K against the most-popular baseline) and adds the size of the corpus.

    Args:
        source: The sequences (:func:`load_token_sessions`).
        ns_exponents: Values of gensim's ``ns_exponent``, one run each, in order.
        base: The other hyperparameters (dimension, epochs, seed, ...); default
            :class:`~musicrec_gym.embeddings.EmbeddingConfig`'s.
        k: Length of the recommendation list.
        out_dir: If given, ``embedding_sweep.csv`` and ``embedding_sweep.md`` are written
            there (created if needed).

    Returns:
        One row per exponent, the columns :data:`SWEEP_COLUMNS`.

    Raises:
        ConfigError: If an exponent or a field of ``base`` is invalid.
        DataFormatError: If no sequence has at least 3 tracks.
    """
    base = EmbeddingConfig() if base is None else base
    table = sweep(source.sessions, "ns_exponent", list(ns_exponents), base=base, k=k)
    table = table.rename(columns={"value": "ns_exponent"}).drop(columns=["param"])
    table["n_sessions"] = len(source.sessions)
    table["n_tracks"] = source.n_tracks
    table = table[list(SWEEP_COLUMNS)]
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        table.to_csv(out / "embedding_sweep.csv", index=False, lineterminator="\n")
        (out / "embedding_sweep.md").write_text(
            sweep_markdown(table, source, base, k), encoding="utf-8"
        )
    return table


def sweep_markdown(
    table: pd.DataFrame, source: TokenSessions, base: EmbeddingConfig, k: int = 10
) -> str:
    """The Markdown of a :func:`sweep_source` table, with what was run on what.

    Args:
        table: The table of :func:`sweep_source`.
        source: The sequences it was run on.
        base: The fixed hyperparameters.
        k: Length of the recommendation list.

    Returns:
        A title, one sentence of context and the table (scores to 4 decimals).
    """
    lines = [
        f"# Playlist completion on {Path(source.report.path).name}: ns_exponent sweep",
        "",
        f"{source.note}: {len(source.sessions):,} sequences, {source.n_tokens:,} tokens, "
        f"{source.n_tracks:,} distinct tracks ({source.report.summary()}). Skip-gram "
        f"(gensim) with dim={base.dim}, window={base.window}, negative={base.negative}, "
        f"epochs={base.epochs}, seed={base.seed}; the last track of each sequence of 3 or "
        f"more is predicted from the one before among {k} cosine nearest neighbours.",
        "",
        f"| ns_exponent | Hit@{k} | NDCG@{k} | popular Hit@{k} | popular NDCG@{k} "
        "| queries | sequences | tracks |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in table.to_dict("records"):
        lines.append(
            f"| {row['ns_exponent']:g} | {row['hit']:.4f} | {row['ndcg']:.4f} "
            f"| {row['pop_hit']:.4f} | {row['pop_ndcg']:.4f} | {row['n_queries']:,} "
            f"| {row['n_sessions']:,} | {row['n_tracks']:,} |"
        )
    return "\n".join(lines) + "\n"
