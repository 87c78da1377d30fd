"""The agents task's cell: one agent trained with one seed, then evaluated greedily.

A ``Cell`` trains its agent on ``make_vector_env(num_envs, **kwargs)``, logging every
finished training episode to TensorBoard, then evaluates it greedily on a fixed set of
reset seeds (the same for every agent), in a fresh environment so that no training
state leaks. It writes ``cells/<key>/result.json`` (a ``CellResult``) last, with
``curve.csv`` and ``eval_episodes.csv``, and ``tb/<tb_name>/``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import shutil
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numba
import numpy as np

from experiments.limits import EnvLimits, env_limits, out_of_range
from experiments.outputs import atomic_write_json
from experiments.progress import Progress
from experiments.schema import AgentSpec, EnvConfig
from musicrec_gym.envs.factory import make_vector_env, setting_kwargs, vector_env_class

#: Columns of a cell's ``eval_episodes.csv``.
EVAL_COLUMNS = ("reset_seed", "return", "optimal_return", "length", "listens", "regret")


@dataclass(frozen=True)
class Cell:
    """One (agent, seed) unit of work.

    Attributes:
        experiment: Experiment name.
        env: Environment settings.
        agent: The agent.
        seed: Experiment seed (the agent's seed and the training env's reset seed).
        train_steps: Training budget in env steps (ignored by agents that do not learn).
        eval_episodes: Number of greedy evaluation episodes.
        eval_seed: Root of the evaluation seeds.
        base: The agent's name in the config (``agent.name`` is its variant's name).
        point: ``(column, value)`` of the environment's swept settings.
        swept: ``(column, value)`` of every swept setting of the cell.
    """

    experiment: str
    env: EnvConfig
    agent: AgentSpec
    seed: int
    train_steps: int
    eval_episodes: int
    eval_seed: int
    base: str = ""
    point: tuple[tuple[str, Any], ...] = ()
    swept: tuple[tuple[str, Any], ...] = ()

    #: What ``result.json`` holds (set below, once ``CellResult`` exists).
    result_type: ClassVar[type]

    @property
    def key(self) -> str:
        """Directory name under ``cells/``: ``<agent>__seed<k>``."""
        return f"{self.agent.name}__seed{self.seed}"

    @property
    def tb_name(self) -> str:
        """Directory name under ``tb/``: ``<env_id>__<experiment>__<agent>__seed<k>``."""
        return f"{self.env.id}__{self.experiment}__{self.agent.name}__seed{self.seed}"

    def settings(self) -> dict[str, Any]:
        """Everything that determines the cell's result (compared when resuming)."""
        return {
            "env": dataclasses.asdict(self.env),
            "agent": {"type": self.agent.type, "params": self.agent.params},
            "seed": self.seed,
            "train_steps": self.train_steps,
            "eval_episodes": self.eval_episodes,
            "eval_seed": self.eval_seed,
        }

    def run(self, run_dir: str | Path, progress: Progress | None = None) -> CellResult:
        """Train and evaluate the cell (``run_cell``)."""
        return run_cell(self, run_dir, progress)

    def cost(self) -> int:
        """Relative cost: the training budget, or 0 for a policy that does not learn."""
        from agents.base import make_agent

        learns = make_agent(self.agent.type, self.agent.params).learns_online
        return self.train_steps if learns else 0

    def eval_reset_seeds(self) -> np.ndarray:
        """Reset seed of each evaluation episode (the same for every agent)."""
        state = np.random.SeedSequence([self.eval_seed, self.seed]).generate_state(
            self.eval_episodes, dtype=np.uint32
        )
        return state.astype(np.int64)

    def limits(self) -> EnvLimits | None:
        """The environment's reward range and session cap (``None``: it cannot be built)."""
        return env_limits(json.dumps(self.env.kwargs, sort_keys=True, default=str))


@dataclass(frozen=True)
class EvalSummary:
    """Greedy evaluation of one cell (means over its episodes).

    Attributes:
        episodes: Number of episodes.
        mean_return: Mean episode return.
        mean_optimal_return: Mean over episodes of the sum of ``optimal_reward`` along
            the agent's own trajectory.
        fraction_of_optimal: Total return / total optimal return (same trajectories).
        listen_rate: Listens / recommendations.
        mean_length: Mean recommendations per session.
        mean_regret: Mean over episodes of the sum of ``optimal - expected`` reward.
    """

    episodes: int
    mean_return: float
    mean_optimal_return: float
    fraction_of_optimal: float
    listen_rate: float
    mean_length: float
    mean_regret: float


