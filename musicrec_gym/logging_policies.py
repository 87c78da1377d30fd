"""Logging policies with exact propensities: full action distributions, not just actions.

A logged dataset is only as useful to off-policy estimators as its propensities are
exact. Every policy here gives, for a batch of slots of a ``MusicRecVectorEnv``, the
whole distribution over the catalog, ``(B, n_tracks)`` float64 with rows summing to 1;
the rollout (``experiments.logged.log_sessions``) draws the action from that
distribution with its own random generator (:func:`sample_actions`), so the
probability it records for the action taken is exact by construction. Nothing here
consumes the simulator's random streams.

Policies, by spec string (:func:`parse_policy_spec`):

- ``world``: the world's own logging policy, the one that plays the sessions'
  warm-up (:func:`world_logging_probabilities`): the built-in world's radio-like
  mixture (``BatchSimulator._logging_choice``) or a fitted world's popularity logger
  (``FittedSimulator.logging_actions``).
- ``uniform``: every track ``1 / n_tracks``.
- ``oracle:EPS``, ``popularity:EPS``, ``planner:EPS``: a reference agent softened by
  ε-greedy, ``p(a) = ε / n_tracks + (1 - ε) · 1[a = greedy]``
  (:func:`epsilon_greedy_probabilities`); the agents themselves live in the
  ``agents`` package, so the harness builds these (``experiments.logged``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from musicrec_gym.errors import ConfigError, unknown_name_message
from musicrec_gym.sim.fitted import FittedSimulator
from musicrec_gym.sim.simulator import BatchSimulator

POLICY_NAMES = ("world", "uniform", "oracle", "popularity", "planner")
"""The logging policies ``musicrec log --policy`` takes."""
SOFTENED = ("oracle", "popularity", "planner")
"""The policies that are an agent's greedy action softened by ε-greedy."""
DEFAULT_EPSILON = 0.1
"""ε of a softened policy whose spec gives none (``oracle`` = ``oracle:0.1``)."""


@dataclass(frozen=True)
class PolicySpec:
    """A logging policy by name, and its ε for the softened ones.

    Attributes:
        name: One of :data:`POLICY_NAMES`.
        epsilon: The uniform share of a softened policy, in [0, 1]; ``None`` for
            ``world`` and ``uniform``.
    """

    name: str
    epsilon: float | None = None

    def __post_init__(self) -> None:
        if self.name not in POLICY_NAMES:
            raise ConfigError(unknown_name_message("logging policy", str(self.name), POLICY_NAMES))
        if self.name in SOFTENED:
            eps = self.epsilon
            ok = isinstance(eps, (int, float)) and not isinstance(eps, bool) and 0 <= eps <= 1
            if not ok or not math.isfinite(eps):
                raise ConfigError(
                    f"logging policy {self.name!r}: `epsilon` must be a number in [0, 1], "
                    f"got {eps!r}"
                )
        elif self.epsilon is not None:
            raise ConfigError(
                f"logging policy {self.name!r} takes no epsilon (only "
                f"{', '.join(SOFTENED)} are softened), got {self.epsilon!r}"
            )

    def __str__(self) -> str:
        return self.name if self.epsilon is None else f"{self.name}:{self.epsilon:g}"


def parse_policy_spec(spec: str, epsilon: float | None = None) -> PolicySpec:
    """A spec string (``world``, ``uniform``, ``oracle:0.1``, ``planner`` ...) as a record.

    Args:
        spec: ``NAME`` or ``NAME:EPS``.
        epsilon: ε for a softened policy whose spec has none (``--epsilon``); default
            :data:`DEFAULT_EPSILON`. Giving both is an error unless they agree.

    Raises:
        ConfigError: An unknown name (with a did-you-mean hint), an ε that is not a
            number in [0, 1], or an ε for ``world`` or ``uniform``.
    """
    if not isinstance(spec, str):
        raise ConfigError(f"a logging policy must be a string such as 'world', got {spec!r}")
    name, colon, text = spec.strip().partition(":")
    if name not in POLICY_NAMES:
        raise ConfigError(unknown_name_message("logging policy", name, POLICY_NAMES))
    eps: float | None = None
    if colon:
        try:
            eps = float(text)
        except ValueError:
            raise ConfigError(
                f"logging policy {spec!r}: the part after ':' must be epsilon, a number in "
                f"[0, 1], got {text!r}"
            ) from None
        if epsilon is not None and epsilon != eps:
            raise ConfigError(
                f"logging policy {spec!r} and epsilon={epsilon!r} disagree: give epsilon once"
            )
    elif epsilon is not None:
        eps = epsilon
    if name in SOFTENED and eps is None:
        eps = DEFAULT_EPSILON
    return PolicySpec(name, eps)


# --------------------------------------------------------------------- distributions


def popularity_probabilities(cdf: np.ndarray) -> np.ndarray:
    """The exact distribution of ``by_popularity(cdf, u, n)`` for ``u`` uniform in [0, 1).

    Track ``t`` is drawn when ``cdf[t - 1] <= u < cdf[t]``; the last track also takes
    whatever rounding leaves past ``cdf[-1]`` (the draw is capped at it).
    """
    cdf = np.asarray(cdf, dtype=np.float64)
    edges = np.concatenate([[0.0], np.minimum(cdf[:-1], 1.0), [1.0]])
    return np.maximum(np.diff(edges), 0.0)


