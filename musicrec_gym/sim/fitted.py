"""The simulator of a world fitted to real logs (``musicrec fit``, :mod:`musicrec_gym.fit`).

:class:`FittedSimulator` puts together the learned response model
(:class:`~musicrec_gym.sim.response.FittedResponse`, an MLP over the encoded session
state and the candidate track) and the learned leave model
(:class:`~musicrec_gym.sim.leave.FittedLeave`), in NumPy, behind the
:class:`~musicrec_gym.sim.protocol.Simulator` interface, so ``SessionCore`` and both
environments run on a fitted world unchanged. :class:`FittedModel` is what a fitted
world adds to ``World`` (``musicrec_gym.world.load_world`` reads it). A session starts
from the first five plays (tracks and listen flags) of a logged training session.

Tracks played fewer than ``min_track_count`` times in the training logs are not in the
catalog (the action space). They share one extra *rare-track* row, index ``n_tracks``:
its embedding is the mean catalog embedding and its play count ``expm1`` of the mean
``log1p`` count over the rare plays. Warm-up plays and replayed logs can hold it; agents
cannot choose it (``info["warmup_tracks"]`` shows it as -1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from musicrec_gym.errors import ConfigError
from musicrec_gym.sim.constants import FITTED_RESET_DRAWS, STEP_DRAWS, WINDOW
from musicrec_gym.sim.leave import FittedLeave
from musicrec_gym.sim.logging_policy import by_popularity
from musicrec_gym.sim.protocol import Encoded, StepResult
from musicrec_gym.sim.response import FittedResponse, sigmoid
from musicrec_gym.sim.response_training import ResponseConfig, train_response
from musicrec_gym.sim.reward import RewardModel
from musicrec_gym.sim.rng import SlotStreams

if TYPE_CHECKING:  # pragma: no cover
    from musicrec_gym.numpy_encoder import NumpyEncoder
    from musicrec_gym.sim.params import SimulatorParams

__all__ = [
    "WINDOW",  # re-exported: the fit and the realism check import these from here
    "FittedLeave",
    "FittedModel",
    "FittedResponse",
    "FittedSimulator",
    "ResponseConfig",
    "popularity_z",
    "train_response",
    "with_rare_row",
]

SLOTS_PER_SCORE = 32
"""Slots scored against the whole catalog at once (bounds the (B, n, H) hidden layer)."""


def with_rare_row(vectors: np.ndarray) -> np.ndarray:
    """Catalog embeddings plus the rare-track row (their mean): ``(n + 1, d)`` float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    return np.vstack([vectors, vectors.mean(axis=0, keepdims=True)]).astype(np.float32)


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class FittedModel:
    """What a fitted world adds to ``World``: the learned parts and the starting sessions.

    Attributes:
        response: The response model.
        leave: The leave model.
        start_tracks: ``(m, 5)`` rows of the training sessions' first five plays.
        start_listened: ``(m, 5)`` their listen flags.
        rare_index: Row of the rare-track bucket (= catalog size).
        max_length: Plays per session at most (warm-up included).
        play_share: ``(n_tracks + 1,)`` share of training plays of each row (rare last).
        info: ``fitted.json`` as read.
    """

    response: FittedResponse
    leave: FittedLeave
    start_tracks: np.ndarray
    start_listened: np.ndarray
    rare_index: int
    max_length: int
    play_share: np.ndarray
    info: dict[str, Any]

    @property
    def n_starts(self) -> int:
        """Number of starting sessions (the fitted world's "listeners")."""
        return int(self.start_tracks.shape[0])


def popularity_z(plays: np.ndarray, mean: float, std: float) -> np.ndarray:
    """Standardised ``log1p(plays)``, the response model's popularity input."""
    return (np.log1p(np.asarray(plays, np.float64)) - mean) / std


# --------------------------------------------------------------------------- simulator


