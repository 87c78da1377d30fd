"""One interface for every policy, and the registry that builds agents by name.

Every agent acts on a *batch* of observations (one row per listener slot of a
``MusicRecVectorEnv``) and learns either online through ``update`` (bandits) or by
overriding ``learn`` (stable-baselines3). Callers never branch on the agent's type.

Call protocol (every loop that drives an agent, training or evaluation)::

    agent = make_agent(key, params)
    agent.bind(AgentContext.from_env(env, seed))
    agent.attach(env)                               # the env it acts in (the planner reads it)
    agent.set_log_dir(run_dir)                      # optional: SB3 writes train/... there
    agent.learn(env, total_steps, callback)         # training (or your own loop, below)

    obs, info = env.reset(seed=seed)
    agent.episode_end(np.ones(env.num_envs, bool))  # a reset starts every slot afresh
    while ...:
        actions = agent.act(obs, info, explore=False)
        next_obs, rewards, terminated, truncated, info = env.step(actions)
        dones = terminated | truncated
        agent.update(obs, actions, rewards, next_obs, dones, info)  # training loops only
        agent.episode_end(dones)                    # always, training and evaluation
        obs = next_obs

``episode_end`` is the *only* way an agent learns that a slot's session ended (agents
that never recommend a track twice in a session clear that slot's history there);
``update`` only learns, and must directly follow the ``act`` that chose its actions.
Call ``act`` exactly once per env step with the latest ``info``: agents read the
outcome of their previous recommendation from it (``info["listened"]``) and, when the
environment provides it, a new session's warm-up plays (``info["warmup_tracks"]``).
Both hooks are no-ops for agents that do not need them.
"""

from __future__ import annotations

import dataclasses
import zipfile
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces

from musicrec_gym.envs.factory import SETTINGS
from musicrec_gym.errors import ConfigError, DataFormatError, unknown_name_message


@dataclass(frozen=True)
class AgentContext:
    """What an agent may know besides its observations: public catalog facts.

    Attributes:
        n_tracks: Catalog size.
        obs_dim: Size of an observation (of its ``"session"`` entry for a ``Dict`` space).
        track_features: (n_tracks, d) track embeddings learned from the logs.
        track_plays: (n_tracks,) play counts in the logged sessions.
        track_artist: (n_tracks,) integer artist of each track (catalog metadata).
        seed: Seed for the agent's own randomness.
        setting: ``catalog``, ``candidates`` or ``slate`` (see :data:`SETTINGS`).
        n_actions: Choices per step: K candidates, else the catalog size.
        slate_size: Tracks per slate (``slate`` setting), else 0.
    """

    n_tracks: int
    obs_dim: int
    track_features: np.ndarray
    track_plays: np.ndarray
    track_artist: np.ndarray
    seed: int = 0
    setting: str = "catalog"
    n_actions: int = 0
    slate_size: int = 0

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ConfigError(unknown_name_message("setting", self.setting, SETTINGS))
        if self.n_actions == 0:
            object.__setattr__(self, "n_actions", self.n_tracks)

    @classmethod
    def from_env(cls, env: Any, seed: int = 0) -> AgentContext:
        """Build the context from a MusicRec environment (single, vector or SB3 view)."""
        base = getattr(env, "env", env)
        inner = base.unwrapped if hasattr(base, "unwrapped") else base
        world = inner.world
        single = hasattr(base, "single_observation_space")
        space = base.single_observation_space if single else base.observation_space
        if isinstance(space, spaces.Dict):
            space = space["session"]
        action = base.single_action_space if single else base.action_space
        setting = getattr(inner, "setting", "catalog")
        n_actions = int(action.n) if isinstance(action, spaces.Discrete) else world.n_tracks
        slate = len(action.nvec) if setting == "slate" else 0
        return cls(
            n_tracks=world.n_tracks,
            obs_dim=int(space.shape[0]),
            track_features=world.embeddings,
            track_plays=world.catalog["plays"].to_numpy(dtype=np.float64),
            track_artist=world.artist_index,
            seed=seed,
            setting=setting,
            n_actions=n_actions,
            slate_size=slate,
        )


def batch_size(obs: Any) -> int:
    """Slots in a batch of observations: rows of an array, or of a ``Dict`` one's entries."""
    if isinstance(obs, dict):
        return len(next(iter(obs.values())))
    return len(obs)


# Called after every completed episode during training with
# (env_steps_so_far, episode_return, episode_optimal_return, episode_length, listens).
EpisodeCallback = Callable[[int, float, float, int, int], None]


