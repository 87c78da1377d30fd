"""The NumPy reference simulator: many listeners' sessions stepped at once with NumPy.

It puts together the parts a researcher swaps (``ResponseModel``, ``LeaveModel``,
``RewardModel``, the logging policy's warm-up) and keeps each slot's session state:
listener, tracks played, the last five plays, and a cache of the listener's best
tracks so that the optimal expected reward costs O(candidates), not O(catalog), per
step. The single environment is a batch of one, so both give the same trajectories.

The environments run synthetic worlds on ``CompiledSimulator``
(:mod:`musicrec_gym.sim.compiled`), whose numba kernels must leave this class's state
bit for bit (``tests/sim/test_kernels.py``); the NumPy methods here are that reference
(the logging policy's included: ``_logging_choice`` and ``_warmup`` for
:mod:`musicrec_gym.sim.logging_policy`) and serve the offline users (log generation,
session-length histories, realism).
They are vectorised too: a reset's warm-up is vectorised over its plays
(the logging policy's continuations looked up in per-listener tables), and a step
updates the slots' state in place, touching only the candidates whose fatigue changes;
``tests/envs/test_trajectories.py`` checks that every number is the one the plain,
play-by-play code gave.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from musicrec_gym.data.synthetic import WorldTruth
from musicrec_gym.sim.constants import RESET_DRAWS, STEP_DRAWS, WINDOW
from musicrec_gym.sim.leave import LeaveModel
from musicrec_gym.sim.logging_policy import by_popularity
from musicrec_gym.sim.params import ResponseParams, SimulatorParams
from musicrec_gym.sim.protocol import StepResult
from musicrec_gym.sim.response import ResponseModel, sigmoid
from musicrec_gym.sim.reward import RewardModel
from musicrec_gym.sim.rng import SlotStreams
from musicrec_gym.sim.satisfaction import satisfaction_update, track_kinds

# Memory allowed for the listeners' pool-similarity tables (ListenerCandidates).
_POOL_SIM_BYTES = 64 * 2**20
# ListenerCandidates: bytes per chunk of scores; LARGE_CATALOG_M cached from LARGE_CATALOG.
SCORE_CHUNK_BYTES, LARGE_CATALOG, LARGE_CATALOG_M = 256 * 2**20, 50_000, 256


@dataclass
class SlotRows:
    """The session state of some slots, what a play reads and updates.

    In a step these are views of the simulator's arrays (updated in place); in a reset,
    the new sessions' own small arrays, written back once after the warm-up.
    """

    index: np.ndarray  # arange(len(user)), for row-wise fancy indexing
    user: np.ndarray
    hist: np.ndarray
    hist_listened: np.ndarray
    hist_len: np.ndarray
    win_tracks: np.ndarray
    win_listened: np.ndarray
    win_artist: np.ndarray
    cand: np.ndarray
    cand_artist: np.ndarray
    cand_pen: np.ndarray


def _columns(**widths: int) -> tuple[dict[str, tuple[int, int]], int]:
    """Column ranges ``name -> (start, width)`` of named fields in a state arena, and its width."""
    out, start = {}, 0
    for name, width in widths.items():
        out[name] = (start, width)
        start += width
    return out, start


@functools.lru_cache(maxsize=8)
def _warmup_fatigue(response: ResponseParams, w: int) -> np.ndarray:
    """A candidate's fatigue after ``w`` warm-up plays, by base-3 code of what each did.

    Digit ``j`` of the code is play ``j``'s kind: 0 nothing, 1 by the candidate's artist,
    2 the candidate itself (first time). The sums are made in play order, each term as
    one play at a time adds it, so they are the same floats.
    """
    codes = np.arange(3**w)
    pen = np.zeros(3**w)
    for j in range(w):
        kind = codes // 3**j % 3
        pen = np.where(kind == 2, pen + response.repeat, pen)
        pen = np.where(kind >= 1, pen + response.artist, pen)
    return pen


def _shift_in(window: np.ndarray, new: np.ndarray) -> None:
    """Drop a window's oldest column and append ``new`` as its newest, in place."""
    window[:, :-1] = window[:, 1:]  # NumPy copies overlapping memory correctly
    window[:, -1] = new


