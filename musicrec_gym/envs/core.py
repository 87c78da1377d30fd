"""The machinery shared by the single and the vector environment.

``SessionCore`` owns a simulator of ``n`` slots (a
:class:`~musicrec_gym.sim.protocol.Simulator`, made for the world by
``musicrec_gym.world.make_simulator``), validates the environment's keyword arguments,
adds the listener's profile to the simulator's encoded observations when asked, and
builds ``info``. It reads the simulator only through that interface. Neither
environment adds dynamics of its own, so the two give identical trajectories for the
same seeds and actions.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from musicrec_gym.checks import is_int
from musicrec_gym.errors import (
    ArgumentError,
    ArtifactError,
    ConfigError,
    InvalidActionError,
    unknown_name_message,
)
from musicrec_gym.sim.constants import MAX_STEPS_LIMIT, REWARD_MODES
from musicrec_gym.sim.params import SimulatorParams
from musicrec_gym.sim.protocol import Encoded, Simulator, StepResult
from musicrec_gym.world import PROFILE_FEATURES, World, load_world, make_simulator, world_path

ENV_KWARGS = ("world", "reward", "profile_features", "max_steps", "string_ids", "long_term")
"""The keyword arguments of the catalog setting (``MusicRecEnv``, ``MusicRecVectorEnv``)."""
SETTING_KWARGS = ("candidates", "slate")
"""The keyword arguments that choose another setting (:mod:`musicrec_gym.envs.factory`):
``candidates=K`` (act among K retrieved candidates) and ``slate=K`` (show K tracks)."""
OUTCOME_KEYS = ("optimal_reward", "expected_reward", "regret", "listened", "track", "step")
"""The ``info`` keys that describe the step just taken (placeholders after a reset)."""
STATE_KEYS = ("user", "optimal_action", "warmup_tracks", "warmup_listened")
"""The ``info`` keys that describe the session now in the slot."""
STRING_ID_KEYS = ("track_id", "user_id")
"""The ``info`` keys of ``string_ids=True``: the catalog's and the listeners' string ids."""
INFO_KEYS = (
    "optimal_reward", "expected_reward", "regret", "listened", "track", "track_id",
    "user", "user_id", "optimal_action", "step", "warmup_tracks", "warmup_listened",
)  # fmt: skip
"""Every key of ``info`` in its order, at reset and at every step alike (``track_id`` and
``user_id`` with ``string_ids=True`` only)."""
SLOT0 = np.zeros(1, dtype=np.int64)
"""The one slot of a single environment's core."""
IMAGE_CELL = 16
"""Pixels per play (a square, a 2-pixel black border included) in ``render_image``."""
IMAGE_COLUMNS = 25
"""Plays per row of ``render_image``'s grid."""
IMAGE_PLAYS = 100
"""The most plays ``render_image`` shows: the last ones of a longer session."""
IMAGE_COLORS = np.array(
    [
        [48, 48, 48],  # not played yet
        [150, 60, 60],  # warm-up, skipped
        [70, 140, 80],  # warm-up, listened
        [230, 40, 40],  # recommended, skipped
        [40, 220, 80],  # recommended, listened
    ],
    dtype=np.uint8,
)
"""``render_image``'s colour of each kind of cell: warm-up plays are dimmer."""
_F64, _I64 = np.float64, np.int64
_BOOLS = (np.False_, np.True_)
_ZERO, _NO_TRACK, _STEP0 = np.float64(0.0), np.int64(-1), np.int64(0)
"""The single env's info values: NumPy scalars (and its reset placeholders)."""
MAX_STATE_BYTES = 2 * 2**30
"""The most memory the slots' simulator state may take (see ``slot_bytes``): 2 GiB, about
770,000 slots of the built-in world at ``max_steps=20``, 13,000 at ``max_steps=10000``."""


