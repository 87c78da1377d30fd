"""Offline RL from logged sessions: behaviour cloning, discrete CQL, and the logging policy.

The learners train *only* from a logged dataset (``musicrec log``, read with
``musicrec_gym.logged_data.load_dataset``) and never step the environment to learn;
the experiment harness then evaluates them in the environment like any other agent.

- ``bc``: behaviour cloning. A softmax policy over the tracks, trained by
  cross-entropy on the logged ``(state, action)`` pairs: it imitates the logger.
- ``cql``: discrete conservative Q-learning (Kumar et al., "Conservative Q-learning for
  offline reinforcement learning", NeurIPS 2020). A double-DQN temporal-difference loss
  on the logged transitions with a target network, plus
  ``alpha * (logsumexp_a Q(s, a) - Q(s, a_logged))``, which pushes down the value of
  the tracks the logger did not play so that the greedy policy stays where the data
  says something.

Both score track ``i`` in state ``s`` as ``h(s) · W f_i + b_i`` with ``f_i = [e_i,
pop_i, 1]`` (``agents.embedding_heads``): what is learned about one track carries over
to the tracks with similar embeddings, which matters with 1,000 tracks and a logger
that plays few of them in any one state. The state ``s`` is the observation followed,
with ``session_features``, by the session's mean listened and skipped track
embeddings (``musicrec_gym.session_features``, the numbers the linear bandits and
``musicrec_gym.wrappers.SessionFeatures`` use): rebuilt for every logged step from the
dataset's warm-up plays and the episode's earlier actions and listens, and kept at act
time from ``info`` exactly as ``agents.linear`` does.

The harness's ``total_steps`` (``budget.train_steps``) is ignored by ``learn``: the
number of gradient steps is the ``steps`` hyperparameter, and no environment step is
taken in training. ``act`` is greedy over the scores (BC's logits, CQL's Q-values),
``explore`` included, restricted with ``avoid_repeats`` to the tracks not yet played in
the session (warm-up plays included), as the stable-baselines3 agents do.

``logging`` is the world's own logging policy acting in the environment
(``sim.logging_actions``): the reference line "the logging policy's true value".

d3rlpy (the house's offline-RL library) pins ``gymnasium==1.0.0``, which this project
cannot import, so these agents are written in PyTorch (``docs/offline-rl.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch as th
from torch import nn
from torch.nn import functional

from agents.base import Agent, AgentContext, EpisodeCallback, ReadsSimulator, register_agent
from agents.embedding_heads import catalog_features
from agents.history import AvoidsRepeats, follow_session, masked_argmax
from agents.offline_data import (
    LoggedTransitions,
    ScoreNet,
    conservative_term,
    session_feature_rows,
)
from agents.validation import check_bool, check_float, check_int, check_layers
from musicrec_gym.errors import ArtifactError, ConfigError, DataFormatError
from musicrec_gym.session_features import (
    SessionPlays,
    standardized,
)

__all__ = [
    "BCAgent",
    "CQLAgent",
    "LoggedTransitions",
    "LoggingPolicyAgent",
    "OfflineAgent",
    "ScoreNet",
    "conservative_term",
    "session_feature_rows",
]

# ----------------------------------------------------------------- the learners


@dataclass
class OfflineAgent(AvoidsRepeats, Agent):
    """Shared plumbing of the offline learners: the dataset, the network, acting, saving.

    Subclasses define ``loss`` (one minibatch's training loss).

    Attributes:
        dataset: Path of a logged-dataset directory (``musicrec log --out DIR``);
            required by ``learn`` (an agent that only ``load``s weights needs none).
        steps: Gradient steps of ``learn``.
        batch_size: Logged steps per minibatch.
        lr: Adam step size.
        net_arch: Hidden layer sizes of the state network ``h``.
        session_features: Append the session's mean listened and skipped track
            embeddings to the observation.
        avoid_repeats: Act only among the tracks not yet played in the session.
    """

    dataset: str = ""
    steps: int = 5_000
    batch_size: int = 256
    lr: float = 1e-3
    net_arch: list[int] = field(default_factory=lambda: [256, 256])
    session_features: bool = True
    avoid_repeats: bool = True

    name = "offline"

    def __post_init__(self) -> None:
        if not isinstance(self.dataset, (str, Path)):
            raise ConfigError(
                f"`dataset` must be the path of a logged-dataset directory (a string), "
                f"got {self.dataset!r}"
            )
        check_int("steps", self.steps, low=0, limit=100_000_000)
        check_int("batch_size", self.batch_size, low=1, limit=1_000_000)
        check_float("lr", self.lr, low=0, low_open=True, limit=1)
        check_layers("net_arch", self.net_arch)
        check_bool("session_features", self.session_features)
        check_bool("avoid_repeats", self.avoid_repeats)
        self.net: ScoreNet | None = None
        self.losses: np.ndarray = np.zeros(0)

    def hyperparameters(self) -> dict[str, Any]:
        """The dataclass fields (``dataset`` as a string)."""
        params = super().hyperparameters()
        params["dataset"] = str(self.dataset)
        return params

    # ----------------------------------------------------------------- setup
    def bind(self, context: AgentContext) -> None:
        """Bind, with the track features of the head and empty session features."""
        super().bind(context)
        self.track_features = catalog_features(context.track_features, context.track_plays)
        self.session = SessionPlays(standardized(context.track_features))
        self.state_dim = context.obs_dim + (self.session.n_features if self.session_features else 0)
        self.net = None

    def _new_net(self) -> ScoreNet:
        with th.random.fork_rng(devices=[]):
            th.manual_seed(self.context.seed)
            return ScoreNet(
                self.state_dim, self.context.n_tracks, self.track_features, list(self.net_arch)
            )

    def _ensure_net(self) -> ScoreNet:
        if not hasattr(self, "context"):
            raise ConfigError(f"{self.name}: bind() the agent before acting, learning or loading")
        if self.net is None:
            self.net = self._new_net()
        return self.net

    # ----------------------------------------------------------------- data
    def read_dataset(self, env: Any = None) -> Any:
        """Load ``dataset`` and check that it fits the bound agent (and ``env``'s world).

        Raises:
            ConfigError: Naming ``dataset``: no path given, no such dataset, a file
                that is not one, a dataset from another world, or one whose catalog
                size or observation width differs from the environment's.
        """
        from musicrec_gym.logged_data import load_dataset

        path = str(self.dataset)
        if not path:
            raise ConfigError(
                f"agent {self.name!r}: `dataset` is required to learn: the path of a "
                "logged-dataset directory (write one with `musicrec log --out DIR`)"
            )
        world = _env_world(env)
        try:
            data = load_dataset(path, world=world if getattr(world, "directory", None) else None)
        except (ArtifactError, DataFormatError) as err:
            raise ConfigError(f"agent {self.name!r}: `dataset` {path!r}: {err}") from err
        self.check_fits(data, path)
        return data

    def check_fits(self, data: Any, path: str = "<dataset>") -> None:
        """Refuse a dataset whose catalog or observations do not match the bound context.

        Raises:
            ConfigError: Naming ``dataset`` and the mismatch.
        """
        n_tracks = len(data.action_context)
        if n_tracks != self.context.n_tracks:
            raise ConfigError(
                f"agent {self.name!r}: `dataset` {path!r} has {n_tracks} tracks but the "
                f"environment has {self.context.n_tracks}: log the dataset on this world"
            )
        obs_dim = np.shape(data.obs)[1] if np.ndim(data.obs) == 2 else -1
        if obs_dim != self.context.obs_dim:
            raise ConfigError(
                f"agent {self.name!r}: `dataset` {path!r} has observations of {obs_dim} "
                f"features but the environment's have {self.context.obs_dim}"
            )
        if len(data.action) == 0:
            raise ConfigError(f"agent {self.name!r}: `dataset` {path!r} holds no logged steps")

    # ----------------------------------------------------------------- learning
    def learn(self, env: Any, total_steps: int, callback: EpisodeCallback | None = None) -> None:
        """Train for ``steps`` gradient steps on ``dataset`` only.

        ``env`` is used only to check that the dataset comes from its world; it is never
        stepped. ``total_steps`` (the harness's env-step budget) is ignored and
        ``callback`` never called: no episode is played in training.
        """
        self.fit(self.read_dataset(env))

    def fit(self, data: Any) -> np.ndarray:
        """Train on a ``LoggedDataset`` (already checked); returns the per-step losses."""
        self._ensure_net()
        self.check_fits(data)
        trans = LoggedTransitions.from_dataset(
            data, self.context.track_features, self.session_features
        )
        self.net = self._new_net()
        self.net.set_scaling(trans.states)
        self.start_training()
        optim = th.optim.Adam(self.net.parameters(), lr=self.lr)
        rng = np.random.default_rng(self.context.seed)
        losses = np.zeros(self.steps)
        for i in range(self.steps):
            rows = rng.integers(0, len(trans), size=self.batch_size)
            loss = self.loss(trans, rows)
            optim.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.net.parameters(), 10.0)
            optim.step()
            losses[i] = float(loss.detach())
            self.after_step(i + 1)
        self.losses = losses
        return losses

    def start_training(self) -> None:
        """Called once the fresh network is built, before the first gradient step."""

    def after_step(self, step: int) -> None:
        """Called after gradient step ``step`` (1-based)."""

    def loss(self, trans: LoggedTransitions, rows: np.ndarray) -> th.Tensor:
        """The training loss of the minibatch ``rows``."""
        raise NotImplementedError

    # ----------------------------------------------------------------- acting
    def scores(self, states: np.ndarray) -> np.ndarray:
        """(B, state_dim) states -> (B, n_tracks) scores (float64)."""
        net = self._ensure_net()
        with th.no_grad():
            return net(th.as_tensor(np.asarray(states, dtype=np.float32))).numpy().astype(float)

    def act(self, obs: np.ndarray, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """The best-scoring track (greedy; ``explore`` changes nothing), among the unplayed ones."""
        self._ensure_net()
        obs = np.asarray(obs, dtype=np.float64)
        batch = len(obs)
        follow_session(self.history, self.session, batch, info)
        blocked = self.history.blocked(batch, info)
        if not self.avoid_repeats:
            blocked = np.zeros_like(blocked)
        parts = [obs]
        if self.session_features:
            parts.append(self.session.features())
        actions = masked_argmax(self.scores(np.concatenate(parts, axis=1)), blocked)
        self.history.mark(actions)
        return actions

    def episode_end(self, dones: np.ndarray) -> None:
        """Clear the history and the session features of the slots whose session ended."""
        super().episode_end(dones)
        dones = np.asarray(dones, dtype=bool)
        if self.session.n_slots != len(dones):
            self.session.resize(len(dones))
        self.session.clear(dones)

    # ----------------------------------------------------------------- saving
    def state(self) -> dict[str, np.ndarray]:
        """The network's weights and buffers, as ``net.<name>`` arrays."""
        net = self._ensure_net()
        return {f"net.{k}": v.detach().cpu().numpy() for k, v in net.state_dict().items()}

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore ``state()``'s output into a network of this agent's shape.

        Raises:
            ConfigError: The agent is not bound.
            DataFormatError: The arrays are not this agent's network (another catalog,
                observation width, ``net_arch`` or ``session_features``).
        """
        self._ensure_net()
        net = self._new_net()
        weights = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
        try:
            net.load_state_dict({k: th.as_tensor(np.asarray(v)) for k, v in weights.items()})
        except (RuntimeError, TypeError, ValueError) as err:
            raise DataFormatError(
                f"{self.name}: saved weights do not fit this agent ({self.context.n_tracks} "
                f"tracks, states of {self.state_dim} features, net_arch {self.net_arch}): {err}"
            ) from err
        self.net = net


@register_agent("bc")
@dataclass
class BCAgent(OfflineAgent):
    """Behaviour cloning: cross-entropy of a softmax over the tracks on the logged actions.

    It learns to play what the logger played; acting greedily it plays the logger's
    most likely track, which can beat a stochastic logger but not a good target.
    Hyperparameters: those of ``OfflineAgent``.
    """

    name = "bc"

    def loss(self, trans: LoggedTransitions, rows: np.ndarray) -> th.Tensor:
        """Cross-entropy of the logits on the logged actions."""
        logits = self.net(th.as_tensor(trans.states[rows]))
        return functional.cross_entropy(logits, th.as_tensor(trans.actions[rows]))


@register_agent("cql")
@dataclass
class CQLAgent(OfflineAgent):
    """Discrete conservative Q-learning (Kumar et al., NeurIPS 2020).

    Loss of a minibatch: Huber(Q(s, a), y) + alpha * (logsumexp_a' Q(s, a') - Q(s, a)),
    with the double-DQN target y = r + gamma (1 - terminated) Q_target(s', a*), a* the
    online network's best track among those not yet played in the session at s'. The
    target network is a copy of the online one, refreshed every
    ``target_update_interval`` gradient steps.

    Attributes (besides ``OfflineAgent``'s):
        gamma: Discount factor.
        alpha: Weight of the conservative term (0: plain offline double DQN).
        target_update_interval: Gradient steps between target-network copies.
    """

    gamma: float = 0.5  # the online DQN's and PPO's tuned value on MusicRec-v0
    alpha: float = 1.0
    target_update_interval: int = 1_000

    name = "cql"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_float("gamma", self.gamma, low=0, high=1)
        check_float("alpha", self.alpha, low=0, limit=1e6)
        check_int("target_update_interval", self.target_update_interval, low=1, limit=10_000_000)
        self.last_terms: tuple[float, float] = (0.0, 0.0)

    def start_training(self) -> None:
        """A frozen copy of the fresh network as the target."""
        self.target = self._new_net()
        self.target.load_state_dict(self.net.state_dict())
        self.target.requires_grad_(False)

    def after_step(self, step: int) -> None:
        """Copy the online network into the target every ``target_update_interval`` steps."""
        if step % self.target_update_interval == 0:
            self.target.load_state_dict(self.net.state_dict())

    def loss(self, trans: LoggedTransitions, rows: np.ndarray) -> th.Tensor:
        """TD (Huber, double DQN, target network) plus alpha times the conservative term."""
        states = th.as_tensor(trans.states[rows])
        actions = th.as_tensor(trans.actions[rows])
        q_all = self.net(states)
        q = q_all.gather(1, actions.view(-1, 1)).squeeze(1)
        with th.no_grad():
            next_states = th.as_tensor(trans.next_states[rows])
            q_next = self.net(next_states)
            if self.avoid_repeats:
                played = th.as_tensor(trans.played_after(rows, self.context.n_tracks))
                q_next = q_next.masked_fill(played, -th.inf)
            best = q_next.argmax(dim=1, keepdim=True)
            value = self.target(next_states).gather(1, best).squeeze(1)
            alive = th.as_tensor(~trans.terminated[rows], dtype=th.float32)
            target = th.as_tensor(trans.rewards[rows]) + self.gamma * alive * value
        td = functional.smooth_l1_loss(q, target)
        conservative = conservative_term(q_all, actions)
        self.last_terms = (float(td.detach()), float(conservative.detach()))
        return td + self.alpha * conservative


# ----------------------------------------------------------------- the logging policy


@register_agent("logging")
@dataclass
class LoggingPolicyAgent(ReadsSimulator, Agent):
    """The world's own logging policy acting in the environment: what logged the data.

    Each step it plays ``sim.logging_actions()`` of the environment given to ``attach``
    (drawn from each slot's own random stream, so its evaluation episodes differ from
    another agent's with the same seeds beyond the first action). Its mean return is the
    value a policy trained from that policy's logs has to beat.
    """

    name = "logging"
    role = "the logging policy is the simulator's"
    label = "the logging policy"

    def hyperparameters(self) -> dict[str, Any]:
        """None."""
        return {}

    def act(self, obs: np.ndarray, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """The logging policy's track for each slot."""
        sim = self.simulator(obs)
        return np.asarray(sim.logging_actions(slice(None)), dtype=np.int64)


def _env_world(env: Any) -> Any:
    """The ``World`` of a MusicRec environment (vector, single, SB3 view), or None."""
    if env is None:
        return None
    for candidate in (env, getattr(env, "env", None), getattr(env, "unwrapped", None)):
        world = getattr(candidate, "world", None)
        if world is not None:
            return world
    return None
