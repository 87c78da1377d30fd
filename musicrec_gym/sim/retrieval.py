"""The world's retrieval stage: K candidate tracks per slot, compiled, without catalog scans.

The tables it reads are made once per environment by
:mod:`musicrec_gym.sim.retrieval_tables` (``alias_table``, ``cache_table``, ``record_table``, ...).

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
3. ``n_pop = round(K * pop_share)`` **popular** tracks: drawn by play share, as the
   logging policy's popular pick (from an alias table, :func:`alias_table`, where the
   logging policy inverts the CDF: the same distribution, other draws; at most
   ``4 * n_pop`` draws), then, to fill, the catalog's most popular tracks in order
   (``rank_track`` of :func:`popularity_ranks`).

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
uniforms for the personal sample, one alias-table row per popularity draw (which holds
the drawn rank's track too: ``draw_table``) and one hash-table probe to find whether the
drawn track is cached for the listener (:func:`cache_table`), and the candidates'
features from one row each (:func:`record_table`). A candidate from the listener's
cache is ranked by the static logit the slot's state already holds; a track outside the
cache cannot score above the cache's threshold, so it is scored from the track factors
only if that bound comes near the best, and so are the best few (exactly, as a play is
scored).
The pool and the popular list are precomputed; nothing is O(catalog).

**Memory layout.** At 1,000,000 tracks the catalog's tables are far larger than the
processor's caches, so what a step reads is laid out to come in few cache lines: each
listener's pool has its records (:func:`record_table`) and track factors
(``pool_fact``) together, popular tracks are read in rank order (the head of every
table together). Popularity draws land all over the catalog (in the benchmark's world of
1,000,000 tracks the 4,096 most popular hold 7% of the plays), so each costs memory
misses; a round of draws is made in passes, one table at a time (:func:`_draw_round`),
and a set's rows are read in one pass before its features are computed
(``_fill_slot``), so that the misses overlap rather than queue. While a slot is worked
on, the next slot's first reads are asked for by software prefetch
(:func:`_prefetch_slot`).
The best candidate's expected reward (the candidate optimum) is computed with the
simulator's own compiled formulas, in its order of operations, so it equals the
``expected_reward`` a step reports for that track bit for bit. The simulator's
catalog optimum is its own: the cached best tracks (``ListenerCandidates``), O(m).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from musicrec_gym.sim.constants import GOLDEN, JIT_OPTIONS, MIX1, MIX2, SHIFT11, TO_UNIT, WINDOW
from musicrec_gym.sim.layout import (
    C_HW,
    C_K,
    C_M,
    C_POOL,
    F_CST,
    F_THR,
    I_CAND,
    I_HIST,
    I_HLEN,
    I_USER,
    I_WA,
    I_WT,
    O_FACT,
    O_TASTE,
    O_TTERM,
    O_UTERM,
    P_A,
    P_ARTIST,
    P_B,
    P_REPEAT,
)
from musicrec_gym.sim.prefetch import prefetch
from musicrec_gym.sim.response import fatigue_one, sigmoid_one, static_logit, taste_dot
from musicrec_gym.sim.retrieval_tables import alias_split, cache_pos, draw_pick, hash_place
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
CHUNK = 16
"""Slots per parallel task of :func:`retrieve` (their scratch arrays are made once)."""
NEAR = 1e-9
"""Logits this close to the best ranked one are scored exactly (see ``_fill_slot``)."""


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
    h = hash_place(track, table.shape[0])
    while table[h] >= 0:
        if table[h] == track:
            return False
        h = (h + 1) & mask
    table[h] = track
    return True


@njit(**JIT_OPTIONS)
def stable_order(keys, perm, n):
    """``perm[:n]``: ``0..n-1`` sorted by ``keys`` ascending, ties in index order (stable).

    Each key's place is counted (the keys below it, and the equal ones before it): n²
    comparisons without a branch or a chain of dependent reads, which the compiler runs
    several at a time, where an insertion sort waits on each of its ~n²/4 steps (1.7x
    faster at n = 50). The same order as any stable sort, for keys that are not NaN.
    """
    for i in range(n):
        v = keys[i]
        place = 0
        for j in range(n):
            w = keys[j]
            place += (w < v) | ((w == v) & (j < i))
        perm[place] = i


@njit(**JIT_OPTIONS)
def _draw_round(draw_tab, tab, cache_row, base, start, n_pop, draws, fracs) -> float:
    """A round of ``n_pop`` popularity draws (uniforms ``start``, ...) into ``draws``.

    ``draws[j]`` gets draw ``j``'s popularity rank and ``draws[n_pop + j]`` its track.
    At catalog scale each draw lands on a row of the draw table, the record table and
    the listener's cache table that no other slot has read: memory misses. The round
    is made in passes, the arithmetic first and then one pass per table, so that
    within a pass the reads do not depend on each other and the core fetches them all
    at once instead of one chain after another (1.1x on the whole candidate-mode step
    at 1,000,000 tracks). Returns a sum of what was read, for the caller to keep (so
    that the compiler keeps the reads).
    """
    n = draw_tab.shape[0]
    for j in range(n_pop):  # arithmetic only
        draws[j], fracs[j] = alias_split(n, retrieval_uniform(base, start + j))
    for j in range(n_pop):  # the draw table's rows: rank and track (``alias_draw``'s rank)
        draws[j], draws[n_pop + j] = draw_pick(draw_tab, draws[j], fracs[j])
    sink = 0.0
    for j in range(n_pop):  # their records
        sink += tab[draws[j], 0]
    for j in range(n_pop):  # where each would sit in the listener's cache table
        sink += cache_row[hash_place(draws[n_pop + j], cache_row.shape[0])]
    return sink


@njit(**JIT_OPTIONS)
def _retrieve_slot(cf, ci, ir, key, counter, n_cont, n_pers, n_pop, n_top, order, pool_fact,
                   draw_tab, rank_track, rank_of, cache_tab, tab, tracks, kinds, qpos, rows,
                   taken, sims, perm, draws, fracs) -> int:  # fmt: skip
    """The K candidates of one slot (state row ``ir``) into ``tracks`` and ``kinds``.

    ``qpos`` gets each candidate's place in the listener's cached best tracks (-1 for a
    track outside them), where the slot's state holds its static logit; ``rows`` its
    row of :func:`record_table`. Returns the last play's row there (-1: none).
    """
    k = tracks.shape[0]
    pool, m, dim = ci[C_POOL], ci[C_M], ci[C_K]
    n_tracks = rank_track.shape[0]
    hist, hlen, cand = ci[I_HIST], ir[ci[I_HLEN]], ci[I_CAND]
    user = ir[ci[I_USER]]
    own = n_tracks + user * pool  # the listener's pool rows in the record table
    base = retrieval_base(key, counter)
    taken[:] = -1
    for j in range(hlen):
        _set_add(taken, ir[hist + j])
    n = 0
    last = ir[ci[I_WT] + WINDOW - 1]
    at = -1
    if last >= 0:
        for q in range(pool):
            if ir[cand + q] == last:
                at = q
                break
    last_row = -1 if last < 0 else (own + at if at >= 0 else rank_of[last])
    # 1. continuations: the pool tracks most similar to the last play
    if last >= 0 and n_cont > 0:
        if at >= 0:  # a pool track: its row of the precomputed order
            for j in range(pool):
                perm[j] = order[user, at, j]
        else:  # another track: its similarities, sorted (stable, most similar first)
            # the pool's factors are stored dimension-major, so that the pool's dot
            # products run side by side, each summed in dimension order and negated as
            # it goes (the same bits as negating the sum, but for the sign of a zero)
            fact, pf = ci[O_FACT] + last * dim, pool_fact[user]
            for q in range(pool):
                sims[q] = 0.0
            for j in range(dim):
                f = cf[fact + j]
                for q in range(pool):
                    sims[q] -= pf[j, q] * f
            stable_order(sims, perm, pool)
        got = 0
        for j in range(pool):
            if got >= n_cont:
                break
            t = ir[cand + perm[j]]
            if _set_add(taken, t):
                tracks[n], kinds[n], qpos[n], rows[n] = t, 0, perm[j], own + perm[j]
                n += 1
                got += 1
    # 2. personal: a uniform sample of the rest of the pool, then the further cached tracks
    target = n + n_pers
    for q in range(pool):  # the uniforms first (into ``sims``, free by now): side by side
        perm[q] = q
        sims[q] = retrieval_uniform(base, q)
    for q in range(pool):
        if n >= target:
            break
        pick = q + min(np.int64(sims[q] * (pool - q)), pool - q - 1)
        perm[q], perm[pick] = perm[pick], perm[q]
        t = ir[cand + perm[q]]
        if _set_add(taken, t):
            tracks[n], kinds[n], qpos[n], rows[n] = t, 1, perm[q], own + perm[q]
            n += 1
    for q in range(pool, m):
        if n >= target:
            break
        t = ir[cand + q]
        if _set_add(taken, t):
            tracks[n], kinds[n], qpos[n], rows[n] = t, 1, q, rank_of[t]
            n += 1
    # 3. popular: drawn by play share, then the most popular tracks in order (the draws
    # of a round are made first, apart from the set: see ``_draw_round``).
    sink = 0.0
    for first in range(0, POP_TRIES * n_pop, max(n_pop, 1)):
        if n >= k:
            break
        sink += _draw_round(draw_tab, tab, cache_tab[user], base, pool + first, n_pop, draws,
                            fracs)  # fmt: skip
        for j in range(n_pop):
            if n >= k:
                break
            i, t = draws[j], draws[n_pop + j]
            if _set_add(taken, t):
                tracks[n], kinds[n], rows[n] = t, 2, i
                qpos[n] = cache_pos(cache_tab, user, t)
                n += 1
    for i in range(n_top):
        if n >= k:
            break
        t = rank_track[i]
        if _set_add(taken, t):
            tracks[n], kinds[n], rows[n] = t, 2, i
            qpos[n] = cache_pos(cache_tab, user, t)
            n += 1
    draws[2 * n_pop] = np.int64(sink != sink)  # stored, so the compiler keeps the early reads
    return last_row


@njit(**JIT_OPTIONS)
def _exact_logit(cf, ci, uterm, taste, t, same) -> float:
    """Track ``t``'s listen logit now (not a repeat), as the simulator's step computes it."""
    dim = ci[C_K]
    static = static_logit(uterm, taste_dot(cf, taste, ci[O_FACT] + t * dim, dim),
                          cf[ci[O_TTERM] + t])  # fmt: skip
    return static - fatigue_one(cf[P_REPEAT], cf[P_ARTIST], False, same)


@njit(**JIT_OPTIONS)
def _fill_slot(cf, ci, ir, fr, tracks, kinds, qpos, rows, last_row, tab, d, feats, approx,
               window) -> tuple[int, float]:  # fmt: skip
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
    Each candidate's public data is one row of ``tab`` (:func:`record_table`).
    """
    k = tracks.shape[0]
    dim = ci[C_K]
    user = ir[ci[I_USER]]
    wa = ci[I_WA]
    for j in range(WINDOW):
        window[j] = ir[wa + j]
    last_artist = window[WINDOW - 1]
    uterm, taste = cf[ci[O_UTERM] + user], ci[O_TASTE] + user * dim
    cst, w_artist, threshold = ci[F_CST], cf[P_ARTIST], fr[ci[F_THR]]
    last_norm = np.float64(tab[last_row, d + 1]) if last_row >= 0 else 0.0
    top = -np.inf
    touch = 0.0
    for c in range(k):  # the candidates' rows, read at once: the loop below then hits the cache
        touch += tab[rows[c], 0]
    approx[k] = touch  # kept (a place nothing overwrites), so the compiler keeps the reads
    for c in range(k):
        row = rows[c]
        artist = np.int64(tab[row, d + 2])
        same = 0
        for j in range(WINDOW):
            if window[j] == artist:
                same += 1
        q = qpos[c]
        if q >= 0:
            approx[c] = fr[cst + q] - w_artist * same
            top = max(top, approx[c])
        else:  # a bound for now; scored below if it could matter
            approx[c] = threshold - w_artist * same
        dot = 0.0
        if last_row >= 0:
            for j in range(d):
                dot += np.float64(tab[row, j]) * tab[last_row, j]
        for j in range(d):
            feats[c, j] = tab[row, j]
        feats[c, d] = tab[row, d]
        feats[c, d + 1] = 1.0 if (last_row >= 0 and artist == last_artist) else 0.0
        feats[c, d + 2] = same / WINDOW
        norm = np.float64(tab[row, d + 1]) * last_norm
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
            same = np.int64(feats[c, d + 2] * WINDOW + 0.5)
            logit = _exact_logit(cf, ci, uterm, taste, tracks[c], same)
            if best < 0 or logit > best_logit:
                best, best_logit = c, logit
    return best, expected_one(cf[P_A], cf[P_B], sigmoid_one(best_logit))


