"""Any project agent softened to a stochastic logging policy, with exact propensities.

A spec ``KIND:AGENT:VALUE[,key=value...]`` names a registered agent (``make_agent``)
and how its scores are softened over the tracks it may recommend now (the tracks its
own history does not block: a session's earlier recommendations and warm-up plays,
and recent artists for the agents that avoid them):

- ``softmax:AGENT:TAU``: ``p(a) ∝ exp(score(a) / τ)`` over the allowed tracks, τ > 0;
- ``egreedy:AGENT:EPS``: ``p(a) = ε / |allowed| + (1 − ε)·1[a = greedy]``, ε in [0, 1],
  ``greedy`` the best-scoring allowed track (the agent's ``act(explore=False)``).

Blocked tracks get probability 0, so every row sums to 1 over the allowed tracks, and
the rollout (``experiments.logged``) draws from that very distribution: the logged
propensity is the probability of the drawn track under the scores the draw used.

The scores (:class:`AgentScorer`) are each agent's greedy criterion: the linear
bandits' posterior mean reward (``linucb``, ``lin_ts`` and ``epsilon_greedy`` alike),
the offline agents' ``scores``, PPO's action logits and DQN's Q-values (SB3), the
popularity agent's ``log(1 + plays)``, the oracle's true expected reward of every track
(what only the simulator knows), zeros for ``random``. Agents without scores (the
planner) can only be softened by ``egreedy`` around their ``act(explore=False)``.

Options after the value: ``train_steps`` (env steps of online training before
logging, in a ``MusicRecVectorEnv`` of ``TRAIN_ENVS`` slots with the logging env's
world and settings; default ``DEFAULT_TRAIN_STEPS`` for agents that learn, 0
otherwise), ``train_seed`` (the agent's seed, ``AgentContext.seed``; default 0),
``state`` (a file the agent's ``save`` wrote, loaded instead of training), and any of
the agent's hyperparameters (``alpha=0.5``). The same spec gives the same trained agent
and so the same logged dataset: the dataset's ``meta["policy"]`` is the full spec, so
``musicrec ope`` rebuilds the logger from it.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import yaml

from agents import AgentContext, AvoidsRepeats, make_agent
from agents.base import agent_params, agent_types
from agents.history import EpisodeHistory, follow_session, masked_argmax
from agents.linear import LinearBanditAgent, single_threaded_blas
from agents.offline import LoggingPolicyAgent, OfflineAgent
from agents.sb3_agents import DQNAgent, PPOAgent, SB3Agent
from musicrec_gym.checks import is_int
from musicrec_gym.errors import ConfigError, unknown_name_message
from musicrec_gym.logging_policies import (
    POLICY_NAMES,
    LoggingPolicy,
    PolicySpec,
    parse_policy_spec,
)

SOFT_KINDS = ("egreedy", "softmax")
"""How an agent's scores are softened."""
DEFAULT_TRAIN_STEPS = 50_000
"""Online training steps of a learning agent whose spec gives none."""
TRAIN_ENVS = 32
"""Slots of the training environment."""
MAX_TRAIN_STEPS = 10**8
"""The most training steps a spec may ask for."""
OPTIONS = ("train_steps", "train_seed", "state")
"""The spec options that are not agent hyperparameters."""
UNSCORED = ("planner",)
"""Agents without scores: only ``egreedy`` around their greedy action."""
REFUSED = {
    "logging": "its action is a random draw from the world's logger: use the policy `world`",
    "recurrent_ppo": "its logits depend on its LSTM state, which the scorer does not carry",
}
"""Agents that cannot be softened, and why."""


