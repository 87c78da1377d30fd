"""Stable-baselines3 ``VecEnv`` over candidate mode's native vector env (``Dict`` observations).

``MusicRecSB3VecEnv`` with one difference: the final observation of an ended session
is a ``Dict`` (``{"session": ..., "candidates": ...}``), handed to SB3 slot by slot as
``infos[i]["terminal_observation"]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from musicrec_gym.envs.candidates import CandidateVectorEnv
from musicrec_gym.envs.sb3 import MusicRecSB3VecEnv


class CandidateSB3VecEnv(MusicRecSB3VecEnv):
    """SB3 view of ``CandidateVectorEnv`` (same-step autoreset).

    Args:
        num_envs: Number of concurrent listeners (ignored when ``env`` is given).
        env: An existing candidate-mode vector environment to wrap.
        seed: Seed of the first reset (slot ``i`` gets ``seed + i``).
        **kwargs: Environment arguments, ``candidates=K`` among them.
    """

    def __init__(
        self,
        num_envs: int = 1,
        env: CandidateVectorEnv | None = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> None:
        env = env if env is not None else CandidateVectorEnv(num_envs=num_envs, **kwargs)
        super().__init__(env=env, seed=seed)

    @staticmethod
    def slot_obs(batch: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
        """Slot ``i`` of a ``Dict`` batch: an ended session's last observation for SB3."""
        return {key: value[i] for key, value in batch.items()}
