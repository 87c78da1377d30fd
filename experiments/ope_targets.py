"""Target policies along logged sessions, and their true values.

A target is a policy spec of ``musicrec log`` (``world``, ``uniform``, ``oracle:EPS``,
``popularity:EPS``, ``planner:EPS``; :func:`musicrec_gym.logging_policies.parse_policy_spec`)
built by :func:`experiments.logged.make_logging_policy`: its full action distribution
is known in every state, so its probabilities are exact.

The softened agents read ``info`` (the oracle's ``optimal_action``) or the simulator
(the planner), so a target's distribution at a logged step is found by *replaying*
the logged sessions (:func:`replay_targets`): a fresh ``MusicRecVectorEnv`` with the
dataset's world and ``env_kwargs``, each slot reset with an episode's ``reset_seed``
and stepped with the *logged* actions; at every step each target gives its
distribution, and is then told the logged action was played (so that a policy that
never repeats a track knows what the session played). The replay checks that it
reproduces the logged rewards and observations.

The same replay gives the per-decision TRUTH: at logged step ``i``, the target's true
mean reward ``Σ_a π_e(a|s_i) E[r|s_i, a]`` from the simulator's expected reward of every
track (``env.core.sim.expected_rewards()``). The session-level TRUTH is an on-policy
rollout of the target (:func:`session_truth`, with ``experiments.logged.log_sessions``
on reset seeds no logged dataset of the run uses). Estimators never see either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from experiments.logged import log_sessions, make_logging_policy
from experiments.ope import TargetDistribution
from experiments.soft_policies import SoftPolicySpec, parse_logging_policy
from musicrec_gym.envs.factory import env_setting
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import ConfigError, DataFormatError
from musicrec_gym.logged_data import LoggedDataset
from musicrec_gym.logging_policies import PolicySpec

#: Probability mass below which a decomposition's sparse remainder is dropped.
SPARSE_TOL = 1e-12
#: The most sparse values a target's replay stores (24 bytes each).
MAX_SPARSE = 10_000_000
#: Slots of the replay environment.
REPLAY_ENVS = 256
#: Dataset seed whose reset seeds the truth rollouts use (``seed * 10**7 + e``).
TRUTH_SEED = 999


@dataclass(frozen=True)
class TargetReplay:
    """A target policy along a dataset's logged steps.

    Attributes:
        spec: The target policy.
        dist: Its action distribution at every logged step.
        truth_step: (n,) TRUTH: its expected reward at every logged step.
        logger: The logging policy's full distribution at every logged step (what the
            service that logged knows of its own policy; ``None`` when not replayed).
            The models of DM and DR read it (``experiments.ope_models``).
    """

    spec: PolicySpec | SoftPolicySpec
    dist: TargetDistribution
    truth_step: np.ndarray
    logger: TargetDistribution | None = None

    def subset(self, rows: np.ndarray) -> TargetReplay:
        """The replay at ``rows`` only (in that order; repeats allowed)."""
        rows = np.asarray(rows, dtype=np.int64)
        logger = None if self.logger is None else self.logger.at_rows(rows)
        return TargetReplay(self.spec, self.dist.at_rows(rows), self.truth_step[rows], logger)


@dataclass(frozen=True)
class SessionTruth:
    """A target's on-policy mean session return and its 95% CLT interval."""

    value: float
    low: float
    high: float
    sessions: int


class _Decomposer:
    """Dense distributions as ``α_i base + sparse``, exactly (up to ``SPARSE_TOL``).

    ``base`` is fixed by the first batch: its column median, normalised (uniform for
    ε-greedy policies, the popularity share for the world's logger), uniform when that
    is 0 everywhere (a deterministic policy). ``α_i`` is row ``i``'s median ratio to it,
    so the sparse remainder holds only where a row departs from the shared shape: the
    greedy track's extra mass, and the negative mass that takes back ``α_i base`` on the
    tracks the row blocks (an agent's earlier recommendations). A softmax target departs
    everywhere: its rows are stored whole, up to ``MAX_SPARSE`` values.
    """

    def __init__(self, label: str = "target") -> None:
        self.label = label
        self.base: np.ndarray | None = None
        self.parts: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        self.stored = 0

    def add(self, probs: np.ndarray, rows: np.ndarray) -> None:
        if self.base is None:
            mid = np.median(probs, axis=0)
            n = probs.shape[1]
            self.base = mid / mid.sum() if mid.sum() > 0 else np.full(n, 1.0 / n)
        base = self.base
        pos = base > 0
        alpha = np.median(probs[:, pos] / base[pos], axis=1) if pos.any() else np.zeros(len(probs))
        rest = probs - alpha[:, None] * base[None, :]
        r, c = np.nonzero(np.abs(rest) > SPARSE_TOL)
        self.stored += len(r)
        if self.stored > MAX_SPARSE:
            raise ConfigError(
                f"target {self.label!r} is too dense to replay along {self.stored:,}+ values: "
                f"its distributions share no common shape (a softmax over an agent's "
                f"scores), so every logged step stores all its tracks, and more than "
                f"{MAX_SPARSE:,} values do not fit. Use fewer logged sessions or an egreedy "
                "target"
            )
        self.parts.append((rows, alpha, rows[r], np.stack([c, rest[r, c]])))

    def build(self, n: int) -> TargetDistribution:
        weight = np.zeros(n)
        rows, cols, vals = [], [], []
        for at, alpha, sr, cv in self.parts:
            weight[at] = alpha
            rows.append(sr)
            cols.append(cv[0].astype(np.int64))
            vals.append(cv[1])
        return TargetDistribution(
            weight,
            self.base if self.base is not None else np.zeros(0),
            np.concatenate(rows).astype(np.int64),
            np.concatenate(cols),
            np.concatenate(vals),
        )


