"""Contextual linear bandits over (session state, track) features.

The feature of recommending track ``i`` in session state ``s`` is the Kronecker product

    x(s, i) = [s, 1] ⊗ [e_i, z_i, 1]

of the encoded state and the track's learned embedding ``e_i`` with its standardised
log play count ``z_i``: D = (obs_dim + 1)(d + 2) = 100 numbers in the built-in world.
A ridge regression of the reward on x is then a bilinear model
``r ≈ [s, 1]ᵀ W [e_i, z_i, 1]``, which generalises across the whole catalog from a few
plays of each track. The Kronecker structure scores all tracks of all slots with two
matrix products, and the confidence width ``xᵀ A⁻¹ x`` becomes ``ẽ_iᵀ C(s) ẽ_i`` with a
(d+2)×(d+2) matrix ``C(s)`` per slot.

Three exploration rules share one implementation (``LinearBanditAgent``): ε-greedy,
LinUCB (Li et al., 2010) and linear Thompson sampling (Agrawal & Goyal, 2013). All of
them skip tracks already recommended in the session (``agents.history``) and act
greedily on the ridge estimate when ``explore=False``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

from agents.base import Agent, AgentContext, register_agent
from agents.history import AvoidsRepeats, masked_argmax, random_allowed
from agents.validation import check_bool, check_float, check_int
from musicrec_gym.errors import ConfigError

_F = TypeVar("_F", bound=Callable[..., Any])


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def single_threaded_blas(method: _F) -> _F:
    """Run ``method`` with one BLAS thread.

    The matrices here are tiny (100 x 100); a multi-threaded OpenBLAS spends far longer
    synchronising its threads than computing, up to 100x longer on a busy 2-core machine.
    """

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _blas().limit(limits=1, user_api="blas"):
            return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@dataclass
class LinearBanditAgent(AvoidsRepeats, Agent):
    """Ridge regression on x(s, i) = [s, 1] ⊗ [e_i, z_i, 1], shared by the bandits below.

    Subclasses only change how a track is scored while exploring (``_explore_scores``).

    Attributes:
        lam: Ridge penalty λ (``A`` starts as λI).
        refresh_every: Recompute ``A⁻¹`` and the estimate every this many env steps
            (batched steps of the vector env). 1 is exact and cheap at D = 100.
        standardize: Standardise each track-embedding column over the catalog, so that
            λ means the same for every world.
    """

    lam: float = 1.0  # tuned: λ in {0.1, 1, 10} within noise after 200k steps
    refresh_every: int = 1  # tuned: ~0.1 ms per refresh of a 100x100 inverse
    standardize: bool = True

    name = "linear"

    def __post_init__(self) -> None:
        check_float("lam", self.lam, low=0, low_open=True)
        check_int("refresh_every", self.refresh_every, low=1)
        check_bool("standardize", self.standardize)

    # ----------------------------------------------------------------- setup
    def bind(self, context: AgentContext) -> None:
        """Build the track features and an empty ridge state."""
        super().bind(context)
        emb = np.asarray(context.track_features, dtype=np.float64)
        if self.standardize:
            emb = (emb - emb.mean(axis=0)) / np.maximum(emb.std(axis=0), 1e-8)
        log_plays = np.log1p(np.asarray(context.track_plays, dtype=np.float64))
        z = (log_plays - log_plays.mean()) / max(float(log_plays.std()), 1e-8)
        ones = np.ones((context.n_tracks, 1))
        self.track_x = np.concatenate([emb, z[:, None], ones], axis=1)  # (n, q)
        self.p = context.obs_dim + 1
        self.q = self.track_x.shape[1]
        self.dim = self.p * self.q
        self.A = self.lam * np.eye(self.dim)
        self.b = np.zeros(self.dim)
        self.steps = 0
        self._since_refresh = 0
        self._refresh()

    # ----------------------------------------------------------------- acting
    def state_x(self, obs: np.ndarray) -> np.ndarray:
        """State half of the features, ``[s, 1]``: (B, obs_dim) -> (B, p)."""
        obs = np.asarray(obs, dtype=np.float64)
        return np.concatenate([obs, np.ones((len(obs), 1))], axis=1)

    def features(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """The features x(s_b, a_b) of one track per slot: (B, D)."""
        s = self.state_x(obs)
        return (s[:, :, None] * self.track_x[actions][:, None, :]).reshape(len(s), self.dim)

    def mean_scores(self, obs: np.ndarray) -> np.ndarray:
        """Ridge estimate of the reward of every track in every slot: (B, n_tracks)."""
        return (self.state_x(obs) @ self.W) @ self.track_x.T

    @single_threaded_blas
    def act(self, obs: np.ndarray, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """Best-scoring track per slot among those not yet recommended in its session."""
        blocked = self.history.blocked(len(obs))
        if explore:
            actions = self._explore_actions(self.state_x(obs), blocked)
        else:
            actions = masked_argmax(self.mean_scores(obs), blocked)
        self.history.mark(actions)
        return actions

    def _explore_actions(self, s: np.ndarray, blocked: np.ndarray) -> np.ndarray:
        """Actions while exploring, given the state features ``s``: (B, p) -> (B,)."""
        return masked_argmax((s @ self.W) @ self.track_x.T, blocked)

    # ----------------------------------------------------------------- learning
    @single_threaded_blas
    def update(
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        dones: np.ndarray,
        info: dict[str, Any],
    ) -> None:
        """Add the B transitions of one step: ``A += XᵀX``, ``b += Xᵀr``."""
        x = self.features(obs, np.asarray(actions, dtype=np.int64))
        self.A += x.T @ x
        self.b += x.T @ np.asarray(rewards, dtype=np.float64)
        self.steps += len(x)
        self._since_refresh += 1
        if self._since_refresh >= self.refresh_every:
            self._refresh()

    def _refresh(self) -> None:
        """Recompute ``A⁻¹`` and the ridge estimate ``θ = A⁻¹b`` from the statistics."""
        a_inv = np.linalg.inv(self.A)
        a_inv = 0.5 * (a_inv + a_inv.T)
        self._use_estimate(a_inv, a_inv @ self.b)
        self._since_refresh = 0

    def _use_estimate(self, a_inv: np.ndarray, theta: np.ndarray) -> None:
        """Act on ``A⁻¹`` and ``θ`` from now on."""
        self.A_inv = a_inv.copy()
        self.theta = theta.copy()
        self.W = self.theta.reshape(self.p, self.q)

    # ----------------------------------------------------------------- state
    def state(self) -> dict[str, np.ndarray]:
        """Ridge statistics, the estimate in use, step counts and the exploration RNG.

        The estimate in use (``A_inv``, ``theta``) is saved beside ``A`` and ``b``
        because with ``refresh_every > 1`` it may lag them by a few steps.
        """
        return {
            "A": self.A.copy(),
            "b": self.b.copy(),
            "A_inv": self.A_inv.copy(),
            "theta": self.theta.copy(),
            "steps": np.array(self.steps, dtype=np.int64),
            "since_refresh": np.array(self._since_refresh, dtype=np.int64),
            "rng": np.array(json.dumps(self.rng.bit_generator.state)),
        }

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore ``state()``'s output (the agent must be bound to the same world shape)."""
        missing = {"A", "b", "steps", "rng"} - set(state)
        if missing:
            raise ConfigError(f"{self.name}: saved state lacks {sorted(missing)}")
        a, b = np.asarray(state["A"], dtype=np.float64), np.asarray(state["b"], dtype=np.float64)
        if a.shape != (self.dim, self.dim) or b.shape != (self.dim,):
            raise ConfigError(
                f"{self.name}: saved state has A {a.shape} and b {b.shape}, but this agent's "
                f"features have D = {self.dim} (obs_dim {self.p - 1}, track features {self.q}); "
                "was it saved on another world?"
            )
        self.A, self.b = a.copy(), b.copy()
        self.steps = int(state["steps"])
        self.rng.bit_generator.state = json.loads(str(state["rng"]))
        self._refresh()
        if "A_inv" in state and "theta" in state:  # the possibly lagging estimate in use
            self._use_estimate(np.asarray(state["A_inv"]), np.asarray(state["theta"]))
            self._since_refresh = int(state.get("since_refresh", 0))


