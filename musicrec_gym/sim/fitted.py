"""The simulator of a world fitted to real logs (``musicrec fit``, :mod:`musicrec_gym.fit`).

:class:`FittedSimulator` puts together the learned response model
(:class:`~musicrec_gym.sim.fitted_response.TwoTowerResponse`: an inner product of the
encoded session state and the candidate track, and a table for repeats) and the learned
leave model (:class:`~musicrec_gym.sim.leave.FittedLeave`), in NumPy, behind the
:class:`~musicrec_gym.sim.protocol.Simulator` interface. It is the *reference*: the
environments step fitted worlds with its compiled subclass
(:class:`~musicrec_gym.sim.fitted_compiled.CompiledFittedSimulator`), which the tests
hold to it; the realism replay uses it directly. :class:`FittedModel` is what a fitted
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
from musicrec_gym.sim import fitted_kernels as fk
from musicrec_gym.sim.constants import FITTED_RESET_DRAWS, STEP_DRAWS, WINDOW
from musicrec_gym.sim.fitted_response import TwoTowerResponse
from musicrec_gym.sim.leave import FittedLeave
from musicrec_gym.sim.logging_policy import by_popularity
from musicrec_gym.sim.protocol import Encoded, StepResult
from musicrec_gym.sim.response import sigmoid
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
    "FittedSimulator",
    "ResponseConfig",
    "TwoTowerResponse",
    "popularity_z",
    "train_response",
    "with_rare_row",
]


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
        start_features: ``(m, G)`` their session inputs (context type, shuffle: see
            :mod:`musicrec_gym.session_context`).
        rare_index: Row of the rare-track bucket (= catalog size).
        max_length: Plays per session at most (warm-up included).
        play_share: ``(n_tracks + 1,)`` share of training plays of each row (rare last).
        info: ``fitted.json`` as read.
    """

    response: TwoTowerResponse
    leave: FittedLeave
    start_tracks: np.ndarray
    start_listened: np.ndarray
    start_features: np.ndarray
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
    """``n_slots`` concurrent sessions under the fitted models: the NumPy reference.

    A session starts from the first five plays of a logged training session (its
    "listener" is that session). Each recommendation is listened with the response
    model's probability (a repeat: the logs' rate for such repeats); then the listener
    leaves with the leave model's hazard, and the session is truncated at
    ``max_length`` plays or ``params.leave.max_steps`` recommendations, whichever comes
    first.

    Args:
        model: The fitted model.
        encoder: The session encoder, bound to the catalog plus the rare row.
        params: Simulator parameters (reward scales, warm-up, ``leave.max_steps``).
        n_slots: Number of concurrent sessions.
        reward_mode: ``listen``, ``time`` or ``event``.
        score_catalog: Score the whole catalog after every play (the optimal action and
            reward). Replays that only need the sampled listens turn it off.
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
        self.code_dim = encoder.code_dim
        self.score_catalog = score_catalog
        self.hist_width = WINDOW + self.max_steps
        b = n_slots
        # One int64 and one float64 row per slot, laid out as the kernels read them
        # (``fitted_kernels.S_*``); the state arrays below are views of their columns.
        self.int_state = np.zeros((b, fk.int_width(self.hist_width)), dtype=np.int64)
        width = fk.float_width(self.response.dim, self.response.session_dim)
        self.float_state = np.zeros((b, width), dtype=np.float64)
        self.code = np.zeros((b, self.code_dim), dtype=np.float32)
        self.int_state[:, fk.S_HIST : fk.S_HIST + self.hist_width] = -1
        self._bind_views()

    def _bind_views(self) -> None:
        """The named state arrays: views of ``int_state`` and ``float_state``'s columns."""
        si, sf, h = self.int_state, self.float_state, self.hist_width
        self.user, self.steps = si[:, fk.S_USER], si[:, fk.S_STEPS]
        self.hist_len, self.opt_action = si[:, fk.S_HLEN], si[:, fk.S_OPTA]
        self.hist = si[:, fk.S_HIST : fk.S_HIST + h]
        self.hist_listened = si[:, fk.S_HIST + h : fk.S_HIST + 2 * h]
        self.win_tracks = si[:, fk.S_HIST + 2 * h : fk.S_HIST + 2 * h + WINDOW]
        self.opt_logit = sf[:, fk.S_OPTL]
        self.win_listened = sf[:, fk.S_WL : fk.S_WL + WINDOW]
        k = self.response.dim
        self.state = sf[:, fk.S_STATE : fk.S_STATE + k + 1]
        self.session = sf[:, fk.S_STATE + k + 1 :]

    _VIEWS = (
        "user", "steps", "hist_len", "opt_action", "hist", "hist_listened", "win_tracks",
        "opt_logit", "win_listened", "state", "session",
    )  # fmt: skip

    def __getstate__(self) -> dict:
        # Views would be pickled as copies apart from the rows they view: remade instead.
        return {k: v for k, v in self.__dict__.items() if k not in self._VIEWS}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._bind_views()

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
        model = self.model
        self.start(
            slots, model.start_tracks[user], model.start_listened[user], model.start_features[user]
        )

    def start(
        self,
        slots: np.ndarray,
        tracks: np.ndarray,
        listened: np.ndarray,
        session: np.ndarray | None = None,
    ) -> None:
        """Start sessions in ``slots`` from given warm-up plays (``(B, 5)`` rows and flags).

        Used by :meth:`reset` and by the realism replay of held-out sessions, which
        passes their ``(B, G)`` session inputs (``None``: zeros).
        """
        slots = np.asarray(slots, dtype=np.int64)
        self.session[slots] = 0.0 if session is None else session
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
        self.win_tracks[:] = np.concatenate([self.win_tracks[:, 1:], actions[:, None]], axis=1)
        self.win_listened[:] = np.concatenate(
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

    def reset_encode(self, slots: np.ndarray, users: np.ndarray | None = None) -> np.ndarray:
        """:meth:`reset`, then the new sessions' observations, ``(len(slots), code_dim)``."""
        self.reset(slots, users)
        return self.code[np.asarray(slots, np.int64)].copy()

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
                final[ended] = self.code[ended]
                self.reset(ended)
        encoded = Encoded(
            obs=self.code.copy(),
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

    def repeat_info(self, slots: np.ndarray, tracks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Earlier plays of ``tracks[i]`` this session in ``slots[i]``, and the last's flag.

        The rare-track row is never a repeat (it stands for many tracks).
        """
        hist = self.hist[slots]
        played = np.arange(hist.shape[1])[None, :] < self.hist_len[slots][:, None]
        match = (hist == np.asarray(tracks)[:, None]) & played
        count = match.sum(axis=1)
        count[np.asarray(tracks) >= self.n_tracks] = 0
        last = hist.shape[1] - 1 - np.argmax(match[:, ::-1], axis=1)
        flag = self.hist_listened[slots, last].astype(np.int64)
        return count, np.where(count > 0, flag, 0)

    def listen_probability(self, actions: np.ndarray) -> np.ndarray:
        """Listen probability of ``actions`` (one per slot) in the current state; no draw.

        A repeat reads the repeat table, a new track the two towers. With the catalog
        scored, a logit above the cached optimum (a rounding difference) is the optimum,
        so the chosen track's expected reward never exceeds the optimal one.
        """
        rows = np.arange(self.n_slots)
        count, last = self.repeat_info(rows, actions)
        logits = self.response.new_logits(self.state, actions)
        rep = count > 0
        if rep.any():
            logits[rep] = self.response.repeat_logits(count[rep], last[rep])
        if self.score_catalog:
            logits = np.minimum(logits, self.opt_logit)
        return sigmoid(logits)

    def logging_actions(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Catalog tracks drawn by their share of training plays (a popularity logger)."""
        u = self.streams.uniform(slots, 1)[:, 0]
        share = self.model.play_share[:-1]
        cdf = np.cumsum(share) / share.sum()
        return by_popularity(cdf, u, self.n_tracks)

    def catalog_logits(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Listen logits of every catalog track in the current state: ``(B, n_tracks)``."""
        ids = np.arange(self.n_slots)[slots]
        logits = self.response.all_new_logits(self.state[ids], self.n_tracks)
        for r, s in enumerate(ids):
            tracks = np.unique(self.hist[s, : self.hist_len[s]])
            tracks = tracks[(tracks >= 0) & (tracks < self.n_tracks)]
            if tracks.size:
                count, last = self.repeat_info(np.full(tracks.size, s), tracks)
                logits[r, tracks] = self.response.repeat_logits(count, last)
        return logits

    def expected_rewards(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Expected reward of every catalog track in the current state: (B, n_tracks)."""
        return self.reward.expected(sigmoid(self.catalog_logits(slots)))

    def _update_optimal(self, slots: np.ndarray | slice) -> None:
        """Encode ``slots``' windows, run the state tower and (if asked) find the best track."""
        ids = np.arange(self.n_slots)[slots]
        self.code[ids] = self.encoder.encode_ids(self.win_tracks[ids], self.win_listened[ids])
        self.state[ids] = self.response.state(
            self.code[ids], self.hist_len[ids] + 1, self.session[ids]
        )
        if not self.score_catalog:
            return
        logits = self.catalog_logits(ids)
        best = logits.argmax(axis=1)
        self.opt_action[ids] = best
        self.opt_logit[ids] = logits[np.arange(len(ids)), best]
