"""Agents in the candidate setting (``candidates=K``): they act, learn and are deterministic."""

from pathlib import Path

import numpy as np
import pytest

from agents import AgentContext, make_agent
from agents.base import types_for_setting
from experiments.config import load_config
from musicrec_gym.envs.candidates import CandidateVectorEnv
from musicrec_gym.errors import ConfigError

K = 10
LEARNERS = ("epsilon_greedy", "linucb", "lin_ts", "candidate_ppo")
CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "candidates.yaml"


@pytest.fixture
def cenv(tiny_world: Path) -> CandidateVectorEnv:
    return CandidateVectorEnv(num_envs=8, world=tiny_world, candidates=K)


def rollout(agent, env, steps: int, seed: int = 0) -> tuple[list, float]:
    """Act (greedily) through the call protocol; the actions and the summed regret."""
    obs, info = env.reset(seed=seed)
    agent.episode_end(np.ones(env.num_envs, bool))
    actions, regret = [], 0.0
    for _ in range(steps):
        act = agent.act(obs, info, explore=False)
        actions.append(act)
        obs, _, term, trunc, info = env.step(act)
        regret += float(info["regret"].sum())
        agent.episode_end(term | trunc)
    return actions, regret


@pytest.mark.parametrize("key", LEARNERS)
def test_each_candidate_agent_learns_and_acts(key: str, cenv: CandidateVectorEnv) -> None:
    params = {"n_steps": 16, "batch_size": 64, "n_epochs": 2} if key == "candidate_ppo" else {}
    agent = make_agent(key, params)
    context = AgentContext.from_env(cenv, seed=0)
    assert (context.setting, context.n_actions) == ("candidates", K)
    agent.bind(context)
    agent.attach(cenv)
    agent.learn(cenv, 400)
    actions, _ = rollout(agent, cenv, 30)
    for act in actions:
        assert act.shape == (8,) and act.dtype == np.int64
        assert ((act >= 0) & (act < K)).all()


@pytest.mark.parametrize("key", ["linucb", "lin_ts"])
def test_linear_bandits_beat_random_and_repeat_themselves(key: str, tiny_world: Path) -> None:
    def trained():
        env = CandidateVectorEnv(num_envs=16, world=tiny_world, candidates=K)
        agent = make_agent(key)
        agent.bind(AgentContext.from_env(env, seed=3))
        agent.learn(env, 1500)
        return agent, env

    (a, env_a), (b, env_b) = trained(), trained()
    acts_a, regret = rollout(a, env_a, 40, seed=100)
    acts_b, _ = rollout(b, env_b, 40, seed=100)
    assert all(np.array_equal(x, y) for x, y in zip(acts_a, acts_b, strict=True))
    rand = make_agent("random")
    rand.bind(AgentContext.from_env(env_a, seed=3))
    _, random_regret = rollout(rand, env_a, 40, seed=100)
    assert regret < random_regret


def test_catalog_only_agents_refuse_the_candidate_setting(cenv: CandidateVectorEnv) -> None:
    for key in ("ppo", "popularity"):
        with pytest.raises(ConfigError, match="candidates"):
            make_agent(key).bind(AgentContext.from_env(cenv))
    assert "candidate_ppo" not in types_for_setting("catalog")


def test_linear_update_needs_its_act(cenv: CandidateVectorEnv) -> None:
    agent = make_agent("linucb")
    agent.bind(AgentContext.from_env(cenv))
    obs, info = cenv.reset(seed=0)
    actions = np.zeros(8, np.int64)
    nxt, reward, term, trunc, info = cenv.step(actions)
    with pytest.raises(ConfigError, match="must follow the act"):
        agent.update(obs, actions, reward, nxt, term | trunc, info)


def test_the_candidates_config_covers_every_candidate_agent_type() -> None:
    config = load_config(CONFIG)
    assert config.env.kwargs == {"candidates": 50}
    assert {a.type for a in config.agents} == set(types_for_setting("candidates"))


def test_candidate_ppo_avoids_the_artists_of_its_last_five_picks(
    cenv: CandidateVectorEnv,
) -> None:
    agent = make_agent(
        "candidate_ppo",
        {"n_steps": 16, "batch_size": 64, "n_epochs": 1, "avoid_recent_artists": True},
    )
    context = AgentContext.from_env(cenv, seed=0)
    agent.bind(context)
    agent.attach(cenv)
    agent.learn(cenv, 200)
    artist = context.track_artist
    obs, info = cenv.reset(seed=1)
    agent.episode_end(np.ones(cenv.num_envs, bool))
    recent: list[list[int]] = [[] for _ in range(cenv.num_envs)]
    checked = 0
    for _ in range(40):
        cands = np.asarray(info["candidate_tracks"])
        act = agent.act(obs, info, explore=True)
        for slot in range(cenv.num_envs):
            tired = set(artist[recent[slot]].tolist())
            fresh = [c for c in cands[slot] if c >= 0 and artist[c] not in tired]
            if fresh:  # the block is lifted only where it would block every candidate
                assert artist[cands[slot, act[slot]]] not in tired
                checked += bool(tired)
            recent[slot] = (recent[slot] + [int(cands[slot, act[slot]])])[-5:]
        obs, _, term, trunc, info = cenv.step(act)
        agent.episode_end(term | trunc)
        for slot in np.flatnonzero(term | trunc):
            recent[slot] = []
    assert checked > 20