@dataclass(frozen=True)
class CellResult:
    """What ``result.json`` holds.

    Attributes:
        cell: The cell's key.
        agent: Agent name.
        type: Agent registry key.
        seed: Experiment seed.
        learns: Whether the agent learns (fixed policies skip training).
        train_steps: Env steps actually trained.
        train_episodes: Finished training episodes.
        train_regret: Cumulative training regret (``None`` when the agent does not learn).
        train_time_s: Training wall time.
        eval_time_s: Evaluation wall time.
        cpu_time_s: CPU time of the whole cell (its process; one thread), which unlike
            wall time does not depend on what else the machine is running.
        eval: The evaluation.
        settings: ``Cell.settings()`` of the cell that produced it.
        hyperparameters: The agent's hyperparameters.
        finished: ISO time the cell finished.
    """

    cell: str
    agent: str
    type: str
    seed: int
    learns: bool
    train_steps: int
    train_episodes: int
    train_regret: float | None
    train_time_s: float
    eval_time_s: float
    eval: EvalSummary
    settings: dict[str, Any]
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    finished: str = ""
    cpu_time_s: float = 0.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellResult:
        """Inverse of ``dataclasses.asdict``."""
        return cls(**{**data, "eval": EvalSummary(**data["eval"])})

    def problems(self, cell: Cell) -> list[str]:
        """Why this cannot be a result of ``cell`` (empty when it can).

        Every number must be finite (the rates may be NaN, as ``summarize_eval`` makes
        them for zero denominators); returns lie within a session cap of the step
        reward's range, regrets within the same of its spread, the session length
        within [1, cap]; the fraction of optimal is the ratio of the returns; the
        evaluation has the cell's number of episodes, and the result the cell's name,
        agent, type and seed. The one check of a result: on resume (``load_result``,
        which reruns the cell) and in the report (``report.check_result``, which
        leaves it out).
        """
        e, inf = self.eval, math.inf
        limits = cell.limits()
        low, high = limits.returns if limits is not None else (-inf, inf)
        cap = limits.max_steps if limits is not None else inf
        spread = limits.step_spread if limits is not None else inf
        steps = self.train_steps if isinstance(self.train_steps, (int, float)) else inf
        checks = [
            ("eval.mean_return", e.mean_return, low, high, False),
            ("eval.mean_optimal_return", e.mean_optimal_return, low, high, False),
            ("eval.fraction_of_optimal", e.fraction_of_optimal, -inf, inf, True),
            ("eval.listen_rate", e.listen_rate, 0.0, 1.0, True),
            ("eval.mean_length", e.mean_length, 1.0, cap, False),
            ("eval.mean_regret", e.mean_regret, 0.0, spread * cap, False),  # optimal >= any
            ("train_steps", self.train_steps, 0, inf, False),
            ("train_episodes", self.train_episodes, 0, inf, False),
            ("train_time_s", self.train_time_s, 0.0, inf, False),
            ("eval_time_s", self.eval_time_s, 0.0, inf, False),
            ("cpu_time_s", self.cpu_time_s, 0.0, inf, False),
        ]
        if self.train_regret is not None:
            finite = math.isfinite(spread) and math.isfinite(steps)
            bound = spread * steps if finite else inf
            checks.append(("train_regret", self.train_regret, 0.0, bound, False))
        found = [p for p in (out_of_range(*check) for check in checks) if p is not None]
        if e.episodes != cell.eval_episodes:
            found.append(f"eval.episodes is {e.episodes!r}, the cell has {cell.eval_episodes}")
        wanted = {"cell": cell.key, "agent": cell.agent.name, "type": cell.agent.type}
        for name, value in {**wanted, "seed": cell.seed}.items():
            if getattr(self, name) != value or isinstance(getattr(self, name), bool):
                found.append(f"{name} is {getattr(self, name)!r}, the cell's is {value!r}")
        if not isinstance(self.learns, bool):
            found.append(f"learns is {self.learns!r}, not true or false")
        if not found and e.mean_optimal_return != 0:
            ratio = e.mean_return / e.mean_optimal_return  # total / total, per episode
            if not math.isclose(e.fraction_of_optimal, ratio, rel_tol=1e-6, abs_tol=1e-9):
                found.append(
                    f"eval.fraction_of_optimal is {e.fraction_of_optimal!r}, but mean_return / "
                    f"mean_optimal_return is {ratio!r}"
                )
        return found

    def describe(self) -> str:
        """One line for the log when the cell finishes."""
        e = self.eval
        return (
            f"return {e.mean_return:.3f} ({e.fraction_of_optimal:.1%} of optimal), "
            f"train {self.train_time_s:.0f} s, eval {self.eval_time_s:.0f} s"
        )


Cell.result_type = CellResult


