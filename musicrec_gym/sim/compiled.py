"""``CompiledSimulator``: ``BatchSimulator`` whose step and reset run as numba kernels.

The environments use it for synthetic worlds: it is their
:class:`~musicrec_gym.sim.protocol.Simulator`. Its state is the reference simulator's
own arrays (views of ``int_state`` and ``float_state``), so everything that reads the
state (info, rendering, the oracle's ``expected_rewards``) works unchanged; only
``step`` and ``reset`` run compiled (:mod:`musicrec_gym.sim.kernels`), and a step
also encodes the observations and, if asked, restarts ended sessions in the same pass.

A batch of at least ``PARALLEL_FROM`` slots is split over the cores (``NUMBA_NUM_THREADS``
caps them); smaller ones run as one chunk on the calling thread. A single environment
has its own pair of kernels (:meth:`CompiledSimulator.step_one`, ``reset_one``) that
take and return plain values, called through their compiled entry points. The first
use in a process compiles the kernels (or loads them from numba's cache next to the
sources, a second or two). A simulator pickles at any point (subprocess runners need
it): the compiled entry points and the scratch are left out and remade on loading,
the state arrays kept, so a loaded simulator continues the same sessions.
"""

from __future__ import annotations

import numpy as np

from musicrec_gym.data.synthetic import WorldTruth
from musicrec_gym.encoder_kernel import E_H2, aligned_empty, pack_encoder, work_size
from musicrec_gym.numpy_encoder import NumpyEncoder
from musicrec_gym.sim import kernels as kn
from musicrec_gym.sim import layout
from musicrec_gym.sim.params import SimulatorParams
from musicrec_gym.sim.protocol import Encoded, StepResult
from musicrec_gym.sim.simulator import BatchSimulator, ListenerCandidates

PARALLEL_FROM = 64
"""Batches of at least this many slots run on every core."""


def encoder_pack(encoder: NumpyEncoder) -> tuple[np.ndarray, np.ndarray]:
    """The packed encoder, made once per encoder (environments on a world share it)."""
    pack = getattr(encoder, "_kernel_pack", None)
    if pack is None or pack[0] != encoder.n_tracks or not _is_aligned(pack[1]):
        pack = (encoder.n_tracks, *pack_encoder(encoder))
        encoder._kernel_pack = pack
    return pack[1], pack[2]


def _is_aligned(arr: np.ndarray) -> bool:
    """Whether ``arr``'s data starts on a 64-byte boundary (a pickled copy's may not)."""
    return arr.ctypes.data % 64 == 0


def _aligned(arr: np.ndarray) -> np.ndarray:
    """``arr``, or an aligned copy of it (see ``aligned_empty``)."""
    if _is_aligned(arr):
        return arr
    out = aligned_empty(arr.shape, arr.dtype.type)
    out[...] = arr
    return out


def kernel_results(
    resf: np.ndarray,
    resb: np.ndarray,
    pre: np.ndarray,
    obs: np.ndarray,
    final: np.ndarray,
    autoreset: bool,
    warmup: int,
) -> tuple[StepResult, Encoded]:
    """A batch step kernel's output arrays as the records the environments read.

    ``resf`` (reward, expected, optimal), ``resb`` (listened, terminated, truncated) and
    ``pre`` (listener, optimal action, step count, then the warm-up's tracks and flags)
    have a column per slot; the synthetic and the fitted kernels fill them alike.
    """
    result = StepResult(
        reward=resf[0],
        listened=resb[0],
        expected_reward=resf[1],
        optimal_reward=resf[2],
        terminated=resb[1],
        truncated=resb[2],
    )
    encoded = Encoded(
        obs=obs,
        final_obs=final if autoreset else None,
        user=pre[0],
        optimal_action=pre[1],
        steps=pre[2],
        warmup_tracks=pre[3 : 3 + warmup].T,
        warmup_listened=pre[3 + warmup :].T.astype(bool),
    )
    return result, encoded


