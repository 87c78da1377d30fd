"""``CompiledFittedSimulator``: a fitted world's simulator with a compiled step and reset.

What the environments step a fitted world with (``world.make_simulator``). Its state is
the reference's own arrays (views of ``int_state`` and ``float_state``), so everything
that reads the state (info, rendering, the oracle's ``expected_rewards``, the logging
policy) works unchanged; ``step``, ``reset`` and the single env's pair run as the
kernels of :mod:`musicrec_gym.sim.fitted_kernels`, which also encode the observations
and find the optimum in the same pass. Batches of at least ``PARALLEL_FROM`` slots are
split over the cores, as for a synthetic world. (The single env's pair leaves the
reference's ``code`` array alone: only the batch path keeps it.) It pickles at any
point: the compiled entry points and the scratch are remade on loading.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from musicrec_gym.encoder_kernel import aligned_empty, work_size
from musicrec_gym.sim import fitted_kernels as fk
from musicrec_gym.sim.compiled import PARALLEL_FROM, encoder_pack, kernel_results
from musicrec_gym.sim.constants import STEP_DRAWS, WINDOW
from musicrec_gym.sim.fitted import FittedModel, FittedSimulator
from musicrec_gym.sim.fitted_response import TwoTowerResponse, track_clusters
from musicrec_gym.sim.kernels import entry_point, num_threads
from musicrec_gym.sim.protocol import Encoded, StepResult

if TYPE_CHECKING:  # pragma: no cover
    from musicrec_gym.numpy_encoder import NumpyEncoder
    from musicrec_gym.sim.params import SimulatorParams


def _clusters(response: TwoTowerResponse, n_tracks: int) -> dict[str, np.ndarray]:
    """The catalog's groups for the optimum, made once per response model."""
    groups = getattr(response, "_kernel_clusters", None)
    if groups is None:
        groups = track_clusters(response.vectors[:n_tracks], response.bias[:n_tracks])
        response._kernel_clusters = groups
    return groups


