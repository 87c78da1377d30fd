"""PPO that scores each candidate from its features, for the candidate setting (``candidates=K``).

In candidate mode (``musicrec_gym.envs.candidates``) the observation is a ``Dict``: the
session code and a ``(K, F)`` array of the candidates' features (embedding,
popularity, whether it continues the last artist, its source, ...), and the action
is the index of a candidate. A policy with one output per position would learn
nothing that carries from one candidate set to the next. The policy here scores
candidate ``c`` the way two-tower recommenders do (Covington et al., RecSys 2016; as
``agents.embedding_heads`` scores catalog tracks)::

    logit(s, c) = (W h(s) + u) · f_c

where ``h(s)`` is the policy's latent (SB3's MLP over the session code), ``f_c`` the
candidate's feature row, ``W`` a learned ``(F, latent_dim)`` projection and ``u`` a
learned state-free weight vector (the projection's bias). The value network reads the
session code only. The logits are PPO's action logits over the K candidates, so SB3's
own PPO trains it unchanged (``DictRolloutBuffer``); the agent is ``candidate_ppo``,
with PPO's hyperparameters and defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from agents.base import batch_size, register_agent
from agents.history import candidates_blocked
from agents.sb3_agents import PPOAgent
from musicrec_gym.envs.candidates import CandidateVectorEnv
from musicrec_gym.envs.candidates_sb3 import CandidateSB3VecEnv
from musicrec_gym.envs.sb3 import MusicRecSB3VecEnv
from musicrec_gym.errors import ConfigError


class SessionExtractor(BaseFeaturesExtractor):
    """The features SB3's MLP reads: the ``"session"`` entry of the ``Dict`` observation."""

    def __init__(self, observation_space: spaces.Dict) -> None:
        super().__init__(observation_space, int(observation_space["session"].shape[0]))

    candidates: th.Tensor | None = None

    def forward(self, observations: dict[str, th.Tensor]) -> th.Tensor:
        """(B, session dim) session codes; keeps the candidates' features for the head."""
        self.candidates = observations["candidates"].float()
        return observations["session"]


class CandidateHead(nn.Module):
    """``logits[b, c] = (W h_b + u) · f_bc``: a bilinear score of each candidate's features.

    Args:
        latent_dim: Width of the policy latent ``h``.
        feature_dim: Features per candidate ``F``.
    """

    def __init__(self, latent_dim: int, feature_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(latent_dim, feature_dim)

    def forward(self, latent: th.Tensor, candidates: th.Tensor) -> th.Tensor:
        """(B, latent_dim), (B, K, F) -> (B, K) logits."""
        return th.einsum("bf,bkf->bk", self.proj(latent), candidates)


class CandidateActorCriticPolicy(ActorCriticPolicy):
    """SB3's ``ActorCriticPolicy`` over ``Dict(session, candidates)`` with a ``CandidateHead``.

    The features extractor passes the session code to SB3's MLP and keeps the
    candidates' features of the same observation, which the action head reads (every
    SB3 path extracts the features right before it computes the distribution).
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        **kwargs: Any,
    ) -> None:
        if (
            not isinstance(observation_space, spaces.Dict)
            or "candidates" not in observation_space.spaces
        ):
            raise ValueError(
                "the candidate policy needs Dict observations with 'session' and 'candidates', "
                f"got {observation_space}"
            )
        kwargs["features_extractor_class"] = SessionExtractor
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        """SB3's networks, then the linear action head replaced by the candidate head."""
        super()._build(lr_schedule)
        features = int(self.observation_space["candidates"].shape[-1])
        self.action_net = CandidateHead(self.mlp_extractor.latent_dim_pi, features).to(self.device)
        if self.ortho_init:  # SB3's gain for the action output: near-uniform at first
            self.action_net.apply(lambda module: self.init_weights(module, gain=0.01))
        self.optimizer = self.optimizer_class(
            self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs
        )

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> Any:
        # the candidates of the observation whose features were just extracted
        logits = self.action_net(latent_pi, self.pi_features_extractor.candidates)
        return self.action_dist.proba_distribution(action_logits=logits)


@register_agent("candidate_ppo")
@dataclass
class CandidatePPOAgent(PPOAgent):
    """PPO with the candidate-scoring policy (module docstring); the candidate setting only.

    PPO's hyperparameters and tuned defaults (``agents.sb3_agents.PPOAgent``), but
    ``head``, which does not apply: the policy always scores candidates from their
    features. The candidates are never played tracks, so the repeat block has nothing to
    do here; ``avoid_recent_artists`` avoids the artists of the last five recommendations.
    """

    settings = ("candidates",)
    name = "candidate_ppo"

    def _new_model(self, env: Any) -> BaseAlgorithm:
        kwargs = self.algorithm_kwargs()
        return self.algorithm(
            CandidateActorCriticPolicy, env, seed=self.context.seed,
            tensorboard_log=self._log_dir, verbose=0, **kwargs,
        )  # fmt: skip

    def _ensure_model(self) -> BaseAlgorithm:
        if self.model is None:
            raise ConfigError(
                f"{self.name}: the policy is built for the environment's spaces: call learn() "
                "(or load()) before act()"
            )
        return self.model

    def _sb3_view(self, env: Any) -> MusicRecSB3VecEnv:
        if isinstance(env, CandidateSB3VecEnv):
            env.seed(self.context.seed)
            return env
        if isinstance(env, CandidateVectorEnv):
            return CandidateSB3VecEnv(env=env, seed=self.context.seed)
        raise ConfigError(
            f"{self.name}: learn() needs a candidate-mode vector env (candidates=K), got "
            f"{type(env).__name__}"
        )

    def act(self, obs: Any, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """A candidate index per slot: sampled from the policy if exploring, else its best."""
        model = self._ensure_model()
        batch = batch_size(obs)
        cands, blocked = candidates_blocked(self.history, batch, info)
        if not self.avoid_repeats:
            blocked[:] = False
        with th.no_grad():
            obs_t, _ = model.policy.obs_to_tensor(obs)
            scores = self._scores(obs_t).cpu().numpy().astype(np.float64)
        choice = self._choose(scores, blocked, explore)
        self.history.mark(cands[np.arange(batch), choice])
        return choice