class CompiledSimulator(BatchSimulator):
    """``BatchSimulator`` with compiled ``step``, ``reset`` and :meth:`step_encode`.

    Args:
        truth, artist, popularity, params, n_slots, reward_mode, candidates: As for
            ``BatchSimulator``.
        encoder: The world's session encoder, bound to its track embeddings.
    """

    def __init__(
        self,
        truth: WorldTruth,
        artist: np.ndarray,
        popularity: np.ndarray,
        params: SimulatorParams,
        n_slots: int,
        encoder: NumpyEncoder,
        reward_mode: str = "listen",
        candidates: ListenerCandidates | None = None,
    ) -> None:
        super().__init__(
            truth, artist, popularity, params, n_slots, reward_mode=reward_mode,
            candidates=candidates,
        )  # fmt: skip
        self.cf, self.ci = self._pack()
        self.ce, self.lay = encoder_pack(encoder)
        self.code_dim = int(self.lay[E_H2])
        self._pre_width = 3 + 2 * params.warmup
        self._one = np.empty(kn.one_out_size(self.pool), np.float64)
        self._bind_kernels()

    def _bind_kernels(self) -> None:
        """The kernels' scratch and argument tuple; the single-env entry points, lazily."""
        chunks = kn.num_threads() if self.n_slots >= PARALLEL_FROM else 1
        self._work = aligned_empty((chunks, work_size(self.lay)))  # a row per chunk
        self._one_entries: tuple | None = None
        # the kernels' leading arguments: constants, state, encoder
        self._state = (
            self.cf, self.ci, self.int_state, self.float_state, self.streams.state,
            self.ce, self.lay,
        )  # fmt: skip

    def __getstate__(self) -> dict:
        # The compiled entry points do not pickle, and the scratch and the argument
        # tuple are remade on loading (the encoder arena re-aligned); the state is kept.
        state = super().__getstate__()
        for key in ("_work", "_one_entries", "_state"):
            del state[key]
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self.ce = _aligned(self.ce)
        self._bind_kernels()

    def _pack(self) -> tuple[np.ndarray, np.ndarray]:
        """The world's constants and the state layout as the kernels' ``cf`` and ``ci``."""
        resp, p, cands = self.response, self.params, self.candidates
        m = cands.index.shape[1]
        params = np.zeros(layout.N_PARAMS)
        params[layout.P_REPEAT], params[layout.P_ARTIST] = p.response.repeat, p.response.artist
        params[layout.P_PER_SKIP] = p.leave.per_skip
        params[layout.P_A], params[layout.P_B] = self.reward.a, self.reward.b
        params[layout.P_POP] = p.logging_pop_share
        params[layout.P_NEXT] = p.logging_continuation_share
        params[layout.P_TLL], params[layout.P_TLH] = p.reward.time_listened
        params[layout.P_TSL], params[layout.P_TSH] = p.reward.time_skipped
        params[layout.P_LIKE], params[layout.P_ADD] = p.reward.p_like, p.reward.p_add
        params[layout.P_SATW] = p.satisfaction.weight
        floats = [
            ("O_TASTE", resp.taste), ("O_FACT", resp.factors), ("O_UTERM", resp.user_term),
            ("O_TTERM", resp.track_term), ("O_POPCDF", self.pop_cdf),
            ("O_BASE", self.leave.base_rate), ("O_CSTAT", cands.static),
            ("O_CTHR", cands.threshold),
        ]  # fmt: skip
        ci = np.zeros(layout.HEADER, np.int64)
        sizes = {
            "C_U": self.n_users, "C_T": self.n_tracks, "C_K": resp.factors.shape[1], "C_M": m,
            "C_HW": self.hist.shape[1], "C_WARM": p.warmup, "C_POOL": self.pool,
            "C_CONTK": p.continuation_pool, "C_SKIPW": p.leave.skip_window,
            "C_MAXS": self.max_steps, "C_MODE": self.reward.mode_code,
            "C_SATL": p.satisfaction.levels if p.satisfaction.enabled else 0,
        }  # fmt: skip
        # The warm-up's continuations after a pool play, looked up (None: too big a table).
        table = cands.pool_nearest(
            resp.factors, self.pool, p.continuation_pool, np.arange(self.n_users)
        )
        sizes["C_PTAB"] = int(table is not None)
        for name, value in sizes.items():
            ci[getattr(layout, name)] = value
        parts, at = [params], layout.N_PARAMS
        for name, arr in floats:
            ci[getattr(layout, name)] = at
            parts.append(np.ascontiguousarray(arr, np.float64).ravel())
            at += parts[-1].size
        ints = [
            ("O_ARTIST", self.artist_of[:-1]), ("O_CIDX", cands.index),
            ("O_CART", self.cand_artist_of_user),
            ("O_PTAB", np.zeros(0) if table is None else table),
            ("O_KIND", self.track_kind),
        ]  # fmt: skip
        iparts, iat = [ci], layout.HEADER
        for name, arr in ints:
            ci[getattr(layout, name)] = iat
            iparts.append(np.ascontiguousarray(arr, np.int64).ravel())
            iat += iparts[-1].size
        columns = {
            "I_USER": "user", "I_HLEN": "hist_len", "I_STEPS": "steps", "I_OPTA": "opt_action",
            "I_SAT": "satisfaction",
            "I_HIST": "hist", "I_HLIS": "hist_listened", "I_WT": "win_tracks",
            "I_WA": "win_artist", "I_CAND": "cand", "I_CART": "cand_artist",
        }  # fmt: skip
        for key, name in columns.items():
            ci[getattr(layout, key)] = self.int_columns[name][0]
        fcolumns = {
            "F_OPTL": "opt_logit", "F_THR": "threshold", "F_WL": "win_listened",
            "F_CST": "cand_static", "F_PEN": "cand_pen",
        }  # fmt: skip
        for key, name in fcolumns.items():
            ci[getattr(layout, key)] = self.float_columns[name][0]
        return np.concatenate(parts), np.concatenate(iparts)

    # ----------------------------------------------------------------- compiled paths
    def reset(self, slots: np.ndarray, users: np.ndarray | None = None) -> None:
        """Start new sessions in ``slots`` (as ``BatchSimulator.reset``), compiled."""
        self.reset_encode(slots, users)

    def reset_encode(self, slots: np.ndarray, users: np.ndarray | None = None) -> np.ndarray:
        """Start new sessions in ``slots``; their observations, ``(len(slots), code_dim)``."""
        slots = np.ascontiguousarray(slots, dtype=np.int64)
        who = np.full(len(slots), -1, np.int64) if users is None else np.asarray(users, np.int64)
        obs = np.empty((len(slots), self.code_dim), np.float32)
        kn.reset_slots(
            self.cf, self.ci, self.int_state, self.float_state, self.streams.state,
            self.ce, self.lay, slots, np.ascontiguousarray(who), obs, self._work,
        )  # fmt: skip
        return obs

    def step(self, actions: np.ndarray) -> StepResult:
        """Recommend ``actions[i]`` in slot ``i`` (as ``BatchSimulator.step``), compiled."""
        return self.step_encode(actions)[0]

    def step_encode(
        self, actions: np.ndarray, autoreset: bool = False
    ) -> tuple[StepResult, Encoded]:
        """Step every slot, encode the observations and (``autoreset``) restart ended sessions."""
        b = self.n_slots
        resf = np.empty((3, b), np.float64)  # reward, expected, optimal
        resb = np.empty((3, b), np.bool_)  # listened, terminated, truncated
        pre = np.empty((self._pre_width, b), np.int64)
        obs = np.empty((b, self.code_dim), np.float32)
        final = np.zeros((b, self.code_dim), np.float32) if autoreset else obs
        kn.step_parallel(
            self.cf, self.ci, self.int_state, self.float_state, self.streams.state,
            self.ce, self.lay, np.ascontiguousarray(actions, dtype=np.int64), autoreset,
            resf, resb, pre, obs, final, self._work,
        )  # fmt: skip
        return kernel_results(resf, resb, pre, obs, final, autoreset, self.params.warmup)

    def step_one(self, action: int, obs: np.ndarray) -> tuple:
        """Slot 0 of a one-slot simulator steps with a valid ``action``; no batch arrays.

        Writes the observation's code into ``obs[:code_dim]``; returns reward, expected
        reward, optimal reward, listened, terminated, truncated, the next optimal
        action and the step count (a single environment's step, at a fraction of
        :meth:`step_encode`'s cost). The caller keeps the contract the kernel does not
        check: ``action`` an ``int`` in the catalog, ``obs`` a C-contiguous float32
        vector, and a session that has not ended.
        """
        if self._one_entries is None:
            self._one_entries = self._single_entries(obs)
        return self._one_entries[0](*self._state, action, self._one, obs, self._work)

    def reset_one(self, user: int, obs: np.ndarray) -> tuple:
        """Slot 0 of a one-slot simulator restarts (``user``, or drawn if negative).

        Writes the observation's code into ``obs[:code_dim]``; returns the listener,
        the best first recommendation and its expected reward.
        """
        if self._one_entries is None:
            self._one_entries = self._single_entries(obs)
        return self._one_entries[1](*self._state, user, self._one, obs, self._work)

    def _single_entries(self, obs: np.ndarray) -> tuple:
        """The single-env kernels' entry points for this simulator's argument types."""
        tail = (self._one, obs, self._work)
        return (
            kn.entry_point(kn.step_one, *self._state, 0, *tail),
            kn.entry_point(kn.reset_one, *self._state, 0, *tail),
        )

    def optimal_reward(self, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The best expected reward available now in ``slots`` (what the next step reports)."""
        rows = np.arange(self.n_slots, dtype=np.int64)[slots]
        out = np.empty(len(rows), np.float64)
        kn.optimal_rewards(self.cf, self.ci, self.float_state, rows, out)
        return out
