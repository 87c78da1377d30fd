"""Recurrent PPO: an agent that keeps its own memory of the session (sb3-contrib).

``RecurrentPPO`` (sb3-contrib) puts an LSTM between the observation and the policy and
value heads, so the agent can remember more of the session than the observation's last
five plays. It trains exactly as SB3's PPO agent does (``agents.sb3_agents``); acting
carries each slot's LSTM state from step to step and clears it when the slot's session
ends (``episode_end``), as ``RecurrentPPO.predict`` does with ``episode_start``.
``head: embedding`` scores tracks through their embeddings, as for PPO
(:class:`EmbeddingRecurrentPolicy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from sb3_contrib import RecurrentPPO
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

from agents.base import batch_size, register_agent
from agents.embedding_heads import EmbeddingActorCriticPolicy
from agents.sb3_agents import HEADS, PPOAgent
from agents.validation import check_int
from musicrec_gym.errors import ConfigError


class EmbeddingRecurrentPolicy(EmbeddingActorCriticPolicy, RecurrentActorCriticPolicy):
    """sb3-contrib's LSTM policy whose action logits come from the embedding head.

    The method order puts ``EmbeddingActorCriticPolicy._build`` (which replaces the
    linear action layer) over sb3-contrib's LSTM networks, so nothing is copied.
    """


@register_agent("recurrent_ppo")
@dataclass
class RecurrentPPOAgent(PPOAgent):
    """PPO with an LSTM policy (sb3-contrib's ``RecurrentPPO``, ``MlpLstmPolicy``).

    Attributes:
        lstm_hidden_size: Units of the LSTM (one layer, shared by none: the actor and
            the critic each have their own, sb3-contrib's default).
        (the others): As for ``ppo`` (``agents.sb3_agents.PPOAgent``).
    """

    # PPO's tuned values, with the smaller network and rollout sb3-contrib's examples use
    # for recurrent policies (a rollout's LSTM backpropagates through every step of it).
    n_steps: int = 32
    batch_size: int = 256
    lstm_hidden_size: int = 64

    algorithm = RecurrentPPO
    linear_policy = "MlpLstmPolicy"
    embedding_policy = EmbeddingRecurrentPolicy
    heads = HEADS  # no clustered head: its recurrent policy is not written
    name = "recurrent_ppo"

    def __post_init__(self) -> None:
        check_int("lstm_hidden_size", self.lstm_hidden_size, low=1, limit=4096)
        if self.train_mask is not False:
            raise ConfigError(
                "recurrent_ppo: `train_mask` is not available (its recurrent policy has no "
                "masked head); leave it out or false"
            )
        super().__post_init__()
        self._states: tuple[th.Tensor, th.Tensor] | None = None
        self._starts = np.ones(0, dtype=bool)

    def algorithm_kwargs(self) -> dict[str, Any]:
        """``RecurrentPPO``'s constructor arguments: PPO's and the LSTM's width."""
        kwargs = super().algorithm_kwargs()
        kwargs["policy_kwargs"] = {
            **kwargs["policy_kwargs"],
            "lstm_hidden_size": self.lstm_hidden_size,
        }
        return kwargs

    def episode_end(self, dones: np.ndarray) -> None:
        """Forget the ended sessions' recommendations and LSTM memory."""
        super().episode_end(dones)
        dones = np.asarray(dones, dtype=bool)
        if len(self._starts) != len(dones):
            self._states = None
            self._starts = np.ones(len(dones), dtype=bool)
        self._starts |= dones

    def act(self, obs: np.ndarray, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """The policy's choice given each slot's LSTM memory; sampled if exploring."""
        model = self._ensure_model()
        obs = self._observation(obs, info)
        b = batch_size(obs)
        if self._states is None or self._states[0].shape[1] != b:
            shape = (model.policy.lstm_actor.num_layers, b, model.policy.lstm_actor.hidden_size)
            self._states = (th.zeros(shape), th.zeros(shape))
            if len(self._starts) != b:
                self._starts = np.ones(b, dtype=bool)
        with th.no_grad():
            obs_t, _ = model.policy.obs_to_tensor(obs)
            starts = th.as_tensor(self._starts, dtype=th.float32, device=obs_t.device)
            dist, self._states = model.policy.get_distribution(obs_t, self._states, starts)
            scores = dist.distribution.logits.cpu().numpy().astype(np.float64)
        self._starts[:] = False
        if self.avoid_repeats:
            actions = self._choose(scores, self.history.blocked(b, info), explore)
        else:
            actions = self._choose(scores, np.zeros(scores.shape, dtype=bool), explore)
        self.history.mark(actions)  # (the session features read the outcomes)
        return actions