@register_agent("epsilon_greedy")
@dataclass
class EpsilonGreedyAgent(LinearBanditAgent):
    """Greedy on the ridge estimate, a random unplayed track with probability ε.

    ε decays linearly from ``epsilon`` to ``epsilon_final`` over the first
    ``decay_steps`` env steps (0: constant ε). See Sutton & Barto, *Reinforcement
    Learning: An Introduction* (2nd ed., 2018), §2.2.

    Attributes:
        epsilon: Exploration probability at the start.
        epsilon_final: Exploration probability after ``decay_steps``.
        decay_steps: Env steps (summed over slots) of the linear decay.
    """

    epsilon: float = 0.05  # tuned: see agents/README-style figures in the lead's report
    epsilon_final: float = 0.01
    decay_steps: int = 100_000

    name = "epsilon_greedy"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("epsilon", self.epsilon, low=0, high=1)
        check_float("epsilon_final", self.epsilon_final, low=0, high=1)
        check_int("decay_steps", self.decay_steps, low=0)

    def current_epsilon(self) -> float:
        """ε after the steps learned so far."""
        if self.decay_steps == 0:
            return float(self.epsilon)
        frac = min(1.0, self.steps / self.decay_steps)
        return float(self.epsilon + frac * (self.epsilon_final - self.epsilon))

    def _explore_actions(self, s: np.ndarray, blocked: np.ndarray) -> np.ndarray:
        greedy = masked_argmax((s @ self.W) @ self.track_x.T, blocked)
        explore = self.rng.random(len(s)) < self.current_epsilon()
        if not explore.any():
            return greedy
        greedy[explore] = random_allowed(self.rng, blocked[explore])
        return greedy


