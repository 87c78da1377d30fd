"""Output heads that score tracks through their embeddings, for SB3's PPO and DQN.

Today's SB3 policies end in a ``Linear(latent, n_tracks)`` layer: one free weight
vector per track, learned from the rewards of that track alone. The head here scores
track ``i`` the way two-tower / dot-product recommenders do (Covington et al., "Deep
neural networks for YouTube recommendations", RecSys 2016)::

    score(s, i) = h(s) · (W f_i) + b_i,      f_i = [e_i, pop_i, 1]

where ``h(s)`` is the policy's latent (the output of SB3's MLP extractor), ``e_i`` is
the track's embedding and ``pop_i`` its log play count (both standardised over the
catalog, fixed: a buffer, never trained), ``W`` a learned ``(latent_dim, d + 2)``
projection and ``b_i`` a learned per-track bias. The constant 1 in ``f_i`` gives a
per-state offset ``h(s) · W[:, -1]``: it cancels in PPO's softmax and is DQN's state
value. Tracks with similar embeddings get similar scores, so what is learned about
one track carries over to its neighbours; ``b_i`` keeps what is specific to each.

The score is PPO's action logit (``EmbeddingActorCriticPolicy``, here) or DQN's Q-value
(``agents.embedding_dqn.EmbeddingDQNPolicy``). The policies take only the
feature width (``feature_dim``) as a keyword, so SB3 saves plain JSON settings; the
features themselves are a registered buffer, saved and loaded with the weights, and
filled after construction by ``set_track_features`` (``catalog_features`` builds them).

**PPO's softmax over every track is never materialised** on the CPU: ``FusedCategorical``
hands the projected latent ``h(s) W`` to ``agents.track_softmax``, whose compiled kernels
give the taken tracks' log-probabilities, the entropies, their gradients and the
rollout's draws a row at a time (PPO then trains at about CartPole PPO's fps,
docs/speed.md).

**Trained with the mask** (``mask_dim``, the agents' ``train_mask``): the observation
ends in ``mask_dim`` columns, 1 for each track the policy may recommend now (the
session's unplayed tracks, ``SessionFeaturesVector``'s ``action_mask``). The network
reads only the columns before them (``LeadingColumns``), and the scores of the other
tracks are ``-inf`` (PPO: they are never drawn and get no probability in the update) or
``BLOCKED_Q`` (DQN: never the greedy action nor the target's max). The agents mask at
``act`` anyway; this makes training see the same choice set.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import CategoricalDistribution, Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import nn
from torch.distributions import Categorical

from agents.track_softmax import LOGIT_FLOOR, TrackSoftmax, fused_supported, sample_tracks


def catalog_features(embeddings: np.ndarray, plays: np.ndarray) -> np.ndarray:
    """The fixed per-track features ``f_i = [e_i, pop_i, 1]`` of the embedding head.

    Each embedding dimension and the popularity ``log(1 + plays)`` are standardised
    over the catalog (zero mean, unit variance; a constant column stays 0), which only
    conditions the learning: the learned projection absorbs any affine rescaling.

    Args:
        embeddings: (n_tracks, d) track embeddings.
        plays: (n_tracks,) play counts.

    Returns:
        (n_tracks, d + 2) float32.

    Raises:
        ValueError: The shapes disagree or a value is not finite.
    """
    embeddings = np.asarray(embeddings, dtype=np.float64)
    plays = np.asarray(plays, dtype=np.float64)
    if embeddings.ndim != 2 or plays.shape != (len(embeddings),):
        raise ValueError(
            f"need (n_tracks, d) embeddings and (n_tracks,) plays, got shapes "
            f"{embeddings.shape} and {plays.shape}"
        )
    if not (np.isfinite(embeddings).all() and np.isfinite(plays).all()) or (plays < 0).any():
        raise ValueError("embeddings must be finite and plays finite and >= 0")
    raw = np.column_stack([embeddings, np.log1p(plays)])
    std = raw.std(axis=0)
    scaled = (raw - raw.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return np.column_stack([scaled, np.ones(len(raw))]).astype(np.float32)


class EmbeddingHead(nn.Module):
    """``scores[:, i] = latent · (W f_i) + b_i`` over a fixed feature matrix ``F``.

    Computed as ``(latent @ W) @ F.T + b``: ``O(B * (latent_dim + n_tracks) * k)`` for
    ``k`` features, less than a ``Linear(latent_dim, n_tracks)`` head's
    ``O(B * latent_dim * n_tracks)``.

    Args:
        latent_dim: Width of the latent ``h(s)``.
        n_tracks: Number of tracks (scores per row).
        feature_dim: Number ``k`` of fixed features per track.

    Attributes:
        features: (n_tracks, k) buffer ``F`` (zeros until ``set_features``).
        proj: ``Linear(latent_dim, k, bias=False)``; its weight is ``W.T``.
        track_bias: (n_tracks,) learned per-track bias ``b``.
    """

    def __init__(self, latent_dim: int, n_tracks: int, feature_dim: int) -> None:
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("n_tracks", n_tracks)):
            if value < 1:
                raise ValueError(f"`{name}` must be >= 1, got {value}")
        if feature_dim < 1:
            raise ValueError(f"`feature_dim` must be >= 1, got {feature_dim}")
        self.register_buffer("features", th.zeros(n_tracks, feature_dim))
        self.proj = nn.Linear(latent_dim, feature_dim, bias=False)
        self.track_bias = nn.Parameter(th.zeros(n_tracks))

    def set_features(self, features: np.ndarray | th.Tensor) -> None:
        """Copy the (n_tracks, k) features into the buffer.

        Raises:
            ValueError: ``features`` does not have the buffer's shape.
        """
        tensor = th.as_tensor(np.asarray(features, dtype=np.float32))
        if tensor.shape != self.features.shape:
            raise ValueError(
                f"track features must have shape {tuple(self.features.shape)} "
                f"(n_tracks, feature_dim), got {tuple(tensor.shape)}"
            )
        with th.no_grad():
            self.features.copy_(tensor)

    def forward(self, latent: th.Tensor) -> th.Tensor:
        """(B, latent_dim) latents -> (B, n_tracks) scores (DQN's Q-values, the offline heads)."""
        return self.proj(latent) @ self.features.T + self.track_bias

    def scores(self, state: th.Tensor) -> th.Tensor:
        """(B, k) projected latents ``h(s) W`` -> (B, n_tracks) scores, in one ``addmm``.

        PPO's ``FusedCategorical`` reads its logits (``mode``) here. The same values as
        ``forward``'s to rounding, not the same bits: ``forward`` keeps its two steps, so
        DQN's and the offline agents' results did not move with the fused softmax.
        """
        return th.addmm(self.track_bias, state, self.features.T)


class TakenLogProb(th.autograd.Function):
    """The taken actions' log-probabilities and the entropies of ``softmax(logits)``.

    One ``exp`` over the ``(B, n_tracks)`` logits forward and none backward, where
    PyTorch's ``Categorical`` (``log_prob`` then ``entropy``) makes about twenty passes
    over them: on the 512 x 1,000 minibatches of the benchmark's PPO this was most of the
    update's time (docs/speed.md). The gradient is written out: with ``z = x - max(x)``,
    ``s = sum(exp(z))`` and ``p = exp(z) / s``, ``d log p_a / dx = onehot(a) - p`` and
    ``dH / dx = -p * (log p + H)``. Masked tracks may be ``-inf`` (``LOGIT_FLOOR``).
    """

    @staticmethod
    def forward(ctx: Any, logits: th.Tensor, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """(B, n) logits, (B,) or (1,) actions -> (B,) log-probabilities, (B,) entropies."""
        index = actions.long().reshape(-1, 1).expand(len(logits), 1)
        z = (logits - logits.amax(dim=-1, keepdim=True)).clamp_(min=LOGIT_FLOOR)
        e = th.exp(z)
        s = e.sum(dim=-1)
        log_s = th.log(s)
        log_prob = z.gather(1, index).squeeze(1) - log_s
        entropy = log_s - th.linalg.vecdot(e, z) / s
        ctx.save_for_backward(z, e, s, log_s, entropy, index)
        return log_prob, entropy

    @staticmethod
    @th.autograd.function.once_differentiable
    def backward(ctx: Any, g_log_prob: th.Tensor, g_entropy: th.Tensor) -> tuple[th.Tensor, None]:
        """``g_lp * (onehot - p) - g_h * p * (z - log s + H)``, in two passes over (B, n)."""
        z, e, s, log_s, entropy, index = ctx.saved_tensors  # an unused output's g is 0s
        slope = (-g_entropy / s).unsqueeze(1)
        offset = (-(g_log_prob + g_entropy * (entropy - log_s)) / s).unsqueeze(1)
        grad = th.addcmul(offset, z, slope).mul_(e)
        return grad.scatter_add_(1, index, g_log_prob.unsqueeze(1)), None


def gumbel_argmax(logits: th.Tensor) -> th.Tensor:
    """One draw per row from ``softmax(logits)`` (last axis) by the Gumbel-max trick."""
    return th.argmax(logits - th.log(-th.log(th.rand_like(logits))), dim=-1)


class GumbelCategorical(CategoricalDistribution):
    """SB3's categorical action distribution, sampled and differentiated cheaply.

    Sampled by the Gumbel-max trick: ``argmax_i(logit_i + g_i)`` with
    ``g_i = -log(-log(u_i))``, ``u_i`` uniform, is a draw from ``softmax(logits)`` exactly
    (Gumbel 1954; Maddison et al. 2014), in a few element-wise passes where
    ``torch.multinomial`` over 1,000 tracks took 1.3 ms per rollout step of 64 slots (a
    fifth of PPO's time). ``log_prob`` and ``entropy`` come from one ``TakenLogProb``
    (the entropy of the last ``log_prob`` call is reused), the same values as SB3's to
    rounding. ``distribution`` is PyTorch's ``Categorical`` of the logits, built only
    when read (without argument checks: the logits come from the network).
    """

    def __init__(self, action_dim: int) -> None:
        self._logits: th.Tensor | None = None
        self._categorical: Categorical | None = None
        self._entropy: th.Tensor | None = None
        super().__init__(action_dim)

    @property
    def distribution(self) -> Categorical | None:  # type: ignore[override]
        """PyTorch's ``Categorical`` of the current logits (made on first read)."""
        if self._categorical is None and self._logits is not None:
            self._categorical = Categorical(logits=self._logits, validate_args=False)
        return self._categorical

    @distribution.setter
    def distribution(self, value: Categorical | None) -> None:
        self._categorical = value
        self._logits = None if value is None else value.logits
        self._entropy = None

    def proba_distribution(self, action_logits: th.Tensor) -> GumbelCategorical:
        """The distribution of these (B, n_tracks) logits."""
        self._logits, self._categorical, self._entropy = action_logits, None, None
        return self

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """(B,) log-probabilities of the (B,) actions."""
        log_prob, self._entropy = TakenLogProb.apply(self._logits, actions)
        return log_prob

    def entropy(self) -> th.Tensor:
        """(B,) entropies."""
        if self._entropy is None:
            self.log_prob(th.zeros(len(self._logits), dtype=th.long, device=self._logits.device))
        return self._entropy

    def sample(self) -> th.Tensor:
        """One action per row, drawn from ``softmax(logits)`` by the Gumbel-max trick."""
        return gumbel_argmax(self._logits)

    def mode(self) -> th.Tensor:
        """The most probable action of each row."""
        return th.argmax(self._logits, dim=-1)


class FusedCategorical(GumbelCategorical):
    """``GumbelCategorical`` of an ``EmbeddingHead``'s scores, never materialised on the CPU.

    ``from_head`` keeps the projected latent ``h(s) W`` (and the mask); the taken tracks'
    log-probabilities and entropies come from ``agents.track_softmax.TrackSoftmax`` and the
    rollout's draws from ``sample_tracks`` (inverse CDF, one uniform per row), each a row
    at a time without a (B, n_tracks) tensor. The logits are made only when read
    (``mode``, ``distribution``). Off the CPU, or in float64, it is ``GumbelCategorical``.
    """

    def __init__(self, action_dim: int) -> None:
        self._head: EmbeddingHead | None = None
        self._state: th.Tensor | None = None
        self._allowed: th.Tensor | None = None
        self._drawn: tuple[th.Tensor, th.Tensor] | None = None
        super().__init__(action_dim)

    def from_head(
        self, head: EmbeddingHead, latent: th.Tensor, allowed: th.Tensor | None = None
    ) -> FusedCategorical:
        """The distribution of ``head``'s scores of these latents; ``allowed``: (B, n) bool."""
        state = head.proj(latent)
        if not fused_supported(state):
            logits = head.scores(state)
            if allowed is not None:
                logits = th.where(allowed, logits, -th.inf)
            return self.proba_distribution(logits)
        self.proba_distribution(None)
        self._head, self._state, self._allowed = head, state, allowed
        return self

    def proba_distribution(self, action_logits: th.Tensor | None) -> FusedCategorical:
        """The distribution of these (B, n_tracks) logits (``GumbelCategorical``'s path)."""
        self._head = self._state = self._allowed = self._drawn = None
        super().proba_distribution(action_logits)
        return self

    @property
    def logits(self) -> th.Tensor:
        """(B, n_tracks) logits, blocked tracks at ``-inf`` (made on first read)."""
        if self._logits is None and self._head is not None:
            logits = self._head.scores(self._state)
            if self._allowed is not None:
                logits = th.where(self._allowed, logits, -th.inf)
            self._logits = logits
        return self._logits

    @property
    def distribution(self) -> Categorical | None:  # type: ignore[override]
        """PyTorch's ``Categorical`` of the logits (made on first read)."""
        if self._categorical is None and self.logits is not None:
            self._categorical = Categorical(logits=self.logits, validate_args=False)
        return self._categorical

    @distribution.setter
    def distribution(self, value: Categorical | None) -> None:
        self.proba_distribution(None if value is None else value.logits)
        self._categorical = value

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """(B,) log-probabilities of the (B,) actions (the draw's own, right after ``sample``)."""
        if self._head is None:
            return super().log_prob(actions)
        if self._drawn is not None and actions is self._drawn[0] and not th.is_grad_enabled():
            return self._drawn[1]
        log_prob, self._entropy = TrackSoftmax.apply(
            self._state, self._head.track_bias, self._head.features, self._allowed, actions
        )
        return log_prob

    def entropy(self) -> th.Tensor:
        """(B,) entropies."""
        if self._head is None or self._entropy is not None:
            return super().entropy()
        self.log_prob(th.zeros(len(self._state), dtype=th.long))
        return self._entropy

    def sample(self) -> th.Tensor:
        """One action per row from ``softmax(logits)``."""
        if self._head is None:
            return super().sample()
        head = self._head
        self._drawn = sample_tracks(self._state, head.track_bias, head.features, self._allowed)
        return self._drawn[0]

    def mode(self) -> th.Tensor:
        """The most probable action of each row."""
        return th.argmax(self.logits, dim=-1)


def discrete_feature_dim(action_space: spaces.Space, feature_dim: int) -> int:
    """``feature_dim`` as an int, once ``action_space`` is checked to be ``Discrete``."""
    if not isinstance(action_space, spaces.Discrete):
        raise ValueError(f"the embedding head needs a Discrete action space, got {action_space}")
    return int(feature_dim)


class LeadingColumns(BaseFeaturesExtractor):
    """The first ``keep`` columns of the observation: the input without its trailing mask."""

    def __init__(self, observation_space: spaces.Box, keep: int) -> None:
        super().__init__(observation_space, keep)
        self.keep = int(keep)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        """(B, obs_dim) -> (B, keep)."""
        return observations[:, : self.keep]


def allowed_tracks(observations: th.Tensor | np.ndarray, mask_dim: int) -> th.Tensor | np.ndarray:
    """(B, mask_dim) bool: the trailing mask columns of the observations (1: allowed)."""
    return observations[:, -mask_dim:] > 0.5


def mask_kwargs(kwargs: dict[str, Any], observation_space: spaces.Space, mask_dim: int) -> None:
    """Point the policy's features extractor past the trailing mask (``mask_dim`` > 0).

    Raises:
        ValueError: ``mask_dim`` negative, or not less than the observation's width.
    """
    if mask_dim < 0:
        raise ValueError(f"`mask_dim` must be >= 0, got {mask_dim}")
    if mask_dim == 0:
        return
    width = int(np.prod(observation_space.shape))
    if mask_dim >= width:
        raise ValueError(f"`mask_dim` {mask_dim} leaves no observation in a width of {width}")
    kwargs["features_extractor_class"] = LeadingColumns
    kwargs["features_extractor_kwargs"] = {"keep": width - mask_dim}


def replace_action_head(
    policy: ActorCriticPolicy, head: nn.Module, dist: Distribution, lr_schedule: Schedule
) -> None:
    """Put ``head`` and ``dist`` in place of SB3's action layer and distribution.

    The head gets SB3's initialisation of an action output (orthogonal, gain 0.01: a
    near-uniform policy at first) and the optimizer is rebuilt over the new parameters.
    """
    policy.action_net = head.to(policy.device)
    if policy.ortho_init:
        policy.action_net.apply(lambda module: policy.init_weights(module, gain=0.01))
    policy.action_dist = dist
    policy.optimizer = policy.optimizer_class(
        policy.parameters(), lr=lr_schedule(1), **policy.optimizer_kwargs
    )


class EmbeddingActorCriticPolicy(ActorCriticPolicy):
    """SB3's ``ActorCriticPolicy`` whose action logits come from an ``EmbeddingHead``.

    Args:
        observation_space: As for ``ActorCriticPolicy``.
        action_space: ``Discrete(n_tracks)``.
        lr_schedule: As for ``ActorCriticPolicy``.
        feature_dim: Number of fixed features per track (``catalog_features``: d + 2).
        **kwargs: The other ``ActorCriticPolicy`` arguments (``net_arch``, ...).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        feature_dim: int,
        **kwargs: Any,
    ) -> None:
        self.feature_dim = discrete_feature_dim(action_space, feature_dim)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        """SB3's networks, then the linear action head replaced by the embedding head."""
        super()._build(lr_schedule)
        head = EmbeddingHead(
            self.mlp_extractor.latent_dim_pi, int(self.action_space.n), self.feature_dim
        )
        replace_action_head(self, head, FusedCategorical(int(self.action_space.n)), lr_schedule)

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> FusedCategorical:
        """The action distribution of these latents (``FusedCategorical``)."""
        return self.action_dist.from_head(self.action_net, latent_pi)

    def set_track_features(self, features: np.ndarray) -> None:
        """Fill the head's fixed (n_tracks, feature_dim) features."""
        self.action_net.set_features(features)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "feature_dim": self.feature_dim}


class MaskedEmbeddingActorCriticPolicy(EmbeddingActorCriticPolicy):
    """``EmbeddingActorCriticPolicy`` trained with the mask: blocked tracks at ``-inf``.

    Args:
        observation_space: As for ``EmbeddingActorCriticPolicy``; it ends in the mask.
        *args: The other ``EmbeddingActorCriticPolicy`` arguments, in order.
        mask_dim: The number of tracks: the observation's last ``mask_dim`` columns are
            1 for each allowed track (see the module docstring).
        **kwargs: ``feature_dim`` and the other ``ActorCriticPolicy`` arguments.
    """

    def __init__(
        self, observation_space: spaces.Space, *args: Any, mask_dim: int, **kwargs: Any
    ) -> None:
        self.mask_dim = int(mask_dim)
        mask_kwargs(kwargs, observation_space, self.mask_dim)
        super().__init__(observation_space, *args, **kwargs)

    def _masked_dist(self, obs: th.Tensor, latent_pi: th.Tensor) -> FusedCategorical:
        """The action distribution, blocked tracks at ``-inf``."""
        allowed = allowed_tracks(obs, self.mask_dim)
        return self.action_dist.from_head(self.action_net, latent_pi, allowed)

    def forward(
        self, obs: th.Tensor, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """SB3's rollout step (actions, values, log-probabilities), blocked tracks never drawn."""
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        dist = self._masked_dist(obs, latent_pi)
        actions = dist.get_actions(deterministic=deterministic)
        return actions, self.value_net(latent_vf), dist.log_prob(actions)

    def evaluate_actions(
        self, obs: th.Tensor, actions: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """SB3's update terms (values, log-probabilities, entropy)."""
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        dist = self._masked_dist(obs, latent_pi)
        return self.value_net(latent_vf), dist.log_prob(actions), dist.entropy()

    def get_distribution(self, obs: th.Tensor) -> FusedCategorical:
        """The action distribution of ``obs``."""
        latent_pi = self.mlp_extractor.forward_actor(self.extract_features(obs))
        return self._masked_dist(obs, latent_pi)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {**super()._get_constructor_parameters(), "mask_dim": self.mask_dim}
