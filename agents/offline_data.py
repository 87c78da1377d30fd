"""The offline learners' data and network: logged transitions, scores, CQL's regulariser.

Used by ``agents.offline`` (``bc``, ``cql``): :class:`LoggedTransitions` turns a logged
dataset (``musicrec_gym.logged_data.LoggedDataset``) into states, actions, rewards and
next states, the session features rebuilt for every logged step
(:func:`session_feature_rows`); :class:`ScoreNet` scores every track of a state through
its embedding; :func:`conservative_term` is CQL's regulariser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch as th
from torch import nn

from agents.embedding_heads import EmbeddingHead
from musicrec_gym.session_features import SessionPlays, standardized, warmup_plays

__all__ = [
    "READ_COLUMNS",
    "LoggedTransitions",
    "ScoreNet",
    "conservative_term",
    "session_feature_rows",
]

#: The dataset columns the learners read (never the ``truth_`` ones).
READ_COLUMNS = (
    "episode", "step", "obs", "next_obs", "action", "reward", "terminated", "listened",
    "warmup_tracks", "warmup_listened", "action_context",
)  # fmt: skip


# ----------------------------------------------------------------- the dataset's transitions


def session_feature_rows(
    episode: np.ndarray,
    action: np.ndarray,
    listened: np.ndarray,
    warmup_tracks: np.ndarray,
    warmup_listened: np.ndarray,
    embeddings: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The session features before and after every logged step.

    Row ``j`` (step ``t`` of episode ``e``) gets ``SessionPlays.features`` of the
    session after its warm-up plays and steps ``0..t-1`` (the state the logger acted
    in) and after steps ``0..t`` (the next state).

    Args:
        episode: (n,) episode ids, each episode's rows together and in order.
        action: (n,) logged tracks.
        listened: (n,) their outcomes.
        warmup_tracks: (E, w) warm-up tracks of each episode (``-1``: none).
        warmup_listened: (E, w) their listen flags.
        embeddings: (n_tracks, d) the embeddings the features use (standardised).

    Returns:
        ``(before, after)``, each (n, 2 d) float64.
    """
    emb = np.asarray(embeddings, dtype=np.float64)
    episode = np.asarray(episode, dtype=np.int64)
    listened = np.asarray(listened, dtype=bool)
    n_eps = len(warmup_tracks)
    warm = SessionPlays(emb, n_eps)
    warm.add(*warmup_plays(np.arange(n_eps), warmup_tracks, warmup_listened, len(emb)))
    d = emb.shape[1]
    played = emb[np.asarray(action, dtype=np.int64)]
    contrib = np.zeros((len(episode), 2 * d + 1))
    contrib[:, :d] = np.where(listened[:, None], played, 0.0)
    contrib[:, d : 2 * d] = np.where(listened[:, None], 0.0, played)
    contrib[:, -1] = 1.0
    total = np.cumsum(contrib, axis=0)
    first = np.flatnonzero(np.concatenate([[True], episode[1:] != episode[:-1]]))
    offset = np.repeat(total[first] - contrib[first], np.diff(np.append(first, len(episode))), 0)
    after = warm.sums[episode] + total - offset
    before = after - contrib

    def means(sums: np.ndarray) -> np.ndarray:
        return sums[:, :-1] / np.maximum(sums[:, -1:], 1.0)

    return means(before), means(after)