@register_agent("linucb")
@dataclass
class LinUCBAgent(LinearBanditAgent):
    """LinUCB: the ridge estimate plus ``alpha`` times its confidence width.

    Li, Chu, Langford & Schapire, "A contextual-bandit approach to personalized news
    article recommendation", WWW 2010 (the shared-feature, "disjoint = False" variant:
    one θ for all arms). Scores are ``xᵀθ + alpha·sqrt(xᵀA⁻¹x)``.

    Attributes:
        alpha: Width multiplier (0: greedy).
    """

    alpha: float = 0.5

    name = "linucb"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("alpha", self.alpha, low=0)

    def widths(self, s: np.ndarray) -> np.ndarray:
        """``sqrt(x(s_b, i)ᵀ A⁻¹ x(s_b, i))`` for every slot and track: (B, p) -> (B, n).

        With x = s ⊗ e, ``xᵀA⁻¹x = (s ⊗ s)ᵀ M (e ⊗ e)`` where ``M`` is ``A⁻¹`` with its
        (j, a, k, c) indices regrouped as ((j, k), (a, c)): two small matrix products.
        """
        ss = (s[:, :, None] * s[:, None, :]).reshape(len(s), self.p * self.p)
        quad = (ss @ self._m) @ self._ee.T
        return np.sqrt(np.maximum(quad, 0.0))

    def _use_estimate(self, a_inv: np.ndarray, theta: np.ndarray) -> None:
        super()._use_estimate(a_inv, theta)
        p, q = self.p, self.q
        self._m = a_inv.reshape(p, q, p, q).transpose(0, 2, 1, 3).reshape(p * p, q * q)
        x = self.track_x
        self._ee = (x[:, :, None] * x[:, None, :]).reshape(len(x), q * q)

    def _explore_actions(self, s: np.ndarray, blocked: np.ndarray) -> np.ndarray:
        scores = (s @ self.W) @ self.track_x.T
        if self.alpha > 0:
            scores = scores + self.alpha * self.widths(s)
        return masked_argmax(scores, blocked)


@register_agent("lin_ts")
@dataclass
class LinTSAgent(LinearBanditAgent):
    """Linear Thompson sampling: act greedily on θ̃ ~ N(θ̂, v² A⁻¹), one draw per slot.

    Agrawal & Goyal, "Thompson sampling for contextual bandits with linear payoffs",
    ICML 2013.

    Attributes:
        v: Posterior scale (the paper's ``v``; 0: greedy).
    """

    v: float = 0.1

    name = "lin_ts"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("v", self.v, low=0)

    def _use_estimate(self, a_inv: np.ndarray, theta: np.ndarray) -> None:
        super()._use_estimate(a_inv, theta)
        self._chol = np.linalg.cholesky(self.A_inv)

    def _explore_actions(self, s: np.ndarray, blocked: np.ndarray) -> np.ndarray:
        z = self.rng.standard_normal((len(s), self.dim))
        theta = self.theta[None, :] + self.v * (z @ self._chol.T)  # (B, D)
        w = theta.reshape(len(s), self.p, self.q)
        scores = np.einsum("bj,bja->ba", s, w) @ self.track_x.T
        return masked_argmax(scores, blocked)