@dataclass(frozen=True)
class SoftPolicySpec:
    """A project agent softened by ε-greedy or a softmax over its scores.

    Attributes:
        kind: ``egreedy`` or ``softmax``.
        agent: The agent's registry key.
        value: ε in [0, 1] (``egreedy``) or the temperature τ > 0 (``softmax``).
        params: The agent's hyperparameters, as sorted ``(name, value)`` pairs.
        train_steps: Env steps of online training before logging.
        train_seed: The agent's seed.
        state: A saved agent to load instead of training (``None``: train).
    """

    kind: str
    agent: str
    value: float
    params: tuple[tuple[str, Any], ...] = ()
    train_steps: int = 0
    train_seed: int = 0
    state: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in SOFT_KINDS:
            raise ConfigError(unknown_name_message("softening", str(self.kind), SOFT_KINDS))
        types = agent_types()
        if self.agent not in types:
            raise ConfigError(unknown_name_message("agent type", str(self.agent), types))
        if self.agent in REFUSED:
            raise ConfigError(f"agent {self.agent!r} cannot be softened: {REFUSED[self.agent]}")
        settings = getattr(types[self.agent], "settings", ("catalog",))
        if "catalog" not in settings:
            raise ConfigError(
                f"agent {self.agent!r} acts in the {'/'.join(settings)} setting; logging and "
                "OPE work in the catalog setting only (Discrete(n_tracks) actions)"
            )
        value = self.value
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.kind == "softmax" and not (number and math.isfinite(value) and value > 0):
            raise ConfigError(
                f"policy {self.label()!r}: the softmax temperature must be a number > 0, "
                f"got {value!r}"
            )
        if self.kind == "egreedy" and not (number and math.isfinite(value) and 0 <= value <= 1):
            raise ConfigError(
                f"policy {self.label()!r}: `epsilon` must be a number in [0, 1], got {value!r}"
            )
        if self.kind == "softmax" and self.agent in UNSCORED:
            raise ConfigError(
                f"agent {self.agent!r} has no scores to take a softmax of: soften it with "
                f"egreedy:{self.agent}:EPS"
            )
        for name, low in (("train_steps", 0), ("train_seed", 0)):
            got = getattr(self, name)
            if not is_int(got) or not low <= got <= MAX_TRAIN_STEPS:
                raise ConfigError(
                    f"policy {self.label()!r}: `{name}` must be an int in [0, {MAX_TRAIN_STEPS}], "
                    f"got {got!r}"
                )
        if self.state is not None and (not isinstance(self.state, str) or not self.state):
            raise ConfigError(f"policy {self.label()!r}: `state` must be a file path")
        agent = make_agent(self.agent, dict(self.params))  # unknown or bad ones, named
        if isinstance(agent, SB3Agent) and getattr(agent, "session_features", False):
            raise ConfigError(
                f"policy {self.label()!r}: an SB3 agent with session_features=true cannot be "
                "softened yet (its policy input is built inside the agent); use "
                "session_features=false"
            )

    @property
    def name(self) -> str:
        """``KIND:AGENT``."""
        return f"{self.kind}:{self.agent}"

    @property
    def epsilon(self) -> float | None:
        """ε of an ``egreedy`` policy (``None`` for a softmax)."""
        return float(self.value) if self.kind == "egreedy" else None

    def label(self) -> str:
        """``KIND:AGENT:VALUE`` without the options."""
        return f"{self.kind}:{self.agent}:{self.value:g}"

    def __str__(self) -> str:
        """The full spec, options in a fixed order: ``parse_soft_spec(str(spec)) == spec``."""
        opts = [f"{k}={_text(v)}" for k, v in self.params]
        if self.train_steps:
            opts.append(f"train_steps={self.train_steps}")
        if self.train_seed:
            opts.append(f"train_seed={self.train_seed}")
        if self.state is not None:
            opts.append(f"state={self.state}")
        return ",".join([self.label(), *opts])


def _text(value: Any) -> str:
    """A hyperparameter value as the spec writes it (YAML flow style, one line)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6)
    return text.strip().removesuffix("...").strip()


def is_soft_spec(spec: Any) -> bool:
    """Whether ``spec`` is a string of this module's form (``softmax:...``, ``egreedy:...``)."""
    return isinstance(spec, str) and spec.strip().partition(":")[0] in SOFT_KINDS