def check_kwargs(kwargs: dict[str, Any], env_id: str = "MusicRec-v0") -> None:
    """Reject unknown keyword arguments with a did-you-mean hint.

    Raises:
        ArgumentError: A ``ConfigError`` that is also a ``TypeError``, as Python raises
            for an unexpected keyword argument, its message ending in Python's words:
            libraries probe arguments and catch that (TorchRL reads the words too).
    """
    for key in kwargs:
        if key in SETTING_KWARGS:
            raise ArgumentError(
                f"{env_id}: {key}= chooses another setting, which this class does not "
                f"implement: build the environment with gym.make({env_id!r}, {key}=K) or "
                "musicrec_gym.envs.factory.make_env / make_vector_env "
                f"(__init__() got an unexpected keyword argument {key!r})"
            )
        if key not in ENV_KWARGS:
            known = (*ENV_KWARGS, *SETTING_KWARGS)
            raise ArgumentError(
                f"{env_id}: {unknown_name_message('keyword argument', key, known)} "
                f"(__init__() got an unexpected keyword argument {key!r})"
            )


def in_info_order(info: dict[str, Any], track_id: str, user_id: str) -> dict[str, Any]:
    """``info`` with the string ids added, every key in :data:`INFO_KEYS`' order."""
    extra = {"track_id": track_id, "user_id": user_id}
    return {key: info[key] if key in info else extra[key] for key in INFO_KEYS}


def reset_placeholders(n: int, string_ids: bool) -> dict[str, np.ndarray]:
    """The step-outcome keys of ``info`` after a reset, when no step has been taken.

    The reward-like keys are 0 (as the reward of Gymnasium's next-step autoreset
    step), so that sums over every info of an episode, reset included, are the
    episode's sums; ``listened`` is False, ``track`` -1, ``step`` 0, and
    ``track_id`` (``string_ids``) the empty string.
    """
    out = {
        "optimal_reward": np.zeros(n),
        "expected_reward": np.zeros(n),
        "regret": np.zeros(n),
        "listened": np.zeros(n, dtype=bool),
        "track": np.full(n, -1, dtype=np.int64),
        "step": np.zeros(n, dtype=np.int64),
    }
    if string_ids:
        out["track_id"] = np.full(n, "", dtype=object)
    return out


def first_slot(info: dict[str, np.ndarray]) -> dict[str, Any]:
    """Slot 0 of a batched info dict: NumPy scalars, arrays copied, and ids as ``str``."""
    return {k: (v[0] if v.ndim == 1 else v[0].copy()) for k, v in info.items()}


def entropy_seeds(n: int) -> np.ndarray:
    """Fresh seeds from the OS, for a first ``reset()`` without a seed."""
    return np.random.SeedSequence().generate_state(n, dtype=np.uint32).astype(np.int64)


def seed_first_slot(sim: Simulator, seed: int | None, seeded: bool) -> None:
    """Seed a single env's slot at a reset: ``seed``, or entropy at the first reset.

    Later seedless resets (``seeded`` True) continue the slot's stream.
    """
    if seed is not None:
        sim.seed(SLOT0, stream_seeds([seed]))
    elif not seeded:
        sim.seed(SLOT0, entropy_seeds(1))


def check_seed(seed: Any, name: str = "seed") -> int | None:
    """A ``reset`` seed as Gymnasium takes it: ``None`` or an int >= 0 (of any size).

    NumPy integers are taken too; bools are not.

    Raises:
        ConfigError: Naming ``name``: a negative number, a float, a string, a bool ...
    """
    if seed is None:
        return None
    if not is_int(seed) or seed < 0:
        raise ConfigError(
            f"`{name}` must be None or an int >= 0 (as Gymnasium takes), got "
            f"{type(seed).__name__} {seed!r}"
        )
    return int(seed)


