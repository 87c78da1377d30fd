"""The registry: every agent type is buildable by name, and typos get a hint."""

import pytest

from agents import agent_params, agent_types, make_agent
from musicrec_gym.errors import ConfigError

KEYS = {
    "random", "popularity", "oracle", "planner", "epsilon_greedy", "linucb", "lin_ts", "ppo", "dqn",
    "bc", "cql", "logging", "recurrent_ppo",
    "slate_popularity", "slate_topk", "slateq", "candidate_ppo",
}  # fmt: skip


def test_every_agent_is_registered():
    assert set(agent_types()) == KEYS


@pytest.mark.parametrize("key", sorted(KEYS))
def test_defaults_build_and_report_their_hyperparameters(key):
    agent = make_agent(key)
    assert agent.name == key
    assert set(agent.hyperparameters()) == set(agent_params(key))


def test_unknown_agent_type_gets_a_hint():
    with pytest.raises(
        ConfigError, match=r"unknown agent type 'linucbb'\. Did you mean 'linucb'\?"
    ):
        make_agent("linucbb")


def test_unknown_parameter_gets_a_hint():
    with pytest.raises(
        ConfigError, match=r"agent 'linucb': unknown parameter 'alpah'\. Did you mean 'alpha'\?"
    ):
        make_agent("linucb", {"alpah": 1.0})
    with pytest.raises(ConfigError, match=r"Did you mean 'learning_rate'\?"):
        make_agent("ppo", {"learning_rat": 1e-3})
