"""The world's retrieval stage: K candidate tracks per slot, compiled, without catalog scans.

Candidate mode (``gym.make("MusicRec-v0", candidates=K)``,
:mod:`musicrec_gym.envs.candidates`) asks, at every decision point, for ``K`` distinct
tracks not played this session, drawn from the logging policy's three sources
(:mod:`musicrec_gym.sim.logging_policy`) in its shares (``logging_pop_share``,
``logging_continuation_share``, the rest personal):

1. ``n_cont = round(K * continuation_share)`` **continuations**: of the listener's pool
   (its ``logging_pool`` best tracks, cached by ``ListenerCandidates``), the tracks most
   similar to the last play (dot product of the world's track factors, as the logging
   policy's continuation), most similar first. Deterministic.
2. ``n_pers = K - n_pop - n_cont`` **personal** tracks: uniformly at random, without
   replacement, from the rest of the listener's pool (then, if it runs out, the
   listener's further cached best tracks in order).
3. ``n_pop = round(K * pop_share)`` **popular** tracks: drawn by play share from the
   popularity CDF, as the logging policy's popular pick (at most ``4 * n_pop`` draws),
   then, to fill, the catalog's most popular tracks in order (``popular_list``).

A track already played this session, or already taken by an earlier source, is
skipped, so the K candidates are always distinct and unplayed (the popular list holds
``K + history width`` tracks, enough to fill any shortfall).

**Random numbers.** A slot's uniforms at a decision point are a hash of its simulator
stream's key and counter (:func:`retrieval_uniform`): a pure function of where the
slot's trajectory stands. The simulator's own streams are never advanced (the catalog
setting's trajectories are untouched), a slot's candidates never depend on its batch,
and recomputing them (a reset mask, next-step autoreset rewinding a stream) gives the
same set.

**Cost, and why nothing scans the catalog.** Per slot and decision point:
O(K + history) set operations (an open-addressing set of the played and proposed
tracks), a walk down one row of the listener's precomputed continuation order
(:func:`continuation_order`: each pool track's pool neighbours, most similar first;
``pool`` dot products and a sort only when the last play is outside the pool), ``pool``
uniforms for the personal sample, O(1) expected steps per popularity draw (a guide
table over the CDF, :func:`popularity_guide`), and the candidates' features from one
row per track (:func:`track_records`). A candidate from the listener's cache is ranked
by the static logit the slot's state already holds; a track outside the cache cannot
score above the cache's threshold, so it is scored from the track factors only if that
bound comes near the best, and so are the best few (exactly, as a play is scored).
The pool and the popular list are precomputed; nothing is O(catalog).
The best candidate's expected reward (the candidate optimum) is computed with the
simulator's own compiled formulas, in its order of operations, so it equals the
``expected_reward`` a step reports for that track bit for bit. The simulator's
catalog optimum is its own: the cached best tracks (``ListenerCandidates``), O(m).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from musicrec_gym.encoder_kernel import aligned_empty
from musicrec_gym.sim.constants import GOLDEN, JIT_OPTIONS, MIX1, MIX2, SHIFT11, TO_UNIT, WINDOW
from musicrec_gym.sim.layout import (
    C_K,
    C_M,
    C_POOL,
    C_T,
    F_CST,
    F_THR,
    I_CAND,
    I_HIST,
    I_HLEN,
    I_USER,
    I_WA,
    I_WT,
    O_FACT,
    O_POPCDF,
    O_TASTE,
    O_TTERM,
    O_UTERM,
    P_A,
    P_ARTIST,
    P_B,
    P_REPEAT,
)
from musicrec_gym.sim.response import fatigue_one, sigmoid_one, static_logit, taste_dot
from musicrec_gym.sim.reward import expected_one

RETRIEVAL_SALT = np.uint64(0xC4A9D1DA7E5E7EC7)
"""Mixed into a slot's stream key so that the retrieval's numbers are its own."""
KIND_CONTINUATION, KIND_PERSONAL, KIND_POPULAR = 0, 1, 2
"""The source that proposed a candidate (``kinds`` of :func:`retrieve`)."""
KIND_NAMES = ("continuation", "personal", "popular")
POP_TRIES = 4
"""Popularity draws per popular candidate before the popular list fills the rest."""
N_FEATURES_EXTRA = 7
"""Candidate features after the embedding: see ``musicrec_gym.envs.candidates``."""
REC_EXTRA = 3
"""Columns of :func:`track_records` after the embedding: log-popularity, norm, artist."""
NEAR = 1e-9
"""Logits this close to the best ranked one are scored exactly (see ``_fill_slot``)."""


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


def popular_list(popularity: np.ndarray, length: int) -> np.ndarray:
    """The ``length`` most popular tracks, most popular first (ties: lower row first)."""
    length = min(length, len(popularity))
    top = np.argpartition(-popularity, length - 1)[:length]
    return top[np.lexsort((top, -popularity[top]))].astype(np.int64)


@njit(**JIT_OPTIONS)
def _mix(z):
    """SplitMix64's finaliser of one uint64 (as :func:`musicrec_gym.sim.rng.draw`)."""
    z = (z ^ (z >> np.uint64(30))) * MIX1
    z = (z ^ (z >> np.uint64(27))) * MIX2
    return z ^ (z >> np.uint64(31))