class FittedSimulator:
    """``n_slots`` concurrent sessions under the fitted models (a ``sim.protocol.Simulator``).

    A session starts from the first five plays of a logged training session (its
    "listener" is that session). Each recommendation is listened with the response
    model's probability; then the listener leaves with the leave model's hazard, and the
    session is truncated at ``max_length`` plays or ``params.leave.max_steps``
    recommendations, whichever comes first.

    Args:
        model: The fitted model.
        encoder: The session encoder, bound to the catalog plus the rare row.
        params: Simulator parameters (reward scales, warm-up, ``leave.max_steps``).
        n_slots: Number of concurrent sessions.
        reward_mode: ``listen``, ``time`` or ``event``.
        score_catalog: Score the whole catalog after every play (the optimal action and
            reward). Replays that only need the sampled listens turn it off: each step
            then costs one encoder call instead of ``n_tracks`` MLP evaluations per slot.
    """

    def __init__(
        self,
        model: FittedModel,
        encoder: NumpyEncoder,
        params: SimulatorParams,
        n_slots: int,
        reward_mode: str = "listen",
        score_catalog: bool = True,
    ) -> None:
        if params.warmup != WINDOW:
            raise ConfigError(f"a fitted world needs warmup = {WINDOW}, got {params.warmup}")
        self.params = params
        self.model = model
        self.encoder = encoder
        self.response = model.response
        self.leave = model.leave
        self.reward = RewardModel(reward_mode, params.reward)
        self.n_users = model.n_starts
        self.n_tracks = model.rare_index
        self.n_slots = n_slots
        self.max_steps = min(params.leave.max_steps, model.max_length - WINDOW)
        self.streams = SlotStreams(n_slots)
        b, h = n_slots, WINDOW + self.max_steps
        self.user = np.zeros(b, dtype=np.int64)
        self.hist = np.full((b, h), -1, dtype=np.int64)
        self.hist_listened = np.zeros((b, h), dtype=np.int8)
        self.hist_len = np.zeros(b, dtype=np.int64)
        self.win_tracks = np.zeros((b, WINDOW), dtype=np.int64)
        self.win_listened = np.zeros((b, WINDOW), dtype=np.float64)
        self.steps = np.zeros(b, dtype=np.int64)
        self.code = np.zeros((b, encoder.code_dim), dtype=np.float32)
        self.opt_logit = np.zeros(b, dtype=np.float64)
        self.opt_action = np.zeros(b, dtype=np.int64)
        self.score_catalog = score_catalog
        self.logits = np.zeros((b, self.n_tracks if score_catalog else 0), dtype=np.float64)
        self.code_dim = encoder.code_dim

    def seed(self, slots: np.ndarray, seeds: np.ndarray) -> None:
        """Restart the random streams of ``slots`` from ``seeds``."""
        self.streams.seed(slots, seeds)

    def reset(self, slots: np.ndarray, users: np.ndarray | None = None) -> None:
        """Start new sessions in ``slots`` from logged training sessions' first five plays.

        Args:
            slots: Slot indices to reset.
            users: Optional starting-session index per slot (the random draw is still
                consumed).
        """
        slots = np.asarray(slots, dtype=np.int64)
        u = self.streams.uniform(slots, FITTED_RESET_DRAWS)
        drawn = np.minimum((u[:, 0] * self.n_users).astype(np.int64), self.n_users - 1)
        user = drawn if users is None else np.asarray(users, dtype=np.int64)
        self.user[slots] = user
        self.start(slots, self.model.start_tracks[user], self.model.start_listened[user])

    def start(self, slots: np.ndarray, tracks: np.ndarray, listened: np.ndarray) -> None:
        """Start sessions in ``slots`` from given warm-up plays (``(B, 5)`` rows and flags).

        Used by :meth:`reset` and by the realism replay of held-out sessions.
        """
        slots = np.asarray(slots, dtype=np.int64)
        self.hist[slots] = -1
        self.hist_listened[slots] = 0
        self.hist[slots, :WINDOW] = tracks
        self.hist_listened[slots, :WINDOW] = listened
        self.hist_len[slots] = WINDOW
        self.win_tracks[slots] = tracks
        self.win_listened[slots] = listened
        self.steps[slots] = 0
        self._update_optimal(slots)

    def step(self, actions: np.ndarray) -> StepResult:
        """Recommend ``actions[i]`` (a catalog row, or the rare row in replays) in slot ``i``."""
        actions = np.asarray(actions, dtype=np.int64)
        u = self.streams.uniform(slice(None), STEP_DRAWS)
        optimal = self.reward.expected(sigmoid(self.opt_logit))
        p = self.listen_probability(actions)
        listened = u[:, 0] < p
        reward = self.reward.draw(listened, u[:, 2], u[:, 3])
        rows = np.arange(self.n_slots)
        self.hist[rows, self.hist_len] = actions
        self.hist_listened[rows, self.hist_len] = listened
        self.hist_len += 1
        self.steps += 1
        self.win_tracks = np.concatenate([self.win_tracks[:, 1:], actions[:, None]], axis=1)
        self.win_listened = np.concatenate(
            [self.win_listened[:, 1:], listened[:, None].astype(np.float64)], axis=1
        )
        k = self.leave.skip_window
        at_cap = self.steps >= self.max_steps
        hazard = self.leave.hazard(self.hist_len, self.win_listened[:, WINDOW - k :])
        terminated = ~at_cap & (u[:, 1] < hazard)
        truncated = at_cap
        self._update_optimal(slice(None))
        return StepResult(
            reward=reward,
            listened=listened,
            expected_reward=self.reward.expected(p),
            optimal_reward=optimal,
            terminated=terminated,
            truncated=truncated,
        )

    def encode(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Observations of ``slots``: their windows through the encoder, ``(B, code_dim)``."""
        return self.encoder.encode_ids(self.win_tracks[slots], self.win_listened[slots])

    def reset_encode(self, slots: np.ndarray, users: np.ndarray | None = None) -> np.ndarray:
        """:meth:`reset`, then the new sessions' observations, ``(len(slots), code_dim)``."""
        self.reset(slots, users)
        return self.encode(slots)

    def step_encode(
        self, actions: np.ndarray, autoreset: bool = False
    ) -> tuple[StepResult, Encoded]:
        """:meth:`step`, the observations and (``autoreset``) ended sessions restarted."""
        result = self.step(actions)
        warmup = self.params.warmup
        user = self.user.copy()
        optimal_action, steps = self.opt_action.copy(), self.steps.copy()
        warmup_tracks = self.hist[:, :warmup].copy()
        warmup_listened = self.hist_listened[:, :warmup].astype(bool)
        final = None
        if autoreset:
            final = np.zeros((self.n_slots, self.code_dim), np.float32)
            ended = np.flatnonzero(result.terminated | result.truncated)
            if ended.size:
                final[ended] = self.encode(ended)
                self.reset(ended)
        encoded = Encoded(
            obs=self.encode(),
            final_obs=final,
            user=user,
            optimal_action=optimal_action,
            steps=steps,
            warmup_tracks=warmup_tracks,
            warmup_listened=warmup_listened,
        )
        return result, encoded

    def reset_one(self, user: int, obs: np.ndarray) -> tuple[int, int, float]:
        """Slot 0 restarts (``user``, or drawn if negative): :meth:`reset_encode` of one slot.

        Writes the observation into ``obs[:code_dim]``; returns the listener, the best
        first recommendation and its expected reward.
        """
        slot = np.zeros(1, np.int64)
        users = None if user < 0 else np.array([user], np.int64)
        obs[: self.code_dim] = self.reset_encode(slot, users)[0]
        return int(self.user[0]), int(self.opt_action[0]), float(self.optimal_reward(slot)[0])

    def step_one(self, action: int, obs: np.ndarray) -> tuple:
        """Slot 0 steps with ``action``: :meth:`step_encode` of one slot, as plain values.

        Writes the observation into ``obs[:code_dim]``; returns reward, expected reward,
        optimal reward, listened, terminated, truncated, the next optimal action and
        the step count.
        """
        result, enc = self.step_encode(np.array([action], np.int64))
        obs[: self.code_dim] = enc.obs[0]
        return (
            float(result.reward[0]),
            float(result.expected_reward[0]),
            float(result.optimal_reward[0]),
            bool(result.listened[0]),
            bool(result.terminated[0]),
            bool(result.truncated[0]),
            int(enc.optimal_action[0]),
            int(enc.steps[0]),
        )

    def optimal_reward(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The best expected reward available now in ``slots`` (what the next step reports)."""
        return self.reward.expected(sigmoid(self.opt_logit[slots]))

    def listen_probability(self, actions: np.ndarray) -> np.ndarray:
        """Listen probability of ``actions`` (one per slot) in the current state; no draw.

        Catalog tracks read the logits cached for the optimum (so the chosen track's
        expected reward never exceeds the optimal one by a rounding error); the rare row
        is scored on its own.
        """
        if not self.score_catalog:
            codes = self.code.astype(np.float64)
            return sigmoid(self.response.logits(codes, self.hist_len + 1, actions))
        catalog = np.minimum(actions, self.n_tracks - 1)
        logits = self.logits[np.arange(self.n_slots), catalog]
        rare = actions >= self.n_tracks
        if rare.any():
            codes = self.code[rare].astype(np.float64)
            logits[rare] = self.response.logits(codes, self.hist_len[rare] + 1, actions[rare])
        return sigmoid(logits)

    def logging_actions(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Catalog tracks drawn by their share of training plays (a popularity logger)."""
        u = self.streams.uniform(slots, 1)[:, 0]
        share = self.model.play_share[:-1]
        cdf = np.cumsum(share) / share.sum()
        return by_popularity(cdf, u, self.n_tracks)

    def expected_rewards(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Expected reward of every catalog track in the current state: (B, n_tracks)."""
        logits = self.response.all_logits(
            self.code[slots].astype(np.float64), self.hist_len[slots] + 1
        )
        return self.reward.expected(sigmoid(logits))

    def _update_optimal(self, slots: np.ndarray | slice) -> None:
        ids = np.arange(self.n_slots)[slots]
        self.code[ids] = self.encoder.encode_ids(self.win_tracks[ids], self.win_listened[ids])
        if not self.score_catalog:
            return
        for start in range(0, len(ids), SLOTS_PER_SCORE):
            chunk = ids[start : start + SLOTS_PER_SCORE]
            logits = self.response.all_logits(
                self.code[chunk].astype(np.float64), self.hist_len[chunk] + 1
            )
            self.logits[chunk] = logits
            best = logits.argmax(axis=1)
            self.opt_action[chunk] = best
            self.opt_logit[chunk] = logits[np.arange(len(best)), best]
