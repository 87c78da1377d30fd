"""The planner reference: the lookahead policy on the simulator's truth, as an agent."""

import numpy as np
import pytest

from agents.base import AgentContext, make_agent
from experiments.config import parse_config
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError
from musicrec_gym.optimum_plan import Planner


def test_the_planner_acts_on_the_attached_environment_and_beats_greedy_there():
    env = MusicRecVectorEnv(num_envs=64, long_term=True)
    agent = make_agent("planner", {"top_k": 2, "depth": 1})
    agent.bind(AgentContext.from_env(env, 0))
    obs, info = env.reset(seed=3)
    with pytest.raises(ConfigError, match=r"call attach\(env\)"):
        agent.act(obs, info)
    agent.attach(env)
    assert np.array_equal(agent.act(obs, info), Planner(top_k=2, depth=1).actions(env.core.sim))
    totals = {}
    for name in ("planner", "oracle"):
        agent = make_agent(name)
        agent.bind(AgentContext.from_env(env, 0))
        agent.attach(env)
        obs, info = env.reset(seed=3)
        total, alive = 0.0, np.ones(64, bool)
        for _ in range(20):
            obs, r, term, trunc, info = env.step(agent.act(obs, info, explore=False))
            total += r[alive].sum()
            alive &= ~(term | trunc)
        totals[name] = total
    assert totals["planner"] > 1.2 * totals["oracle"], totals


def test_the_planner_refuses_what_it_cannot_read():
    agent = make_agent("planner")
    with pytest.raises(ConfigError, match=r"attach\(\) needs a MusicRec environment"):
        agent.attach(object())
    with pytest.raises(ConfigError, match=r"top_k"):
        make_agent("planner", {"top_k": 0})


def test_long_term_experiments_are_normalised_by_the_planner():
    text = """
name: lt
env: {id: MusicRecLongTerm-v0}
seeds: [0]
budget: {train_steps: 10, eval_episodes: 1}
agents: [{name: Greedy, type: oracle}]
"""
    config = parse_config(text, "lt.yaml")
    assert config.upper_reference.type == "planner" and config.upper_reference.implicit
    assert {a.type for a in config.agents} == {"oracle", "random", "planner"}
    plain = parse_config(text.replace("MusicRecLongTerm-v0", "MusicRec-v0"), "p.yaml")
    assert plain.upper_reference.name == "Greedy"
    sweep = text + "sweep: {env.kwargs.long_term: [true, false]}\n"
    with pytest.raises(ConfigError, match=r"long_term.*its own config"):
        parse_config(sweep.replace("MusicRecLongTerm-v0", "MusicRec-v0"), "s.yaml")
