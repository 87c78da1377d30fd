"""The batched simulator: many listeners' sessions stepped at once with NumPy.

It puts together the parts a researcher swaps (``ResponseModel``, ``LeaveModel``,
``RewardModel``, the logging policy's warm-up) and keeps each slot's session state:
listener, tracks played, the last five plays, and a cache of the listener's best
tracks so that the optimal expected reward costs O(candidates), not O(catalog), per
step. The single environment is a batch of one, so both give the same trajectories.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from musicrec_gym.data.synthetic import WorldTruth
from musicrec_gym.sim.leave import LeaveModel
from musicrec_gym.sim.params import SimulatorParams
from musicrec_gym.sim.response import ResponseModel, RewardModel, sigmoid
from musicrec_gym.sim.rng import SlotStreams

WINDOW = 5
_RESET_DRAWS = 1 + 3 * WINDOW
_STEP_DRAWS = 4


@dataclass(frozen=True)
class StepResult:
    """What one batched step produced, one entry per slot."""

    reward: np.ndarray
    listened: np.ndarray
    expected_reward: np.ndarray
    optimal_reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


class ListenerCandidates:
    """Each listener's ``m`` best tracks by static logit, computed once per world.

    Fatigue only lowers logits, so if the best penalised candidate is still at least the
    best static logit outside the list (``threshold``), it is the best track overall.

    Args:
        response: The response model.
        m: Number of cached candidates per listener.
        chunk: Listeners scored per matrix product (bounds memory on big catalogs).
    """

    def __init__(self, response: ResponseModel, m: int = 64, chunk: int = 256) -> None:
        n_users = response.taste.shape[0]
        m = min(m, response.n_tracks - 1)
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


class BatchSimulator:
    """``n_slots`` concurrent listening sessions.

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

        b, h, m = n_slots, params.warmup + self.max_steps, self.candidates.index.shape[1]
        self.user = np.zeros(b, dtype=np.int64)
        self.hist = np.full((b, h), -1, dtype=np.int64)
        self.hist_listened = np.zeros((b, h), dtype=np.int8)
        self.hist_len = np.zeros(b, dtype=np.int64)
        self.win_tracks = np.full((b, WINDOW), -1, dtype=np.int64)
        self.win_listened = np.zeros((b, WINDOW), dtype=np.float64)
        self.win_artist = np.full((b, WINDOW), -1, dtype=np.int64)
        self.steps = np.zeros(b, dtype=np.int64)
        self.cand = np.zeros((b, m), dtype=np.int64)
        self.cand_artist = np.zeros((b, m), dtype=np.int64)
        self.cand_static = np.zeros((b, m), dtype=np.float64)
        self.cand_pen = np.zeros((b, m), dtype=np.float64)
        self.threshold = np.zeros(b, dtype=np.float64)
        self.opt_logit = np.zeros(b, dtype=np.float64)
        self.opt_action = np.zeros(b, dtype=np.int64)

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
        u = self.streams.uniform(slots, _RESET_DRAWS)
        drawn = np.minimum((u[:, 0] * self.n_users).astype(np.int64), self.n_users - 1)
        user = drawn if users is None else np.asarray(users, dtype=np.int64)
        self.user[slots] = user
        self.hist[slots] = -1
        self.hist_listened[slots] = 0
        self.hist_len[slots] = 0
        self.win_tracks[slots] = -1
        self.win_listened[slots] = 0.0
        self.win_artist[slots] = -1
        self.steps[slots] = 0
        cands = self.candidates
        self.cand[slots] = cands.index[user]
        self.cand_artist[slots] = self.artist_of[cands.index[user]]
        self.cand_static[slots] = cands.static[user]
        self.cand_pen[slots] = 0.0
        self.threshold[slots] = cands.threshold[user]
        for j in range(self.params.warmup):
            mix, idx, listen = u[:, 1 + 3 * j], u[:, 2 + 3 * j], u[:, 3 + 3 * j]
            actions = self._logging_choice(slots, mix, idx)
            self._play(slots, actions, listen)
        self._update_optimal(slots)

    # ----------------------------------------------------------------- stepping
    def step(self, actions: np.ndarray) -> StepResult:
        """Recommend ``actions[i]`` to the listener in slot ``i``, for every slot."""
        every = slice(None)
        u = self.streams.uniform(every, _STEP_DRAWS)
        optimal = self.reward.expected(sigmoid(self.opt_logit))
        p, listened = self._play(every, actions, u[:, 0])
        reward = self.reward.draw(listened, u[:, 2], u[:, 3])
        self.steps += 1
        k = self.params.leave.skip_window
        hazard = self.leave.hazard(self.user, self.win_listened[:, WINDOW - k :])
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
        return self._logging_choice(slots, u[:, 0], u[:, 1])

    def expected_rewards(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Expected reward of every track in the current state: (B, n_tracks). O(catalog)."""
        return self.reward.expected(sigmoid(self._full_logits(slots)))

    # ----------------------------------------------------------------- internals
    def _logging_choice(self, slots, mix: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """Radio-like logging policy.

        A popular track, a track to the listener's taste, or a continuation (of the
        listener's ``continuation_pool`` pool tracks most like the last play, one at
        random), by the shares in ``SimulatorParams``.
        """
        params = self.params
        by_pop = np.searchsorted(self.pop_cdf, idx, side="right")
        by_pop = np.minimum(by_pop, self.n_tracks - 1)
        pool = self.cand[slots][:, : self.pool]
        pool_pos = np.minimum((idx * self.pool).astype(np.int64), self.pool - 1)
        by_taste = np.take_along_axis(pool, pool_pos[:, None], axis=1)[:, 0]
        last = self.win_tracks[slots][:, -1]
        factors = self.response.factors
        sim = np.einsum("bpk,bk->bp", factors[pool], factors[np.maximum(last, 0)])
        sim[pool == last[:, None]] = -np.inf
        k = params.continuation_pool
        nearest = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        nearest = np.sort(nearest, axis=1)
        pick = np.minimum((idx * k).astype(np.int64), k - 1)
        by_next = np.take_along_axis(pool, np.take_along_axis(nearest, pick[:, None], 1), 1)[:, 0]
        by_next = np.where(last >= 0, by_next, by_taste)
        pop_share, next_share = params.logging_pop_share, params.logging_continuation_share
        return np.where(
            mix < pop_share, by_pop, np.where(mix < pop_share + next_share, by_next, by_taste)
        )

    def _play(self, slots, actions: np.ndarray, u_listen: np.ndarray):
        """Play ``actions`` in ``slots``: response, then state updates. Returns (p, listened)."""
        users = self.user[slots]
        hist = self.hist[slots]
        win_artist = self.win_artist[slots]
        artist = self.artist_of[actions]
        repeated = (hist == actions[:, None]).any(axis=1)
        same_artist = (win_artist == artist[:, None]).sum(axis=1)
        logit = self.response.static(users, actions)
        logit -= self.response.fatigue(repeated, same_artist)
        p = sigmoid(logit)
        listened = u_listen < p

        params = self.params.response
        cand, cand_artist = self.cand[slots], self.cand_artist[slots]
        pen = self.cand_pen[slots]
        pen += params.repeat * ((cand == actions[:, None]) & ~repeated[:, None])
        leaving = win_artist[:, 0]
        pen += params.artist * (
            (cand_artist == artist[:, None]).astype(np.float64) - (cand_artist == leaving[:, None])
        )
        self.cand_pen[slots] = pen

        rows = np.arange(len(users))
        pos = self.hist_len[slots]
        hist[rows, pos] = actions
        self.hist[slots] = hist
        hl = self.hist_listened[slots]
        hl[rows, pos] = listened
        self.hist_listened[slots] = hl
        self.hist_len[slots] = pos + 1
        self.win_tracks[slots] = np.concatenate(
            [self.win_tracks[slots][:, 1:], actions[:, None]], axis=1
        )
        self.win_listened[slots] = np.concatenate(
            [self.win_listened[slots][:, 1:], listened[:, None]], axis=1
        )
        self.win_artist[slots] = np.concatenate([win_artist[:, 1:], artist[:, None]], axis=1)
        return p, listened

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
