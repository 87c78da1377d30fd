"""The retrieval's tables, made once per environment, and their compiled lookups.

:mod:`musicrec_gym.sim.retrieval` proposes candidates from these: each track's public
data in one cache line (:func:`track_records`, laid out by :func:`record_table`), the
tracks by popularity rank (:func:`popularity_ranks`) and Walker's alias table of their
play shares (:func:`alias_table`), each listener's cached tracks as a hash table
(:func:`cache_table`) and each listener's pool tracks in order of similarity
(:func:`continuation_order`). Why they are laid out so: see the retrieval's docstring.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from musicrec_gym.encoder_kernel import aligned_empty
from musicrec_gym.sim.constants import GOLDEN, JIT_OPTIONS

REC_EXTRA = 3
"""Columns of :func:`track_records` after the embedding: log-popularity, norm, artist."""
CACHE_SHIFT = 20
"""A :func:`cache_table` entry holds the track above this many bits and its place below."""


def track_records(emb: np.ndarray, plays: np.ndarray, artist: np.ndarray) -> np.ndarray:
    """Each track's public data in one float32 row: embedding, log-popularity, norm, artist.

    One row (64 bytes for d = 8, padded to a multiple of 16 floats) is one cache line:
    at catalog scale a candidate's features cost one memory access, not four.
    Log-popularity is ``log(1 + plays) / log(1 + most plays)``; the artist is exact in
    float32 (fewer than 2**24 artists).

    Raises:
        ValueError: 2**24 artists or more.
    """
    n, d = emb.shape
    if artist.max(initial=0) >= 2**24:
        raise ValueError("track_records holds artist codes as float32: fewer than 2**24 needed")
    width = -(-(d + REC_EXTRA) // 16) * 16
    rec = aligned_empty((n, width), np.float32)  # a row per cache line, not across two
    rec[:] = 0.0
    rec[:, :d] = emb
    logplays = np.log1p(np.asarray(plays, np.float64))
    rec[:, d] = logplays / max(float(logplays.max(initial=0.0)), 1e-12)
    rec[:, d + 1] = np.sqrt((emb.astype(np.float64) ** 2).sum(axis=1))
    rec[:, d + 2] = artist
    return rec


def source_counts(k: int, pop_share: float, continuation_share: float) -> tuple[int, int, int]:
    """How many continuations, personal and popular candidates a set of ``k`` holds."""
    n_pop = min(k, round(k * pop_share))
    n_cont = min(k - n_pop, round(k * continuation_share))
    return n_cont, k - n_pop - n_cont, n_pop


def popularity_ranks(popularity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tracks by popularity rank: ``(rank_track, rank_of, rank_share)``.

    ``rank_track[r]`` is the ``r``-th most popular track (ties: lower row first), so its
    first ``L`` entries are the popular list; ``rank_of`` inverts it; ``rank_share`` is
    each rank's play share (summing to 1). Tables in rank order keep the popular head,
    where most popularity draws land, together in the cache.
    """
    popularity = np.asarray(popularity, np.float64)
    rank_track = np.lexsort((np.arange(len(popularity)), -popularity)).astype(np.int64)
    rank_of = np.empty_like(rank_track)
    rank_of[rank_track] = np.arange(len(rank_track))
    share = popularity[rank_track]
    return rank_track, rank_of, share / share.sum()


def table_size(minimum: int) -> int:
    """Entries of an open-addressing table: the least power of 2 >= ``minimum`` (16 or more)."""
    size = 16
    while size < minimum:
        size *= 2
    return size


def set_size(k: int, history: int) -> int:
    """Entries of the per-slot set of played and proposed tracks: a power of 2, >= 4x them."""
    return table_size(4 * (k + history))


def continuation_order(pool_fact: np.ndarray) -> np.ndarray:
    """``order[u, q]``: listener ``u``'s pool positions, most similar to its pool track ``q`` first.

    ``pool_fact``: (n_users, pool, k) the track factors of each listener's pool (the
    logging policy's similarity is their dot product). Ties keep pool order (a stable
    sort); ``q`` itself comes last. ``(n_users, pool, pool)`` int16, made once per
    environment, so that a continuation after a pool track is a walk down one row rather
    than ``pool`` dot products and a sort.
    """
    n_users, pool = pool_fact.shape[:2]
    order = np.empty((n_users, pool, pool), np.int16)
    diag = np.arange(pool)
    for start in range(0, n_users, 64):
        vec = pool_fact[start : start + 64]  # (c, pool, k)
        sims = np.einsum("cpk,cqk->cpq", vec, vec)
        sims[:, diag, diag] = -np.inf
        order[start : start + 64] = np.argsort(-sims, axis=2, kind="stable")
    return order


@njit(**JIT_OPTIONS)
def hash_place(track, size) -> int:
    """A track's home place in a power-of-2 table of ``size`` (as :func:`_set_add`'s)."""
    return np.int64((np.uint64(track) * GOLDEN) >> np.uint64(40)) & (size - 1)


def cache_table(index: np.ndarray) -> np.ndarray:
    """Each listener's cached tracks (``ListenerCandidates.index``) as a hash table.

    Row ``u`` is an open-addressing table (linear probing, at most half full) of entries
    ``track << CACHE_SHIFT | place`` (-1: empty), so whether a track is in the
    listener's cache, and where, costs about one cache line (:func:`cache_pos`).

    Raises:
        ValueError: ``2**CACHE_SHIFT`` or more cached tracks per listener.
    """
    index = np.ascontiguousarray(index, dtype=np.int64)
    if index.shape[1] >= 2**CACHE_SHIFT:
        raise ValueError(f"cache_table holds places below 2**{CACHE_SHIFT}: {index.shape[1]} given")
    table = np.full((index.shape[0], table_size(2 * index.shape[1])), -1, np.int64)
    _fill_cache_table(index, table)
    return table