@njit(**JIT_OPTIONS)
def _prefetch_slot(ci, ir, fr, key, counter, n_pop, draw_tab, tab, n_tracks) -> None:
    """Ask for what a slot's retrieval reads first (state rows ``ir``, ``fr``), unwaited.

    Its history, window and pool in the state rows, the pool's cached logits, the
    pool's rows of the record table (``tab``: :func:`record_table`, whose first
    ``n_tracks`` rows are the catalog's) and the draw-table rows of its first round of
    popularity draws (``draw_tab``: ``draw_table``; the uniforms are recomputed, which
    is arithmetic only). Called for the next slot while this one is worked on.
    """
    pool = ci[C_POOL]
    hist, cand, cst = ci[I_HIST], ci[I_CAND], ci[F_CST]
    for j in range(0, ci[C_HW] + 8, 8):  # 8 int64 or float64 per cache line
        prefetch(ir, hist + j)
    for q in range(0, pool + 8, 8):
        prefetch(ir, cand + q)
        prefetch(fr, cst + q)
    prefetch(ir, ci[I_WT])
    prefetch(ir, ci[I_WA])
    own = n_tracks + ir[ci[I_USER]] * pool
    for q in range(pool):
        prefetch(tab[own + q], 0)
    base = retrieval_base(key, counter)
    for j in range(n_pop):
        row, _ = alias_split(draw_tab.shape[0], retrieval_uniform(base, pool + j))
        prefetch(draw_tab[row], 0)


