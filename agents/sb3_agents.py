"""Stable-baselines3 PPO and DQN behind the common ``Agent`` interface.

The agents wrap SB3's own implementations (nothing is reimplemented): ``learn`` runs
``model.learn`` on a (``VecMonitor``-wrapped) ``MusicRecSB3VecEnv`` view of the given
``MusicRecVectorEnv`` and reports each finished session to the episode callback;
``save``/``load`` are SB3's zip files. ``act`` is ``model.predict`` restricted to the
tracks not yet recommended in the session (``avoid_repeats``, on by default): the
policy only sees the last five plays, and left to itself it keeps recommending tracks
the listener has just heard (normalised score 0.12 instead of 0.51 for PPO after 200k
steps).
The policies end in SB3's ``Linear(latent, n_tracks)`` layer by default; ``head: embedding``
scores tracks through their embeddings (``agents.embedding_heads``), PPO's ``head:
clustered`` a cluster of similar tracks, then a track in it (``agents.cluster_heads``).

Loading unpickles nothing by default: an SB3 zip keeps some objects as cloudpickle,
which runs code from the file when read, so ``load`` and ``set_state`` replace every
pickled object by the agent's own and read only the plain settings and the weights;
``trust_file=True`` is the explicit opt-in to SB3's full load (see ``SB3Agent.load``).
"""

from __future__ import annotations

import io
import pickle
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch as th
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecMonitor

from agents.base import Agent, AgentContext, EpisodeCallback, EpisodeTracker, register_agent
from agents.cluster_heads import ClusteredActorCriticPolicy, cluster_count
from agents.embedding_dqn import EmbeddingDQNPolicy, MaskedExplorationDQN
from agents.embedding_heads import (
    EmbeddingActorCriticPolicy,
    MaskedEmbeddingActorCriticPolicy,
    allowed_tracks,
    catalog_features,
)
from agents.history import ARTIST_WINDOW, AvoidsRepeats, masked_argmax, random_allowed
from agents.sb3_plumbing import EpisodeReportCallback, SpacesOnlyEnv, zip_settings
from agents.session_obs import SessionObservation, with_mask
from agents.validation import (
    MAX_STEP_COUNT,
    check_bool,
    check_choice,
    check_float,
    check_int,
    check_layers,
)
from musicrec_gym.envs.sb3 import MusicRecSB3VecEnv
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError, DataFormatError

#: Output heads of the policy (``head``): SB3's ``Linear(latent, n_tracks)`` layer, scores
#: through the track embeddings (``agents.embedding_heads``), or (PPO) a two-level softmax
#: over clusters of tracks, then tracks (``agents.cluster_heads``).
HEADS = ("linear", "embedding")
#: What SB3 raises on a file that is not one of its zips, or does not fit the model.
_LOAD_ERRORS = (
    ValueError, KeyError, TypeError, AttributeError, RuntimeError, AssertionError,
    EOFError, OSError, zipfile.BadZipFile, pickle.UnpicklingError,
)  # fmt: skip