def _split_options(text: str) -> list[str]:
    """``text`` split at the commas outside brackets (``net_arch=[64, 64]`` stays whole)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts]


def parse_soft_spec(spec: str) -> SoftPolicySpec:
    """``KIND:AGENT:VALUE[,key=value...]`` as a :class:`SoftPolicySpec` (module docstring).

    Raises:
        ConfigError: Not of that form, an unknown kind or agent (did-you-mean), a
            temperature ≤ 0, an ε outside [0, 1], an unknown option or hyperparameter.
    """
    if not isinstance(spec, str):
        raise ConfigError(
            f"a softened policy must be a string such as 'softmax:linucb:0.1', got {spec!r}"
        )
    head, *options = _split_options(spec.strip())
    parts = head.split(":")
    if len(parts) != 3:
        raise ConfigError(
            f"policy {spec!r}: expected KIND:AGENT:VALUE such as 'softmax:linucb:0.1' or "
            "'egreedy:linucb:0.1', then optional ,key=value options"
        )
    kind, agent, text = (p.strip() for p in parts)
    if kind not in SOFT_KINDS:
        raise ConfigError(unknown_name_message("softening", kind, SOFT_KINDS))
    try:
        value = float(text)
    except ValueError:
        what = "a temperature > 0" if kind == "softmax" else "epsilon in [0, 1]"
        raise ConfigError(f"policy {spec!r}: the value must be {what}, got {text!r}") from None
    found: dict[str, Any] = {}
    for opt in options:
        key, eq, raw = opt.partition("=")
        key = key.strip()
        if not eq or not key:
            raise ConfigError(f"policy {spec!r}: option {opt!r} must be key=value")
        if key in found:
            raise ConfigError(f"policy {spec!r}: option {key!r} is given twice")
        try:
            found[key] = raw.strip() if key == "state" else yaml.safe_load(raw)
        except yaml.YAMLError as err:
            raise ConfigError(f"policy {spec!r}: option {key!r}: not a value: {err}") from None
    if agent not in agent_types():
        raise ConfigError(unknown_name_message("agent type", agent, agent_types()))
    allowed = [*OPTIONS, *(n for n, f in agent_params(agent).items() if f.init)]
    for key in found:
        if key not in allowed:
            message = unknown_name_message(f"option of agent {agent!r}", key, allowed)
            raise ConfigError(f"policy {spec!r}: {message}")
    state = found.pop("state", None)
    default_steps = DEFAULT_TRAIN_STEPS if learns(agent) and state is None else 0
    train_steps = found.pop("train_steps", default_steps)
    if state is not None and train_steps:
        raise ConfigError(
            f"policy {spec!r}: give `state` (a saved agent) or `train_steps`, not both"
        )
    train_seed = found.pop("train_seed", 0)
    params = tuple(sorted(found.items()))
    return SoftPolicySpec(kind, agent, value, params, train_steps, train_seed, state)


def learns(agent: str) -> bool:
    """Whether agents of this registry key learn online (``Agent.learns_online``)."""
    return bool(make_agent(agent).learns_online)


# ----------------------------------------------------------------------- scores
class AgentScorer:
    """An agent's scores of every track and its blocked tracks, one env step at a time.

    :meth:`scores` returns ``(scores, blocked)``, each ``(B, n_tracks)``; :meth:`played`
    then records the track drawn (what the agent's ``act`` would have recorded for its
    own choice). ``scores`` is ``None`` for an agent without scores (the planner):
    then ``greedy`` is its ``act(explore=False)``.
    """

    def __init__(self, agent: Any) -> None:
        self.agent = agent
        self.greedy: np.ndarray | None = None

    def scores(self, obs: np.ndarray, info: dict[str, Any], sim: Any) -> tuple[Any, np.ndarray]:
        """``(scores or None, blocked)`` for the batch ``obs`` (module docstring)."""
        agent, batch = self.agent, len(obs)
        obs = np.asarray(obs)
        if isinstance(agent, LinearBanditAgent):
            follow_session(agent.history, agent.session, batch, info, agent.session_features)
            blocked = agent.history.blocked(batch, info)
            return agent.mean_scores(agent.state_x(obs)), blocked
        if isinstance(agent, OfflineAgent):
            follow_session(agent.history, agent.session, batch, info)
            blocked = agent.history.blocked(batch, info)
            if not agent.avoid_repeats:
                blocked = np.zeros_like(blocked)
            parts = [np.asarray(obs, dtype=np.float64)]
            if agent.session_features:
                parts.append(agent.session.features())
            return agent.scores(np.concatenate(parts, axis=1)), blocked
        if isinstance(agent, SB3Agent):
            return self._sb3(obs, info)
        n = agent.context.n_tracks
        blocked = (
            agent.history.blocked(batch, info)
            if isinstance(agent, AvoidsRepeats)
            else np.zeros((batch, n), dtype=bool)
        )
        name = agent.name
        if name == "popularity":
            plays = np.log1p(np.asarray(agent.context.track_plays, dtype=np.float64))
            return np.broadcast_to(plays, (batch, n)), blocked
        if name == "oracle":
            return np.asarray(sim.expected_rewards(), dtype=np.float64), blocked
        if name == "random":
            return np.zeros((batch, n)), blocked
        # no scores: the agent's own greedy action, its blocked tracks as before acting
        if isinstance(agent, AvoidsRepeats):
            blocked = copy.deepcopy(agent.history).blocked(batch, info)
        self.greedy = np.asarray(agent.act(obs, info, explore=False), dtype=np.int64)
        return None, blocked

    def _sb3(self, obs: np.ndarray, info: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        import torch as th

        agent = self.agent
        model = agent.model
        if model is None:
            raise ConfigError(
                f"agent {agent.name!r} has no trained model to score with: give "
                "train_steps > 0 or state=FILE in its policy spec"
            )
        batch, n = len(obs), agent.context.n_tracks
        blocked = (
            agent.history.blocked(batch, info)
            if agent.avoid_repeats
            else np.zeros((batch, n), dtype=bool)
        )
        with th.no_grad():
            obs_t, _ = model.policy.obs_to_tensor(np.asarray(obs, dtype=np.float32))
            if isinstance(agent, PPOAgent):
                out = model.policy.get_distribution(obs_t).distribution.logits
            elif isinstance(agent, DQNAgent):
                out = model.q_net(obs_t)
            else:
                raise ConfigError(f"agent {agent.name!r}: no scores known for this SB3 agent")
        return out.cpu().numpy().astype(np.float64), blocked

    def played(self, actions: np.ndarray) -> None:
        """Record the drawn tracks in the agent's session history (as its ``act`` would)."""
        history: EpisodeHistory | None = getattr(self.agent, "history", None)
        if history is None:
            return
        greedy, self.greedy = self.greedy, None
        actions = np.asarray(actions, dtype=np.int64)
        if greedy is None:  # scored agents: nothing was marked yet
            if isinstance(self.agent, AvoidsRepeats) and not (
                isinstance(self.agent, SB3Agent) and not self.agent.avoid_repeats
            ):
                history.mark(actions)
            return
        swapped = np.flatnonzero(actions != greedy)  # act marked its greedy track
        if swapped.size:
            history.mask[swapped, greedy[swapped]] = False
            history.mask[swapped, actions[swapped]] = True
            history.last[swapped] = actions[swapped]
            if history.artist_window:
                history.recent[swapped, -1] = actions[swapped]