@njit(**JIT_OPTIONS)
def _fill_cache_table(index, table) -> None:
    """Insert every listener's cached tracks into its row of ``table`` (see :func:`cache_table`)."""
    size = table.shape[1]
    for u in range(index.shape[0]):
        for q in range(index.shape[1]):
            t = index[u, q]
            h = hash_place(t, size)
            while table[u, h] >= 0:
                h = (h + 1) & (size - 1)
            table[u, h] = (t << CACHE_SHIFT) | q


@njit(**JIT_OPTIONS)
def cache_pos(cache_tab, user, track) -> int:
    """``track``'s place among ``user``'s cached best tracks, or -1 (:func:`cache_table`)."""
    size = cache_tab.shape[1]
    h = hash_place(track, size)
    while True:
        entry = cache_tab[user, h]
        if entry < 0:
            return -1
        if entry >> CACHE_SHIFT == track:
            return entry & ((1 << CACHE_SHIFT) - 1)
        h = (h + 1) & (size - 1)


@njit(**JIT_OPTIONS)
def _push(i, scaled, small, large, counts) -> None:
    """Index ``i`` onto the small stack (``scaled[i] < 1``) or the large one (Vose)."""
    if scaled[i] < 1.0:
        small[counts[0]] = i
        counts[0] += 1
    else:
        large[counts[1]] = i
        counts[1] += 1


@njit(**JIT_OPTIONS)
def alias_table(share: np.ndarray) -> np.ndarray:
    """Walker's alias table (Vose's construction) of the distribution ``share`` (sums to 1).

    Row ``j`` is ``(threshold, alias)``: a uniform ``u`` picks ``j = floor(u n)`` and then
    ``j`` if ``u n - j < threshold``, else ``alias`` (a float64 holding an int, exact
    below 2**53). One 16-byte row per draw: a single memory access at catalog scale,
    where inverting the CDF costs a dependent chain of them. Each index is drawn with
    probability ``share`` up to float64 rounding.
    """
    n = share.shape[0]
    scaled = share * n
    table = np.empty((n, 2), np.float64)
    small = np.empty(n, np.int64)
    large = np.empty(n, np.int64)
    counts = np.zeros(2, np.int64)  # entries on the small and the large stack
    for i in range(n):
        _push(i, scaled, small, large, counts)
    while counts[0] > 0 and counts[1] > 0:
        counts -= 1
        lo, hi = small[counts[0]], large[counts[1]]
        table[lo, 0], table[lo, 1] = scaled[lo], hi
        scaled[hi] = (scaled[hi] + scaled[lo]) - 1.0
        _push(hi, scaled, small, large, counts)
    n_small, n_large = counts[0], counts[1]
    for j in range(n_large):  # what is left has probability 1 up to rounding
        table[large[j], 0], table[large[j], 1] = 1.0, large[j]
    for j in range(n_small):
        table[small[j], 0], table[small[j], 1] = 1.0, small[j]
    return table


@njit(**JIT_OPTIONS)
def alias_split(n, u) -> tuple[int, float]:
    """A uniform ``u`` as an alias table's row (of ``n``) and the fraction that picks in it."""
    x = u * n
    j = min(np.int64(x), n - 1)
    return j, x - j


@njit(**JIT_OPTIONS)
def alias_pick(alias, j, frac) -> int:
    """The index row ``j`` of :func:`alias_table` ``alias`` gives for the fraction ``frac``."""
    return j if frac < alias[j, 0] else np.int64(alias[j, 1])


@njit(**JIT_OPTIONS)
def alias_draw(alias, u) -> int:
    """The index a uniform ``u`` picks from :func:`alias_table` ``alias``."""
    j, frac = alias_split(alias.shape[0], u)
    return alias_pick(alias, j, frac)


def draw_table(alias: np.ndarray, rank_track: np.ndarray) -> np.ndarray:
    """:func:`alias_table` ``alias`` (over popularity ranks) with the tracks it picks.

    Row ``j`` is ``(threshold, alias, track of rank j, track of rank alias)``, 32 bytes
    within one cache line, so that a popularity draw reads its rank and its track in
    one memory access instead of two (:func:`draw_pick`).
    """
    table = aligned_empty((alias.shape[0], 4), np.float64)
    table[:, :2] = alias
    table[:, 2] = rank_track
    table[:, 3] = rank_track[alias[:, 1].astype(np.int64)]
    return table


@njit(**JIT_OPTIONS)
def draw_pick(table, j, frac) -> tuple[int, int]:
    """The rank and the track row ``j`` of :func:`draw_table` ``table`` gives for ``frac``.

    The rank is :func:`alias_pick`'s (the first two columns are the alias table).
    """
    if frac < table[j, 0]:
        return j, np.int64(table[j, 2])
    return np.int64(table[j, 1]), np.int64(table[j, 3])


def record_table(rec: np.ndarray, rank_track: np.ndarray, pools: np.ndarray) -> np.ndarray:
    """:func:`track_records` laid out for the retrieval's reads, one row per cache line.

    Rows ``0..n-1``: every track in popularity-rank order (popular candidates are read
    here, the popular head together). Then, per listener ``u``, its pool's tracks
    (``pools``, ``(n_users, pool)``) at rows ``n + u * pool + q``, so the continuations
    and personal candidates of a listener are read from a few kB rather than from
    across the catalog.
    """
    n, width = rec.shape
    table = aligned_empty((n + pools.size, width), np.float32)
    table[:n] = rec[rank_track]
    table[n:] = rec[pools.ravel()]
    return table