class Agent(ABC):
    """A recommendation policy over a batch of listener slots.

    Subclasses are dataclasses whose fields are their hyperparameters (validated in
    ``__post_init__``) and set ``name``; ``bind`` gives them the context before use.
    """

    name: ClassVar[str] = "agent"
    settings: ClassVar[tuple[str, ...]] = ("catalog",)
    """The environment settings the agent acts in (:data:`SETTINGS`)."""

    def bind(self, context: AgentContext) -> None:
        """Receive the catalog facts and seed; called once before acting or learning.

        Raises:
            ConfigError: The agent does not act in the context's setting.
        """
        if context.setting not in self.settings:
            raise ConfigError(setting_message(self.name, context.setting))
        self.context = context
        self.rng = np.random.default_rng(context.seed)

    @abstractmethod
    def act(self, obs: np.ndarray, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """Choose one track per slot.

        Args:
            obs: (B, obs_dim) observations.
            info: The environment's latest info dict (batched arrays).
            explore: False for evaluation (greedy / deterministic).

        Returns:
            (B,) int64 track indices (candidate indices in the ``candidates`` setting),
            or (B, K) slates of distinct tracks in the ``slate`` setting.
        """

    def update(  # noqa: B027  (optional hook: fixed policies do not learn)
        self,
        obs: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_obs: np.ndarray,
        dones: np.ndarray,
        info: dict[str, Any],
    ) -> None:
        """Learn from one batched transition (no-op for fixed policies)."""

    def episode_end(self, dones: np.ndarray) -> None:  # noqa: B027  (optional hook)
        """Mark the sessions of the slots where ``dones[i]`` as ended (no-op by default).

        Call it after every ``env.step`` with ``terminated | truncated``, and after every
        ``env.reset`` with all True, in training and in evaluation alike.

        Args:
            dones: (B,) bool, True where the slot's session ended.
        """

    def attach(self, env: Any) -> None:  # noqa: B027  (optional hook)
        """Take the environment about to be stepped (no-op by default).

        Only the references that read the simulator's hidden state (the planner) use
        it; every loop that drives agents calls it with the environment it steps, after
        ``bind`` and before the first ``act`` (the experiments' training and evaluation).
        """

    def set_log_dir(self, path: str | Path | None) -> None:  # noqa: B027  (optional hook)
        """Where the agent may write its own training logs (no-op by default).

        Stable-baselines3 agents pass it as ``tensorboard_log`` so that SB3's
        ``train/...`` and ``rollout/...`` scalars land there.
        """

    @property
    def learns_online(self) -> bool:
        """True when the agent learns, through ``update`` or its own ``learn`` (SB3)."""
        cls = type(self)
        return cls.update is not Agent.update or cls.learn is not Agent.learn

    def learn(self, env: Any, total_steps: int, callback: EpisodeCallback | None = None) -> None:
        """Train on a ``MusicRecVectorEnv`` for ``total_steps`` env steps (all slots summed).

        The default loop acts, steps and calls ``update``; agents that learn elsewhere
        (stable-baselines3) override it but must report episodes to ``callback`` too.
        """
        obs, info = env.reset(seed=self.context.seed)
        self.episode_end(np.ones(env.num_envs, dtype=bool))
        tracker = EpisodeTracker(env.num_envs, callback)
        while tracker.steps < total_steps:
            actions = self.act(obs, info, explore=True)
            next_obs, rewards, terminated, truncated, info = env.step(actions)
            dones = terminated | truncated
            self.update(obs, actions, rewards, next_obs, dones, info)
            self.episode_end(dones)
            tracker.record(rewards, info, dones)
            obs = next_obs

    def save(self, path: str | Path) -> None:
        """Save the agent's learned state (nothing for fixed policies)."""
        np.savez(Path(path), **self.state())

    def load(self, path: str | Path, *, trust_file: bool = False) -> None:
        """Load what ``save`` wrote.

        Args:
            path: The file ``save`` wrote.
            trust_file: Allow loading objects that run code from the file when read
                (pickle). The arrays of this default ``.npz`` format are read with
                ``allow_pickle=False`` and never need it; stable-baselines3 agents'
                zips may (see ``agents.sb3_agents.SB3Agent.load``).

        Raises:
            DataFormatError: The file is missing, unreadable or not such an archive.
            ConfigError: Its state does not fit this agent.
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                state = {k: data[k] for k in data.files}
        except FileNotFoundError as err:
            raise DataFormatError(f"{path}: saved agent not found") from err
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise DataFormatError(
                f"{path}: not a saved {self.name!r} agent (an .npz archive of plain arrays "
                f"written by save()): {err}"
            ) from err
        self.set_state(state)

    def state(self) -> dict[str, np.ndarray]:
        """Learned state as named arrays (override in learning agents)."""
        return {}

    def set_state(self, state: dict[str, np.ndarray]) -> None:  # noqa: B027  (optional hook)
        """Restore ``state()``'s output."""

    def hyperparameters(self) -> dict[str, Any]:
        """The agent's hyperparameters (its dataclass fields)."""
        return dataclasses.asdict(self) if dataclasses.is_dataclass(self) else {}


class ReadsSimulator:
    """For the references that act on the simulator's hidden state (planner, logging policy).

    ``attach`` keeps the simulator of the environment the agent acts in, and
    :meth:`simulator` hands it to ``act``, checking that it was attached and that the
    observations are that environment's. ``role`` opens the error messages.
    """

    role: ClassVar[str] = "this agent reads the simulator's state"
    label: ClassVar[str] = "this agent"
    _sim: Any = None

    def attach(self, env: Any) -> None:
        """Keep the simulator of ``env`` (a MusicRec vector or single environment)."""
        core = getattr(env, "core", None) or getattr(getattr(env, "unwrapped", None), "core", None)
        sim = getattr(core, "sim", None)
        if sim is None:
            raise ConfigError(
                f"{self.role}: attach() needs a MusicRec environment (vector or single), "
                f"got {env!r}"
            )
        self._sim = sim

    def simulator(self, obs: np.ndarray) -> Any:
        """The attached simulator, for a batch ``obs`` of its environment's observations."""
        if self._sim is None:
            raise ConfigError(
                f"{self.role}: call attach(env) with the environment it acts in before act()"
            )
        if len(obs) != self._sim.n_slots:
            raise ConfigError(
                f"{self.label} got {len(obs)} observations for an environment of "
                f"{self._sim.n_slots} slots: act in the environment given to attach()"
            )
        return self._sim


class EpisodeTracker:
    """Accumulates per-slot returns and reports each finished episode to a callback.

    Args:
        n: Number of slots.
        callback: Called as ``callback(steps, ret, optimal_ret, length, listens)``.
    """

    def __init__(self, n: int, callback: EpisodeCallback | None) -> None:
        self.callback = callback
        self.steps = 0
        self.ret = np.zeros(n)
        self.opt = np.zeros(n)
        self.length = np.zeros(n, dtype=np.int64)
        self.listens = np.zeros(n, dtype=np.int64)

    def record(self, rewards: np.ndarray, info: dict[str, Any], dones: np.ndarray) -> None:
        """Add one batched step (``info`` from the vector env, step-outcome keys)."""
        self.steps += len(rewards)
        self.ret += rewards
        self.opt += info["optimal_reward"]
        self.length += 1
        self.listens += info["listened"]
        for i in np.flatnonzero(dones):
            if self.callback is not None:
                self.callback(
                    self.steps,
                    float(self.ret[i]),
                    float(self.opt[i]),
                    int(self.length[i]),
                    int(self.listens[i]),
                )
            self.ret[i] = self.opt[i] = 0.0
            self.length[i] = self.listens[i] = 0


_REGISTRY: dict[str, type[Agent]] = {}


def register_agent(key: str) -> Callable[[type[Agent]], type[Agent]]:
    """Class decorator: make an agent buildable by ``make_agent(key, ...)``."""

    def wrap(cls: type[Agent]) -> type[Agent]:
        _REGISTRY[key] = cls
        return cls

    return wrap


def agent_types() -> dict[str, type[Agent]]:
    """Registry key -> agent class.

    The built-in agents are registered by the package's ``__init__``, which Python runs
    before this module whenever ``agents.base`` is imported.
    """
    return dict(_REGISTRY)


def agent_params(key: str) -> dict[str, dataclasses.Field]:
    """The hyperparameter fields an agent type accepts."""
    cls = _lookup(key)
    return {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}


def make_agent(key: str, params: dict[str, Any] | None = None) -> Agent:
    """Build an agent by registry key, rejecting unknown hyperparameters by name.

    Raises:
        ConfigError: Unknown ``key``, ``params`` not a mapping, an unknown parameter, or
            a value the agent's own checks refuse (naming the parameter).
    """
    cls = _lookup(key)
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ConfigError(
            f"agent {key!r}: `params` must be a mapping of hyperparameters, "
            f"got {type(params).__name__}"
        )
    params = dict(params)
    allowed = [name for name, f in agent_params(key).items() if f.init]
    for name in params:
        if not isinstance(name, str) or name not in allowed:
            message = unknown_name_message("parameter", str(name), allowed)
            raise ConfigError(f"agent {key!r}: {message}")
    try:
        return cls(**params)
    except TypeError as err:  # e.g. a comparison of a wrongly typed value in a check
        raise ConfigError(f"agent {key!r}: invalid parameters: {err}") from err


def types_for_setting(setting: str) -> tuple[str, ...]:
    """The registry keys of the agent types that act in ``setting``."""
    return tuple(k for k, cls in agent_types().items() if setting in cls.settings)


def setting_message(agent: str, setting: str) -> str:
    """Why agent type ``agent`` cannot act in ``setting``, and which types can."""
    return (
        f"agent type {agent!r} does not act in the {setting!r} setting; the types that do: "
        f"{', '.join(types_for_setting(setting))}"
    )


def check_setting(key: str, setting: str) -> None:
    """Raise a ``ConfigError`` unless agent type ``key`` acts in ``setting``."""
    if setting not in _lookup(key).settings:
        raise ConfigError(setting_message(key, setting))


def _lookup(key: str) -> type[Agent]:
    types = agent_types()
    if not isinstance(key, str) or key not in types:
        raise ConfigError(unknown_name_message("agent type", str(key), types))
    return types[key]
