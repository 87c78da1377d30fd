"""Agents for musicrec-gym: one interface (``agents.base.Agent``), built by name.

Importing the package registers every agent type::

    from agents import AgentContext, make_agent

    agent = make_agent("linucb", {"alpha": 0.5})
    agent.bind(AgentContext.from_env(env, seed=0))

Registered keys: ``random``, ``popularity``, ``oracle``, ``planner`` (references; the
planner is ``MusicRecLongTerm-v0``'s upper reference), ``epsilon_greedy``, ``linucb``,
``lin_ts`` (linear contextual bandits), ``ppo``, ``dqn`` (stable-baselines3; ``params:
{head: embedding}`` scores tracks through their embeddings, see
``agents.embedding_heads``), ``recurrent_ppo`` (sb3-contrib's LSTM PPO, a memory of
the whole session; ``agents.recurrent``), ``bc``, ``cql`` (offline RL from a logged dataset) and
``logging`` (the world's own logging policy; see ``agents.offline``); for slates
(``MusicRecSlate-v0``) ``slate_popularity``, ``slate_topk`` and ``slateq`` (see
``agents.slate_agents``); for candidate sets (``candidates=K``) the linear bandits and
``candidate_ppo`` (see ``agents.candidate_heads``).
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
from agents.candidate_heads import CandidateActorCriticPolicy, CandidatePPOAgent
from agents.embedding_dqn import EmbeddingDQNPolicy
from agents.embedding_heads import EmbeddingActorCriticPolicy, EmbeddingHead
from agents.history import WARMUP_KEY, AvoidsRepeats, EpisodeHistory
from agents.linear import EpsilonGreedyAgent, LinearBanditAgent, LinTSAgent, LinUCBAgent
from agents.offline import BCAgent, CQLAgent, LoggingPolicyAgent
from agents.recurrent import EmbeddingRecurrentPolicy, RecurrentPPOAgent
from agents.sb3_agents import DQNAgent, PPOAgent, SB3Agent
from agents.sb3_plumbing import EpisodeReportCallback
from agents.slate_agents import SlateBanditAgent, SlatePopularityAgent, SlateQAgent, SlateTopKAgent

__all__ = [
    "SETTINGS",
    "WARMUP_KEY",
    "Agent",
    "AgentContext",
    "AvoidsRepeats",
    "BCAgent",
    "CQLAgent",
    "CandidateActorCriticPolicy",
    "CandidatePPOAgent",
    "DQNAgent",
    "EmbeddingActorCriticPolicy",
    "EmbeddingDQNPolicy",
    "EmbeddingHead",
    "EmbeddingRecurrentPolicy",
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
    "RecurrentPPOAgent",
    "SB3Agent",
    "SlateBanditAgent",
    "SlatePopularityAgent",
    "SlateQAgent",
    "SlateTopKAgent",
    "agent_params",
    "agent_types",
    "batch_size",
    "check_setting",
    "make_agent",
    "register_agent",
    "types_for_setting",
]