@njit(**JIT_OPTIONS)
def retrieval_base(key, counter):
    """A slot's retrieval hash at a decision point: of its stream's key and counter."""
    return _mix(_mix(key ^ RETRIEVAL_SALT) + counter * GOLDEN + GOLDEN)


@njit(**JIT_OPTIONS)
def retrieval_uniform(base, j):
    """The ``j``-th uniform in [0, 1) of a decision point (``base``: :func:`retrieval_base`)."""
    z = _mix(base + np.uint64(j + 1) * GOLDEN)
    return np.float64(z >> SHIFT11) * TO_UNIT


@njit(**JIT_OPTIONS)
def _set_add(table, track) -> bool:
    """Add ``track`` to an open-addressing set (-1: empty); False if it was there already."""
    mask = table.shape[0] - 1
    h = np.int64((np.uint64(track) * GOLDEN) >> np.uint64(40)) & mask
    while table[h] >= 0:
        if table[h] == track:
            return False
        h = (h + 1) & mask
    table[h] = track
    return True


def set_size(k: int, history: int) -> int:
    """Entries of the per-slot set of played and proposed tracks: a power of 2, >= 4x them."""
    size = 16
    while size < 4 * (k + history):
        size *= 2
    return size


def continuation_order(factors: np.ndarray, index: np.ndarray, pool: int) -> np.ndarray:
    """``order[u, q]``: listener ``u``'s pool positions, most similar to its pool track ``q`` first.

    Similarity is the dot product of the world's track factors (the logging policy's);
    ties keep pool order (a stable sort); ``q`` itself comes last. ``(n_users, pool,
    pool)`` int16, made once per environment, so that a continuation after a pool track
    is a walk down one row rather than ``pool`` dot products and a sort.
    """
    n_users = index.shape[0]
    order = np.empty((n_users, pool, pool), np.int16)
    diag = np.arange(pool)
    for start in range(0, n_users, 64):
        vec = factors[index[start : start + 64, :pool]]  # (c, pool, k)
        sims = np.einsum("cpk,cqk->cpq", vec, vec)
        sims[:, diag, diag] = -np.inf
        order[start : start + 64] = np.argsort(-sims, axis=2, kind="stable")
    return order


