"""Fixtures for the agent tests: an env on the shared tiny world (``tests/conftest.py``)."""

from pathlib import Path

import numpy as np
import pytest

from agents.base import AgentContext
from musicrec_gym.envs.vector import MusicRecVectorEnv

N_ENVS = 16


@pytest.fixture
def env(tiny_world: Path) -> MusicRecVectorEnv:
    return MusicRecVectorEnv(num_envs=N_ENVS, world=tiny_world)


@pytest.fixture
def context(env: MusicRecVectorEnv) -> AgentContext:
    return AgentContext.from_env(env, seed=0)


def _rollout(agent, env, steps, seed=0, explore=True, learn=False):
    """Drive ``agent`` through the call protocol; returns step infos and actions."""
    obs, info = env.reset(seed=seed)
    agent.episode_end(np.ones(env.num_envs, dtype=bool))
    infos, actions_seen = [], []
    for _ in range(steps):
        actions = agent.act(obs, info, explore=explore)
        actions_seen.append(actions)
        next_obs, rewards, terminated, truncated, info = env.step(actions)
        dones = terminated | truncated
        if learn:
            agent.update(obs, actions, rewards, next_obs, dones, info)
        agent.episode_end(dones)
        infos.append({**info, "done": dones})
        obs = next_obs
    return infos, actions_seen


def _session_tracks(infos):
    """Per slot, the list of sessions, each a list of recommended tracks."""
    n = len(infos[0]["track"])
    sessions = [[[]] for _ in range(n)]
    for info in infos:
        for i in range(n):
            sessions[i][-1].append(int(info["track"][i]))
            if info["done"][i]:
                sessions[i].append([])
    return sessions


@pytest.fixture
def rollout():
    """``rollout(agent, env, steps, seed=0, explore=True, learn=False) -> (infos, actions)``."""
    return _rollout


@pytest.fixture
def session_tracks():
    """``session_tracks(infos)``: per slot, its sessions as lists of recommended tracks."""
    return _session_tracks