def _synthetic_logging(sim: BatchSimulator, slots: np.ndarray) -> np.ndarray:
    """``BatchSimulator._logging_choice``'s distribution in ``slots`` (see its docstring).

    ``mix < pop`` plays a popular track; ``pop <= mix < pop + next`` a continuation
    of the last play (when there is one; else a pool track); otherwise a uniform
    place of the listener's ``pool`` best tracks. A continuation is a uniform pick
    among the ``continuation_pool`` pool tracks most like the last play (itself
    excluded), chosen by the same ``argpartition`` on the same similarities.
    """
    params, n, pool = sim.params, sim.n_tracks, sim.pool
    pop_share = params.logging_pop_share
    next_share = min(pop_share + params.logging_continuation_share, 1.0) - pop_share
    b = len(slots)
    rows = np.arange(b)
    cand = sim.cand[slots, :pool]
    last = sim.win_tracks[slots, -1]
    has_last = last >= 0
    w_pool = np.where(has_last, 1.0 - pop_share - next_share, 1.0 - pop_share)
    probs = np.broadcast_to(pop_share * popularity_probabilities(sim.pop_cdf), (b, n)).copy()
    np.add.at(probs, (np.repeat(rows, pool), cand.ravel()), np.repeat(w_pool / pool, pool))
    cont = np.flatnonzero(has_last)
    if cont.size and next_share > 0:
        k = params.continuation_pool
        factors = sim.response.factors
        pool_c, last_c = cand[cont], last[cont]
        sims = np.einsum("bpk,bk->bp", factors[pool_c], factors[last_c])
        sims[pool_c == last_c[:, None]] = -np.inf
        nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        tracks = pool_c[np.arange(len(cont))[:, None], nearest]
        np.add.at(probs, (np.repeat(cont, k), tracks.ravel()), next_share / k)
    return probs


def fitted_popularity_cdf(sim: FittedSimulator) -> np.ndarray:
    """The play-share CDF a fitted world's logger draws catalog tracks from."""
    share = sim.model.play_share[:-1]
    return np.cumsum(share) / share.sum()


def world_logging_probabilities(sim: Any, slots: np.ndarray | slice = slice(None)) -> np.ndarray:
    """The world's own logging policy's action distribution in ``slots``: ``(B, n_tracks)``.

    Exactly the distribution of ``sim.logging_actions(slots)`` in the current state:
    the built-in (synthetic) world's radio-like mixture, or a fitted world's
    popularity logger (catalog tracks by their share of training plays, the same in
    every state).

    Args:
        sim: The environment's simulator (``env.core.sim``).
        slots: The slots, as an index array or a slice.

    Raises:
        ConfigError: ``sim`` is not a MusicRec simulator.
    """
    ids = np.arange(sim.n_slots)[slots]
    if isinstance(sim, FittedSimulator):
        probs = popularity_probabilities(fitted_popularity_cdf(sim))
        return np.broadcast_to(probs, (len(ids), sim.n_tracks)).copy()
    if isinstance(sim, BatchSimulator):
        return _synthetic_logging(sim, ids)
    raise ConfigError(f"the world's logging policy needs a MusicRec simulator, got {sim!r}")


def uniform_probabilities(batch: int, n_tracks: int) -> np.ndarray:
    """Every track ``1 / n_tracks`` in each of ``batch`` rows."""
    return np.full((batch, n_tracks), 1.0 / n_tracks)


def epsilon_greedy_probabilities(greedy: np.ndarray, n_tracks: int, epsilon: float) -> np.ndarray:
    """``ε / n_tracks + (1 - ε) · 1[a = greedy[i]]`` for each row ``i``: ``(B, n_tracks)``."""
    greedy = np.asarray(greedy, dtype=np.int64)
    probs = np.full((len(greedy), n_tracks), epsilon / n_tracks)
    probs[np.arange(len(greedy)), greedy] += 1.0 - epsilon
    return probs


def sample_actions(probs: np.ndarray, u: np.ndarray) -> np.ndarray:
    """One action per row of ``probs`` by inverse CDF at the uniforms ``u`` in [0, 1).

    Each row's action ``a`` is drawn with probability ``probs[i, a]`` (up to float
    rounding of the cumulative sums); an action of probability 0 is never drawn.
    """
    cdf = np.cumsum(probs, axis=1)
    target = np.asarray(u, dtype=np.float64) * cdf[:, -1]
    actions = (cdf <= target[:, None]).sum(axis=1)
    # rounding can put target at the row's total: take its last possible action
    last_possible = probs.shape[1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=1)
    return np.minimum(actions, last_possible).astype(np.int64)


# ----------------------------------------------------------------------- policies


class LoggingPolicy:
    """A stochastic policy over a vector env's slots, by its full action distribution.

    The rollout calls :meth:`start` once with the environment, then per step
    :meth:`probabilities`, draws the actions, and tells the policy what was played
    (:meth:`played`) and which sessions ended (:meth:`episode_end`).
    """

    spec: PolicySpec

    def start(self, env: Any) -> None:
        """Take the environment about to be stepped (before the first step)."""
        self.env = env

    def probabilities(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """``(B, n_tracks)`` float64 action distribution of each slot; rows sum to 1."""
        raise NotImplementedError

    def played(self, actions: np.ndarray) -> None:
        """The actions drawn and played this step (after :meth:`probabilities`)."""

    def episode_end(self, dones: np.ndarray) -> None:
        """The slots whose session ended (all True after a full reset)."""


class WorldLoggingPolicy(LoggingPolicy):
    """The world's own logging policy (:func:`world_logging_probabilities`)."""

    spec = PolicySpec("world")

    def probabilities(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The world's logger's distribution in every slot's current state."""
        return world_logging_probabilities(self.env.core.sim)


class UniformLoggingPolicy(LoggingPolicy):
    """Uniform random tracks: the lower reference."""

    spec = PolicySpec("uniform")

    def probabilities(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """``1 / n_tracks`` everywhere."""
        return uniform_probabilities(len(obs), self.env.core.world.n_tracks)