class CompiledFittedSimulator(FittedSimulator):
    """``FittedSimulator`` with compiled ``step``, ``reset``, ``step_encode`` and single-env pair.

    Args:
        model, encoder, params, n_slots, reward_mode: As for ``FittedSimulator`` (the
            catalog is always scored: the optimum is part of every step).
    """

    def __init__(
        self,
        model: FittedModel,
        encoder: NumpyEncoder,
        params: SimulatorParams,
        n_slots: int,
        reward_mode: str = "listen",
    ) -> None:
        super().__init__(model, encoder, params, n_slots, reward_mode=reward_mode)
        reward, leave = self.reward, self.leave
        p = params.reward
        values = np.zeros(fk.N_PARAMS)
        values[fk.P_A], values[fk.P_B] = reward.a, reward.b
        values[fk.P_TLL], values[fk.P_TLH] = p.time_listened
        values[fk.P_TSL], values[fk.P_TSH] = p.time_skipped
        values[fk.P_LIKE], values[fk.P_ADD] = p.p_like, p.p_add
        values[fk.P_PER_SKIP] = leave.per_skip
        values[fk.P_INV_MAXLEN] = 1.0 / self.response.max_length
        sizes = {
            "n_tracks": self.n_tracks, "hw": self.hist_width, "skip_window": leave.skip_window,
            "max_steps": self.max_steps, "mode": reward.mode_code,
        }  # fmt: skip
        self.cf, self.ci = fk.pack(
            values, self.response, leave.position_logit, model.start_tracks,
            model.start_listened, model.start_features, sizes,
            _clusters(self.response, self.n_tracks),
        )  # fmt: skip
        self.ce, self.lay = encoder_pack(encoder)
        self._bind_kernels()

    def _bind_kernels(self) -> None:
        """The kernels' scratch and leading arguments; the single-env entry points, lazily."""
        chunks = num_threads() if self.n_slots >= PARALLEL_FROM else 1
        self._work = aligned_empty((chunks, work_size(self.lay)))
        width = self.n_tracks + int(self.ci[fk.C_C]) + int(self.ci[fk.C_H])
        self._acc = np.zeros((chunks, width), np.float64)  # the marks start cleared
        self._u = np.empty(STEP_DRAWS, np.float64)
        self._one_entries: tuple | None = None
        self._args = (
            self.cf, self.ci, self.int_state, self.float_state, self.streams.state,
            self.ce, self.lay,
        )  # fmt: skip

    def __getstate__(self) -> dict:
        state = super().__getstate__()
        for key in ("_work", "_acc", "_u", "_one_entries", "_args"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.ce, self.lay = encoder_pack(self.encoder)
        self._bind_kernels()

    # ----------------------------------------------------------------- compiled paths
    def reset(self, slots: np.ndarray, users: np.ndarray | None = None) -> None:
        """Start new sessions in ``slots`` (as ``FittedSimulator.reset``), compiled."""
        self.reset_encode(slots, users)

    def reset_encode(self, slots: np.ndarray, users: np.ndarray | None = None) -> np.ndarray:
        """Start new sessions in ``slots``; their observations, ``(len(slots), code_dim)``."""
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        who = np.full(len(slots), -1, np.int64) if users is None else np.asarray(users, np.int64)
        obs = np.empty((len(slots), self.code_dim), np.float32)
        fk.reset_slots(*self._args, slots, np.ascontiguousarray(who), obs, self._work, self._acc)
        self.code[slots] = obs
        return obs

    def step(self, actions: np.ndarray) -> StepResult:
        """Recommend ``actions[i]`` in slot ``i`` (as ``FittedSimulator.step``), compiled."""
        return self.step_encode(actions)[0]

    def step_encode(
        self, actions: np.ndarray, autoreset: bool = False
    ) -> tuple[StepResult, Encoded]:
        """Step every slot, encode, rescore and (``autoreset``) restart ended sessions."""
        b = self.n_slots
        resf = np.empty((3, b), np.float64)  # reward, expected, optimal
        resb = np.empty((3, b), np.bool_)  # listened, terminated, truncated
        pre = np.empty((3 + 2 * WINDOW, b), np.int64)
        obs = np.empty((b, self.code_dim), np.float32)
        final = np.zeros((b, self.code_dim), np.float32) if autoreset else obs
        fk.step_parallel(
            *self._args, np.ascontiguousarray(actions, dtype=np.int64), autoreset,
            resf, resb, pre, obs, final, self._work, self._acc,
        )  # fmt: skip
        self.code[:] = obs
        return kernel_results(resf, resb, pre, obs, final, autoreset, WINDOW)

    def step_one(self, action: int, obs: np.ndarray) -> tuple:
        """Slot 0 of a one-slot simulator steps with a valid ``action``; plain values back.

        Writes the observation into ``obs[:code_dim]``; returns reward, expected reward,
        optimal reward, listened, terminated, truncated, the next optimal action and the
        step count. The caller keeps the contract the kernel does not check: ``action``
        an ``int`` in the catalog, ``obs`` a C-contiguous float32 vector, and a session
        that has not ended.
        """
        if self._one_entries is None:
            self._one_entries = self._single_entries(obs)
        return self._one_entries[0](*self._args, action, self._u, obs, self._work, self._acc)

    def reset_one(self, user: int, obs: np.ndarray) -> tuple:
        """Slot 0 of a one-slot simulator restarts (``user``, or drawn if negative).

        Writes the observation into ``obs[:code_dim]``; returns the starting session,
        the best first recommendation and its expected reward.
        """
        if self._one_entries is None:
            self._one_entries = self._single_entries(obs)
        return self._one_entries[1](*self._args, user, self._u, obs, self._work, self._acc)

    def _single_entries(self, obs: np.ndarray) -> tuple:
        """The single-env kernels' entry points for this simulator's argument types."""
        tail = (self._u, obs, self._work, self._acc)
        return (
            entry_point(fk.step_one, *self._args, 0, *tail),
            entry_point(fk.reset_one, *self._args, 0, *tail),
        )
