"""The embedding head as DQN's Q-values: SB3's ``DQNPolicy`` scoring tracks by embedding.

The Q-value of track ``i`` is ``agents.embedding_heads.EmbeddingHead``'s score
``h(s) · (W f_i) + b_i`` for the online and the target network alike; the constant
feature's term ``h(s) · W[:, -1]`` is the state's value. Trained with the mask
(``mask_dim``), blocked tracks get ``BLOCKED_Q``: never the greedy action nor the target's
max, and ``MaskedExplorationDQN`` draws its random actions among the allowed tracks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, create_mlp
from stable_baselines3.common.type_aliases import Schedule
from stable_baselines3.dqn.policies import DQNPolicy, QNetwork
from torch import nn

from agents.embedding_heads import EmbeddingHead, allowed_tracks, discrete_feature_dim, mask_kwargs

BLOCKED_Q = -1e4
"""A masked track's Q-value (``mask_dim``): far below any return of a session."""


class EmbeddingQNetwork(QNetwork):
    """SB3's ``QNetwork`` whose last layer is an ``EmbeddingHead``.

    Args:
        feature_dim: Number of fixed features per track.
        Others: as for ``QNetwork``.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        feature_dim: int,
        net_arch: list[int] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        mask_dim: int = 0,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor,
            features_dim,
            net_arch=net_arch,
            activation_fn=activation_fn,
            normalize_images=normalize_images,
        )
        self.feature_dim, self.mask_dim = int(feature_dim), int(mask_dim)
        hidden = create_mlp(self.features_dim, -1, self.net_arch, self.activation_fn)
        latent_dim = self.net_arch[-1] if self.net_arch else self.features_dim
        head = EmbeddingHead(latent_dim, int(self.action_space.n), self.feature_dim)
        self.q_net = nn.Sequential(*hidden, head)

    @property
    def head(self) -> EmbeddingHead:
        """The embedding head (the Q-network's last layer)."""
        return self.q_net[-1]

    def forward(self, obs: th.Tensor) -> th.Tensor:
        """(B, n_tracks) Q-values; blocked tracks at ``BLOCKED_Q`` (``mask_dim`` > 0)."""
        q_values = super().forward(obs)
        if not self.mask_dim:
            return q_values
        return th.where(allowed_tracks(obs, self.mask_dim), q_values, BLOCKED_Q)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {
            **super()._get_constructor_parameters(),
            "feature_dim": self.feature_dim,
            "mask_dim": self.mask_dim,
        }


class EmbeddingDQNPolicy(DQNPolicy):
    """SB3's ``DQNPolicy`` whose online and target Q-networks end in an ``EmbeddingHead``.

    Args:
        observation_space: As for ``DQNPolicy``.
        action_space: ``Discrete(n_tracks)``.
        lr_schedule: As for ``DQNPolicy``.
        feature_dim: Number of fixed features per track (``catalog_features``: d + 2).
        mask_dim: 0, or the number of tracks: the observation ends in the allowed-track
            mask, and blocked tracks get ``BLOCKED_Q`` (see the module docstring).
        **kwargs: The other ``DQNPolicy`` arguments (``net_arch``, ...).
    """

    q_net: EmbeddingQNetwork
    q_net_target: EmbeddingQNetwork

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Discrete,
        lr_schedule: Schedule,
        feature_dim: int,
        mask_dim: int = 0,
        **kwargs: Any,
    ) -> None:
        self.feature_dim = discrete_feature_dim(action_space, feature_dim)
        self.mask_dim = int(mask_dim)
        mask_kwargs(kwargs, observation_space, self.mask_dim)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def make_q_net(self) -> EmbeddingQNetwork:
        """A Q-network with its own features extractor and the embedding head."""
        net_args = self._update_features_extractor(self.net_args, features_extractor=None)
        return EmbeddingQNetwork(
            **net_args, feature_dim=self.feature_dim, mask_dim=self.mask_dim
        ).to(self.device)

    def set_track_features(self, features: np.ndarray) -> None:
        """Fill the fixed (n_tracks, feature_dim) features of both Q-networks."""
        self.q_net.head.set_features(features)
        self.q_net_target.head.set_features(features)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {
            **super()._get_constructor_parameters(),
            "feature_dim": self.feature_dim,
            "mask_dim": self.mask_dim,
        }


class MaskedExplorationDQN(DQN):
    """SB3's DQN whose random exploratory actions are drawn among the allowed tracks.

    For a policy trained with the mask (``EmbeddingDQNPolicy(mask_dim=n_tracks)``):
    SB3's ε-greedy draws from the whole action space, so a random draw could be a
    track the session has played, which the mask rules out. Its warm-up before
    ``learning_starts`` stays SB3's (uniform over all tracks).
    """

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """As ``DQN.predict``; an exploratory action is uniform over the allowed tracks."""
        mask_dim = getattr(self.policy, "mask_dim", 0)
        if deterministic or not mask_dim or np.random.rand() >= self.exploration_rate:
            return self.policy.predict(observation, state, episode_start, deterministic)
        allowed = allowed_tracks(np.asarray(observation), mask_dim)
        draws = np.random.random_sample(allowed.shape)
        return np.where(allowed, draws, -1.0).argmax(axis=1), state