# ----------------------------------------------------------------------- distributions
def softmax_probabilities(scores: np.ndarray, blocked: np.ndarray, tau: float) -> np.ndarray:
    """``exp(score / τ)`` normalised over each row's allowed tracks; blocked ones 0.

    Raises:
        ConfigError: τ not > 0, or a row whose every track is blocked.
    """
    if not (isinstance(tau, (int, float)) and math.isfinite(tau) and tau > 0):
        raise ConfigError(f"the softmax temperature must be a number > 0, got {tau!r}")
    scores = np.asarray(scores, dtype=np.float64)
    allowed = ~np.asarray(blocked, dtype=bool)
    _check_allowed(allowed)
    z = np.where(allowed, scores / tau, -np.inf)
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def egreedy_probabilities(greedy: np.ndarray, blocked: np.ndarray, epsilon: float) -> np.ndarray:
    """``ε / |allowed|`` on each allowed track plus ``1 − ε`` on ``greedy[i]``; blocked ones 0.

    Raises:
        ConfigError: ε outside [0, 1], a row whose every track is blocked, or a greedy
            track that is blocked.
    """
    if not (isinstance(epsilon, (int, float)) and 0 <= epsilon <= 1):
        raise ConfigError(f"`epsilon` must be a number in [0, 1], got {epsilon!r}")
    allowed = ~np.asarray(blocked, dtype=bool)
    _check_allowed(allowed)
    greedy = np.asarray(greedy, dtype=np.int64)
    rows = np.arange(len(greedy))
    if not allowed[rows, greedy].all():
        raise ConfigError("the greedy track of a row is one the agent blocks")
    probs = allowed * (epsilon / allowed.sum(axis=1, keepdims=True))
    probs[rows, greedy] += 1.0 - epsilon
    return probs


def _check_allowed(allowed: np.ndarray) -> None:
    if not allowed.any(axis=1).all():
        raise ConfigError("a slot has every track blocked: nothing to recommend")