def replay_targets(
    dataset: LoggedDataset,
    targets: list[str | PolicySpec | SoftPolicySpec],
    world: Any = None,
    num_envs: int = REPLAY_ENVS,
    seed: int = 0,
    check_support: bool = True,
) -> list[TargetReplay]:
    """Every target's distribution and true expected reward along the logged steps.

    Args:
        dataset: The logged sessions (its ``meta["env_kwargs"]`` configure the env).
        targets: Policy specs.
        world: The dataset's world (directory or ``World``; ``None``: built-in).
        num_envs: Sessions replayed at once.
        seed: The agents' seed (``AgentContext.seed``).
        check_support: Also replay the logging policy (``meta["policy"]``): it must
            give every logged action its ``pscore``, and no target may put probability
            where it puts none.

    Raises:
        DataFormatError: The replay does not reproduce the logged rewards,
            observations, session ends or propensities (a dataset from another world
            or environment settings, or edited).
        ConfigError: A bad target spec, or a target that plays tracks the logging
            policy never plays.
    """
    specs = [parse_logging_policy(t) for t in targets]
    kwargs = dict(dataset.meta.get("env_kwargs") or {})
    if env_setting(kwargs) != "catalog":
        raise ConfigError(
            f"off-policy evaluation replays the catalog setting only; the dataset's env_kwargs "
            f"ask for the {env_setting(kwargs)!r} setting: {kwargs}"
        )
    starts = dataset.episode_starts()
    n_eps, n = dataset.n_episodes, dataset.n_rows
    lengths = np.diff(starts)
    b = max(1, min(int(num_envs), n_eps))
    env = MusicRecVectorEnv(b, world=world, autoreset_mode="disabled", **kwargs)
    policies = [make_logging_policy(s, seed) for s in specs]
    logger_spec = dataset.meta.get("policy")
    logger = None
    if check_support and isinstance(logger_spec, str):
        logger = make_logging_policy(parse_logging_policy(logger_spec), seed)
        policies.append(logger)
    decomposers = [_Decomposer(str(s)) for s in specs]
    logger_dec = _Decomposer(f"logger {logger_spec}") if logger is not None else None
    truths = [np.zeros(n) for _ in specs]
    seeds = dataset.reset_seed
    slot_ep = np.arange(b, dtype=np.int64)
    steps = np.zeros(b, dtype=np.int64)
    obs, info = env.reset(seed=[int(s) for s in seeds[:b]])
    info = _plain(info)
    for policy in policies:
        policy.start(env)
        policy.episode_end(np.ones(b, dtype=bool))
    next_ep = b
    sim = env.core.sim
    while (slot_ep >= 0).any():
        on = slot_ep >= 0
        rows = np.where(on, starts[np.maximum(slot_ep, 0)] + steps, -1)
        slots = np.flatnonzero(on)
        _check_obs(dataset, obs[slots], rows[slots])
        expected = sim.expected_rewards()
        actions = np.zeros(b, dtype=np.int64)
        actions[slots] = dataset.action[rows[slots]]
        logged_probs = logger.probabilities(obs, info)[slots] if logger is not None else None
        if logged_probs is not None:
            _check_logger(dataset, logged_probs, rows[slots])
            assert logger_dec is not None
            logger_dec.add(logged_probs, rows[slots])
        for policy, dec, truth, spec in zip(policies, decomposers, truths, specs, strict=False):
            probs = policy.probabilities(obs, info)
            if not on.all():  # idle slots play what the target would, unrecorded
                idle = np.flatnonzero(~on)
                actions[idle] = probs[idle].argmax(axis=1)
            if logged_probs is not None:
                _check_support(dataset, spec, probs[slots], logged_probs, rows[slots])
            dec.add(probs[slots], rows[slots])
            truth[rows[slots]] = (probs[slots] * expected[slots]).sum(axis=1)
        for policy in policies:
            policy.played(actions)
        obs, reward, terminated, truncated, step_info = env.step(actions)
        _check_rewards(dataset, reward[slots], rows[slots])
        steps += 1
        done = terminated | truncated
        ends = on & (steps == lengths[np.maximum(slot_ep, 0)])
        if (ends != (on & done)).any():
            slot = int(np.flatnonzero(ends != (on & done))[0])
            raise _diverged(dataset, int(rows[slot]), "session end")
        for policy in policies:
            policy.episode_end(done)
        info = _plain(step_info)
        if not done.any():
            continue
        ended = np.flatnonzero(done)
        reset_list: list[int | None] = [None] * b
        for slot in ended:
            if next_ep < n_eps:
                slot_ep[slot] = next_ep
                reset_list[slot] = int(seeds[next_ep])
                next_ep += 1
            else:
                slot_ep[slot] = -1
        steps[ended] = 0
        obs, reset_info = env.reset(seed=reset_list, options={"reset_mask": done})
        reset_info = _plain(reset_info)
        for key in info:
            info[key] = info[key].copy()
            info[key][done] = reset_info[key][done]
    logger_dist = logger_dec.build(n) if logger_dec is not None else None
    return [
        TargetReplay(spec, dec.build(n), truth, logger_dist)
        for spec, dec, truth in zip(specs, decomposers, truths, strict=True)
    ]


