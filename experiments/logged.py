"""Logged sessions: roll out a logging policy and keep what off-policy learning needs.

:func:`log_sessions` plays ``sessions`` whole sessions of a ``MusicRecVectorEnv``
(autoreset disabled: each slot's ended session is restarted by ``reset`` with the
next episode's seed) under a logging policy with exact propensities
(:mod:`musicrec_gym.logging_policies`), and returns a
:class:`~musicrec_gym.logged_data.LoggedDataset`.

Reproducibility: episode ``e`` is started by ``reset(seed=seed * SEED_STRIDE + e)``
for its slot (``reset_seed[e]``), so a single ``MusicRec-v0`` reset with that seed and
fed the logged actions replays it; the logging policy's draws for episode ``e`` come
from ``np.random.default_rng([seed, e])`` (one uniform per step, an inverse-CDF draw
from the policy's distribution), never from the simulator's streams. So the same
arguments give the same dataset bit for bit, whatever ``num_envs`` (a fitted world's
observations: to float32 rounding, as its encoder's batch products may round apart;
a softened agent's propensities likewise to 1e-15, from its scores' batch products).

The softened agents (``oracle``, ``popularity``, ``planner``) are built here, as the
library must not import ``agents``: ``make_agent``, ``bind``, ``attach``, then
``act(obs, info, explore=False)`` for the greedy action of each step. Any other
project agent, trained or loaded, softened by a softmax or ε-greedy over its scores
(``softmax:linucb:0.05``) comes from ``experiments.soft_policies``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from agents import AgentContext, AvoidsRepeats, make_agent
from experiments.soft_policies import SoftenedAgentPolicy, SoftPolicySpec, parse_logging_policy
from musicrec_gym.checks import is_int
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError
from musicrec_gym.logged_data import CREATED_BY, LoggedDataset, world_label, world_sha
from musicrec_gym.logging_policies import (
    LoggingPolicy,
    PolicySpec,
    UniformLoggingPolicy,
    WorldLoggingPolicy,
    epsilon_greedy_probabilities,
    sample_actions,
)

SEED_STRIDE = 10**7
"""Episode ``e`` of seed ``s`` is reset with seed ``s * SEED_STRIDE + e``."""
MAX_SESSIONS = SEED_STRIDE
"""The most sessions one dataset holds (so that two seeds' episodes never share a seed)."""
REF_SESSIONS = 500
"""Sessions behind ``ref_min_score`` and ``ref_max_score``."""


class AgentLoggingPolicy(LoggingPolicy):
    """A project agent's greedy action, softened by ε-greedy (``oracle``, ``popularity`` ...).

    ``p(a) = ε / n_tracks + (1 - ε) · 1[a = act(obs, info, explore=False)]``.

    Args:
        spec: The policy (its name is the agent's registry key) and ε.
        seed: The agent's seed (``AgentContext.seed``).
    """

    def __init__(self, spec: PolicySpec, seed: int = 0) -> None:
        self.spec = spec
        self.seed = seed
        self.agent = make_agent(spec.name)
        self._greedy: np.ndarray | None = None

    def start(self, env: Any) -> None:
        """Bind the agent to ``env``'s catalog and attach it (the planner reads the simulator)."""
        super().start(env)
        self.agent.bind(AgentContext.from_env(env, self.seed))
        self.agent.attach(env)

    def probabilities(self, obs: np.ndarray, info: dict[str, Any]) -> np.ndarray:
        """ε-greedy around the agent's greedy action in each slot."""
        self._greedy = self.agent.act(obs, info, explore=False)
        return epsilon_greedy_probabilities(
            self._greedy, self.env.core.world.n_tracks, float(self.spec.epsilon)
        )

    def played(self, actions: np.ndarray) -> None:
        """Where an exploring draw replaced the greedy track, the agent's history says so.

        An agent that never repeats a track (``popularity``) marked its greedy track as
        played; it is the drawn one that was.
        """
        agent, greedy = self.agent, self._greedy
        if not isinstance(agent, AvoidsRepeats) or greedy is None:
            return
        swapped = np.flatnonzero(actions != greedy)
        if swapped.size:
            history = agent.history
            history.mask[swapped, greedy[swapped]] = False
            history.mask[swapped, actions[swapped]] = True
            history.last[swapped] = actions[swapped]

    def episode_end(self, dones: np.ndarray) -> None:
        """Tell the agent which sessions ended."""
        self.agent.episode_end(dones)


def make_logging_policy(spec: str | PolicySpec | SoftPolicySpec, seed: int = 0) -> LoggingPolicy:
    """The logging policy of a spec (``world``, ``oracle:0.1``, ``softmax:linucb:0.1`` ...).

    A softened agent's seed is its spec's ``train_seed``, not ``seed``.
    """
    spec = parse_logging_policy(spec)
    if isinstance(spec, SoftPolicySpec):
        return SoftenedAgentPolicy(spec)
    if spec.name == "world":
        return WorldLoggingPolicy()
    if spec.name == "uniform":
        return UniformLoggingPolicy()
    return AgentLoggingPolicy(spec, seed)


def reset_seeds(seed: int, sessions: int) -> np.ndarray:
    """The reset seed of each episode: ``seed * SEED_STRIDE + e``."""
    return seed * SEED_STRIDE + np.arange(sessions, dtype=np.int64)


def check_rollout_args(sessions: Any, seed: Any, num_envs: Any) -> None:
    """Refuse a session count, seed or slot count out of range, naming it.

    Raises:
        ConfigError: ``sessions`` not an int in [1, MAX_SESSIONS], ``seed`` not an int
            >= 0 (small enough for int64 reset seeds), ``num_envs`` not an int >= 1.
    """
    if not is_int(sessions) or not 1 <= sessions <= MAX_SESSIONS:
        raise ConfigError(f"`sessions` must be an int in [1, {MAX_SESSIONS}], got {sessions!r}")
    if not is_int(seed) or not 0 <= seed < 2**63 // SEED_STRIDE - 1:
        raise ConfigError(f"`seed` must be an int in [0, 2**32), got {seed!r}")
    if not is_int(num_envs) or num_envs < 1:
        raise ConfigError(f"`num_envs` must be an int >= 1, got {num_envs!r}")


def action_context(world: Any) -> np.ndarray:
    """(n_tracks, d + 1) float32: track embeddings and standardised ``log1p`` play counts."""
    plays = np.log1p(world.catalog["plays"].to_numpy(dtype=np.float64))
    std = plays.std()
    z = (plays - plays.mean()) / (std if std > 0 else 1.0)
    return np.column_stack([np.asarray(world.embeddings, np.float64), z]).astype(np.float32)


def log_sessions(
    world: Any = None,
    policy: str | PolicySpec | SoftPolicySpec = "world",
    sessions: int = 10000,
    seed: int = 0,
    num_envs: int = 256,
    long_term: bool = False,
    reward: str = "listen",
    max_steps: int | None = None,
    progress: bool = True,
    epsilon: float | None = None,
    ref_sessions: int = REF_SESSIONS,
) -> LoggedDataset:
    """Log ``sessions`` whole sessions of a logging policy, with exact propensities.

    Args:
        world: World directory, a loaded ``World``, or ``None`` for the built-in world.
        policy: A spec string (``world``, ``uniform``, ``oracle:EPS``,
            ``popularity:EPS``, ``planner:EPS``, or any agent softened,
            ``softmax:AGENT:TAU`` or ``egreedy:AGENT:EPS``: ``experiments.soft_policies``)
            or a parsed spec.
        sessions: Sessions (episodes) to log.
        seed: Episode ``e`` is reset with ``seed * SEED_STRIDE + e``; the policy draws
            from ``np.random.default_rng([seed, e])``.
        num_envs: Concurrent sessions (speed only: the dataset does not depend on it).
        long_term: ``MusicRecLongTerm-v0`` (synthetic worlds only).
        reward: ``listen``, ``time`` or ``event``.
        max_steps: Recommendations per session at most (``None``: the world's).
        progress: A tqdm bar over the sessions.
        epsilon: ε of a softened policy whose spec has none (default 0.1).
        ref_sessions: Sessions of uniform random and of the upper reference (the
            oracle; the planner with ``long_term``) whose mean returns are
            ``meta["ref_min_score"]`` and ``meta["ref_max_score"]``, on the first of
            the same reset seeds; 0 skips them (``None`` in ``meta``).

    Raises:
        ConfigError: A bad argument (named), an unknown policy (did-you-mean), or
            ``long_term`` or the planner on a fitted world.
    """
    check_rollout_args(sessions, seed, num_envs)
    spec = parse_logging_policy(policy, epsilon)
    if not is_int(ref_sessions) or ref_sessions < 0:
        raise ConfigError(f"`ref_sessions` must be an int >= 0, got {ref_sessions!r}")
    env = MusicRecVectorEnv(
        min(int(num_envs), int(sessions)), world=world, autoreset_mode="disabled",
        reward=reward, long_term=long_term, max_steps=max_steps,
    )  # fmt: skip
    loaded = env.core.world
    if spec.name in ("planner", "egreedy:planner") and loaded.fitted is not None:
        raise ConfigError(
            f"logging policy {str(spec)!r}: the planner plans on a synthetic world's hidden "
            f"truth; {loaded.directory} is fitted to logs (use oracle, popularity, world ...)"
        )
    columns = rollout(env, make_logging_policy(spec, seed), int(sessions), int(seed), progress)
    refs: dict[str, Any] = {"ref_min_score": None, "ref_max_score": None}
    upper = PolicySpec("planner" if long_term else "oracle", 0.0)
    if ref_sessions:
        for key, ref in (("ref_min_score", "uniform"), ("ref_max_score", upper)):
            data = log_sessions(
                world=loaded, policy=ref, sessions=ref_sessions, seed=seed, num_envs=num_envs,
                long_term=long_term, reward=reward, max_steps=max_steps, progress=False,
                ref_sessions=0,
            )  # fmt: skip
            refs[key] = float(data.episode_returns().mean())
    meta = {
        "world": world_label(loaded),
        "world_sha": world_sha(loaded),
        "env_kwargs": {
            "reward": reward,
            "long_term": bool(long_term),
            "max_steps": int(env.core.sim.max_steps),
            "profile_features": False,
        },
        "policy": str(spec),
        "epsilon": spec.epsilon,
        "seed": int(seed),
        "n_episodes": int(sessions),
        "n_tracks": int(loaded.n_tracks),
        "obs_dim": int(env.core.obs_dim),
        "reset_seed_rule": f"reset_seed[e] = seed * {SEED_STRIDE} + e",
        "logger_rng": "np.random.default_rng([seed, e]): one uniform per step, inverse CDF",
        "ref_sessions": int(ref_sessions),
        "ref_min_policy": "uniform",
        "ref_max_policy": upper.name,
        **refs,
        "created_by": CREATED_BY,
    }
    return LoggedDataset(**columns, action_context=action_context(loaded), meta=meta)


def rollout(
    env: MusicRecVectorEnv, policy: LoggingPolicy, sessions: int, seed: int, progress: bool
) -> dict[str, np.ndarray]:
    """Play ``sessions`` episodes in ``env`` (autoreset disabled); the dataset's columns.

    Each slot runs one episode at a time; when it ends, the slot is reset with the next
    episode's seed (``reset_mask``). Slots left without an episode keep stepping
    (unseeded, unrecorded) until the last episode ends.
    """
    b, seeds = env.num_envs, reset_seeds(seed, sessions)
    max_len = int(env.core.sim.max_steps)
    slot_ep = np.arange(b, dtype=np.int64)
    draws = np.stack([np.random.default_rng([seed, e]).random(max_len) for e in range(b)])
    steps = np.zeros(b, dtype=np.int64)
    warmup = env.core.sim.params.warmup
    warm_tracks = np.zeros((sessions, warmup), np.int64)
    warm_listened = np.zeros((sessions, warmup), bool)
    obs, info = env.reset(seed=seeds[:b].tolist())
    info = {k: v for k, v in info.items() if not k.startswith("_")}
    warm_tracks[:b], warm_listened[:b] = info["warmup_tracks"], info["warmup_listened"]
    policy.start(env)
    policy.episode_end(np.ones(b, dtype=bool))
    parts: dict[str, list[np.ndarray]] = {}
    next_ep, slots = b, np.arange(b)
    bar = _bar(sessions, progress)
    try:
        while (slot_ep >= 0).any():
            probs = policy.probabilities(obs, info)
            actions = sample_actions(probs, draws[slots, np.minimum(steps, max_len - 1)])
            pscore = probs[slots, actions]
            policy.played(actions)
            next_obs, reward, terminated, truncated, step_info = env.step(actions)
            on = slot_ep >= 0
            row = {
                "episode": slot_ep, "step": steps, "obs": obs, "next_obs": next_obs,
                "action": actions, "reward": reward, "terminated": terminated,
                "truncated": truncated, "pscore": pscore, "user": step_info["user"],
                "listened": step_info["listened"],
                "truth_expected_reward": step_info["expected_reward"],
                "truth_optimal_reward": step_info["optimal_reward"],
            }  # fmt: skip
            for key, value in row.items():
                parts.setdefault(key, []).append(value[on])  # a copy (boolean indexing)
            steps += 1
            done = terminated | truncated
            policy.episode_end(done)
            info = {k: v for k, v in step_info.items() if not k.startswith("_")}
            obs = next_obs
            if not done.any():
                continue
            ended = np.flatnonzero(done)
            bar.update(int(on[ended].sum()))
            reset_seeds_list: list[int | None] = [None] * b
            for slot in ended:
                if next_ep < sessions:
                    slot_ep[slot] = next_ep
                    reset_seeds_list[slot] = int(seeds[next_ep])
                    draws[slot] = np.random.default_rng([seed, next_ep]).random(max_len)
                    next_ep += 1
                else:
                    slot_ep[slot] = -1
            steps[ended] = 0
            obs, reset_info = env.reset(seed=reset_seeds_list, options={"reset_mask": done})
            for key in info:
                info[key] = info[key].copy()
                info[key][done] = reset_info[key][done]
            started = ended[slot_ep[ended] >= 0]
            warm_tracks[slot_ep[started]] = info["warmup_tracks"][started]
            warm_listened[slot_ep[started]] = info["warmup_listened"][started]
    finally:
        bar.close()
    cols = {k: np.concatenate(v) for k, v in parts.items()}
    order = np.lexsort((cols["step"], cols["episode"]))
    out = {k: v[order] for k, v in cols.items()}
    out.update(warmup_tracks=warm_tracks, warmup_listened=warm_listened, reset_seed=seeds)
    return out


class _NoBar:
    def update(self, n: int) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


def _bar(total: int, progress: bool) -> Any:
    if not progress:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="sessions", unit="session", disable=None)