class Metered:
    """Mixed into a setting's vector env: counts steps and sums the regret of every step.

    The regret of a step is ``info["regret"]`` (``optimal_reward - expected_reward``)
    summed over the slots; ``on_step(num_envs)`` is called after each step.
    """

    num_envs: int

    def __init__(
        self, *args: Any, on_step: Callable[[int], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_step = on_step
        self.steps_taken = 0
        self.cumulative_regret = 0.0

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step as the vector env does, and meter it."""
        out = super().step(actions)  # type: ignore[misc]
        self.steps_taken += self.num_envs
        self.cumulative_regret += float(np.sum(out[4]["regret"]))
        if self.on_step is not None:
            self.on_step(self.num_envs)
        return out


@functools.cache
def metered_class(setting: str) -> type:
    """The vector-env class of ``setting`` with :class:`Metered` mixed in."""
    base = vector_env_class(setting)
    return type(f"Metered{base.__name__}", (Metered, base), {})


def metered_env(num_envs: int, on_step: Callable[[int], None] | None, **kwargs: Any) -> Any:
    """A metered vector env of the setting ``kwargs`` ask for."""
    setting, kwargs = setting_kwargs(kwargs)
    return metered_class(setting)(num_envs=num_envs, on_step=on_step, **kwargs)


def evaluate(
    agent: Any,
    env_kwargs: dict[str, Any],
    num_envs: int,
    reset_seeds: np.ndarray,
    on_episodes: Callable[[int], None] | None = None,
) -> dict[str, np.ndarray]:
    """Greedy evaluation, one episode per reset seed.

    Episodes run in batches of ``num_envs`` slots (the last batch padded with extra
    seeds whose episodes are not counted); in each batch only the first session of
    every slot counts, so that the episodes depend only on their seeds and the agent.

    Args:
        agent: A bound agent.
        env_kwargs: ``MusicRecVectorEnv`` keyword arguments.
        num_envs: Slots per batch.
        reset_seeds: One reset seed per episode.
        on_episodes: Called with the number of episodes finished after each batch.

    Returns:
        Per-episode arrays: the columns of ``EVAL_COLUMNS``.
    """
    n = len(reset_seeds)
    env = make_vector_env(num_envs=num_envs, **env_kwargs)
    agent.attach(env)
    columns: dict[str, list[np.ndarray]] = {k: [] for k in EVAL_COLUMNS}
    for start in range(0, n, num_envs):
        chunk = reset_seeds[start : start + num_envs]
        count = len(chunk)
        padding = 2**40 + np.arange(num_envs - count, dtype=np.int64)  # not counted
        seeds = np.concatenate([chunk, padding])
        obs, info = env.reset(seed=seeds.tolist())
        agent.episode_end(np.ones(num_envs, dtype=bool))
        active = np.ones(num_envs, dtype=bool)
        ret = np.zeros(num_envs)
        opt = np.zeros(num_envs)
        regret = np.zeros(num_envs)
        length = np.zeros(num_envs, dtype=np.int64)
        listens = np.zeros(num_envs, dtype=np.int64)
        while active[:count].any():
            actions = agent.act(obs, info, explore=False)
            obs, rewards, terminated, truncated, info = env.step(actions)
            dones = terminated | truncated
            ret += np.where(active, rewards, 0.0)
            opt += np.where(active, info["optimal_reward"], 0.0)
            regret += np.where(active, info["regret"], 0.0)
            length += active
            listens += active & np.asarray(info["listened"], dtype=bool)
            agent.episode_end(dones)
            active &= ~dones
        columns["reset_seed"].append(chunk)
        columns["return"].append(ret[:count])
        columns["optimal_return"].append(opt[:count])
        columns["length"].append(length[:count])
        columns["listens"].append(listens[:count])
        columns["regret"].append(regret[:count])
        if on_episodes is not None:
            on_episodes(count)
    return {k: np.concatenate(v) for k, v in columns.items()}


def summarize_eval(episodes: dict[str, np.ndarray]) -> EvalSummary:
    """Means of a per-episode evaluation."""
    total_opt = float(episodes["optimal_return"].sum())
    steps = float(episodes["length"].sum())
    return EvalSummary(
        episodes=len(episodes["return"]),
        mean_return=float(episodes["return"].mean()),
        mean_optimal_return=float(episodes["optimal_return"].mean()),
        fraction_of_optimal=float(episodes["return"].sum()) / total_opt if total_opt else math.nan,
        listen_rate=float(episodes["listens"].sum()) / steps if steps else math.nan,
        mean_length=float(episodes["length"].mean()),
        mean_regret=float(episodes["regret"].mean()),
    )


def _write_eval_csv(path: Path, episodes: dict[str, np.ndarray]) -> None:
    import pandas as pd

    pd.DataFrame(episodes).to_csv(path, index=False, float_format="%.6g")


def cell_paths(run_dir: Path, cell: Cell) -> tuple[Path, Path]:
    """The cell's directory and its TensorBoard directory."""
    return run_dir / "cells" / cell.key, run_dir / "tb" / cell.tb_name


def run_cell(cell: Cell, run_dir: str | Path, progress: Progress | None = None) -> CellResult:
    """Train and evaluate one cell from scratch; ``result.json`` is written last.

    Args:
        cell: The cell.
        run_dir: The run directory.
        progress: Receives progress events.

    Returns:
        The cell's result (also in ``cells/<key>/result.json``).
    """
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from agents.base import AgentContext, make_agent
    from experiments.tblog import TrainingLogger, hparams_markdown

    progress = progress or Progress()
    run_dir = Path(run_dir)
    cell_dir, tb_dir = cell_paths(run_dir, cell)
    for stale in (cell_dir, tb_dir):
        if stale.exists():
            shutil.rmtree(stale)
    cell_dir.mkdir(parents=True)
    tb_dir.mkdir(parents=True)
    # One thread per cell: cells run side by side, and a multi-threaded BLAS on a busy
    # machine is up to 100x slower than a single thread (small matrices, spin-waits).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    blas = _limit_blas_threads()
    # The same for the simulator's kernels: numba's idle workers spin after every batch
    # step and take the core from PyTorch (PPO on a fitted world: 1.3-2.1x the fps with
    # one numba thread, measured on 2 cores with two cells running).
    numba_threads = numba.get_num_threads()
    numba.set_num_threads(1)
    cpu0 = time.process_time()
    writer = SummaryWriter(log_dir=str(tb_dir))
    try:
        env = metered_env(
            cell.env.num_envs, lambda n: progress.advance(cell.key, n), **cell.env.kwargs
        )
        agent = make_agent(cell.agent.type, cell.agent.params)
        agent.bind(AgentContext.from_env(env, cell.seed))
        agent.attach(env)
        agent.set_log_dir(str(tb_dir))
        hparams = agent.hyperparameters()
        writer.add_text(
            "hyperparameters",
            hparams_markdown(
                {
                    "agent": cell.agent.name,
                    "type": cell.agent.type,
                    **{f"params.{k}": v for k, v in hparams.items()},
                    "seed": cell.seed,
                    "env_id": cell.env.id,
                    **{f"env.{k}": v for k, v in cell.env.kwargs.items()},
                    "num_envs": cell.env.num_envs,
                    "train_steps": cell.train_steps,
                    "eval_episodes": cell.eval_episodes,
                }
            ),
        )
        logger = TrainingLogger(
            writer, lambda: env.cumulative_regret, log_every=max(1, cell.train_steps // 1000)
        )
        learns = bool(agent.learns_online)
        t0 = time.perf_counter()
        if learns:
            progress.phase(cell.key, "train", cell.train_steps)
            agent.learn(env, cell.train_steps, logger)
            logger.flush()
        train_time = time.perf_counter() - t0
        steps = max(env.steps_taken, logger.rows[-1][0] if logger.rows else 0)

        t0 = time.perf_counter()
        progress.phase(cell.key, "eval", cell.eval_episodes)
        episodes = evaluate(
            agent,
            cell.env.kwargs,
            cell.env.num_envs,
            cell.eval_reset_seeds(),
            on_episodes=lambda n: progress.advance(cell.key, n),
        )
        summary = summarize_eval(episodes)
        eval_time = time.perf_counter() - t0
        for tag, value in (
            ("eval/return", summary.mean_return),
            ("eval/return_fraction_of_optimal", summary.fraction_of_optimal),
            ("eval/listen_rate", summary.listen_rate),
            ("eval/session_length", summary.mean_length),
            ("eval/regret", summary.mean_regret),
        ):
            writer.add_scalar(tag, value, steps)
        writer.flush()

        logger.write_csv(cell_dir / "curve.csv")
        _write_eval_csv(cell_dir / "eval_episodes.csv", episodes)
        result = CellResult(
            cell=cell.key,
            agent=cell.agent.name,
            type=cell.agent.type,
            seed=cell.seed,
            learns=learns,
            train_steps=int(steps),
            train_episodes=logger.episodes,
            # None: no env step in training (fixed policies, offline RL from a log)
            train_regret=env.cumulative_regret if learns and steps else None,
            train_time_s=round(train_time, 3),
            eval_time_s=round(eval_time, 3),
            eval=summary,
            settings=cell.settings(),
            hyperparameters=hparams,
            finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            cpu_time_s=round(time.process_time() - cpu0, 3),
        )
        atomic_write_json(cell_dir / "result.json", dataclasses.asdict(result))
        return result
    except BaseException:
        (cell_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        raise
    finally:
        writer.close()
        torch.set_num_threads(threads)
        numba.set_num_threads(numba_threads)
        if blas is not None:
            blas.restore_original_limits()
        progress.done(cell.key)


def _limit_blas_threads() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return None
    return threadpool_limits(limits=1)