@dataclass
class SB3Agent(AvoidsRepeats, Agent):
    """Shared plumbing of the SB3 agents; subclasses name the algorithm and its kwargs.

    With ``avoid_repeats`` (a field of the subclasses), ``act`` takes the policy's
    scores (PPO's action logits, DQN's Q-values) and picks among the tracks not yet
    recommended in the session; SB3 trains on its own rollouts either way.
    """

    algorithm: ClassVar[type[BaseAlgorithm]]
    #: The algorithm with ``train_mask`` (its exploration among the allowed tracks).
    masked_algorithm: ClassVar[type[BaseAlgorithm] | None] = None
    #: The policy of ``head="linear"`` (SB3's name for it).
    linear_policy: ClassVar[str] = "MlpPolicy"
    #: The policy class of ``head="embedding"``, and with ``train_mask``.
    embedding_policy: ClassVar[type]
    masked_policy: ClassVar[type | None] = None
    #: The heads this agent offers, and the policy class of ``head="clustered"``.
    heads: ClassVar[tuple[str, ...]] = HEADS
    clustered_policy: ClassVar[type | None] = None
    name = "sb3"

    def __post_init__(self) -> None:
        check_bool("avoid_repeats", self.avoid_repeats)
        check_bool("session_features", self.session_features)
        check_choice("head", self.head, self.heads)
        check_bool("train_mask", self.train_mask)
        check_bool("avoid_recent_artists", self.avoid_recent_artists)
        if self.avoid_recent_artists and not self.avoid_repeats:
            raise ConfigError("`avoid_recent_artists: true` needs `avoid_repeats: true`")
        self.artist_window = ARTIST_WINDOW if self.avoid_recent_artists else 0
        if self.train_mask and (self.head == "linear" or not self.session_features):
            raise ConfigError(
                "`train_mask: true` needs `head: embedding` (or `clustered`) and "
                "`session_features: true` (the "
                "mask comes with the session features' wrapper), got "
                f"head {self.head!r}, session_features {self.session_features}"
            )
        self._session: SessionObservation | None = None
        self.model: BaseAlgorithm | None = None
        self._log_dir: str | None = None
        self._trained = False

    def bind(self, context: AgentContext) -> None:
        """Bind as ``Agent.bind`` does; with ``session_features``, their bookkeeping too."""
        super().bind(context)
        self._session = SessionObservation(context) if self.session_features else None

    def _obs_dim(self) -> int:
        """Size of the policy's input: the observation, the session features, the mask."""
        dim = self.context.obs_dim if self._session is None else self._session.dim
        return dim + (self.context.n_tracks if self.train_mask else 0)

    def _observation(self, obs: Any, info: dict[str, Any]) -> np.ndarray:
        """The policy's input for ``obs`` (session features, then the mask, if asked)."""
        obs = np.asarray(obs, dtype=np.float32)
        if self._session is None:
            return obs
        obs = self._session.append(self.history, obs, info)
        if not self.train_mask:
            return obs
        return with_mask(obs, self.history.blocked(len(obs), info))

    def _algorithm(self) -> type[BaseAlgorithm]:
        """The SB3 algorithm class (``masked_algorithm`` with ``train_mask``)."""
        return (
            self.masked_algorithm if self.train_mask and self.masked_algorithm else self.algorithm
        )

    # ----------------------------------------------------------------- SB3 plumbing
    def algorithm_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of the SB3 algorithm's constructor (besides policy and env)."""
        raise NotImplementedError

    def set_log_dir(self, path: str | Path | None) -> None:
        """SB3 writes its ``train/...`` and ``rollout/...`` scalars under ``path``."""
        self._log_dir = None if path is None else str(path)

    def _new_model(self, env: Any) -> BaseAlgorithm:
        kwargs = self.algorithm_kwargs()
        policy: str | type = self.linear_policy
        if self.head != "linear":
            features = catalog_features(self.context.track_features, self.context.track_plays)
            policy = self.masked_policy if self.train_mask else self.embedding_policy
            # Only the widths go into policy_kwargs (plain JSON in the saved zip); the
            # features are a buffer of the policy, saved and loaded with its weights.
            kwargs["policy_kwargs"] = {**kwargs["policy_kwargs"], "feature_dim": features.shape[1]}
            if self.head == "clustered":
                policy = self.clustered_policy
                kwargs["policy_kwargs"]["n_clusters"] = cluster_count(
                    getattr(self, "n_clusters", 0), self.context.n_tracks
                )
            if self.train_mask:
                kwargs["policy_kwargs"]["mask_dim"] = self.context.n_tracks
        model = self._algorithm()(
            policy, env, seed=self.context.seed, tensorboard_log=self._log_dir, verbose=0, **kwargs
        )
        if self.head != "linear":
            model.policy.set_track_features(features)
        return model

    def _ensure_model(self) -> BaseAlgorithm:
        if self.model is None:
            self.model = self._reference_model()
        return self.model

    # ----------------------------------------------------------------- Agent interface
    def learn(self, env: Any, total_steps: int, callback: EpisodeCallback | None = None) -> None:
        """Train with SB3 on ``env`` for ``total_steps`` env steps (all slots summed).

        Args:
            env: A ``MusicRecVectorEnv`` (or its ``MusicRecSB3VecEnv`` view).
            total_steps: Env steps; SB3 may round up to a whole rollout (PPO).
            callback: Called for every finished session, as in ``Agent.learn``.
        """
        venv = self._sb3_view(env)
        monitored = VecMonitor(venv)  # episode stats for SB3's rollout/ep_rew_mean
        if self.model is None or not self._trained:
            self.model = self._new_model(monitored)
        elif self.model.n_envs == venv.num_envs:
            self.model.set_env(monitored)
        else:  # continue a loaded model on another number of slots: SB3's load does that
            # (our own live model's bytes, pickled just now: nothing from a file)
            buffer = io.BytesIO()
            self.model.save(buffer)
            buffer.seek(0)
            self.model = self._algorithm().load(buffer, env=monitored, device=self.device)
            self.model.tensorboard_log = self._log_dir
        tracker = EpisodeTracker(venv.num_envs, callback)
        self.model.learn(
            total_timesteps=int(total_steps),
            callback=EpisodeReportCallback(venv, tracker),
            tb_log_name=self.name,
            reset_num_timesteps=not self._trained,
        )
        self._trained = True

    def _sb3_view(self, env: Any) -> MusicRecSB3VecEnv:
        """The SB3 ``VecEnv`` that ``learn`` trains on, seeded with the agent's seed."""
        if isinstance(env, MusicRecSB3VecEnv) and self._session is None:
            env.seed(self.context.seed)
            return env
        if isinstance(env, MusicRecVectorEnv):
            inner = (
                env
                if self._session is None
                else self._session.wrap(env, self.train_mask, self.artist_window)
            )
            return MusicRecSB3VecEnv(env=inner, seed=self.context.seed)
        raise ConfigError(
            f"{self.name}: learn() needs a MusicRecVectorEnv, got {type(env).__name__}"
        )

    def act(self, obs: np.ndarray, info: dict[str, Any], explore: bool = True) -> np.ndarray:
        """The policy's choice: sampled (PPO) or ε-greedy (DQN) if exploring, else greedy.

        Without ``avoid_repeats`` this is exactly ``model.predict``.
        """
        model = self._ensure_model()
        obs = self._observation(obs, info)
        if not self.avoid_repeats:
            actions, _ = model.predict(obs, deterministic=not explore)
            actions = np.asarray(actions, dtype=np.int64).reshape(len(obs))
            if self._session is not None:  # the session features read the outcomes
                self.history.mark(actions)
            return actions
        if self.train_mask:  # the input ends in the mask, from the same history
            blocked = ~allowed_tracks(obs, self.context.n_tracks)
        else:
            blocked = self.history.blocked(len(obs), info)
        with th.no_grad():
            obs_t, _ = model.policy.obs_to_tensor(obs)
            scores = self._scores(obs_t).cpu().numpy().astype(np.float64)
        actions = self._choose(scores, blocked, explore)
        self.history.mark(actions)
        return actions

    def _scores(self, obs: th.Tensor) -> th.Tensor:
        """(B, n_tracks) scores whose argmax is the greedy action."""
        raise NotImplementedError

    def _choose(self, scores: np.ndarray, blocked: np.ndarray, explore: bool) -> np.ndarray:
        """Pick among the allowed tracks given the policy's scores."""
        return masked_argmax(scores, blocked)

    def save(self, path: str | Path) -> None:
        """SB3's zip file (SB3 adds ``.zip`` when ``path`` has no suffix)."""
        self._ensure_model().save(path)

    def load(self, path: str | Path, *, trust_file: bool = False) -> None:
        """Load a zip written by ``save``.

        An SB3 zip keeps some objects (policy class, spaces, schedules, buffer classes,
        the last observations) as cloudpickle, and unpickling runs whatever code the file
        holds. So by default nothing in the file is unpickled: each such object is
        replaced by this agent's own (built from its hyperparameters and its bound
        context; SB3's ``custom_objects``), and only the file's plain JSON settings (its
        ``gamma``, ``learning_rate``, ``net_arch``, ...) and its weights (read by
        ``torch.load(weights_only=True)``) are used. The agent must be bound first. A
        file holding a pickled object this agent has no counterpart for is refused.

        Args:
            path: The zip file.
            trust_file: Load with SB3's own ``load``, unpickling everything the file
                holds (the file's own schedules, spaces and classes apply). Only for
                files you made or trust: a crafted file runs code on your machine.

        Raises:
            ConfigError: The file needs unpickling and ``trust_file`` is False, or the
                agent is not bound.
            DataFormatError: The file is missing, not an SB3 zip of this algorithm, or
                does not fit this agent's spaces.
        """
        path = Path(path)
        if not path.is_file() and path.with_name(path.name + ".zip").is_file():
            path = path.with_name(path.name + ".zip")  # SB3's save adds the suffix
        if not path.is_file():
            raise DataFormatError(f"{path}: saved {self.name} model not found")
        self.model = self._load_model(path, trust_file, str(path))
        self.model.tensorboard_log = self._log_dir
        self._trained = True

    def _load_model(self, source: Path | io.BytesIO, trust_file: bool, what: str) -> BaseAlgorithm:
        """``algorithm.load`` of a zip, unpickling nothing unless ``trust_file``."""
        custom_objects = None if trust_file else self._safe_objects(source, what)
        if isinstance(source, io.BytesIO):
            source.seek(0)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # SB3's "could not deserialize"
                return self._algorithm().load(
                    source, device=self.device, custom_objects=custom_objects
                )
        except _LOAD_ERRORS as err:
            context = getattr(self, "context", None)
            fits = (
                f" (observations of {context.obs_dim} features, {context.n_tracks} tracks)"
                if context is not None
                else ""
            )
            raise DataFormatError(
                f"{what}: not a {self.name} model that fits this agent{fits}: "
                f"{type(err).__name__}: {err}"
            ) from err

    def _safe_objects(self, source: Path | io.BytesIO, what: str) -> dict[str, Any]:
        """This agent's replacement for every pickled object of the zip's settings.

        Raises:
            ConfigError: The agent is not bound, or the zip pickles an object this agent
                has no counterpart for (then only ``trust_file=True`` loads it).
            DataFormatError: Not an SB3 zip.
        """
        if not hasattr(self, "context"):
            raise ConfigError(
                f"{what}: bind() the {self.name} agent before loading: a load that "
                "unpickles nothing takes the observation and action spaces from the "
                "agent's context (or pass trust_file=True for a file you trust)"
            )
        data = zip_settings(source, what)
        pickled = [
            key for key, item in data.items() if isinstance(item, dict) and ":serialized:" in item
        ]
        reference = self._reference_model()
        unknown = [key for key in pickled if not hasattr(reference, key)]
        if unknown:
            raise ConfigError(
                f"{what}: refusing to load: the file holds pickled objects "
                f"({', '.join(map(repr, unknown))}) that a {self.name} agent has no "
                "counterpart for, and unpickling them would run whatever code the file "
                "contains. Pass trust_file=True only if you made the file or trust its source."
            )
        return {key: getattr(reference, key) for key in pickled}

    def _reference_model(self) -> BaseAlgorithm:
        """A fresh untrained model of this agent (its classes, spaces and schedules)."""
        obs_dim, n_tracks = self._obs_dim(), self.context.n_tracks
        stub = DummyVecEnv([lambda: SpacesOnlyEnv(obs_dim, n_tracks)])
        with warnings.catch_warnings():  # PPO warns that 1 slot x n_steps < batch_size
            warnings.simplefilter("ignore", UserWarning)
            return self._new_model(stub)

    def state(self) -> dict[str, np.ndarray]:
        """The SB3 zip file's bytes, as a uint8 array."""
        buffer = io.BytesIO()
        self._ensure_model().save(buffer)
        return {"sb3_zip": np.frombuffer(buffer.getvalue(), dtype=np.uint8)}

    def set_state(self, state: dict[str, np.ndarray], *, trust_file: bool = False) -> None:
        """Restore ``state()``'s output, unpickling nothing unless ``trust_file`` (see ``load``).

        Raises:
            ConfigError: ``state`` lacks ``sb3_zip``, or it needs unpickling and
                ``trust_file`` is False.
            DataFormatError: ``sb3_zip`` is not an SB3 zip that fits this agent.
        """
        if not isinstance(state, dict) or "sb3_zip" not in state:
            raise ConfigError(f"{self.name}: saved state lacks 'sb3_zip'")
        try:
            raw = np.asarray(state["sb3_zip"], dtype=np.uint8).tobytes()
        except (TypeError, ValueError, OverflowError) as err:
            raise DataFormatError(
                f"{self.name}: saved state 'sb3_zip' is not an array of bytes: {err}"
            ) from err
        what = f"{self.name}: saved state 'sb3_zip'"
        self.model = self._load_model(io.BytesIO(raw), trust_file, what)
        self.model.tensorboard_log = self._log_dir
        self._trained = True