def _check_logger(dataset: LoggedDataset, probs: np.ndarray, rows: np.ndarray) -> None:
    """The logging policy, replayed, must give the logged actions their ``pscore``."""
    replayed = probs[np.arange(len(rows)), dataset.action[rows]]
    bad = ~np.isclose(replayed, dataset.pscore[rows], rtol=1e-6, atol=1e-12)
    if bad.any():
        row = int(rows[bad][0])
        raise DataFormatError(
            f"the logged propensities are not the logging policy's: at row {row} `pscore` is "
            f"{dataset.pscore[row]!r}, but {dataset.meta.get('policy')!r} replayed gives "
            f"{replayed[bad][0]!r} to the logged action"
        )


def _check_support(
    dataset: LoggedDataset,
    spec: PolicySpec | SoftPolicySpec,
    probs: np.ndarray,
    logged_probs: np.ndarray,
    rows: np.ndarray,
) -> None:
    """Refuse a target that plays tracks the logging policy never plays (IS cannot see them)."""
    unseen = np.where(logged_probs <= 0, probs, 0.0).sum(axis=1)
    bad = unseen > SPARSE_TOL
    if bad.any():
        row = int(rows[bad][0])
        raise ConfigError(
            f"target {str(spec)!r} puts probability {unseen[bad][0]:.3g} on tracks the "
            f"logging policy {dataset.meta.get('policy')!r} never plays (row {row}: episode "
            f"{int(dataset.episode[row])}, step {int(dataset.step[row])}): no off-policy "
            "estimate can see them. Log with a policy that plays every track (world, "
            "uniform, or a softened agent with epsilon > 0)"
        )


def _plain(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if not k.startswith("_")}


def _check_obs(dataset: LoggedDataset, obs: np.ndarray, rows: np.ndarray) -> None:
    logged = dataset.obs[rows]
    if not np.allclose(obs, logged, atol=1e-4):
        bad = rows[~np.isclose(obs, logged, atol=1e-4).all(axis=1)][0]
        raise _diverged(dataset, int(bad), "observation")


def _check_rewards(dataset: LoggedDataset, reward: np.ndarray, rows: np.ndarray) -> None:
    logged = dataset.reward[rows]
    if not np.allclose(reward, logged):
        bad = rows[~np.isclose(reward, logged)][0]
        raise _diverged(dataset, int(bad), "reward")


def _diverged(dataset: LoggedDataset, row: int, what: str) -> DataFormatError:
    return DataFormatError(
        f"the logged sessions do not replay: at row {row} (episode "
        f"{int(dataset.episode[row])}, step {int(dataset.step[row])}) the {what} differs "
        f"from the log. Was it logged on another world or with other env settings than "
        f"{dataset.meta.get('world')!r}, {dataset.meta.get('env_kwargs')}?"
    )


def session_truth(
    spec: str | PolicySpec | SoftPolicySpec,
    env_kwargs: dict[str, Any],
    sessions: int,
    world: Any = None,
    seed: int = TRUTH_SEED,
    num_envs: int = REPLAY_ENVS,
) -> SessionTruth:
    """TRUTH: the target's mean session return over ``sessions`` on-policy sessions.

    Played by ``experiments.logged.log_sessions`` (the target as the logger), reset
    seeds ``seed * 10**7 + e``; the interval is ``mean ± 1.96 sd / sqrt(sessions)``.
    """
    kwargs = {k: env_kwargs[k] for k in ("reward", "long_term", "max_steps") if k in env_kwargs}
    data = log_sessions(
        world=world,
        policy=spec,
        sessions=int(sessions),
        seed=int(seed),
        num_envs=num_envs,
        progress=False,
        ref_sessions=0,
        **kwargs,
    )
    returns = data.episode_returns()
    mean = float(returns.mean())
    half = 1.96 * float(returns.std(ddof=1)) / math.sqrt(len(returns)) if len(returns) > 1 else 0
    return SessionTruth(mean, mean - half, mean + half, len(returns))