class ListenerCandidates:
    """Each listener's ``m`` best tracks by static logit, computed once per world.

    Fatigue only lowers logits, so if the best penalised candidate is still at least the
    best static logit outside the list (``threshold``), it is the best track overall.

    Args:
        response: The response model.
        m: Cached tracks per listener; at least 256 from 50,000 tracks on (with 64 the
            whole-catalog fallback fired in 2 (1M tracks) to 6 (100k) of 10,000
            slot-steps of candidate mode; with 256 in none of 100,000 measured).
        chunk: Listeners scored per matrix product, at most; fewer so that a chunk's
            scores take at most 256 MB (32 listeners at 1,000,000 tracks).
    """

    def __init__(self, response: ResponseModel, m: int = 64, chunk: int = 256) -> None:
        n_users = response.taste.shape[0]
        if response.n_tracks >= LARGE_CATALOG:
            m = max(m, LARGE_CATALOG_M)
        m = min(m, response.n_tracks - 1)
        chunk = max(1, min(chunk, SCORE_CHUNK_BYTES // (8 * response.n_tracks)))
        self.index = np.empty((n_users, m), dtype=np.int64)
        self.static = np.empty((n_users, m), dtype=np.float64)
        self.threshold = np.empty(n_users, dtype=np.float64)
        for start in range(0, n_users, chunk):
            users = np.arange(start, min(start + chunk, n_users))
            rows = response.static_rows(users)
            top = np.argpartition(-rows, m, axis=1)[:, : m + 1]
            vals = np.take_along_axis(rows, top, axis=1)
            order = np.lexsort((top, -vals), axis=1)
            top = np.take_along_axis(top, order, axis=1)
            vals = np.take_along_axis(vals, order, axis=1)
            self.index[users] = top[:, :m]
            self.static[users] = vals[:, :m]
            self.threshold[users] = vals[:, m]
        self._pool_sim: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def pool_nearest(
        self, factors: np.ndarray, pool: int, k: int, users: np.ndarray
    ) -> np.ndarray | None:
        """For each listener and each of its first ``pool`` candidates, the ``k`` most similar.

        ``table[u, q]`` holds, in increasing order, the pool positions of listener ``u``'s
        ``k`` candidates most similar to its candidate ``q`` (``q`` itself excluded): what
        the logging policy's continuation computes after a play from the pool, looked
        up. A listener's rows are filled on first use (here, for ``users``) by the same
        ``einsum`` and ``argpartition`` on the same vectors, so the choices are the same.

        Returns:
            The ``(n_users, pool, k)`` table, or ``None`` when it would take more than
            64 MB (the caller then computes the similarities itself).
        """
        # Simulators in several threads may fill rows at once: a row is only ever written
        # with the same values, and marked done after it is written, so that is benign.
        n_users = self.index.shape[0]
        if n_users * pool * k * 2 > _POOL_SIM_BYTES:
            return None
        if (pool, k) not in self._pool_sim:
            self._pool_sim[pool, k] = (
                np.empty((n_users, pool, k), np.int16),
                np.zeros(n_users, bool),
            )
        table, done = self._pool_sim[pool, k]
        new = np.unique(users[~done[users]])
        diag = np.arange(pool)
        for start in range(0, len(new), 16):
            chunk = new[start : start + 16]
            vec = factors[self.index[chunk, :pool]]  # (c, pool, d)
            c, d = len(chunk), vec.shape[2]
            every = np.broadcast_to(vec[:, None], (c, pool, pool, d)).reshape(c * pool, pool, d)
            sim = np.einsum("bpk,bk->bp", every, vec.reshape(c * pool, d))
            sim = sim.reshape(c, pool, pool)
            sim[:, diag, diag] = -np.inf
            nearest = np.argpartition(-sim.reshape(c * pool, pool), k - 1, axis=1)[:, :k]
            nearest.sort(axis=1)
            table[chunk] = nearest.reshape(c, pool, k)
            done[chunk] = True
        return table


class BatchSimulator:
    """``n_slots`` concurrent listening sessions: the NumPy reference of the compiled kernels.

    Args:
        truth: Hidden truth of the world.
        artist: (n_tracks,) integer artist of each track.
        popularity: (n_tracks,) play shares, used by the logging policy's warm-up.
        params: Simulator parameters.
        n_slots: Number of concurrent sessions.
        reward_mode: ``listen``, ``time`` or ``event``.
        candidates: Precomputed ``ListenerCandidates`` (shared between simulators).
    """

    def __init__(
        self,
        truth: WorldTruth,
        artist: np.ndarray,
        popularity: np.ndarray,
        params: SimulatorParams,
        n_slots: int,
        reward_mode: str = "listen",
        candidates: ListenerCandidates | None = None,
    ) -> None:
        self.params = params
        self.response = ResponseModel(truth, params.response)
        self.leave = LeaveModel(truth.patience, params.leave)
        self.reward = RewardModel(reward_mode, params.reward)
        self.candidates = candidates or ListenerCandidates(self.response)
        self.n_users = truth.listener_taste.shape[0]
        self.n_tracks = self.response.n_tracks
        self.n_slots = n_slots
        self.max_steps = params.leave.max_steps
        self.pool = min(params.logging_pool, self.candidates.index.shape[1])
        cdf = np.cumsum(popularity, dtype=np.float64)
        self.pop_cdf = cdf / cdf[-1]
        # artist_of[-1] is a sentinel artist for empty window places.
        self.artist_of = np.append(np.asarray(artist, dtype=np.int64), -1)
        self.streams = SlotStreams(n_slots)
        # what a listen of each track does to satisfaction (MusicRecLongTerm-v0)
        self.track_kind = track_kinds(popularity, params.satisfaction)
        self.cand_artist_of_user = self.artist_of[self.candidates.index]

        b, h, m = n_slots, params.warmup + self.max_steps, self.candidates.index.shape[1]
        # The slots' state lives in two arrays, one row per slot (what the compiled
        # kernels take); the named arrays below are views of their columns.
        self.int_columns, int_width = _columns(
            user=1, hist_len=1, steps=1, opt_action=1, satisfaction=1, hist=h, hist_listened=h,
            win_tracks=WINDOW, win_artist=WINDOW, cand=m, cand_artist=m,
        )  # fmt: skip
        self.float_columns, float_width = _columns(
            opt_logit=1, threshold=1, win_listened=WINDOW, cand_static=m, cand_pen=m
        )
        self.int_state = np.zeros((b, int_width), dtype=np.int64)
        self.float_state = np.zeros((b, float_width), dtype=np.float64)
        self._bind_columns()
        self.hist[:] = -1
        self.win_tracks[:] = -1
        self.win_artist[:] = -1

    def _bind_columns(self) -> None:
        """Make the named state arrays (``hist``, ``cand`` ...) views of the two arenas."""
        for names, arena in (
            (self.int_columns, self.int_state),
            (self.float_columns, self.float_state),
        ):
            for name, (start, width) in names.items():
                view = arena[:, start] if width == 1 else arena[:, start : start + width]
                setattr(self, name, view)

    def __getstate__(self) -> dict:
        # The named columns are views of the arenas, which pickle would copy apart:
        # drop them, and make them views again on loading.
        views = self.int_columns.keys() | self.float_columns.keys()
        return {k: v for k, v in self.__dict__.items() if k not in views}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._bind_columns()

    # ----------------------------------------------------------------- seeding and reset
    def seed(self, slots: np.ndarray, seeds: np.ndarray) -> None:
        """Restart the random streams of ``slots`` from ``seeds``."""
        self.streams.seed(slots, seeds)

    def reset(self, slots: np.ndarray, users: np.ndarray | None = None) -> None:
        """Start new sessions in ``slots``: draw a listener and play the warm-up.

        Args:
            slots: Slot indices to reset.
            users: Optional listener index per slot (the random draw is still consumed).
        """
        slots = np.asarray(slots, dtype=np.int64)
        u = self.streams.uniform(slots, RESET_DRAWS)
        drawn = np.minimum((u[:, 0] * self.n_users).astype(np.int64), self.n_users - 1)
        user = drawn if users is None else np.asarray(users, dtype=np.int64)
        # The warm-up plays on the new sessions' own small arrays (the history only as
        # wide as the warm-up), written back once: no gather and scatter of every
        # state array per warm-up play.
        b, warmup, cands = len(slots), self.params.warmup, self.candidates
        rows = SlotRows(
            index=np.arange(b),
            user=user,
            hist=np.full((b, warmup), -1, dtype=np.int64),
            hist_listened=np.zeros((b, warmup), dtype=np.int8),
            hist_len=np.zeros(b, dtype=np.int64),
            win_tracks=np.full((b, WINDOW), -1, dtype=np.int64),
            win_listened=np.zeros((b, WINDOW), dtype=np.float64),
            win_artist=np.full((b, WINDOW), -1, dtype=np.int64),
            cand=cands.index[user],
            cand_artist=self.cand_artist_of_user[user],
            cand_pen=np.zeros((b, cands.index.shape[1]), dtype=np.float64),
        )
        if warmup <= WINDOW:
            self._warmup(rows, u)
        else:
            self._warmup_by_play(rows, u)
        self.user[slots] = user
        self.hist[slots, :warmup] = rows.hist
        self.hist[slots, warmup:] = -1
        self.hist_listened[slots, :warmup] = rows.hist_listened
        self.hist_listened[slots, warmup:] = 0
        self.hist_len[slots] = rows.hist_len
        self.win_tracks[slots] = rows.win_tracks
        self.win_listened[slots] = rows.win_listened
        self.win_artist[slots] = rows.win_artist
        self.steps[slots] = 0
        self.satisfaction[slots] = 0
        self.cand[slots] = rows.cand
        self.cand_artist[slots] = rows.cand_artist
        self.cand_static[slots] = cands.static[user]
        self.cand_pen[slots] = rows.cand_pen
        self.threshold[slots] = cands.threshold[user]
        self._update_optimal(slots)

    def _warmup_by_play(self, rows: SlotRows, u: np.ndarray) -> None:
        """The warm-up, one play at a time: the reference :meth:`_warmup` must equal."""
        for j in range(self.params.warmup):
            mix, idx, listen = u[:, 1 + 3 * j], u[:, 2 + 3 * j], u[:, 3 + 3 * j]
            actions = self._logging_choice(rows, mix, idx)
            self._play(rows, actions, listen)

    def _warmup(self, rows: SlotRows, u: np.ndarray) -> None:
        """The warm-up plays of fresh sessions, vectorised over the plays.

        The logging policy's choices depend on the draws and on the previous play (a
        continuation), never on the listener's responses: so the plays are chosen first
        (only chains of continuations take a pass per play), then responded to all at
        once. The candidates' fatigue, a float sum whose order matters, comes from a
        table of every possible sequence of terms, summed in play order. The numbers
        equal :meth:`_warmup_by_play`'s bit for bit (a test checks). Needs ``warmup <=
        WINDOW``, so that no play leaves the window during the warm-up.
        """
        w = self.params.warmup
        if w == 0:
            return
        mix, idx, listen = (u[:, k : 1 + 3 * w : 3] for k in (1, 2, 3))  # (B, w) each
        params = self.params
        pop_share, next_share = params.logging_pop_share, params.logging_continuation_share
        by_pop = by_popularity(self.pop_cdf, idx, self.n_tracks)
        pool = rows.cand[:, : self.pool]
        pool_pos = np.minimum((idx * self.pool).astype(np.int64), self.pool - 1)
        plays = np.where(mix < pop_share, by_pop, np.take_along_axis(pool, pool_pos, axis=1))
        at_pool = np.where(mix < pop_share, -1, pool_pos)  # a play's place in the pool
        cont = (mix >= pop_share) & (mix < pop_share + next_share)
        cont[:, 0] = False  # play 0 follows an empty window: never a continuation
        chained = np.zeros_like(cont)  # a continuation right after a continuation
        chained[:, 1:] = cont[:, 1:] & cont[:, :-1]
        # Continuations after a play that is not one: all at once. Those after one wait
        # for it, play by play; they follow a play from the pool, so with the table
        # each is one lookup.
        table = self.candidates.pool_nearest(
            self.response.factors, self.pool, params.continuation_pool, rows.user
        )
        r, j = np.nonzero(cont & ~chained)
        if r.size:
            self._continue(rows, table, plays, at_pool, idx, r, j)
        if table is None:
            for j in range(2, w):
                r = np.flatnonzero(chained[:, j])
                if r.size:
                    self._continue(rows, table, plays, at_pool, idx, r, j)
        elif chained.any():
            k = table.shape[2]
            pick = np.minimum((idx * k).astype(np.int64), k - 1)
            for j in range(2, w):
                r = np.flatnonzero(chained[:, j])
                if r.size:
                    at_pool[r, j] = table[rows.user[r], at_pool[r, j - 1], pick[r, j]]
            r, j = np.nonzero(chained)
            plays[r, j] = rows.cand[r, at_pool[r, j]]

        artist = self.artist_of[plays]
        # Repeats and same-artist counts among the plays before each (play-major arrays:
        # reductions over the leading axis are the fast ones).
        plays_t, artist_t = np.ascontiguousarray(plays.T), np.ascontiguousarray(artist.T)
        repeated = np.zeros((w, len(plays)), dtype=bool)
        same_artist = np.zeros((w, len(plays)), dtype=np.int64)
        for j in range(1, w):
            np.any(plays_t[:j] == plays_t[j], axis=0, out=repeated[j])
            np.sum(artist_t[:j] == artist_t[j], axis=0, out=same_artist[j])
        repeated, same_artist = repeated.T, same_artist.T
        logit = self.response.static(np.repeat(rows.user, w), plays.ravel()).reshape(plays.shape)
        logit -= self.response.fatigue(repeated, same_artist)
        listened = listen < sigmoid(logit)

        # The candidates' fatigue. Play j adds to a candidate +repeat if it is the play
        # (not a repeat), then +artist if it is by the play's artist (no artist leaves
        # the window during the warm-up): 3 kinds per play, 3**w sequences, whose sums
        # in play order are tabulated (a base-3 code per candidate picks its sum).
        same = rows.cand_artist[None] == artist.T[:, :, None]  # (w, B, m)
        hit = rows.cand[None] == np.where(repeated, -1, plays).T[:, :, None]  # -1: no hit
        kind = same.view(np.uint8) + hit.view(np.uint8)  # 0, 1 or 2 (a hit is by the artist)
        code = kind[w - 1]
        for j in range(w - 2, -1, -1):
            code = code * np.uint8(3) + kind[j]  # < 3**5: stays in uint8
        rows.cand_pen[...] = _warmup_fatigue(params.response, w)[code]
        rows.hist[:, :w] = plays
        rows.hist_listened[:, :w] = listened
        rows.hist_len[:] = w
        rows.win_tracks[:, WINDOW - w :] = plays
        rows.win_listened[:, WINDOW - w :] = listened
        rows.win_artist[:, WINDOW - w :] = artist

    # ----------------------------------------------------------------- stepping
    def step(self, actions: np.ndarray) -> StepResult:
        """Recommend ``actions[i]`` to the listener in slot ``i``, for every slot."""
        every = slice(None)
        u = self.streams.uniform(every, STEP_DRAWS)
        optimal = self.reward.expected(sigmoid(self.opt_logit))
        sat = self.params.satisfaction
        p, listened, repeated = self._play(self._rows(every), actions, u[:, 0])
        reward = self.reward.draw(listened, u[:, 2], u[:, 3])
        self.steps += 1
        k = self.params.leave.skip_window
        recent = self.win_listened[:, WINDOW - k :]
        if sat.enabled:
            self.satisfaction[:] = satisfaction_update(
                self.satisfaction, self.track_kind[actions], repeated, listened, sat.levels
            )
            hazard = self.leave.hazard(self.user, recent, self.satisfaction, sat.weight)
        else:
            hazard = self.leave.hazard(self.user, recent)
        terminated = u[:, 1] < hazard
        truncated = ~terminated & (self.steps >= self.max_steps)
        self._update_optimal(every)
        return StepResult(
            reward=reward,
            listened=listened,
            expected_reward=self.reward.expected(p),
            optimal_reward=optimal,
            terminated=terminated,
            truncated=truncated,
        )

    def logging_actions(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Actions of the radio-like logging policy, drawn from each slot's own stream."""
        u = self.streams.uniform(slots, 2)
        return self._logging_choice(self._rows(slots), u[:, 0], u[:, 1])

    def expected_rewards(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Expected reward of every track in the current state: (B, n_tracks). O(catalog)."""
        return self.reward.expected(sigmoid(self._full_logits(slots)))

    # ------------------------------------------- internals (the kernels' NumPy reference)
    def _rows(self, slots: np.ndarray | slice) -> SlotRows:
        """The state of ``slots``: views for a slice, copies for an index array."""
        user = self.user[slots]
        return SlotRows(
            index=np.arange(len(user)),
            user=user,
            hist=self.hist[slots],
            hist_listened=self.hist_listened[slots],
            hist_len=self.hist_len[slots],
            win_tracks=self.win_tracks[slots],
            win_listened=self.win_listened[slots],
            win_artist=self.win_artist[slots],
            cand=self.cand[slots],
            cand_artist=self.cand_artist[slots],
            cand_pen=self.cand_pen[slots],
        )

    def _logging_choice(self, rows: SlotRows, mix: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Radio-like logging policy.

        A popular track, a track to the listener's taste, or a continuation (of the
        listener's ``continuation_pool`` pool tracks most like the last play, one at
        random), by the shares in ``SimulatorParams``. The continuation's similarities
        are computed only for the rows that take it.
        """
        params = self.params
        pop_share, next_share = params.logging_pop_share, params.logging_continuation_share
        by_pop = by_popularity(self.pop_cdf, idx, self.n_tracks)
        pool = rows.cand[:, : self.pool]
        pool_pos = np.minimum((idx * self.pool).astype(np.int64), self.pool - 1)
        choice = np.where(mix < pop_share, by_pop, pool[rows.index, pool_pos])
        last = rows.win_tracks[:, -1]
        cont = np.flatnonzero((mix >= pop_share) & (mix < pop_share + next_share) & (last >= 0))
        if cont.size:
            choice[cont] = self._continuation(pool[cont], last[cont], idx[cont])
        return choice

    def _continue(
        self,
        rows: SlotRows,
        table: np.ndarray | None,
        plays: np.ndarray,
        at_pool: np.ndarray,
        idx: np.ndarray,
        r: np.ndarray,
        j: np.ndarray | int,
    ) -> None:
        """Warm-up play ``j`` of rows ``r`` is a continuation of play ``j - 1``: choose it.

        After a play from the pool (``at_pool >= 0``) the nearest tracks are looked up in
        ``table`` (see ``ListenerCandidates.pool_nearest``); otherwise (or without a
        table) they are computed.
        """
        pool = rows.cand[r, : self.pool]
        last, q, u = plays[r, j - 1], at_pool[r, j - 1], idx[r, j]
        if table is None:
            chosen = self._pick(self._similarity(pool, last), u)
        else:
            k = table.shape[2]
            pick = np.minimum((u * k).astype(np.int64), k - 1)
            chosen = table[rows.user[r], q, pick].astype(np.int64)  # q = -1: redone next
            rest = np.flatnonzero(q < 0)
            if rest.size:
                chosen[rest] = self._pick(self._similarity(pool[rest], last[rest]), u[rest])
        at_pool[r, j] = chosen
        plays[r, j] = pool[np.arange(len(r)), chosen]

    def _continuation(self, pool: np.ndarray, last: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """The continuation after ``last``: a track of ``pool`` picked by ``idx`` (a uniform).

        Of each row's ``pool`` tracks, the ``continuation_pool`` most like ``last`` (other
        than it), in pool order; the one ``idx`` picks.
        """
        return pool[np.arange(len(last)), self._pick(self._similarity(pool, last), idx)]

    def _similarity(self, pool: np.ndarray, last: np.ndarray) -> np.ndarray:
        """Each row's ``pool`` tracks' similarity to ``last`` (``-inf`` for ``last`` itself)."""
        factors = self.response.factors
        sim = np.einsum("bpk,bk->bp", factors[pool], factors[last])
        sim[pool == last[:, None]] = -np.inf
        return sim

    def _pick(self, sim: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Pool position of the continuation, given the similarities ``sim``.

        Of the ``continuation_pool`` most similar, in pool order, the one ``idx`` (a
        uniform) picks.
        """
        k = self.params.continuation_pool
        nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        nearest.sort(axis=1)
        pick = np.minimum((idx * k).astype(np.int64), k - 1)
        return nearest[np.arange(len(idx)), pick]

    def _play(self, rows: SlotRows, actions: np.ndarray, u_listen: np.ndarray):
        """Play ``actions`` in ``rows``: response, then state updates.

        Returns the listen probabilities, the listen flags and which plays were repeats.
        """
        hist, win_artist = rows.hist, rows.win_artist
        artist = self.artist_of[actions]
        repeated = (hist == actions[:, None]).any(axis=1)
        same_artist = (win_artist == artist[:, None]).sum(axis=1)
        logit = self.response.static(rows.user, actions)
        logit -= self.response.fatigue(repeated, same_artist)
        p = sigmoid(logit)
        listened = u_listen < p

        # The candidates' fatigue: the dense update ``pen += repeat * hit`` then ``pen +=
        # artist * (same - gone)`` adds exactly +-repeat, +-artist or 0 to each entry, so
        # adding only where the delta is nonzero gives the same numbers bit for bit.
        params = self.params.response
        pen, cand_artist = rows.cand_pen, rows.cand_artist
        hit = rows.cand == actions[:, None]
        hit &= ~repeated[:, None]
        np.add(pen, params.repeat, out=pen, where=hit)
        same = cand_artist == artist[:, None]
        gone = cand_artist == win_artist[:, :1]  # the artist leaving the window
        np.add(pen, params.artist, out=pen, where=same > gone)
        np.subtract(pen, params.artist, out=pen, where=gone > same)

        pos = rows.hist_len
        hist[rows.index, pos] = actions
        rows.hist_listened[rows.index, pos] = listened
        pos += 1
        _shift_in(rows.win_tracks, actions)
        _shift_in(rows.win_listened, listened)
        _shift_in(win_artist, artist)
        return p, listened, repeated

    def _update_optimal(self, slots) -> None:
        vals = self.cand_static[slots] - self.cand_pen[slots]
        j = vals.argmax(axis=1)
        rows = np.arange(len(j))
        best = vals[rows, j]
        action = self.cand[slots][rows, j]
        short = best < self.threshold[slots]
        if short.any():
            where = np.flatnonzero(short)
            slot_ids = np.arange(self.n_slots)[slots][where]
            full = self._full_logits(slot_ids)
            action[where] = full.argmax(axis=1)
            best[where] = full.max(axis=1)
        self.opt_logit[slots] = best
        self.opt_action[slots] = action

    def _full_logits(self, slots) -> np.ndarray:
        users = self.user[slots]
        logits = self.response.static_rows(users)
        hist = self.hist[slots]
        rows = np.repeat(np.arange(len(users)), hist.shape[1])
        played = np.zeros_like(logits, dtype=bool)
        valid = hist.ravel() >= 0
        played[rows[valid], hist.ravel()[valid]] = True
        track_artist = self.artist_of[:-1]
        same = (self.win_artist[slots][:, :, None] == track_artist[None, None, :]).sum(axis=1)
        return logits - self.response.fatigue(played, same)