@dataclass
class LoggedTransitions:
    """The logged steps as learning arrays: states, actions, rewards, next states.

    Attributes:
        states: (n, k) float32: observation, then (``session_features``) the session
            means before the step.
        next_states: (n, k) float32: the same after the step.
        actions: (n,) int64.
        rewards: (n,) float32.
        terminated: (n,) bool: the listener left (no bootstrap); a truncated session
            bootstraps, as time limits do in DQN.
        episode: (n,) int64; step: (n,) int64.
        warmup_tracks: (E, w) int64; ep_actions: (E, L) int64 each episode's actions,
            padded with -1: together the tracks played before each next state.
    """

    states: np.ndarray
    next_states: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    warmup_tracks: np.ndarray
    ep_actions: np.ndarray

    @classmethod
    def from_dataset(
        cls, dataset: Any, embeddings: np.ndarray, session_features: bool
    ) -> LoggedTransitions:
        """Build from a ``LoggedDataset`` (or anything with its columns as attributes)."""
        col = {name: np.asarray(getattr(dataset, name)) for name in READ_COLUMNS}
        episode = col["episode"].astype(np.int64)
        step = col["step"].astype(np.int64)
        actions = col["action"].astype(np.int64)
        states = [col["obs"].astype(np.float32)]
        next_states = [col["next_obs"].astype(np.float32)]
        if session_features:
            before, after = session_feature_rows(
                episode, actions, col["listened"], col["warmup_tracks"],
                col["warmup_listened"], standardized(embeddings),
            )  # fmt: skip
            states.append(before.astype(np.float32))
            next_states.append(after.astype(np.float32))
        n_eps = len(col["warmup_tracks"])
        length = int(step.max()) + 1 if len(step) else 1
        ep_actions = np.full((n_eps, length), -1, dtype=np.int64)
        ep_actions[episode, step] = actions
        return cls(
            states=np.concatenate(states, axis=1),
            next_states=np.concatenate(next_states, axis=1),
            actions=actions,
            rewards=col["reward"].astype(np.float32),
            terminated=col["terminated"].astype(bool),
            episode=episode,
            step=step,
            warmup_tracks=col["warmup_tracks"].astype(np.int64),
            ep_actions=ep_actions,
        )

    def __len__(self) -> int:
        return len(self.actions)

    def played_after(self, rows: np.ndarray, n_tracks: int) -> np.ndarray:
        """(B, n_tracks) bool: the tracks played in each row's session once its step is done.

        The warm-up tracks and the episode's actions up to and including the row's: what
        ``avoid_repeats`` blocks in the next state. A row with every track played gets
        none blocked (as ``EpisodeHistory.blocked`` does).
        """
        ep, t = self.episode[rows], self.step[rows]
        acts = self.ep_actions[ep]
        acts = np.where(np.arange(acts.shape[1])[None, :] <= t[:, None], acts, -1)
        tracks = np.concatenate([self.warmup_tracks[ep], acts], axis=1)
        valid = (tracks >= 0) & (tracks < n_tracks)
        mask = np.zeros((len(rows), n_tracks), dtype=bool)
        r, c = np.nonzero(valid)
        mask[r, tracks[r, c]] = True
        mask[mask.all(axis=1)] = False
        return mask


# ----------------------------------------------------------------- the network


class ScoreNet(nn.Module):
    """Track scores ``h(s) · W f_i + b_i``: an MLP on the standardised state, then a head.

    The head is ``agents.embedding_heads.EmbeddingHead``.

    Args:
        state_dim: Width of the state.
        n_tracks: Number of tracks.
        track_features: (n_tracks, k) fixed features (``catalog_features``).
        net_arch: Hidden layer sizes of ``h``.

    Attributes:
        mean, std: (state_dim,) buffers: the states are standardised with them (set from
            the dataset by ``set_scaling``; saved with the weights).
    """

    def __init__(
        self, state_dim: int, n_tracks: int, track_features: np.ndarray, net_arch: list[int]
    ) -> None:
        super().__init__()
        self.register_buffer("mean", th.zeros(state_dim))
        self.register_buffer("std", th.ones(state_dim))
        layers: list[nn.Module] = []
        width = state_dim
        for size in net_arch:
            layers += [nn.Linear(width, size), nn.ReLU()]
            width = size
        self.body = nn.Sequential(*layers)
        self.head = EmbeddingHead(width, n_tracks, track_features.shape[1])
        self.head.set_features(track_features)

    def set_scaling(self, states: np.ndarray) -> None:
        """Standardise with the mean and standard deviation of ``states`` (a constant column: 1)."""
        states = np.asarray(states, dtype=np.float64)
        std = states.std(axis=0)
        with th.no_grad():
            self.mean.copy_(th.as_tensor(states.mean(axis=0), dtype=th.float32))
            self.std.copy_(th.as_tensor(np.where(std > 1e-6, std, 1.0), dtype=th.float32))

    def forward(self, states: th.Tensor) -> th.Tensor:
        """(B, state_dim) -> (B, n_tracks) scores."""
        return self.head(self.body((states - self.mean) / self.std))


def conservative_term(q_all: th.Tensor, actions: th.Tensor) -> th.Tensor:
    """CQL(H)'s regulariser for discrete actions: ``mean_b(logsumexp_a Q(s_b, a) - Q(s_b, a_b))``.

    Args:
        q_all: (B, n_actions) Q-values.
        actions: (B,) the logged actions.
    """
    logged = q_all.gather(1, actions.view(-1, 1)).squeeze(1)
    return (th.logsumexp(q_all, dim=1) - logged).mean()
