"""A two-level (cluster, then track) softmax policy for SB3's PPO: ``head: clustered``.

The embedding head (``agents.embedding_heads``) scores all ``n`` tracks for every row
of every minibatch, and the exact softmax over them is most of PPO's update (docs/
speed.md). Here the catalog is split once into ``C`` clusters of similar tracks
(``track_clusters``: balanced median splits of the track features, ``C`` about
``sqrt(n)``), and the policy draws a cluster, then a track in it (Morin & Bengio,
"Hierarchical probabilistic neural network language model", AISTATS 2005)::

    pi(i | s) = softmax_c(u(s))[c(i)] * softmax_{j in c(i)}(v(s))[i]
    u_c(s) = h(s) · (W_u g_c) + a_c,      v_i(s) = h(s) · (W_v f_i) + b_i

with ``f_i`` the embedding head's fixed track features (``catalog_features``), ``g_c``
the mean of ``f_i`` over cluster ``c``, ``W_u``, ``W_v`` learned projections and
``a_c``, ``b_i`` learned biases. It is an exact distribution over the ``n`` tracks (not
an approximation of the embedding head's): the taken track's log-probability needs the
``C`` cluster scores and the ``n / C`` scores of its own cluster, about ``2 sqrt(n)``
instead of ``n``. Features and biases are stored by cluster, ``(C, S, k)`` and
``(C, S)`` with ``S = ceil(n / C)`` slots (unused slots are never drawn), so a row's
cluster is read with one ``index_select`` and one row-wise product. Unused slots, blocked
tracks and clusters with no allowed track score ``LOGIT_FLOOR`` (-1e9, not ``-inf``):
their probability is exactly 0 in float32, and sums and gradients stay finite.

**Entropy**: the update's entropy term (SB3 logs it; it enters the loss only with
``ent_coef > 0``) is the cluster entropy plus the taken cluster's within-cluster
entropy: an unbiased one-sample estimate of the exact entropy
``H(c) + sum_c p_c H(i | c)`` under the rollout's own policy, which ``entropy()``
computes in full.

**Mask** (``mask_dim``, the agent's ``train_mask``): as for the embedding head, the
observation ends in ``mask_dim`` columns, 1 for each allowed track; blocked tracks get
probability 0, and a cluster whose tracks are all blocked is never drawn (found with one
product of the mask and the ``(n, C)`` membership matrix).

**Measured** (docs/speed.md): PPO trains at 0.98-1.19 of CartPole PPO's fps (the
embedding head 0.64-0.79) and scores 0.884 in the benchmark against the embedding
head's 0.914 at the same 204,800 steps (docs/benchmark.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import Distribution
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import Schedule
from torch import nn
from torch.distributions import Categorical

from agents.embedding_heads import (
    discrete_feature_dim,
    gumbel_argmax,
    mask_kwargs,
    replace_action_head,
)
from agents.track_softmax import LOGIT_FLOOR
from musicrec_gym.errors import ConfigError


def default_clusters(n_tracks: int) -> int:
    """The power of two nearest ``sqrt(n_tracks)`` (32 for 1,000 tracks), at most ``n``."""
    if n_tracks < 1:
        raise ValueError(f"`n_tracks` must be >= 1, got {n_tracks}")
    return min(n_tracks, 2 ** round(math.log2(math.sqrt(n_tracks))))


def cluster_count(n_clusters: int, n_tracks: int) -> int:
    """The ``n_clusters`` param checked against the catalog (0: ``default_clusters``).

    Raises:
        ConfigError: ``n_clusters`` exceeds ``n_tracks``.
    """
    if n_clusters > n_tracks:
        raise ConfigError(f"`n_clusters` must be <= {n_tracks} (the tracks), got {n_clusters}")
    return n_clusters or default_clusters(n_tracks)


def track_clusters(features: np.ndarray, n_clusters: int) -> np.ndarray:
    """Split the tracks into ``n_clusters`` clusters of similar features, balanced in size.

    A k-d tree's splits: the set is cut at the median of its most spread feature, the
    halves again, until each part is one cluster; sizes differ by at most one (the first
    ``n % C`` clusters hold ``ceil(n / C)``). Deterministic (stable sorts).

    Args:
        features: (n_tracks, k) track features (``catalog_features``).
        n_clusters: Number of clusters, 1 to n_tracks.

    Returns:
        (n_clusters, ceil(n / n_clusters)) int64 track ids, -1 in unused slots.

    Raises:
        ValueError: ``features`` is not a finite 2-D array, or ``n_clusters`` is out of range.
    """
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2 or len(features) < 1 or not np.isfinite(features).all():
        raise ValueError(f"need finite (n_tracks, k) features, got shape {features.shape}")
    n = len(features)
    if not 1 <= n_clusters <= n:
        raise ValueError(f"`n_clusters` must be in [1, {n}] (the tracks), got {n_clusters}")
    sizes = [n // n_clusters + (c < n % n_clusters) for c in range(n_clusters)]
    slots = -np.ones((n_clusters, max(sizes)), dtype=np.int64)

    def split(ids: np.ndarray, first: int, count: int) -> None:
        if count == 1:
            slots[first, : len(ids)] = ids
            return
        half = count // 2
        column = int(np.argmax(features[ids].std(axis=0)))
        order = ids[np.argsort(features[ids, column], kind="stable")]
        cut = sum(sizes[first : first + half])
        split(order[:cut], first, half)
        split(order[cut:], first + half, count - half)

    split(np.arange(n), 0, n_clusters)
    return slots


class ClusteredHead(nn.Module):
    """The two-level head's parameters, fixed features and cluster layout.

    Args:
        latent_dim: Width of the latent ``h(s)``.
        n_tracks: Number of tracks.
        feature_dim: Number ``k`` of fixed features per track.
        n_clusters: Number of clusters ``C``.

    Attributes:
        slot_track: (C, S) buffer: the track in each slot (0 in unused ones).
        slot_floor: (C, S) buffer: 0 in a used slot, ``LOGIT_FLOOR`` in an unused one.
        membership: (n, C) buffer: 1 where the track is in the cluster.
        track_cluster, track_slot: (n,) buffers: each track's cluster and slot.
        slot_features: (C, S, k) buffer: ``f_i`` by slot (0 in unused ones).
        cluster_features: (C, k) buffer ``g_c``.
        cluster_proj, track_proj: ``W_u``, ``W_v`` (``Linear(latent_dim, k)``, no bias).
        cluster_bias: (C,) ``a``; track_bias: (C, S) ``b`` by slot.
    """

    def __init__(self, latent_dim: int, n_tracks: int, feature_dim: int, n_clusters: int) -> None:
        super().__init__()
        for name, value in (("latent_dim", latent_dim), ("feature_dim", feature_dim)):
            if value < 1:
                raise ValueError(f"`{name}` must be >= 1, got {value}")
        if not 1 <= n_clusters <= n_tracks:
            raise ValueError(
                f"`n_clusters` must be in [1, {n_tracks}] (the tracks), got {n_clusters}"
            )
        size = -(-n_tracks // n_clusters)
        self.n_tracks, self.n_clusters, self.size = n_tracks, n_clusters, size
        self.register_buffer("slot_track", th.zeros(n_clusters, size, dtype=th.long))
        self.register_buffer("slot_floor", th.zeros(n_clusters, size))
        self.register_buffer("membership", th.zeros(n_tracks, n_clusters))
        self.register_buffer("track_cluster", th.zeros(n_tracks, dtype=th.long))
        self.register_buffer("track_slot", th.zeros(n_tracks, dtype=th.long))
        self.register_buffer("slot_features", th.zeros(n_clusters, size, feature_dim))
        self.register_buffer("cluster_features", th.zeros(n_clusters, feature_dim))
        self.cluster_proj = nn.Linear(latent_dim, feature_dim, bias=False)
        self.track_proj = nn.Linear(latent_dim, feature_dim, bias=False)
        self.cluster_bias = nn.Parameter(th.zeros(n_clusters))
        self.track_bias = nn.Parameter(th.zeros(n_clusters, size))

    def set_features(self, features: np.ndarray) -> None:
        """Cluster the (n_tracks, k) features (``track_clusters``) and fill the buffers.

        Raises:
            ValueError: ``features`` does not have shape (n_tracks, k).
        """
        features = np.asarray(features, dtype=np.float32)
        expected = (self.n_tracks, self.slot_features.shape[2])
        if features.shape != expected:
            raise ValueError(
                f"track features must have shape {expected} (n_tracks, feature_dim), "
                f"got {features.shape}"
            )
        slots = track_clusters(features, self.n_clusters)
        used = slots >= 0
        track = np.where(used, slots, 0)
        clusters, positions = np.nonzero(used)
        by_slot = np.where(used[..., None], features[track], 0.0)
        means = by_slot.sum(axis=1) / used.sum(axis=1, keepdims=True)
        with th.no_grad():
            self.slot_track.copy_(th.from_numpy(track))
            self.slot_floor.copy_(th.from_numpy(np.where(used, 0.0, LOGIT_FLOOR)))
            self.membership.zero_()
            self.membership[slots[used], clusters] = 1.0
            self.track_cluster[slots[used]] = th.from_numpy(clusters)
            self.track_slot[slots[used]] = th.from_numpy(positions)
            self.slot_features.copy_(th.from_numpy(by_slot.astype(np.float32)))
            self.cluster_features.copy_(th.from_numpy(means.astype(np.float32)))

    def cluster_logits(self, latent: th.Tensor, allowed: th.Tensor | None) -> th.Tensor:
        """(B, C) cluster scores ``u``; ``LOGIT_FLOOR`` where no track is allowed.

        ``allowed``: (B, n) float, 1 for an allowed track (None: all are).
        """
        logits = self.cluster_proj(latent) @ self.cluster_features.T + self.cluster_bias
        if allowed is None:
            return logits
        return th.where(allowed @ self.membership > 0.5, logits, LOGIT_FLOOR)

    def logits_in(
        self, latent: th.Tensor, clusters: th.Tensor, allowed: th.Tensor | None
    ) -> th.Tensor:
        """(B, S) track scores ``v`` of each row's cluster (``clusters``: (B,)).

        ``LOGIT_FLOOR`` in unused slots and (``allowed``: (B, n) float or None) at
        blocked tracks.
        """
        query = self.track_proj(latent).unsqueeze(1)
        block = self.slot_features.index_select(0, clusters)
        bias = (self.track_bias + self.slot_floor).index_select(0, clusters)
        logits = th.linalg.vecdot(block, query) + bias
        if allowed is None:
            return logits
        ok = allowed.gather(1, self.slot_track.index_select(0, clusters)) > 0.5
        return th.where(ok, logits, LOGIT_FLOOR)

    def all_logits(self, latent: th.Tensor, allowed: th.Tensor | None) -> th.Tensor:
        """(B, C, S) track scores ``v`` of every slot, floored as in ``logits_in``."""
        flat = self.slot_features.flatten(0, 1)
        logits = (self.track_proj(latent) @ flat.T).view(-1, *self.track_bias.shape)
        logits = logits + self.track_bias + self.slot_floor
        if allowed is None:
            return logits
        return th.where(allowed[:, self.slot_track] > 0.5, logits, LOGIT_FLOOR)


def entropy_of(log_probs: th.Tensor) -> th.Tensor:
    """Entropy over the last axis of normalised (finite) log-probabilities."""
    return -(log_probs.exp() * log_probs).sum(dim=-1)


class ClusteredCategorical(Distribution):
    """The two-level distribution of a batch of latents (see the module docstring).

    Rows with at least one allowed track are assumed (a session never blocks the whole
    catalog); the taken track of ``taken`` must be allowed, as PPO's own draws are.
    """

    def __init__(self, action_dim: int) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.head: ClusteredHead | None = None
        self.latent: th.Tensor | None = None
        self.allowed: th.Tensor | None = None
        self.cluster_log_probs: th.Tensor | None = None

    def proba_distribution_net(self, latent_dim: int) -> nn.Module:
        """Not used: ``ClusteredActorCriticPolicy`` builds the ``ClusteredHead``."""
        raise NotImplementedError("ClusteredActorCriticPolicy builds the ClusteredHead")

    def proba_distribution(
        self, head: ClusteredHead, latent: th.Tensor, allowed: th.Tensor | None = None
    ) -> ClusteredCategorical:
        """The distribution of the (B, latent_dim) latents; ``allowed``: (B, n) float or None."""
        self.head, self.latent, self.allowed = head, latent, allowed
        self.cluster_log_probs = th.log_softmax(head.cluster_logits(latent, allowed), dim=1)
        return self

    def _in_cluster(self, clusters: th.Tensor) -> th.Tensor:
        """(B, S) within-cluster log-probabilities of each row's cluster."""
        return th.log_softmax(self.head.logits_in(self.latent, clusters, self.allowed), dim=1)

    def taken(self, actions: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """(B,) log-probabilities of the actions, and the (B,) one-sample entropy estimates."""
        actions = actions.long().reshape(-1)
        clusters = self.head.track_cluster.index_select(0, actions)
        slots = self.head.track_slot.index_select(0, actions)
        within = self._in_cluster(clusters)
        log_prob = self._joint(clusters, within, slots)
        return log_prob, entropy_of(self.cluster_log_probs) + entropy_of(within)

    def _joint(self, clusters: th.Tensor, within: th.Tensor, slots: th.Tensor) -> th.Tensor:
        """(B,) log-probabilities of (cluster, slot) pairs: cluster's plus within-cluster."""
        cluster_part = self.cluster_log_probs.gather(1, clusters.unsqueeze(1))
        return (cluster_part + within.gather(1, slots.unsqueeze(1))).squeeze(1)

    def log_prob(self, actions: th.Tensor) -> th.Tensor:
        """(B,) log-probabilities of the (B,) actions."""
        return self.taken(actions)[0]

    def sample_with_log_prob(self) -> tuple[th.Tensor, th.Tensor]:
        """One track per row (a cluster, then a track in it) and its log-probability."""
        clusters = gumbel_argmax(self.cluster_log_probs)
        within = self._in_cluster(clusters)
        slots = gumbel_argmax(within)
        return self.head.slot_track[clusters, slots], self._joint(clusters, within, slots)

    def sample(self) -> th.Tensor:
        """One track per row: a cluster, then a track in it."""
        return self.sample_with_log_prob()[0]

    def _all_within(self) -> th.Tensor:
        """(B, C, S) within-cluster log-probabilities of every slot."""
        return th.log_softmax(self.head.all_logits(self.latent, self.allowed), dim=-1)

    def full_log_probs(self) -> th.Tensor:
        """(B, n) log-probabilities of every track, in track order."""
        joint = (self.cluster_log_probs.unsqueeze(2) + self._all_within()).flatten(1)
        return joint[:, self.head.track_cluster * self.head.size + self.head.track_slot]

    def entropy(self) -> th.Tensor:
        """(B,) exact entropies ``H(c) + sum_c p_c H(i | c)`` (all ``n`` scores)."""
        weights = self.cluster_log_probs.exp()
        conditional = (weights * entropy_of(self._all_within())).sum(dim=1)
        return entropy_of(self.cluster_log_probs) + conditional

    def mode(self) -> th.Tensor:
        """The most probable track of each row."""
        return th.argmax(self.full_log_probs(), dim=1)

    @property
    def distribution(self) -> Categorical:
        """PyTorch's ``Categorical`` over the n tracks (its logits: ``full_log_probs``)."""
        return Categorical(logits=self.full_log_probs(), validate_args=False)

    def actions_from_params(self, *args: Any, **kwargs: Any) -> th.Tensor:
        """Actions of ``proba_distribution(*args)`` (SB3's interface)."""
        return self.proba_distribution(*args).get_actions(kwargs.get("deterministic", False))

    def log_prob_from_params(self, *args: Any) -> tuple[th.Tensor, th.Tensor]:
        """Sampled actions and their log-probabilities (SB3's interface)."""
        actions = self.actions_from_params(*args)
        return actions, self.log_prob(actions)


class ClusteredActorCriticPolicy(ActorCriticPolicy):
    """SB3's ``ActorCriticPolicy`` whose actions come from a ``ClusteredHead``.

    Args:
        observation_space: As for ``ActorCriticPolicy`` (ends in the mask if ``mask_dim``).
        action_space: ``Discrete(n_tracks)``.
        lr_schedule: As for ``ActorCriticPolicy``.
        feature_dim: Number of fixed features per track (``catalog_features``: d + 2).
        n_clusters: Number of clusters (``default_clusters(n_tracks)``: 32 for 1,000).
        mask_dim: 0, or the number of tracks: the observation's last ``mask_dim``
            columns are 1 for each allowed track.
        **kwargs: The other ``ActorCriticPolicy`` arguments (``net_arch``, ...).
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        feature_dim: int,
        n_clusters: int,
        mask_dim: int = 0,
        **kwargs: Any,
    ) -> None:
        self.feature_dim = discrete_feature_dim(action_space, feature_dim)
        self.n_clusters, self.mask_dim = int(n_clusters), int(mask_dim)
        mask_kwargs(kwargs, observation_space, self.mask_dim)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        """SB3's networks, then the linear action head replaced by the clustered head."""
        super()._build(lr_schedule)
        n_tracks = int(self.action_space.n)
        head = ClusteredHead(
            self.mlp_extractor.latent_dim_pi, n_tracks, self.feature_dim, self.n_clusters
        )
        replace_action_head(self, head, ClusteredCategorical(n_tracks), lr_schedule)

    def set_track_features(self, features: np.ndarray) -> None:
        """Cluster the tracks by their (n_tracks, feature_dim) features and fill the head."""
        self.action_net.set_features(features)

    def _dist(self, obs: th.Tensor, latent_pi: th.Tensor) -> ClusteredCategorical:
        allowed = obs[:, -self.mask_dim :] if self.mask_dim else None
        return self.action_dist.proba_distribution(self.action_net, latent_pi, allowed)

    def forward(
        self, obs: th.Tensor, deterministic: bool = False
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """SB3's rollout step: actions, values, log-probabilities."""
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        dist = self._dist(obs, latent_pi)
        if deterministic:
            actions = dist.mode()
            return actions, self.value_net(latent_vf), dist.log_prob(actions)
        actions, log_prob = dist.sample_with_log_prob()
        return actions, self.value_net(latent_vf), log_prob

    def evaluate_actions(
        self, obs: th.Tensor, actions: th.Tensor
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor | None]:
        """SB3's update terms: values, log-probabilities, the one-sample entropy estimate."""
        latent_pi, latent_vf = self.mlp_extractor(self.extract_features(obs))
        log_prob, entropy = self._dist(obs, latent_pi).taken(actions)
        return self.value_net(latent_vf), log_prob, entropy

    def get_distribution(self, obs: th.Tensor) -> ClusteredCategorical:
        """The action distribution of ``obs``."""
        latent_pi = self.mlp_extractor.forward_actor(self.extract_features(obs))
        return self._dist(obs, latent_pi)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return {
            **super()._get_constructor_parameters(),
            "feature_dim": self.feature_dim,
            "n_clusters": self.n_clusters,
            "mask_dim": self.mask_dim,
        }
