"""Stable-baselines3 ``VecEnv`` over the native vector environment.

``PPO("MlpPolicy", MusicRecSB3VecEnv(num_envs=64))`` trains on many listeners stepped
at once, with no per-listener Python environment. SB3 expects same-step autoreset with
``infos[i]["terminal_observation"]`` and ``"TimeLimit.truncated"``, which is what the
native environment does underneath.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode
from stable_baselines3.common.vec_env.base_vec_env import VecEnv

from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError


class MusicRecSB3VecEnv(VecEnv):
    """SB3 view of ``MusicRecVectorEnv``.

    Args:
        num_envs: Number of concurrent listeners (ignored when ``env`` is given).
        env: An existing native vector environment to wrap (same-step autoreset).
        seed: Seed of the first reset (slot ``i`` gets ``seed + i``).
        **kwargs: Environment arguments (``world``, ``reward``, ``profile_features``,
            ``max_steps``).

    Raises:
        ConfigError: ``env`` has next-step autoreset, which SB3 does not expect.
    """

    def __init__(
        self,
        num_envs: int = 1,
        env: MusicRecVectorEnv | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.env = env if env is not None else MusicRecVectorEnv(num_envs=num_envs, **kwargs)
        if self.env.autoreset_mode is not AutoresetMode.SAME_STEP:
            raise ConfigError(
                "MusicRecSB3VecEnv needs same-step autoreset (SB3's), got "
                f"{self.env.autoreset_mode}: make the env with autoreset_mode='same_step'"
            )
        self.render_mode = None
        super().__init__(
            self.env.num_envs, self.env.single_observation_space, self.env.single_action_space
        )
        self._next_seed = seed
        self._actions: np.ndarray | None = None

    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Seed the next reset: slot ``i`` gets ``seed + i``."""
        self._next_seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def reset(self) -> np.ndarray:
        """Reset every slot (with the pending seed, if any)."""
        obs, _ = self.env.reset(seed=self._next_seed)
        self._next_seed = None
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions for ``step_wait``."""
        self._actions = np.asarray(actions).reshape(self.num_envs)

    def step_wait(self):
        """Step every slot; ended sessions restart (SB3's same-step autoreset)."""
        obs, reward, terminated, truncated, info = self.env.step(self._actions)
        self.last_info = info  # batched step info (optimal_reward, listened, ...)
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if dones.any():
            final = info["final_obs"]
            for i in np.flatnonzero(dones):
                infos[i]["terminal_observation"] = self.slot_obs(final, i)
                infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, reward.astype(np.float32), dones, infos

    @staticmethod
    def slot_obs(batch: Any, i: int) -> Any:
        """Slot ``i`` of a batch of observations (an array; a ``Dict`` one in subclasses)."""
        return batch[i]

    def close(self) -> None:
        """Nothing to release."""

    def get_attr(self, attr_name: str, indices: Any = None) -> list[Any]:
        """Attribute of the underlying environment, once per selected slot."""
        return [getattr(self.env, attr_name) for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: Any = None) -> None:
        """Set an attribute on the underlying environment."""
        setattr(self.env, attr_name, value)

    def env_method(self, method_name: str, *args: Any, indices: Any = None, **kwargs: Any):
        """Call a method of the underlying environment once."""
        return [getattr(self.env, method_name)(*args, **kwargs)]

    def env_is_wrapped(self, wrapper_class: type, indices: Any = None) -> list[bool]:
        """No slot is wrapped."""
        return [False for _ in self._indices(indices)]

    def _indices(self, indices: Any) -> Iterable[int]:
        return list(self._get_indices(indices))
