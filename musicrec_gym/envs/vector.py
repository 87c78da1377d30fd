"""The native vector environment: ``num_envs`` listeners stepped at once with NumPy.

``gym.make_vec("MusicRec-v0", num_envs=N)`` returns it. Its autoreset mode is
``env.autoreset_mode``, also ``metadata["autoreset_mode"]`` as Gymnasium 1.x reads it:

- ``SAME_STEP`` (the default; what SB3 and the project's agents use): the ``step`` at
  which a session ends returns the *new* session's first observation for the slot; the
  ended session's last observation and info are in ``info["final_obs"]`` and
  ``info["final_info"]`` (masked by ``info["_final_obs"]``).
- ``NEXT_STEP`` (Gymnasium's ``SyncVectorEnv`` default, which its stateful vector
  wrappers such as ``NormalizeObservation`` need): that ``step`` returns the ended
  session's last observation; the *next* ``step`` ignores the slot's action and returns
  the new session's first observation, reward 0, ``terminated`` and ``truncated``
  False, and its reset ``info``.
- ``DISABLED`` (what TorchRL prefers): no autoreset; ``reset(options={"reset_mask":
  mask})`` restarts the slots of ``mask`` (a bool array), and a ``step`` before every
  ended session is restarted raises ``EpisodeEndedError``.

``reset(options={"reset_mask": mask})`` works in every mode, as in Gymnasium's
``SyncVectorEnv``: the other slots keep their sessions and last observations, and the
reset ``info``'s ``_key`` masks are ``mask``.

``gym.make_vec("MusicRec-v0", num_envs=8, autoreset_mode="next_step")`` (or
``AutoresetMode.NEXT_STEP``) asks for the second. In every mode slot ``i`` gives, draw for
draw, the trajectory of a single ``MusicRec-v0`` reset with seed ``seed + i`` and fed the
same actions (and reset without a seed when its session ends, as Gymnasium's
``SyncVectorEnv`` does): the same listeners, rewards, ends, optimal rewards and, in a
synthetic world, observations bit for bit (a fitted world's NumPy encoder may round its
matrix products differently at other batch sizes: equal to float32 rounding there).

``info`` has the keys of the single environment, each an array over the slots with its
``_key`` mask (all True): the step-outcome keys (``optimal_reward``,
``expected_reward``, ``regret``, ``listened``, ``track``, ``step``, ``track_id``) describe
the step just taken, their reset placeholders (0, False, -1) after a reset; the state
keys (``user``, ``user_id``, ``optimal_action``, ``warmup_tracks``, ``warmup_listened``)
describe the session now in the slot, the new one after a same-step autoreset.
``terminated`` and ``truncated`` are never both True.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from musicrec_gym.checks import is_int
from musicrec_gym.envs.core import (
    SessionCore,
    check_kwargs,
    check_seed,
    entropy_seeds,
    stream_seeds,
)
from musicrec_gym.errors import ArgumentError, ConfigError, EpisodeEndedError, did_you_mean
from musicrec_gym.sim.constants import MAX_STEPS_LIMIT
from musicrec_gym.world import World, load_world, world_path

AUTORESET_NAMES = {
    "same_step": AutoresetMode.SAME_STEP,
    "next_step": AutoresetMode.NEXT_STEP,
    "disabled": AutoresetMode.DISABLED,
    **{mode.value: mode for mode in AutoresetMode},
}
"""The ``autoreset_mode`` values taken besides the enum: ``"next_step"`` or ``"NextStep"`` ..."""


def autoreset_mode_of(mode: Any) -> AutoresetMode:
    """``autoreset_mode`` as Gymnasium's enum.

    Raises:
        ConfigError: Not an ``AutoresetMode`` or one's name, with a did-you-mean hint.
    """
    if isinstance(mode, AutoresetMode):
        return mode
    if isinstance(mode, str) and mode in AUTORESET_NAMES:
        return AUTORESET_NAMES[mode]
    hint = did_you_mean(mode, AUTORESET_NAMES) if isinstance(mode, str) else ""
    raise ConfigError(
        "`autoreset_mode` must be an AutoresetMode (SAME_STEP, NEXT_STEP or DISABLED) or "
        f"'same_step', 'next_step', 'disabled'; got {mode!r}.{hint}"
    )


def vector_kwargs(
    num_envs: Any, render_mode: Any, max_episode_steps: Any, world: Any, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """Check a vector env's own arguments; ``kwargs`` with ``max_episode_steps`` applied.

    Raises:
        ConfigError: ``num_envs`` not an int >= 1, or ``max_episode_steps`` not an int
            >= 1 (or None or -1).
        ArgumentError: A ``render_mode`` (the vector environments do not render).
    """
    if not is_int(num_envs) or num_envs < 1:
        raise ConfigError(f"`num_envs` must be an int >= 1, got {num_envs!r}")
    if render_mode is not None:
        raise ArgumentError(
            f"the vector environment does not render; use render_mode=None, got {render_mode!r}"
        )
    kwargs = dict(kwargs)
    if max_episode_steps is not None and max_episode_steps != -1:
        if not is_int(max_episode_steps) or max_episode_steps < 1:
            raise ConfigError(
                "`max_episode_steps` must be an int >= 1, or None or -1 for no limit "
                f"besides max_steps, got {max_episode_steps!r}"
            )
        kwargs["max_steps"] = time_limited(kwargs.get("max_steps"), int(max_episode_steps), world)
    return kwargs


def time_limited(max_steps: Any, limit: int, world: Any) -> Any:
    """``max_steps`` under a time limit of ``limit`` steps: the smaller of the two.

    ``max_steps`` is ``None`` for the world's own (kept ``None`` when the limit does not
    cut it); a value that is not a valid ``max_steps`` is passed on unchanged, for
    ``SessionCore`` to refuse by name.
    """
    if max_steps is None:
        loaded = world if isinstance(world, World) else load_world(world_path(world, "world"))
        return None if loaded.params.leave.max_steps <= limit else limit
    if is_int(max_steps) and 1 <= max_steps <= MAX_STEPS_LIMIT:
        return min(int(max_steps), limit)
    return max_steps


class MusicRecVectorEnv(VectorEnv):
    """``num_envs`` concurrent sessions of ``MusicRec-v0`` (same arguments, plus ``num_envs``).

    Args:
        num_envs: Number of concurrent listeners, an int >= 1; at most as many as fit the
            sessions' state in ``MAX_STATE_BYTES`` (2 GiB: about 770,000 in the built-in
            world at ``max_steps=20``; the error says how many).
        world: World directory, a loaded ``World``, or ``None`` for the built-in world.
        max_episode_steps: Gymnasium's time limit (``gym.make_vec`` passes the
            registered one, or the one given to it); as ``gym.make``'s ``TimeLimit`` does
            for the single env, it can only end sessions earlier than ``max_steps``:
            sessions are truncated after ``min(max_steps, max_episode_steps)``
            recommendations. ``None`` or -1: no limit besides ``max_steps``.
        render_mode: Not supported: ``None`` only (else ``ArgumentError``, a
            ``TypeError``, as for unknown keyword arguments).
        autoreset_mode: ``AutoresetMode.SAME_STEP`` (the default), ``NEXT_STEP`` or
            ``DISABLED``, or their names ``"same_step"``, ``"next_step"``, ``"disabled"``
            (see the module docstring).
        **kwargs: ``reward``, ``profile_features``, ``max_steps``, ``string_ids`` and
            ``long_term`` as for ``MusicRec-v0`` (``gym.make_vec("MusicRecLongTerm-v0")``
            passes ``long_term=True``).
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}
    """The class's default; an instance's ``metadata`` has its own ``autoreset_mode``."""

    def __init__(
        self,
        num_envs: int = 1,
        world: str | Path | World | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        autoreset_mode: AutoresetMode | str = AutoresetMode.SAME_STEP,
        **kwargs: Any,
    ) -> None:
        check_kwargs(kwargs)
        self.autoreset_mode = autoreset_mode_of(autoreset_mode)
        self.metadata = {**type(self).metadata, "autoreset_mode": self.autoreset_mode}
        kwargs = vector_kwargs(num_envs, render_mode, max_episode_steps, world, kwargs)
        self.core = SessionCore(int(num_envs), world=world, **kwargs)
        self.world = self.core.world
        self.num_envs = int(num_envs)
        self.render_mode = None
        self.single_observation_space = self.core.observation_space
        self.single_action_space = self.core.action_space
        self.observation_space = spaces.Box(
            -1.0, 1.0, shape=(self.num_envs, self.core.obs_dim), dtype=np.float32
        )
        self.action_space = spaces.MultiDiscrete(np.full(self.num_envs, self.world.n_tracks))
        self._all = np.arange(self.num_envs)
        self._mask = np.ones(self.num_envs, dtype=bool)
        self._seeded = False
        self._started = False
        # next-step autoreset: the slots whose session ended at the last step (already
        # restarted, so that no ended session is ever stepped) and their stream counters
        # before that restart, to start the same session again at the next step
        self._pending = np.zeros(self.num_envs, dtype=bool)
        self._counters = np.zeros(0, dtype=np.uint64)
        self._ended = np.zeros(self.num_envs, dtype=bool)  # DISABLED: not restarted yet
        self._last_obs: np.ndarray | None = None  # for a partial reset's other slots

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a session in every slot (or those of a reset mask); slot ``i`` uses ``seed + i``.

        Args:
            seed: ``None`` (continue each slot's stream), an int >= 0 (slot ``i`` gets
                ``seed + i``), or ``num_envs`` seeds, each an int >= 0 or ``None`` (that
                slot continues its stream), as Gymnasium's vector envs take them.
            options: ``None``, or ``{"reset_mask": mask}`` with a bool array of shape
                ``(num_envs,)``: restart only those slots (seeded, if ``seed`` is
                given, with their own seeds), as Gymnasium's vector envs do.

        Raises:
            ConfigError: Naming ``seed`` (or ``seed[i]``): a negative number, a float, a
                bool, a string, or a list of the wrong length; another option; a bad
                ``reset_mask``, or one before the first full reset.
        """
        mask = self._reset_mask(options)
        slots, seeds = self._seed_slots(seed)
        self._undo_restarts(self._mask if mask is None else mask)
        if mask is not None:
            keep = mask[slots]
            slots, seeds = slots[keep], seeds[keep]
        sim = self.core.sim
        if not self._seeded and len(slots) < self.num_envs:
            sim.seed(self._all, entropy_seeds(self.num_envs))
        if len(slots):
            sim.seed(slots, seeds)
        self._seeded = True
        if mask is None:
            obs = self.core.reset(self._all)
            self._started = True
            self._pending[:] = self._ended[:] = False
            self._last_obs = obs
            return obs, self._with_masks(self.core.reset_info())
        reset = np.flatnonzero(mask)
        obs = self._last_obs.copy()
        obs[reset] = self.core.reset(reset)
        self._pending[reset] = self._ended[reset] = False
        self._last_obs = obs
        return obs, self._with_masks(self.core.reset_info(), mask)

    def _undo_restarts(self, mask: np.ndarray) -> None:
        """Rewind the streams of next-step slots in ``mask`` restarted ahead of time.

        So that a reset draws what a single environment's reset would: it never
        started the session the next step would have shown.
        """
        pending = np.flatnonzero(self._pending)
        hit = mask[pending]
        if hit.any():
            self.core.rewind_streams(pending[hit], self._counters[hit])
            self._counters = self._counters[~hit]
            self._pending[pending[hit]] = False

    def _reset_mask(self, options: Any) -> np.ndarray | None:
        """``options["reset_mask"]``, checked; ``None`` for a full reset."""
        if options is None or (isinstance(options, dict) and not options):
            return None
        if not isinstance(options, dict) or set(options) != {"reset_mask"}:
            raise ConfigError(
                "reset options are not supported by the vector env, but for "
                f"{{'reset_mask': bool array of shape ({self.num_envs},)}}; got {options!r}"
            )
        mask = options["reset_mask"]
        if (
            not isinstance(mask, np.ndarray)
            or mask.dtype != np.bool_
            or mask.shape != (self.num_envs,)
            or not mask.any()
        ):
            raise ConfigError(
                f"`reset_mask` must be a bool array of shape ({self.num_envs},) with a True, "
                f"got {mask!r}"
            )
        if not self._started:
            raise ConfigError("reset with a `reset_mask` before the first reset(): reset all first")
        return mask

    def _seed_slots(self, seed: Any) -> tuple[np.ndarray, np.ndarray]:
        """The slots ``reset(seed=...)`` seeds, and their stream seeds (int64)."""
        n = self.num_envs
        if seed is None:
            return self._all[:0], np.zeros(0, np.int64)
        if is_int(seed):
            first = check_seed(seed)
            return self._all, stream_seeds(range(first, first + n))
        if isinstance(seed, np.ndarray) and seed.ndim == 1:
            seed = seed.tolist()
        if not isinstance(seed, (list, tuple)) or len(seed) != n:
            got = f"{len(seed)} seeds" if isinstance(seed, (list, tuple)) else repr(seed)
            raise ConfigError(
                f"`seed` must be None, an int >= 0 or a list of {n} ints >= 0 (or None), got {got}"
            )
        slots = [i for i, s in enumerate(seed) if check_seed(s, f"seed[{i}]") is not None]
        return np.array(slots, np.int64), stream_seeds([int(seed[i]) for i in slots])

    def step(
        self, actions: Any
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Recommend ``actions[i]`` in slot ``i``; ended sessions restart (``autoreset_mode``)."""
        if not self._started:
            raise ConfigError("step() called before reset(): call reset() first")
        core = self.core
        acts = core.check_actions(actions)
        if self.autoreset_mode is AutoresetMode.NEXT_STEP:
            return self._step_next(acts)
        if self.autoreset_mode is AutoresetMode.DISABLED:
            return self._step_disabled(acts)
        result, enc = core.step(acts, autoreset=True)
        info = self._with_masks(core.step_info(acts, result, enc))
        done = result.terminated | result.truncated
        self._last_obs = enc.obs
        if not done.any():
            return enc.obs, result.reward, result.terminated, result.truncated, info
        final_info = dict(info)
        final_info["_final_obs"] = done  # (as before: every key but the final ones)
        info["final_obs"] = enc.final_obs  # zeros where no session ended
        info["_final_obs"] = done
        info["final_info"] = final_info
        info["_final_info"] = done
        info.update(core.state_info())  # the sessions now in the slots: new where one ended
        return enc.obs, result.reward, result.terminated, result.truncated, info

    def _step_next(
        self, acts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """A step with Gymnasium's next-step autoreset.

        A slot whose session ended at the last step was restarted then (its stream
        counter noted before); this step steps it too, as the simulator steps every slot,
        then rewinds its stream and starts the same session again: the step is undone and
        the slot's draws are those of a single environment reset at this step.
        """
        core, pending = self.core, self._pending
        result, enc = core.step(acts)
        obs, reward = enc.obs, result.reward
        terminated, truncated = result.terminated, result.truncated
        info = core.step_info(acts, result, enc)
        if pending.any():
            slots = np.flatnonzero(pending)
            core.rewind_streams(slots, self._counters)
            obs[slots] = core.reset(slots)
            reward[slots] = 0.0
            terminated[slots] = truncated[slots] = False
            for key, value in core.reset_info(slots).items():
                info[key][slots] = value
        done = terminated | truncated
        self._pending = done
        if done.any():
            ended = np.flatnonzero(done)
            self._counters = core.stream_counters(ended)
            core.reset(ended)
        self._last_obs = obs
        return obs, reward, terminated, truncated, self._with_masks(info)

    def _step_disabled(
        self, acts: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """A step without autoreset: every slot's session must be running."""
        if self._ended.any():
            raise EpisodeEndedError(
                f"step() with the sessions of slots {np.flatnonzero(self._ended).tolist()} "
                "ended (autoreset_mode=DISABLED): reset them first with "
                "reset(options={'reset_mask': mask})"
            )
        core = self.core
        result, enc = core.step(acts)
        self._ended = result.terminated | result.truncated
        self._last_obs = enc.obs
        info = self._with_masks(core.step_info(acts, result, enc))
        return enc.obs, result.reward, result.terminated, result.truncated, info

    def _with_masks(
        self, info: dict[str, np.ndarray], mask: np.ndarray | None = None
    ) -> dict[str, Any]:
        out: dict[str, Any] = dict(info)
        mask = self._mask if mask is None else mask
        for key in info:
            out["_" + key] = mask
        return out