@register_agent("ppo")
@dataclass
class PPOAgent(SB3Agent):
    """Proximal policy optimisation: SB3's ``PPO`` with an MLP policy.

    Schulman et al., "Proximal policy optimization algorithms", arXiv:1707.06347, 2017.

    Attributes:
        learning_rate: Adam step size.
        n_steps: Steps per slot per rollout (a rollout is ``n_steps * num_envs`` steps).
        batch_size: Minibatch size.
        n_epochs: Passes over each rollout.
        gamma: Discount factor.
        gae_lambda: GAE λ (Schulman et al., 2016).
        clip_range: PPO clipping ε.
        ent_coef: Entropy bonus.
        vf_coef: Value-loss weight.
        max_grad_norm: Gradient clipping.
        net_arch: Hidden layer sizes of the policy and of the value network.
        device: Torch device.
        avoid_repeats: Pick among the tracks not yet recommended in the session.
        head: ``"linear"`` (SB3's ``Linear(latent, n_tracks)`` logits),
            ``"embedding"`` (logit of track i = latent · W [e_i, pop_i, 1] + b_i, see
            ``agents.embedding_heads``) or ``"clustered"`` (a cluster of similar tracks,
            then a track in it, each scored that way: ``agents.cluster_heads``; about
            sqrt(n_tracks) clusters).
        n_clusters: Clusters of the clustered head (0: the power of two nearest
            sqrt(n_tracks), 32 for 1,000 tracks).
        session_features: Append the bandits' session features (the mean embeddings of
            the session's listened and skipped plays) to the observation
            (``agents.session_obs``).
        train_mask: Train with the repeat mask: the policy's input ends in the
            allowed-track mask and it never picks a played track, in training as at
            ``act`` (needs ``head: embedding`` and ``session_features``; see
            ``agents.embedding_heads``).
        avoid_recent_artists: Also never pick an artist among the agent's last five
            recommendations of the session, as the bandits (at ``act``, and with
            ``train_mask`` in training too).
    """

    # Tuned on the default world with 64 slots, 200k steps, greedy normalised score
    # (agent - random) / (oracle - random) over 2,000 episodes (one standard error ~0.015).
    learning_rate: float = 1e-3  # tuned: 0.659 (3e-4 with γ = 0.9: 0.507; 3e-3: 0.654)
    n_steps: int = 128
    batch_size: int = 512
    n_epochs: int = 10
    gamma: float = 0.5  # tuned: 0.659 (0.9: 0.608, 0: 0.631)
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0  # tuned: 0.01 scores the same (0.662)
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    net_arch: list[int] = field(default_factory=lambda: [256, 256])
    device: str = "cpu"
    avoid_repeats: bool = True  # tuned: 0.507 (off, i.e. plain model.predict: 0.124)
    head: str = "linear"
    n_clusters: int = 0
    session_features: bool = False
    train_mask: bool = False
    avoid_recent_artists: bool = False

    algorithm = PPO
    embedding_policy = EmbeddingActorCriticPolicy
    masked_policy = MaskedEmbeddingActorCriticPolicy
    heads = (*HEADS, "clustered")
    clustered_policy = ClusteredActorCriticPolicy
    name = "ppo"

    def __post_init__(self) -> None:
        check_float("learning_rate", self.learning_rate, low=0, low_open=True, limit=1)
        check_int("n_steps", self.n_steps, low=2, limit=100_000)
        check_int("batch_size", self.batch_size, low=2, limit=1_000_000)
        check_int("n_epochs", self.n_epochs, low=1, limit=1_000)
        check_float("gamma", self.gamma, low=0, high=1)
        check_float("gae_lambda", self.gae_lambda, low=0, high=1)
        check_float("clip_range", self.clip_range, low=0, low_open=True)
        check_float("ent_coef", self.ent_coef, low=0)
        check_float("vf_coef", self.vf_coef, low=0)
        check_float("max_grad_norm", self.max_grad_norm, low=0, low_open=True)
        check_layers("net_arch", self.net_arch)
        check_choice("device", self.device, ("cpu", "cuda", "auto"))
        check_int("n_clusters", self.n_clusters, low=0, limit=10_000_000)
        if self.n_clusters and self.head != "clustered":
            raise ConfigError(f"`n_clusters` needs `head: clustered`, got head {self.head!r}")
        super().__post_init__()

    def algorithm_kwargs(self) -> dict[str, Any]:
        """PPO's constructor arguments."""
        return {
            "learning_rate": self.learning_rate,
            "n_steps": self.n_steps,
            "batch_size": self.batch_size,
            "n_epochs": self.n_epochs,
            "gamma": self.gamma,
            "gae_lambda": self.gae_lambda,
            "clip_range": self.clip_range,
            "ent_coef": self.ent_coef,
            "vf_coef": self.vf_coef,
            "max_grad_norm": self.max_grad_norm,
            "policy_kwargs": {"net_arch": list(self.net_arch)},
            "device": self.device,
        }

    def _scores(self, obs: th.Tensor) -> th.Tensor:
        return self.model.policy.get_distribution(obs).distribution.logits

    def _choose(self, scores: np.ndarray, blocked: np.ndarray, explore: bool) -> np.ndarray:
        if not explore:
            return masked_argmax(scores, blocked)
        # A draw from the policy restricted to the allowed tracks (Gumbel-max).
        gumbel = -np.log(-np.log(self.rng.random(scores.shape)))
        return masked_argmax(scores + gumbel, blocked)


