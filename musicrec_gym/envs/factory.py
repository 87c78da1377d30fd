"""Build the environment of a setting: one entry point for every registered id.

``MusicRec-v0`` has three settings, chosen by keyword argument:

- ``catalog`` (the default): the action is any catalog track
  (:class:`~musicrec_gym.envs.music_rec.MusicRecEnv`,
  :class:`~musicrec_gym.envs.vector.MusicRecVectorEnv`);
- ``candidates=K``: the world's retrieval proposes K candidates each step and the action
  picks one of them (``musicrec_gym.envs.candidates``);
- ``slate=K``: the agent shows K tracks and the listener picks at most one
  (``musicrec_gym.envs.slate``; ``MusicRecSlate-v0``).

Gymnasium calls :func:`make_env` for ``gym.make`` and :func:`make_vector_env` for
``gym.make_vec``; the experiment harness calls :func:`make_vector_env` too, so every
caller gets the same class for the same arguments.
"""

from __future__ import annotations

import importlib
from typing import Any

from gymnasium import Env
from gymnasium.vector import VectorEnv

from musicrec_gym.errors import ArgumentError

SETTINGS = ("catalog", "candidates", "slate")
"""The settings an environment (and an agent) may be in: any catalog track, one of K
retrieved candidates, or a slate of K tracks."""


def env_setting(kwargs: dict[str, Any]) -> str:
    """The setting that environment keyword arguments ask for.

    ``slate`` if ``kwargs["slate"]`` is given (not ``None``), else ``candidates`` if
    ``kwargs["candidates"]`` is, else ``catalog``. The setting's class validates the value.

    Raises:
        ArgumentError: Both ``slate`` and ``candidates`` are given.
    """
    slate = kwargs.get("slate") is not None
    candidates = kwargs.get("candidates") is not None
    if slate and candidates:
        raise ArgumentError(
            "`slate` and `candidates` cannot be combined: give one of them "
            f"(got slate={kwargs['slate']!r}, candidates={kwargs['candidates']!r})"
        )
    return "slate" if slate else "candidates" if candidates else "catalog"


def setting_kwargs(kwargs: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The setting and the kwargs its class takes (an explicit ``None`` setting dropped)."""
    setting = env_setting(kwargs)
    rest = {k: v for k, v in kwargs.items() if not (k in ("slate", "candidates") and v is None)}
    return setting, rest


CLASSES = {
    "catalog": ("musicrec_gym.envs.music_rec", "MusicRecEnv", "musicrec_gym.envs.vector",
                "MusicRecVectorEnv"),
    "candidates": ("musicrec_gym.envs.candidates", "CandidateEnv",
                   "musicrec_gym.envs.candidates", "CandidateVectorEnv"),
    "slate": ("musicrec_gym.envs.slate", "SlateEnv", "musicrec_gym.envs.slate", "SlateVectorEnv"),
}  # fmt: skip
"""Each setting's single and vector environment classes (module, name), imported when
first asked for, so that a setting's code loads only when it is used."""


def env_class(setting: str) -> type[Env]:
    """The single-environment class of ``setting``."""
    module, name, _, _ = CLASSES[setting]
    return getattr(importlib.import_module(module), name)


def vector_env_class(setting: str) -> type[VectorEnv]:
    """The native vector-environment class of ``setting``."""
    _, _, module, name = CLASSES[setting]
    return getattr(importlib.import_module(module), name)


def make_env(**kwargs: Any) -> Env:
    """The single environment of the setting ``kwargs`` ask for (``gym.make``'s entry point)."""
    setting, kwargs = setting_kwargs(kwargs)
    return env_class(setting)(**kwargs)


def make_vector_env(num_envs: int = 1, **kwargs: Any) -> VectorEnv:
    """The native vector environment of the setting (``gym.make_vec``'s entry point)."""
    setting, kwargs = setting_kwargs(kwargs)
    return vector_env_class(setting)(num_envs=num_envs, **kwargs)
