"""Agents for musicrec-gym: one interface (``agents.base.Agent``), built by name.

Importing the package registers every agent type::

    from agents import AgentContext, make_agent

    agent = make_agent("linucb", {"alpha": 0.5})
    agent.bind(AgentContext.from_env(env, seed=0))

Registered keys: ``random``, ``popularity``, ``oracle`` (references), ``epsilon_greedy``,
``linucb``, ``lin_ts`` (linear contextual bandits), ``ppo``, ``dqn`` (stable-baselines3;
``params: {head: embedding}`` scores tracks through their embeddings, see
``agents.embedding_heads``).
See ``agents.base`` for the call protocol every training or evaluation loop follows.
"""

from agents.base import (
    Agent,
    AgentContext,
    EpisodeCallback,
    EpisodeTracker,
    agent_params,
    agent_types,
    make_agent,
    register_agent,
)
from agents.baselines import OracleAgent, PopularityAgent, RandomAgent
from agents.embedding_heads import EmbeddingActorCriticPolicy, EmbeddingDQNPolicy, EmbeddingHead
from agents.history import WARMUP_KEY, AvoidsRepeats, EpisodeHistory
from agents.linear import EpsilonGreedyAgent, LinearBanditAgent, LinTSAgent, LinUCBAgent
from agents.sb3_agents import DQNAgent, EpisodeReportCallback, PPOAgent, SB3Agent

__all__ = [
    "WARMUP_KEY",
    "Agent",
    "AgentContext",
    "AvoidsRepeats",
    "DQNAgent",
    "EmbeddingActorCriticPolicy",
    "EmbeddingDQNPolicy",
    "EmbeddingHead",
    "EpisodeCallback",
    "EpisodeHistory",
    "EpisodeReportCallback",
    "EpisodeTracker",
    "EpsilonGreedyAgent",
    "LinTSAgent",
    "LinUCBAgent",
    "LinearBanditAgent",
    "OracleAgent",
    "PPOAgent",
    "PopularityAgent",
    "RandomAgent",
    "SB3Agent",
    "agent_params",
    "agent_types",
    "make_agent",
    "register_agent",
]