@njit(parallel=True, **JIT_OPTIONS)
def retrieve(cf, ci, si, sf, rng, slots, n_cont, n_pers, n_pop, n_top, order, pool_fact, draw_tab,
             rank_track, rank_of, cache_tab, tab, d, tracks, kinds, feats, best,
             best_reward, set_size):  # fmt: skip
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
        n_top: Length of the popular list that fills a shortfall (``K + history width``).
        order: :func:`continuation_order`.
        pool_fact: (n_users, dim, pool) the track factors of each listener's pool,
            dimension-major (``Retrieval.pool_fact`` of ``envs.candidates``).
        draw_tab: ``draw_table`` of the :func:`alias_table` of the play shares in rank order
            (``popularity_ranks``), with the tracks of the ranks.
        rank_track: Tracks by popularity rank; ``rank_of`` its inverse.
        rank_of: Each track's popularity rank.
        cache_tab: :func:`cache_table`, each listener's cached tracks and their places.
        tab: :func:`record_table`, each candidate's public data in one row.
        d: The embedding's dimension (its columns in ``tab``).
        tracks: (R, K) int64 out: the candidates' catalog rows.
        kinds: (R, K) int64 out: their source (``KIND_*``).
        feats: (R, K, d + 7) float32 out: their features.
        best: (R,) int64 out: the index of the best candidate (the first on ties).
        best_reward: (R,) float64 out: its expected reward, computed as the simulator
            computes a played track's (the same floats).
        set_size: :func:`set_size` of K and the history width.
    """
    n_rows, k = slots.shape[0], tracks.shape[1]
    pool = ci[C_POOL]
    n_tracks = rank_track.shape[0]
    for chunk in prange((n_rows + CHUNK - 1) // CHUNK):
        taken = np.empty(set_size, np.int64)
        sims = np.empty(pool, np.float64)
        perm = np.empty(pool, np.int64)
        qpos = np.empty(k, np.int64)
        rows = np.empty(k, np.int64)
        approx = np.empty(k + 1, np.float64)
        window = np.empty(WINDOW, np.int64)
        draws = np.empty(2 * n_pop + 1, np.int64)
        fracs = np.empty(max(n_pop, 1), np.float64)
        for r in range(chunk * CHUNK, min(n_rows, (chunk + 1) * CHUNK)):
            if r + 1 < n_rows:  # the next slot's data comes in while this one is worked on
                nxt = slots[r + 1]
                _prefetch_slot(ci, si[nxt], sf[nxt], rng[nxt, 0], rng[nxt, 1], n_pop, draw_tab,
                               tab, n_tracks)  # fmt: skip
            s = slots[r]
            ir = si[s]
            last_row = _retrieve_slot(cf, ci, ir, rng[s, 0], rng[s, 1], n_cont, n_pers, n_pop,
                                      n_top, order, pool_fact, draw_tab, rank_track, rank_of,
                                      cache_tab, tab, tracks[r], kinds[r], qpos, rows,
                                      taken, sims, perm, draws, fracs)  # fmt: skip
            j, value = _fill_slot(cf, ci, ir, sf[s], tracks[r], kinds[r], qpos, rows, last_row,
                                  tab, d, feats[r], approx, window)  # fmt: skip
            best[r], best_reward[r] = j, value