# ----------------------------------------------------------------------- the policy
class SoftenedAgentPolicy(LoggingPolicy):
    """A project agent softened by a softmax or ε-greedy over its scores (module docstring).

    Args:
        spec: The softened policy.
    """

    def __init__(self, spec: SoftPolicySpec) -> None:
        self.spec = spec  # type: ignore[assignment]
        self.agent: Any = None
        self.scorer: AgentScorer | None = None

    def start(self, env: Any) -> None:
        """Build (train or load) the agent on ``env``'s world, then attach it to ``env``."""
        super().start(env)
        self.agent = build_agent(self.spec, env)
        self.agent.attach(env)
        self.scorer = AgentScorer(self.agent)

    @single_threaded_blas  # small matrix products: one BLAS thread is fastest (agents.linear)
    def probabilities(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """The softened distribution of every slot, from the agent's scores now."""
        assert self.scorer is not None, "start(env) first"
        spec = self.spec
        scores, blocked = self.scorer.scores(obs, info, self.env.core.sim)
        if spec.kind == "softmax":
            return softmax_probabilities(scores, blocked, float(spec.value))
        greedy = self.scorer.greedy if scores is None else masked_argmax(scores, blocked)
        return egreedy_probabilities(greedy, blocked, float(spec.value))

    def played(self, actions: np.ndarray) -> None:
        """The drawn tracks enter the agent's session history."""
        if self.scorer is not None:
            self.scorer.played(actions)

    def episode_end(self, dones: np.ndarray) -> None:
        """Tell the agent which sessions ended."""
        self.agent.episode_end(dones)


def build_agent(spec: SoftPolicySpec, env: Any) -> Any:
    """The spec's agent bound to ``env``'s world: loaded from ``state``, or trained.

    Training runs ``agent.learn`` for ``train_steps`` in a fresh ``MusicRecVectorEnv`` of
    ``TRAIN_ENVS`` slots with ``env``'s world, reward, horizon and ``long_term``.
    """
    from musicrec_gym.envs.vector import MusicRecVectorEnv

    agent = make_agent(spec.agent, dict(spec.params))
    if isinstance(agent, LoggingPolicyAgent):  # pragma: no cover (refused by the spec)
        raise ConfigError(REFUSED["logging"])
    core = env.core
    agent.bind(AgentContext.from_env(env, spec.train_seed))
    if spec.state is not None:
        agent.load(spec.state)
    elif spec.train_steps:
        train_env = MusicRecVectorEnv(
            TRAIN_ENVS, world=core.world, reward=core.reward_mode, long_term=core.long_term,
            max_steps=int(core.sim.max_steps),
        )  # fmt: skip
        agent.attach(train_env)
        agent.learn(train_env, int(spec.train_steps))
        train_env.close()
    agent.episode_end(np.ones(env.num_envs, dtype=bool))
    return agent


# ----------------------------------------------------------------------- any spec
def parse_logging_policy(spec: Any, epsilon: float | None = None) -> PolicySpec | SoftPolicySpec:
    """Any logging policy's spec, softened agent or built-in.

    A softened agent (``softmax:...``, ``egreedy:...``) or one of
    ``musicrec_gym.logging_policies.parse_policy_spec``'s (``world``, ``oracle:0.1`` ...).

    Args:
        spec: The spec string (or an already parsed spec, returned as it is).
        epsilon: ``--epsilon`` for the built-in softened specs given without one; a
            softened agent's spec carries its own value.

    Raises:
        ConfigError: A bad spec (unknown names with a did-you-mean over both forms).
    """
    if isinstance(spec, (PolicySpec, SoftPolicySpec)):
        return spec
    if is_soft_spec(spec):
        if epsilon is not None:
            raise ConfigError(
                f"policy {spec!r} carries its own epsilon or temperature: drop --epsilon"
            )
        return parse_soft_spec(spec)
    try:
        return parse_policy_spec(spec, epsilon)
    except ConfigError:
        head = spec.strip().partition(":")[0] if isinstance(spec, str) else None
        if head is not None and head not in POLICY_NAMES:
            message = unknown_name_message("logging policy", head, (*POLICY_NAMES, *SOFT_KINDS))
            raise ConfigError(
                f"{message} Soften any agent with softmax:AGENT:TAU or egreedy:AGENT:EPS "
                f"(AGENT one of {', '.join(sorted(agent_types()))})"
            ) from None
        raise
