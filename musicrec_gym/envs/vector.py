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

from musicrec_gym.envs.core import SessionCore, check_kwargs, entropy_seeds
from musicrec_gym.errors import ConfigError
from musicrec_gym.world import World


class MusicRecVectorEnv(VectorEnv):
    """``num_envs`` concurrent sessions of ``MusicRec-v0`` (same arguments, plus ``num_envs``).

    Args:
        num_envs: Number of concurrent listeners.
        world: World directory, a loaded ``World``, or ``None`` for the built-in world.
        max_episode_steps: Session cap (``gym.make_vec`` passes the registered 20).
        render_mode: Not supported (``None`` only).
        **kwargs: ``reward``, ``profile_features`` as for ``MusicRec-v0``.
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
        if not isinstance(num_envs, (int, np.integer)) or num_envs < 1:
            raise ConfigError(f"`num_envs` must be an int >= 1, got {num_envs!r}")
        if render_mode is not None:
            raise ConfigError("the vector environment does not render; use render_mode=None")
        self.core = SessionCore(int(num_envs), world=world, max_steps=max_episode_steps, **kwargs)
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
        self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a session in every slot; slot ``i`` uses ``seed + i`` (or ``seed[i]``)."""
        if options:
            raise ConfigError(f"reset options are not supported by the vector env, got {options}")
        sim = self.core.sim
        if seed is not None:
            seeds = np.asarray(seed, dtype=np.int64)
            seeds = seeds + self._all if seeds.ndim == 0 else seeds
            if seeds.shape != (self.num_envs,):
                raise ConfigError(
                    f"`seed` must be an int or {self.num_envs} ints, got {len(seeds)} seeds"
                )
            sim.seed(self._all, seeds)
            self._seeded = True
        elif not self._seeded:
            sim.seed(self._all, entropy_seeds(self.num_envs))
            self._seeded = True
        obs = self.core.reset(self._all)
        self._started = True
        return obs, self._with_masks(self.core.reset_info())

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