def stream_seeds(seeds: list[int] | range) -> np.ndarray:
    """The simulator's int64 stream seed of each ``reset`` seed (ints >= 0, checked).

    Seeds below 2**63 are used as they are; seeds up to 2**64 - 1 by their 64 bits (so
    every seed below 2**64 gives its own stream); larger ones are first hashed to 64
    bits by NumPy's ``SeedSequence``.
    """
    if isinstance(seeds, range) and seeds.stop <= 2**63:  # the common cases, fast
        return np.arange(seeds.start, seeds.stop, dtype=np.int64)
    if max(seeds, default=0) < 2**63:
        return np.array(seeds, dtype=np.int64)
    folded = [
        s if s < 2**64 else int(np.random.SeedSequence(s).generate_state(1, np.uint64)[0])
        for s in seeds
    ]
    return np.array(folded, dtype=np.uint64).view(np.int64)


def slot_bytes(world: World, max_steps: int) -> int:
    """A rough upper bound on the simulator state of one slot, in bytes.

    The history (plays and listen flags of a whole session), the listener's cached best
    tracks (a fitted world: the scores of every catalog track), the windows and the
    step's outputs, 8 bytes each.
    """
    history = 2 * (world.params.warmup + max_steps)
    fitted = world.fitted is not None
    scores = world.n_tracks + 1 if fitted else 4 * world.candidates.index.shape[1]
    return 8 * (history + scores + 64)


