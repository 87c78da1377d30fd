"""Agents for musicrec-gym: one interface (``agents.base.Agent``), built by name.

Importing the package registers every agent type::

    from agents import AgentContext, make_agent

    agent = make_agent("linucb", {"alpha": 0.5})
    agent.bind(AgentContext.from_env(env, seed=0))

Registered keys: ``random``, ``popularity``, ``oracle``, ``planner`` (references; the
planner is ``MusicRecLongTerm-v0``'s upper reference), ``epsilon_greedy``, ``linucb``,
``lin_ts`` (linear contextual bandits), ``ppo``, ``dqn`` (stable-baselines3; ``params:
{head: embedding}`` scores tracks through their embeddings, see
``agents.embedding_heads``), ``bc``, ``cql`` (offline RL from a logged dataset) and
``logging`` (the world's own logging policy; see ``agents.offline``).
See ``agents.base`` for the call protocol every training or evaluation loop follows.
"""

from agents.base import (
    SETTINGS,
    Agent,
    AgentContext,
    EpisodeCallback,
    EpisodeTracker,
    agent_params,
    agent_types,
    batch_size,
    check_setting,
    make_agent,
    register_agent,
    types_for_setting,
)
from agents.baselines import OracleAgent, PlannerAgent, PopularityAgent, RandomAgent
from agents.embedding_heads import EmbeddingActorCriticPolicy, EmbeddingDQNPolicy, EmbeddingHead
from agents.history import WARMUP_KEY, AvoidsRepeats, EpisodeHistory
from agents.linear import EpsilonGreedyAgent, LinearBanditAgent, LinTSAgent, LinUCBAgent
from agents.offline import BCAgent, CQLAgent, LoggingPolicyAgent
from agents.sb3_agents import DQNAgent, EpisodeReportCallback, PPOAgent, SB3Agent

__all__ = [
    "SETTINGS",
    "WARMUP_KEY",
    "Agent",
    "AgentContext",
    "AvoidsRepeats",
    "BCAgent",
    "CQLAgent",
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
    "LoggingPolicyAgent",
    "OracleAgent",
    "PPOAgent",
    "PlannerAgent",
    "PopularityAgent",
    "RandomAgent",
    "SB3Agent",
    "agent_params",
    "agent_types",
    "batch_size",
    "check_setting",
    "make_agent",
    "register_agent",
    "types_for_setting",
]
