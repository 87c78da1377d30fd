"""The one simulator interface the environments talk to, and the records it returns.

:class:`Simulator` is what ``SessionCore`` (:mod:`musicrec_gym.envs.core`) needs from a
simulator, and all it reads: seeding, resets and steps that also encode the
observations, the optimal and expected rewards, the logging policy, and the sessions'
state as read-only arrays (one row per slot). ``musicrec_gym.world.make_simulator``
builds the one that fits a world: a synthetic world's
:class:`~musicrec_gym.sim.compiled.CompiledSimulator` or a fitted world's
:class:`~musicrec_gym.sim.fitted.FittedSimulator`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from musicrec_gym.sim.params import SimulatorParams
    from musicrec_gym.sim.reward import RewardModel


@dataclass(frozen=True)
class StepResult:
    """What one batched step produced, one entry per slot."""

    reward: np.ndarray
    listened: np.ndarray
    expected_reward: np.ndarray
    optimal_reward: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


@dataclass(frozen=True)
class Encoded:
    """A step's extras: observations, ended sessions' last ones, pre-reset state."""

    obs: np.ndarray  # (B, code_dim) float32: each slot's observation now
    final_obs: np.ndarray | None  # (B, code_dim): ended sessions' last observations, else 0
    user: np.ndarray  # the session's state after the step, before any restart
    optimal_action: np.ndarray
    steps: np.ndarray
    warmup_tracks: np.ndarray
    warmup_listened: np.ndarray


class Simulator(Protocol):
    """``n_slots`` concurrent listening sessions, stepped together.

    A slot's random numbers come from its own stream (``seed``), so its trajectory does
    not depend on the other slots. The state arrays are the simulator's own: callers
    read them (copy what they keep) and never write them.

    Attributes:
        params: The simulator parameters in force (``leave.max_steps`` as asked).
        reward: The reward function (its ``mode`` and ``params``).
        n_slots: Concurrent sessions.
        n_users: Listeners (a fitted world: starting sessions) a reset draws from.
        n_tracks: Catalog size (the actions).
        max_steps: Recommendations per session before truncation.
        code_dim: Size of an encoded observation (before profile features).
        user: (B,) the listener of each slot's session.
        steps: (B,) recommendations made this session.
        hist: (B, H) every play of the session so far (warm-up first), -1 after the end.
        hist_listened: (B, H) their listen flags.
        hist_len: (B,) plays so far.
        opt_action: (B,) the best track now (highest expected reward).
    """

    params: SimulatorParams
    reward: RewardModel
    n_slots: int
    n_users: int
    n_tracks: int
    max_steps: int
    code_dim: int
    user: np.ndarray
    steps: np.ndarray
    hist: np.ndarray
    hist_listened: np.ndarray
    hist_len: np.ndarray
    opt_action: np.ndarray

    def seed(self, slots: np.ndarray, seeds: np.ndarray) -> None:
        """Restart the random streams of ``slots`` from ``seeds``."""

    def reset(self, slots: np.ndarray, users: np.ndarray | None = None) -> None:
        """Start new sessions in ``slots`` (listener ``users[i]``, or drawn), warm-up played."""

    def step(self, actions: np.ndarray) -> StepResult:
        """Recommend ``actions[i]`` to the listener in slot ``i``, for every slot."""

    def reset_encode(self, slots: np.ndarray, users: np.ndarray | None = None) -> np.ndarray:
        """:meth:`reset`, then the new sessions' observations, ``(len(slots), code_dim)``."""

    def step_encode(
        self, actions: np.ndarray, autoreset: bool = False
    ) -> tuple[StepResult, Encoded]:
        """:meth:`step`, the observations and (``autoreset``) ended sessions restarted."""

    def reset_one(self, user: int, obs: np.ndarray) -> tuple[int, int, float]:
        """Slot 0 restarts (``user``, or drawn if negative); a single environment's reset.

        Writes the observation into ``obs[:code_dim]``; returns the listener, the best
        first recommendation and its expected reward.
        """

    def step_one(self, action: int, obs: np.ndarray) -> tuple:
        """Slot 0 steps with a valid catalog ``action``; a single environment's step.

        Writes the observation into ``obs[:code_dim]``; returns reward, expected reward,
        optimal reward, listened, terminated, truncated, the next optimal action and
        the step count, as plain values.
        """

    def optimal_reward(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The best expected reward available now in ``slots`` (what a step reports)."""

    def expected_rewards(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """Expected reward of every catalog track now: ``(len(slots), n_tracks)``."""

    def logging_actions(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The logging policy's actions, drawn from each slot's own stream."""