class SessionCore:
    """``n`` listening sessions with observations and info.

    Args:
        n: Number of slots.
        world: World directory, a loaded ``World``, or ``None`` for the built-in world.
        reward: ``"listen"`` (1/0), ``"time"`` (listening time 0–5) or ``"event"``
            (event strength).
        profile_features: Append the listener's profile features to the observation.
        max_steps: Recommendations per session before truncation, an int in
            ``[1, MAX_STEPS_LIMIT]`` (default: the world's, 20 in the built-in world).
        string_ids: Also put the string ids of the track and the listener in ``info``
            (``track_id``, ``user_id``); by default ``info`` holds numbers only.
        long_term: Turn on the world's delayed effects (satisfaction that drives the leave
            hazard; ``MusicRecLongTerm-v0``). Synthetic worlds only.

    Raises:
        ConfigError: An argument of the wrong type or out of range (named), a
            ``max_steps`` past a fitted world's longest session, or ``n`` slots whose
            state would take more than ``MAX_STATE_BYTES`` (named ``num_envs``).
        ArtifactError: The world cannot be loaded, or its parameters do not fit it.
    """

    def __init__(
        self,
        n: int,
        world: str | Path | World | None = None,
        reward: str = "listen",
        profile_features: bool = False,
        max_steps: int | None = None,
        string_ids: bool = False,
        long_term: bool = False,
    ) -> None:
        if not isinstance(reward, str):
            raise ConfigError(
                f"`reward` must be a reward mode, one of {', '.join(map(repr, REWARD_MODES))}; "
                f"got {type(reward).__name__} {reward!r}"
            )
        if reward not in REWARD_MODES:
            raise ConfigError(
                f"`reward`: {unknown_name_message('reward mode', reward, REWARD_MODES)}"
            )
        if not isinstance(profile_features, (bool, np.bool_)):
            raise ConfigError(
                f"`profile_features` must be a bool (True or False), got {profile_features!r}"
            )
        profile_features = bool(profile_features)
        if not isinstance(string_ids, (bool, np.bool_)):
            raise ConfigError(f"`string_ids` must be a bool (True or False), got {string_ids!r}")
        self.string_ids = bool(string_ids)
        self.info_keys = tuple(k for k in INFO_KEYS if string_ids or k not in STRING_ID_KEYS)
        if max_steps is not None and not (is_int(max_steps) and 1 <= max_steps <= MAX_STEPS_LIMIT):
            raise ConfigError(
                f"`max_steps` must be an int in [1, {MAX_STEPS_LIMIT}] (or None: the world's, "
                f"20 in the built-in world), got {max_steps!r}"
            )
        self.world = world if isinstance(world, World) else load_world(world_path(world, "world"))
        params = self.world.params
        if not isinstance(long_term, (bool, np.bool_)):
            raise ConfigError(f"`long_term` must be a bool (True or False), got {long_term!r}")
        if long_term and self.world.fitted is not None:
            raise ConfigError(
                "`long_term=True` (MusicRecLongTerm-v0) needs a synthetic world, whose "
                f"hidden truth has the listeners' satisfaction; {self.world.directory} "
                "is fitted to logs"
            )
        # the argument decides, whatever the world's simulator.json says
        params = replace(params, satisfaction=replace(params.satisfaction, enabled=bool(long_term)))
        self.long_term = bool(long_term)
        if max_steps is not None:
            params = replace(params, leave=replace(params.leave, max_steps=int(max_steps)))
        self._check_fits(n, params, explicit_steps=max_steps is not None)
        if self.world.fitted is not None and profile_features:
            raise ConfigError(
                "`profile_features=True` needs listener profiles, and a world fitted "
                f"to logs ({self.world.directory}) has none"
            )
        self.sim: Simulator = make_simulator(self.world, n, params, reward_mode=reward)
        self.n = n
        self.reward_mode = reward
        self.profile_features = profile_features
        self.obs_dim = self.world.obs_dim + (len(PROFILE_FEATURES) if profile_features else 0)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(self.obs_dim,), dtype=np.float32)
        self.action_space = spaces.Discrete(self.world.n_tracks)
        self.track_ids = self.world.catalog["track_id"].to_numpy(dtype=object)
        self.user_ids = self.world.listeners["user_id"].to_numpy(dtype=object)
        # the single env's fast path: plain lists index faster than object arrays
        self._track_id_list, self._user_id_list = self.track_ids.tolist(), self.user_ids.tolist()
        self._warmup_len = params.warmup
        self._max_steps = params.leave.max_steps
        self._make_scalars()

    def _make_scalars(self) -> None:
        """The single env's info numbers (track rows, step counts) as NumPy scalars, once."""
        if self.n == 1:
            self._scalars = (
                list(np.arange(self.world.n_tracks, dtype=np.int64)),
                list(np.arange(self._max_steps + 1, dtype=np.int64)),
            )

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_scalars", None)  # remade on loading: small to pickle, quick to make
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._make_scalars()

    def _check_fits(self, n: int, params: SimulatorParams, explicit_steps: bool) -> None:
        """Refuse what the world cannot simulate, or too many slots for memory."""
        world, max_steps = self.world, params.leave.max_steps
        if world.fitted is not None:
            longest = world.fitted.max_length - params.warmup
            if explicit_steps and max_steps > longest:
                raise ConfigError(
                    f"`max_steps`={max_steps}: a session of this fitted world lasts at most "
                    f"{longest} recommendations (its logs' sessions have at most "
                    f"{world.fitted.max_length} plays, {params.warmup} of them the warm-up)"
                )
        else:
            pool = min(params.logging_pool, world.candidates.index.shape[1])
            if params.continuation_pool > pool:
                raise ArtifactError(
                    f"{world.directory / 'simulator.json'}: key 'continuation_pool' "
                    f"({params.continuation_pool}) must be <= the logging pool of this "
                    f"world ({pool}: 'logging_pool' capped by each listener's cached best tracks)"
                )
        need = n * slot_bytes(world, max_steps)
        if need > MAX_STATE_BYTES:
            most = MAX_STATE_BYTES // slot_bytes(world, max_steps)
            raise ConfigError(
                f"`num_envs`={n} with max_steps={max_steps}: the sessions' state would take "
                f"{need / 2**30:.3g} GiB, more than the {MAX_STATE_BYTES / 2**30:g} GiB "
                f"limit; use num_envs <= {most} (or a smaller max_steps)"
            )

    def reset(self, slots: np.ndarray, users: np.ndarray | None = None) -> np.ndarray:
        """Start sessions in ``slots``; their observations ``(len(slots), obs_dim)``."""
        codes = self.sim.reset_encode(slots, users)
        return self._with_profile(codes, self.sim.user[slots])

    def step(self, actions: np.ndarray, autoreset: bool = False) -> tuple[StepResult, Encoded]:
        """Step every slot; observations after it and, with ``autoreset``, after restarts.

        ``Encoded`` also holds each slot's state after the step and before any restart
        (what ``info["final_info"]`` reports for an ended session).
        """
        result, enc = self.sim.step_encode(actions, autoreset)
        if not self.profile_features:
            return result, enc
        final = enc.final_obs
        if final is not None:  # zeros stay zeros where no session ended
            done = result.terminated | result.truncated
            final = np.where(done[:, None], self._with_profile(final, enc.user), 0.0)
        obs = self._with_profile(enc.obs, self.sim.user)
        return result, replace(enc, obs=obs, final_obs=final)

    def _with_profile(self, codes: np.ndarray, users: np.ndarray) -> np.ndarray:
        if not self.profile_features:
            return codes
        return np.concatenate([codes, self.world.profile_features[users]], axis=1).astype(
            np.float32, copy=False
        )

    def check_actions(self, actions: Any, single: bool = False) -> np.ndarray:
        """Validate a batch of actions; returns them as an int64 array of shape (n,).

        Actions are integer track indices (integral floats are taken too; bools,
        strings, NaN are not). With ``single``, one action: a scalar or a 1-element
        array of at most one dimension.

        Raises:
            InvalidActionError: The type or shape is wrong, or an action is outside the
                action space (the message gives the action as passed).
        """
        n_tracks = self.world.n_tracks
        try:
            arr = np.asarray(actions)
        except (ValueError, TypeError):  # ragged nested lists
            raise self._wrong_actions(actions, single) from None
        if arr.shape != (self.n,):
            if not single or arr.ndim > 1 or arr.size != 1:
                raise self._wrong_actions(actions, single)
            arr = arr.reshape(1)
        kind = arr.dtype.kind
        if kind == "f":
            if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
                raise self._wrong_actions(actions, single)
        elif kind == "O":  # only Python ints too large for int64 get past here
            if not all(is_int(v) for v in arr):
                raise self._wrong_actions(actions, single)
        elif kind not in "iu":  # bool, str, complex ...
            raise self._wrong_actions(actions, single)
        bad = np.flatnonzero((arr < 0) | (arr >= n_tracks))
        if bad.size:
            first = arr[bad[0]]
            first = first.item() if isinstance(first, np.generic) else first
            raise InvalidActionError(
                f"action {first!r} is outside the action space Discrete({n_tracks}): "
                f"actions are track indices 0..{n_tracks - 1}"
            )
        return arr.astype(np.int64)

    def _wrong_actions(self, actions: Any, single: bool) -> InvalidActionError:
        expected = (
            f"one integer track index in [0, {self.world.n_tracks})"
            if single
            else f"{self.n} integer track indices in [0, {self.world.n_tracks}), shape ({self.n},)"
        )
        return InvalidActionError(f"expected {expected}, got {actions!r}")

    def reset_info(self, slots: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        """Info after a reset: the step-outcome keys' placeholders, then the session's keys.

        The same keys, in the same order and of the same types, as :meth:`step_info`.
        """
        state = self.state_info(slots)
        out = reset_placeholders(len(state["user"]), self.string_ids)
        out.update(state)
        return self._ordered(out)

    def state_info(self, slots: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        """The info keys that describe the session now in ``slots`` (new arrays)."""
        sim = self.sim
        users = sim.user[slots].copy()
        out = {
            "user": users,
            "optimal_action": sim.opt_action[slots].copy(),
            **self.warmup_info(slots),
        }
        if self.string_ids:
            out["user_id"] = self.user_ids[users]
        return out

    def warmup_info(self, slots: np.ndarray | slice = slice(None)) -> dict[str, np.ndarray]:
        """The warm-up plays that opened the session now in each slot.

        What a real service knows when it takes over: the tracks just played
        (``warmup_tracks``, catalog rows; -1 for a fitted world's track outside the
        catalog) and whether each was listened to
        (``warmup_listened``), each of shape (B, warm-up length).
        """
        warmup = self.sim.params.warmup
        return {
            "warmup_tracks": self._catalog_rows(self.sim.hist[slots, :warmup].copy()),
            "warmup_listened": self.sim.hist_listened[slots, :warmup].astype(bool),
        }

    def _catalog_rows(self, tracks: np.ndarray) -> np.ndarray:
        """``tracks`` (a new array, changed in place) with a fitted world's rare rows as -1."""
        if self.world.fitted is not None:  # a synthetic world's rows are all in the catalog
            tracks[tracks >= self.world.n_tracks] = -1
        return tracks

    def _ordered(self, info: dict[str, Any]) -> dict[str, Any]:
        return {key: info[key] for key in self.info_keys}

    def step_info(
        self, actions: np.ndarray, result: StepResult, enc: Encoded
    ) -> dict[str, np.ndarray]:
        """Info after a step, every key describing the session as it was after the step."""
        info = {
            "optimal_reward": result.optimal_reward,
            "expected_reward": result.expected_reward,
            "regret": result.optimal_reward - result.expected_reward,
            "listened": result.listened,
            "track": actions,
            "user": enc.user,
            "optimal_action": enc.optimal_action,
            "step": enc.steps,
            "warmup_tracks": self._catalog_rows(enc.warmup_tracks),
            "warmup_listened": enc.warmup_listened,
        }
        if self.string_ids:
            info["track_id"] = self.track_ids[actions]
            info["user_id"] = self.user_ids[enc.user]
        return self._ordered(info)

    # ------------------------------------------------ next-step autoreset (vector env)
    def stream_counters(self, slots: np.ndarray) -> np.ndarray:
        """How many random numbers each of ``slots`` has drawn (a copy).

        The simulators draw from counter-based streams (:mod:`musicrec_gym.sim.rng`),
        so restoring a counter (:meth:`rewind_streams`) replays the slot's draws.
        """
        return self.sim.streams.counter[slots].copy()

    def rewind_streams(self, slots: np.ndarray, counters: np.ndarray) -> None:
        """Set the stream counters of ``slots`` back to ``counters``."""
        self.sim.streams.counter[slots] = counters

    # ------------------------------------------------------------ single env fast path
    def reset_one(self, users: np.ndarray | None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start the session of a one-slot core; its observation and info (plain values).

        The session's listener and warm-up are kept for its steps' infos.
        """
        sim = self.sim
        obs = np.empty(self.obs_dim, np.float32)
        user, action, _ = sim.reset_one(-1 if users is None else int(users[0]), obs)
        if self.profile_features:
            obs[sim.code_dim :] = self.world.profile_features[user]
        # The warm-up stays as it is for the whole session: kept for the steps' infos.
        tracks = self._catalog_rows(sim.hist[0, : self._warmup_len].copy())
        self._warmup = tracks, sim.hist_listened[0, : self._warmup_len].astype(bool)
        self._user = _I64(user)
        info = {
            "optimal_reward": _ZERO,
            "expected_reward": _ZERO,
            "regret": _ZERO,
            "listened": _BOOLS[0],
            "track": _NO_TRACK,
            "user": self._user,
            "optimal_action": _I64(action),
            "step": _STEP0,
            "warmup_tracks": tracks.copy(),
            "warmup_listened": self._warmup[1].copy(),
        }
        if self.string_ids:
            info["track_id"] = ""
            info["user_id"] = self._user_id = self._user_id_list[user]
            info = self._ordered(info)
        self._profile = self.world.profile_features[user] if self.profile_features else None
        return obs, info

    def step_one(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """A one-slot core steps with a valid track ``action``: ``env.step``'s tuple."""
        obs = np.empty(self.obs_dim, np.float32)
        reward, expected, optimal, listened, term, trunc, opt_action, step = self.sim.step_one(
            action, obs
        )
        if self._profile is not None:
            obs[self.sim.code_dim :] = self._profile
        warmup_tracks, warmup_listened = self._warmup
        # NumPy scalars, as a batch info's entries are (TorchRL's info reader needs them)
        tracks, steps = self._scalars
        info = {
            "optimal_reward": _F64(optimal),
            "expected_reward": _F64(expected),
            "regret": _F64(optimal - expected),
            "listened": _BOOLS[listened],
            "track": tracks[action],
            "user": self._user,
            "optimal_action": tracks[opt_action],
            "step": steps[step],
            "warmup_tracks": warmup_tracks.copy(),  # new arrays per info, as Gymnasium asks
            "warmup_listened": warmup_listened.copy(),
        }
        if self.string_ids:
            info = in_info_order(info, self._track_id_list[action], self._user_id)
        return obs, reward, term, trunc, info

    def render_image(self, slot: int) -> np.ndarray:
        """The session so far as an RGB image, ``(H, W, 3)`` uint8, the same shape every call.

        One square cell per play, row by row, ``IMAGE_COLUMNS`` to a row: green for a
        listen, red for a skip, dimmer for the warm-up's plays, grey for plays still to
        come. A session longer than ``IMAGE_PLAYS`` plays shows its last ones.
        """
        sim = self.sim
        width = sim.hist.shape[1]
        shown = min(width, IMAGE_PLAYS)
        played = int(sim.hist_len[slot])
        first = max(0, played - shown)
        pos = np.arange(first, first + shown)
        listened = sim.hist_listened[slot, pos].astype(bool)
        kind = np.where(pos < played, 1 + listened + 2 * (pos >= sim.params.warmup), 0)
        cols = min(shown, IMAGE_COLUMNS)
        rows = -(-shown // cols)
        grid = np.full(rows * cols, -1, np.int64)  # -1: black, past the last play shown
        grid[:shown] = kind
        cell = np.zeros((IMAGE_CELL, IMAGE_CELL), bool)
        cell[2:-2, 2:-2] = True  # a black border around each play
        palette = np.vstack([IMAGE_COLORS, np.zeros((1, 3), np.uint8)])
        image = palette[np.kron(grid.reshape(rows, cols), np.ones(cell.shape, np.int64))]
        image[~np.tile(cell, (rows, cols))] = 0
        return image

    def render_session(self, slot: int) -> str:
        """The session so far as text: one line per play."""
        sim, cat = self.sim, self.world.catalog
        lines = [f"listener {self.user_ids[sim.user[slot]]}"]
        warmup = sim.params.warmup
        for pos in range(int(sim.hist_len[slot])):
            track = int(sim.hist[slot, pos])
            mark = "listened" if sim.hist_listened[slot, pos] else "skipped"
            who = "warm-up" if pos < warmup else f"step {pos - warmup + 1:2d}"
            if track >= len(cat):  # a fitted world's rare-track row (warm-up only)
                lines.append(f"{pos + 1:2d} [{who}] (a track outside the catalog) {mark}")
                continue
            row = cat.iloc[track]
            if self.world.fitted is not None:  # logs have no titles, artists or genres
                lines.append(f"{pos + 1:2d} [{who}] {row['track_id']} {mark}")
                continue
            lines.append(
                f"{pos + 1:2d} [{who}] {row['track_id']} {row['title']!s:<12} "
                f"{row['artist']!s:<10} {row['genre']!s:<11} {mark}"
            )
        return "\n".join(lines) + "\n"
