"""The native vector environment: ``num_envs`` listeners stepped at once with NumPy.

``gym.make_vec("MusicRec-v0", num_envs=N)`` returns it. It follows Gymnasium's
*same-step* autoreset (``metadata["autoreset_mode"] == AutoresetMode.SAME_STEP``):
when a session ends, ``step`` returns the *new* session's first observation for that
slot, and the ended session's last observation and info are in
``info["final_obs"]`` and ``info["final_info"]`` (masked by ``info["_final_obs"]``).
The step-outcome keys of ``info`` (``reward``-related: ``optimal_reward``,
``expected_reward``, ``regret``, ``listened``, ``track``) always describe the step just
taken; the state keys (``user``, ``user_id``, ``optimal_action``, ``warmup_tracks``,
``warmup_listened``) describe the session now in the slot, the new one after an autoreset.
Slot ``i`` seeded with ``seed + i`` gives exactly the trajectory of a single
``MusicRec-v0`` reset with that seed and fed the same actions: the same listeners,
rewards, ends, optimal rewards and, in a synthetic world, observations bit for bit (a
fitted world's NumPy encoder may round its matrix products differently at other batch
sizes: equal to float32 rounding there).
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
from musicrec_gym.errors import ArgumentError, ConfigError
from musicrec_gym.sim.constants import MAX_STEPS_LIMIT
from musicrec_gym.world import World, load_world, world_path


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
        **kwargs: ``reward``, ``profile_features`` and ``max_steps`` as for ``MusicRec-v0``.
    """

    metadata = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int = 1,
        world: str | Path | World | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_kwargs(kwargs)
        if not is_int(num_envs) or num_envs < 1:
            raise ConfigError(f"`num_envs` must be an int >= 1, got {num_envs!r}")
        if render_mode is not None:
            raise ArgumentError(
                f"the vector environment does not render; use render_mode=None, got {render_mode!r}"
            )
        if max_episode_steps is not None and max_episode_steps != -1:
            if not is_int(max_episode_steps) or max_episode_steps < 1:
                raise ConfigError(
                    "`max_episode_steps` must be an int >= 1, or None or -1 for no limit "
                    f"besides max_steps, got {max_episode_steps!r}"
                )
            kwargs["max_steps"] = time_limited(
                kwargs.get("max_steps"), int(max_episode_steps), world
            )
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

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a session in every slot; slot ``i`` uses ``seed + i`` (or ``seed[i]``).

        Args:
            seed: ``None`` (continue each slot's stream), an int >= 0 (slot ``i`` gets
                ``seed + i``), or ``num_envs`` seeds, each an int >= 0 or ``None`` (that
                slot continues its stream), as Gymnasium's vector envs take them.
            options: Not supported (``None`` or ``{}`` only).

        Raises:
            ConfigError: Naming ``seed`` (or ``seed[i]``): a negative number, a float, a
                bool, a string, or a list of the wrong length; or ``options`` given.
        """
        if options:
            raise ConfigError(f"reset options are not supported by the vector env, got {options}")
        slots, seeds = self._seed_slots(seed)
        sim = self.core.sim
        if not self._seeded and len(slots) < self.num_envs:
            sim.seed(self._all, entropy_seeds(self.num_envs))
        if len(slots):
            sim.seed(slots, seeds)
        self._seeded = True
        obs = self.core.reset(self._all)
        self._started = True
        return obs, self._with_masks(self.core.reset_info())

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
        """Recommend ``actions[i]`` in slot ``i``; ended sessions restart in the same call."""
        if not self._started:
            raise ConfigError("step() called before reset(): call reset() first")
        core = self.core
        acts = core.check_actions(actions)
        result, enc = core.step(acts, autoreset=True)
        info = self._with_masks(core.step_info(acts, result, enc))
        done = result.terminated | result.truncated
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

    def _with_masks(self, info: dict[str, np.ndarray]) -> dict[str, Any]:
        out: dict[str, Any] = dict(info)
        for key in info:
            out["_" + key] = self._mask
        return out