def cache_lookup(index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each listener's cached tracks (``ListenerCandidates.index``) sorted, and their places."""
    places = np.argsort(index, axis=1, kind="stable")
    return np.take_along_axis(index, places, axis=1), places.astype(np.int64)


def popularity_guide(pop_cdf: np.ndarray) -> np.ndarray:
    """``guide[b]``: the first track whose cumulative share exceeds ``b / n`` (n = len).

    A popularity draw ``u`` starts its search at ``guide[floor(u n) - 1]`` and walks
    forward: the same track as bisecting the whole CDF, in O(1) expected steps.
    """
    n = len(pop_cdf)
    return np.searchsorted(pop_cdf, np.arange(n) / n, side="right").astype(np.int64)


@njit(**JIT_OPTIONS)
def _cache_pos(cache_ids, cache_q, user, track) -> int:
    """``track``'s place among ``user``'s cached best tracks, or -1 (a binary search)."""
    lo, hi = 0, cache_ids.shape[1]
    while lo < hi:
        mid = (lo + hi) // 2
        if cache_ids[user, mid] < track:
            lo = mid + 1
        else:
            hi = mid
    if lo < cache_ids.shape[1] and cache_ids[user, lo] == track:
        return cache_q[user, lo]
    return -1


@njit(**JIT_OPTIONS)
def _retrieve_slot(cf, ci, ir, key, counter, n_cont, n_pers, n_pop, pop_top, order, guide,
                   cache_ids, cache_q, tracks, kinds, qpos, taken, sims, perm):  # fmt: skip
    """The K candidates of one slot (state row ``ir``) into ``tracks`` and ``kinds``.

    ``qpos`` gets each candidate's place in the listener's cached best tracks (-1 for a
    track outside them), where the slot's state holds its static logit.
    """
    k = tracks.shape[0]
    pool, m, dim, n_tracks = ci[C_POOL], ci[C_M], ci[C_K], ci[C_T]
    hist, hlen, cand = ci[I_HIST], ir[ci[I_HLEN]], ci[I_CAND]
    user = ir[ci[I_USER]]
    base = retrieval_base(key, counter)
    taken[:] = -1
    for j in range(hlen):
        _set_add(taken, ir[hist + j])
    n = 0
    # 1. continuations: the pool tracks most similar to the last play
    last = ir[ci[I_WT] + WINDOW - 1]
    if last >= 0 and n_cont > 0:
        at = -1
        for q in range(pool):
            if ir[cand + q] == last:
                at = q
                break
        if at >= 0:  # a pool track: its row of the precomputed order
            for j in range(pool):
                perm[j] = order[user, at, j]
        else:  # another track: its similarities, sorted (stable, most similar first)
            fact = ci[O_FACT]
            for q in range(pool):
                t = ir[cand + q]
                acc = 0.0
                for j in range(dim):
                    acc += cf[fact + t * dim + j] * cf[fact + last * dim + j]
                sims[q] = -acc
            perm[:pool] = np.argsort(sims[:pool], kind="mergesort")
        got = 0
        for j in range(pool):
            if got >= n_cont:
                break
            t = ir[cand + perm[j]]
            if _set_add(taken, t):
                tracks[n], kinds[n], qpos[n] = t, 0, perm[j]
                n += 1
                got += 1
    # 2. personal: a uniform sample of the rest of the pool, then the further cached tracks
    target = n + n_pers
    for q in range(pool):
        perm[q] = q
    for q in range(pool):
        if n >= target:
            break
        pick = q + min(np.int64(retrieval_uniform(base, q) * (pool - q)), pool - q - 1)
        perm[q], perm[pick] = perm[pick], perm[q]
        t = ir[cand + perm[q]]
        if _set_add(taken, t):
            tracks[n], kinds[n], qpos[n] = t, 1, perm[q]
            n += 1
    for q in range(pool, m):
        if n >= target:
            break
        t = ir[cand + q]
        if _set_add(taken, t):
            tracks[n], kinds[n], qpos[n] = t, 1, q
            n += 1
    # 3. popular: drawn by play share, then the most popular tracks in order
    pop_cdf = ci[O_POPCDF]
    for j in range(POP_TRIES * n_pop):
        if n >= k:
            break
        u = retrieval_uniform(base, pool + j)
        i = guide[max(np.int64(u * n_tracks) - 1, 0)]
        while i < n_tracks - 1 and cf[pop_cdf + i] <= u:  # searchsorted(side="right")
            i += 1
        if _set_add(taken, i):
            tracks[n], kinds[n], qpos[n] = i, 2, _cache_pos(cache_ids, cache_q, user, i)
            n += 1
    for j in range(pop_top.shape[0]):
        if n >= k:
            break
        t = pop_top[j]
        if _set_add(taken, t):
            tracks[n], kinds[n], qpos[n] = t, 2, _cache_pos(cache_ids, cache_q, user, t)
            n += 1


@njit(**JIT_OPTIONS)
def _exact_logit(cf, ci, uterm, taste, t, same) -> float:
    """Track ``t``'s listen logit now (not a repeat), as the simulator's step computes it."""
    dim = ci[C_K]
    static = static_logit(uterm, taste_dot(cf, taste, ci[O_FACT] + t * dim, dim),
                          cf[ci[O_TTERM] + t])  # fmt: skip
    return static - fatigue_one(cf[P_REPEAT], cf[P_ARTIST], False, same)


@njit(**JIT_OPTIONS)
def _fill_slot(cf, ci, ir, fr, tracks, kinds, qpos, rec, d, feats, approx) -> tuple[int, float]:
    """The candidates' features (see ``envs.candidates``); the best one and its expected reward.

    A candidate from the listener's cache is ranked by its cached static logit (the
    slot's state holds it: no read of the track's factors, which at catalog scale
    are cache misses). Any other track's static logit is at most the cache's
    threshold (``ListenerCandidates``), so such a candidate is scored only if that
    bound comes within ``NEAR`` of the best so far. Those within ``NEAR`` of the best
    are then scored exactly, as the simulator scores a played track, and the best of
    them (the first on ties) is the best candidate: the same one and the same
    expected reward as an exact score of every candidate, since the two scores
    differ by far less than ``NEAR``. Its expected reward needs one ``exp``.
    """
    k = tracks.shape[0]
    dim = ci[C_K]
    user = ir[ci[I_USER]]
    wa, wt = ci[I_WA], ci[I_WT]
    last = ir[wt + WINDOW - 1]
    last_artist = ir[wa + WINDOW - 1]
    uterm, taste = cf[ci[O_UTERM] + user], ci[O_TASTE] + user * dim
    cst, w_artist, threshold = ci[F_CST], cf[P_ARTIST], fr[ci[F_THR]]
    last_norm = np.float64(rec[last, d + 1]) if last >= 0 else 0.0
    top = -np.inf
    for c in range(k):
        t = tracks[c]
        artist = np.int64(rec[t, d + 2])
        same = 0
        for j in range(WINDOW):
            if ir[wa + j] == artist:
                same += 1
        q = qpos[c]
        if q >= 0:
            approx[c] = fr[cst + q] - w_artist * same
            top = max(top, approx[c])
        else:  # a bound for now; scored below if it could matter
            approx[c] = threshold - w_artist * same
        dot = 0.0
        if last >= 0:
            for j in range(d):
                dot += np.float64(rec[t, j]) * rec[last, j]
        for j in range(d):
            feats[c, j] = rec[t, j]
        feats[c, d] = rec[t, d]
        feats[c, d + 1] = 1.0 if (last >= 0 and artist == last_artist) else 0.0
        feats[c, d + 2] = same / WINDOW
        norm = np.float64(rec[t, d + 1]) * last_norm
        feats[c, d + 3] = min(1.0, max(-1.0, dot / norm)) if norm > 0 else 0.0
        kind = kinds[c]
        feats[c, d + 4] = 1.0 if kind == 0 else 0.0
        feats[c, d + 5] = 1.0 if kind == 1 else 0.0
        feats[c, d + 6] = 1.0 if kind == 2 else 0.0
    for c in range(k):
        if qpos[c] < 0:
            if approx[c] >= top - NEAR:
                same = np.int64(feats[c, d + 2] * WINDOW + 0.5)
                approx[c] = _exact_logit(cf, ci, uterm, taste, tracks[c], same)
                top = max(top, approx[c])
            else:
                approx[c] = -np.inf
    best, best_logit = -1, -np.inf
    for c in range(k):
        if approx[c] >= top - NEAR:
            artist = np.int64(rec[tracks[c], d + 2])
            same = 0
            for j in range(WINDOW):
                if ir[wa + j] == artist:
                    same += 1
            logit = _exact_logit(cf, ci, uterm, taste, tracks[c], same)
            if best < 0 or logit > best_logit:
                best, best_logit = c, logit
    return best, expected_one(cf[P_A], cf[P_B], sigmoid_one(best_logit))


@njit(parallel=True, **JIT_OPTIONS)
def retrieve(cf, ci, si, sf, rng, slots, n_cont, n_pers, n_pop, pop_top, order, guide,
             cache_ids, cache_q, rec, d, tracks, kinds, feats, best, best_reward,
             set_size):  # fmt: skip
    """Candidates of ``slots`` (rows of ``tracks`` ... in ``slots``' order), over the cores.

    Args:
        cf: The compiled simulator's float constants (``CompiledSimulator.cf``).
        ci: Its integer constants and layout (``ci``).
        si: Its integer state, a row per slot (``int_state``).
        sf: Its float state (``float_state``): the cached tracks' static logits.
        rng: Its streams' keys and counters (``streams.state``).
        slots: (R,) slots to propose for.
        n_cont: Continuations per set (:func:`source_counts`).
        n_pers: Personal tracks per set.
        n_pop: Popular tracks per set.
        pop_top: The popular list (:func:`popular_list`), ``K + history width`` long.
        order: :func:`continuation_order`.
        guide: :func:`popularity_guide`.
        cache_ids: (n_users, m) each listener's cached tracks, sorted by track row.
        cache_q: (n_users, m) their places in the cache (:func:`cache_lookup`).
        rec: :func:`track_records`, each track's public data in one row.
        d: The embedding's dimension (its columns in ``rec``).
        tracks: (R, K) int64 out: the candidates' catalog rows.
        kinds: (R, K) int64 out: their source (``KIND_*``).
        feats: (R, K, d + 7) float32 out: their features.
        best: (R,) int64 out: the index of the best candidate (the first on ties).
        best_reward: (R,) float64 out: its expected reward, computed as the simulator
            computes a played track's (the same floats).
        set_size: :func:`set_size` of K and the history width.
    """
    n_rows = slots.shape[0]
    pool = ci[C_POOL]
    for r in prange(n_rows):
        s = slots[r]
        ir = si[s]
        taken = np.empty(set_size, np.int64)
        sims = np.empty(pool, np.float64)
        perm = np.empty(pool, np.int64)
        qpos = np.empty(tracks.shape[1], np.int64)
        approx = np.empty(tracks.shape[1], np.float64)
        _retrieve_slot(cf, ci, ir, rng[s, 0], rng[s, 1], n_cont, n_pers, n_pop, pop_top,
                       order, guide, cache_ids, cache_q, tracks[r], kinds[r], qpos, taken, sims,
                       perm)  # fmt: skip
        j, value = _fill_slot(cf, ci, ir, sf[s], tracks[r], kinds[r], qpos, rec, d, feats[r],
                              approx)  # fmt: skip
        best[r], best_reward[r] = j, value