@register_agent("dqn")
@dataclass
class DQNAgent(SB3Agent):
    """Deep Q-network: SB3's ``DQN`` with an MLP Q-network.

    Mnih et al., "Human-level control through deep reinforcement learning", Nature 2015.

    Attributes:
        learning_rate: Adam step size.
        buffer_size: Replay buffer capacity (transitions).
        learning_starts: Env steps before the first gradient step.
        batch_size: Minibatch size.
        train_freq: Train every this many vector-env steps (each is ``num_envs``
            transitions).
        gradient_steps: Gradient steps per training round.
        target_update_interval: Env steps between target-network copies.
        exploration_fraction: Fraction of training over which ε decays.
        exploration_initial_eps: ε at the start.
        exploration_final_eps: ε after the decay.
        gamma: Discount factor.
        net_arch: Hidden layer sizes of the Q-network.
        device: Torch device.
        avoid_repeats: Pick among the tracks not yet recommended in the session.
        head: ``"linear"`` (SB3's ``Linear(latent, n_tracks)`` Q-values) or
            ``"embedding"`` (Q-value of track i = latent · W [e_i, pop_i, 1] + b_i, see
            ``agents.embedding_heads``).
        session_features: As for PPO.
        train_mask: As for PPO (random exploratory actions among the allowed tracks too).
        avoid_recent_artists: As for PPO.
    """

    # Tuned on the default world with 64 slots, 200k steps, greedy normalised score
    # (agent - random) / (oracle - random) over 2,000 episodes (one standard error ~0.015).
    learning_rate: float = 1e-3
    buffer_size: int = 500_000
    learning_starts: int = 10_000
    batch_size: int = 256  # tuned: 512 (with ε_final 0.02): 0.478, 40 % slower
    train_freq: int = 1
    gradient_steps: int = 4  # tuned: 0.465 (8 with lr 5e-4: 0.478, twice as slow)
    target_update_interval: int = 2_000  # tuned: with 4 gradient steps (10k and 1: 0.188)
    exploration_fraction: float = 0.1
    exploration_initial_eps: float = 1.0
    exploration_final_eps: float = 0.05
    gamma: float = 0.5  # tuned: 0.465 (0.9: 0.299)
    net_arch: list[int] = field(default_factory=lambda: [256, 256])
    device: str = "cpu"
    avoid_repeats: bool = True
    head: str = "linear"
    session_features: bool = False
    train_mask: bool = False
    avoid_recent_artists: bool = False

    algorithm = DQN
    masked_algorithm = MaskedExplorationDQN
    embedding_policy = EmbeddingDQNPolicy
    masked_policy = EmbeddingDQNPolicy  # with ``mask_dim``
    name = "dqn"

    def __post_init__(self) -> None:
        check_float("learning_rate", self.learning_rate, low=0, low_open=True, limit=1)
        check_int("buffer_size", self.buffer_size, low=1, limit=10_000_000)
        check_int("learning_starts", self.learning_starts, low=0, limit=MAX_STEP_COUNT)
        check_int("batch_size", self.batch_size, low=1, limit=1_000_000)
        check_int("train_freq", self.train_freq, low=1, limit=1_000_000)
        check_int("gradient_steps", self.gradient_steps, low=1, limit=10_000)
        check_int(
            "target_update_interval", self.target_update_interval, low=1, limit=MAX_STEP_COUNT
        )
        check_float("exploration_fraction", self.exploration_fraction, low=0, high=1)
        check_float("exploration_initial_eps", self.exploration_initial_eps, low=0, high=1)
        check_float("exploration_final_eps", self.exploration_final_eps, low=0, high=1)
        check_float("gamma", self.gamma, low=0, high=1)
        check_layers("net_arch", self.net_arch)
        check_choice("device", self.device, ("cpu", "cuda", "auto"))
        super().__post_init__()

    def algorithm_kwargs(self) -> dict[str, Any]:
        """DQN's constructor arguments."""
        return {
            "learning_rate": self.learning_rate,
            "buffer_size": self.buffer_size,
            "learning_starts": self.learning_starts,
            "batch_size": self.batch_size,
            "train_freq": self.train_freq,
            "gradient_steps": self.gradient_steps,
            "target_update_interval": self.target_update_interval,
            "exploration_fraction": self.exploration_fraction,
            "exploration_initial_eps": self.exploration_initial_eps,
            "exploration_final_eps": self.exploration_final_eps,
            "gamma": self.gamma,
            "policy_kwargs": {"net_arch": list(self.net_arch)},
            "device": self.device,
        }

    def _scores(self, obs: th.Tensor) -> th.Tensor:
        return self.model.q_net(obs)

    def _choose(self, scores: np.ndarray, blocked: np.ndarray, explore: bool) -> np.ndarray:
        actions = masked_argmax(scores, blocked)
        if explore:  # ε-greedy per slot, at SB3's current exploration rate
            rand = self.rng.random(len(actions)) < self.model.exploration_rate
            if rand.any():
                actions[rand] = random_allowed(self.rng, blocked[rand])
        return actions
