"""What the SB3 agents need around SB3: episode reports, a spaces-only env, zip settings.

``EpisodeReportCallback`` reports every finished session of SB3's rollout loop to the
harness (``agents.base.EpisodeTracker``); ``SpacesOnlyEnv`` has the spaces of the
policy's input and output and no dynamics, so that an untrained model can be built
(to act, save or load) before any environment is given; ``zip_settings`` reads a saved
model's plain settings without unpickling anything.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.base import EpisodeTracker
from musicrec_gym.envs.sb3 import MusicRecSB3VecEnv
from musicrec_gym.errors import DataFormatError

#: Largest ``data`` member (the JSON settings) of an SB3 zip that a load reads.
MAX_ZIP_DATA_BYTES = 10_000_000


def zip_settings(source: Path | io.BytesIO, what: str) -> dict[str, Any]:
    """The JSON settings (the ``data`` member) of an SB3 zip, read without unpickling.

    Raises:
        DataFormatError: Not an SB3 zip, its settings are not a JSON object, or they
            exceed ``MAX_ZIP_DATA_BYTES``; the message starts with ``what``.
    """
    if isinstance(source, io.BytesIO):
        source.seek(0)
    try:
        with zipfile.ZipFile(source) as archive:
            info = archive.getinfo("data")
            if info.file_size > MAX_ZIP_DATA_BYTES:
                raise DataFormatError(
                    f"{what}: its settings ('data') are {info.file_size:,} bytes; an SB3 "
                    f"model's are a few kB (the limit is {MAX_ZIP_DATA_BYTES:,})"
                )
            data = json.loads(archive.read(info).decode("utf-8"))
    except DataFormatError:
        raise
    except (KeyError, ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise DataFormatError(
            f"{what}: not an SB3 model zip (a 'data' JSON member and .pth weights): {err}"
        ) from err
    if not isinstance(data, dict):
        raise DataFormatError(f"{what}: its 'data' member is not a JSON object")
    return data


class EpisodeReportCallback(BaseCallback):
    """Feeds an ``EpisodeTracker`` from SB3's rollout loop.

    SB3 passes per-slot ``infos`` dicts; the batched step info (``optimal_reward``,
    ``listened``) is read from the wrapped vector env's ``last_info``.

    Args:
        venv: The SB3 view being trained on.
        tracker: Receives every step and reports finished episodes.
    """

    def __init__(self, venv: MusicRecSB3VecEnv, tracker: EpisodeTracker) -> None:
        super().__init__(verbose=0)
        self.venv = venv
        self.tracker = tracker

    def _on_step(self) -> bool:
        rewards = np.asarray(self.locals["rewards"], dtype=np.float64)
        dones = np.asarray(self.locals["dones"], dtype=bool)
        self.tracker.record(rewards, self.venv.last_info, dones)
        return True


class SpacesOnlyEnv(gym.Env):
    """An environment with the right spaces and no dynamics, to build an untrained model."""

    def __init__(self, obs_dim: int, n_tracks: int) -> None:
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(obs_dim,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(n_tracks)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """A zero observation."""
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, dtype=np.float32), {}

    def step(self, action: int):
        """A zero observation, no reward, the end."""
        obs = np.zeros(self.observation_space.shape, dtype=np.float32)
        return obs, 0.0, True, False, {}
