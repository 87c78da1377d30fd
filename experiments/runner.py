"""``musicrec run CONFIG``: train and evaluate every (agent, seed) cell of an experiment.

A *cell* trains one agent with one seed on ``MusicRecVectorEnv(num_envs, **kwargs)``,
logging every finished training episode to TensorBoard, then evaluates it greedily on
``budget.eval_episodes`` episodes whose reset seeds depend only on the experiment seed
(the same listeners and randomness for every agent), in a separate environment so that
no training state leaks. The ``random`` and ``oracle`` references are cells too, for
every seed, so that every agent gets a normalised score.

Run directory (default ``runs/<name>``)::

    config.yaml                       exact copy of the config that ran
    command.txt                       the exact command of every invocation (appended)
    run.lock                          held (flock) by the run using the directory; its pid
    cells/<agent>__seed<k>/
        result.json                   written atomically when the cell is done
        curve.csv                     one row per finished training episode
        eval_episodes.csv             one row per evaluation episode
        error.txt                     traceback, when the cell failed
    tb/MusicRec-v0__<name>__<agent>__seed<k>/   TensorBoard event files (and SB3's own)
    results.csv  results.md  results_per_seed.csv  curves.png

Resuming: rerunning the same config into the same directory skips the cells whose
``result.json`` exists (and was made with the same settings); any other cell starts
from scratch (its partial TensorBoard directory is cleared). A different config is
refused unless ``force``, which reruns only the cells whose settings changed. A
``result.json`` read back is checked first (finite numbers, returns and regrets within
what the environment's reward range and session cap allow, the evaluation's episode
count): one that fails, or cannot be read, is not trusted: a warning names the file and
the cell is run again.

Lifecycle:

- One run per directory: the run holds an exclusive ``flock`` on ``run.lock`` for its
  whole life (the kernel releases it when the process ends, however it ends); a second
  run into the same directory fails at once with ``RunDirLockedError``, naming the
  directory and the pid holding it.
- Ctrl-C (SIGINT): the pool's workers ignore it; the main process stops them, keeps
  every finished cell and raises ``RunInterrupted`` (a ``KeyboardInterrupt``) whose
  message is one line with the command that resumes the run; ``musicrec run`` prints it
  and exits with 130. A second Ctrl-C while it stops ends the process at once (130).
- The pool's workers die with the main process, even under ``kill -9`` (Linux:
  ``PR_SET_PDEATHSIG``; elsewhere a watchdog thread polls the parent's pid), so a crash
  leaves no cell running unowned and an immediate rerun does not race it.
- The final outputs (tables, plot) are written after every finished cell's
  ``result.json``; a failure to write one (a full disk) is an ``OutputWriteError``, one
  line naming the file, and rerunning the same command writes them without running any
  cell.

Grids (``sweep:``, see ``experiments.sweep``): every variant of an agent is an agent
of its own in the cells, tables and plots (``cells/LinUCB@alpha=0.5__seed0``), with the
swept values as extra columns of the tables. Backends: ``local`` runs the cells in a
pool of processes on this machine; ``ray`` runs each cell as a Ray Tune trial
(``experiments.backends``), on a local Ray instance or a cluster. Either way a cell
writes the same files, and ``result.json`` alone decides what a rerun skips.

``task: embeddings`` configs (``experiments.embedding_task``) use the same machinery
with cells that train track embeddings and score playlist completion.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import functools
import json
import math
import multiprocessing as mp
import os
import queue
import shlex
import shutil
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from experiments.config import (
    AgentSpec,
    EmbeddingExperimentConfig,
    EnvConfig,
    ExperimentConfig,
    load_config,
    parse_config,
)
from musicrec_gym.envs.vector import MusicRecVectorEnv
from musicrec_gym.errors import (
    CellFailedError,
    ConfigError,
    MusicRecError,
    OutputWriteError,
    RunDirLockedError,
)

#: Columns of a cell's ``eval_episodes.csv``.
EVAL_COLUMNS = ("reset_seed", "return", "optimal_return", "length", "listens", "regret")
#: Where ``musicrec run`` can run the cells.
BACKENDS = ("local", "ray")
#: Why a cell that a stopped run did not finish has no result.
INTERRUPTED = "not finished: the run stopped before this cell ended"


#: The lock file of a run directory.
LOCK_FILE = "run.lock"
#: Exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
INTERRUPTED_EXIT = 130


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped the run; finished cells are kept and the message says how to resume.

    A ``KeyboardInterrupt``, so that code catching that still does; ``str()`` is one line.
    """


# ------------------------------------------------------------------------ records


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
class EnvLimits:
    """What one step and one session of an environment can be worth.

    Attributes:
        reward_low: Lowest reward of a step.
        reward_high: Highest reward of a step.
        max_steps: Most recommendations in a session.
    """

    reward_low: float
    reward_high: float
    max_steps: int

    @property
    def returns(self) -> tuple[float, float]:
        """Range of an episode's return (and of a mean of them)."""
        cap = self.max_steps
        return min(self.reward_low, 0.0) * cap, max(self.reward_high, 0.0) * cap

    @property
    def step_spread(self) -> float:
        """Largest possible regret of one step (either sign)."""
        return self.reward_high - self.reward_low


def step_reward_range(mode: str, params: Any) -> tuple[float, float]:
    """Lowest and highest reward of one step in a reward mode (``RewardModel.draw``)."""
    if mode == "listen":
        return 0.0, 1.0
    if mode == "time":
        values = (*params.time_listened, *params.time_skipped)
        return float(min(values)), float(max(values))
    return -1.0, 4.0  # event: a skip -1; a listen 1, plus a like 1, plus an add 2


@functools.lru_cache(maxsize=16)
def env_limits(kwargs_json: str) -> EnvLimits | None:
    """``EnvLimits`` of ``MusicRecVectorEnv(**kwargs)`` (JSON), or ``None`` if it fails."""
    try:
        sim = MusicRecVectorEnv(num_envs=1, **json.loads(kwargs_json)).core.sim
        low, high = step_reward_range(sim.reward.mode, sim.reward.params)
        return EnvLimits(low, high, int(sim.max_steps))
    except (MusicRecError, OSError, ValueError, TypeError, AttributeError):
        return None


def out_of_range(
    name: str, value: Any, low: float = -math.inf, high: float = math.inf, nan_ok: bool = False
) -> str | None:
    """Why ``value`` is not a number in ``[low, high]`` (``None`` when it is)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return f"{name} is {value!r}, not a number"
    try:
        value = float(value)
    except OverflowError:  # an int too large for a float
        return f"{name} is {value!r}, not a finite number"
    if math.isnan(value):
        return None if nan_ok else f"{name} is NaN"
    if math.isinf(value):
        return f"{name} is {value}"
    slack = 1e-9 * max([1.0, *(abs(b) for b in (low, high) if math.isfinite(b))])
    if value < low - slack or value > high + slack:
        return f"{name} = {value:g} is outside [{low:g}, {high:g}]"
    return None


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


@dataclass
class RunSummary:
    """What ``run_experiment`` did.

    Attributes:
        run_dir: The run directory.
        config: The config that ran.
        results: Result of every cell, by key (``CellResult`` or, for an embeddings
            experiment, ``EmbeddingCellResult``).
        computed: Keys of the cells computed by this invocation.
        skipped: Keys of the cells reused from an earlier invocation.
        table: The Markdown results table.
        elapsed_s: Wall time of this invocation.
    """

    run_dir: Path
    config: ExperimentConfig | EmbeddingExperimentConfig
    results: dict[str, Any]
    computed: list[str]
    skipped: list[str]
    table: str
    elapsed_s: float


# ----------------------------------------------------------------------- progress


class Progress:
    """Receives progress events (no-op; subclasses display them)."""

    def phase(self, cell: str, phase: str, total: int) -> None:
        """A cell started a phase (``train`` or ``eval``) of ``total`` units."""

    def advance(self, cell: str, n: int) -> None:
        """A cell did ``n`` more units of its current phase."""

    def done(self, cell: str) -> None:
        """A cell finished (successfully or not)."""


class _QueueProgress(Progress):
    """Worker side: forwards events to the main process, at most ~10 per second."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        self.pending = 0
        self.last = 0.0

    def phase(self, cell: str, phase: str, total: int) -> None:
        self._flush(cell)
        self.channel.put(("phase", cell, phase, total))

    def advance(self, cell: str, n: int) -> None:
        self.pending += n
        now = time.monotonic()
        if now - self.last > 0.1:
            self._flush(cell)
            self.last = now

    def done(self, cell: str) -> None:
        self._flush(cell)
        self.channel.put(("done", cell))

    def _flush(self, cell: str) -> None:
        if self.pending:
            self.channel.put(("advance", cell, self.pending))
            self.pending = 0


class _TqdmProgress(Progress):
    """Main side: one bar over cells and one bar per running cell (over steps)."""

    def __init__(self, total_cells: int, slots: int) -> None:
        from tqdm.auto import tqdm

        self._tqdm = tqdm
        # disable=None: bars only on a terminal; the per-cell lines are printed anyway.
        self.cells = tqdm(total=total_cells, desc="cells", unit="cell", position=0, disable=None)
        self.free = list(range(1, slots + 1))
        self.bars: dict[str, Any] = {}
        self.where: dict[str, int] = {}

    def phase(self, cell: str, phase: str, total: int) -> None:
        if cell in self.bars:
            self.bars.pop(cell).close()
        else:
            self.where[cell] = self.free.pop(0) if self.free else len(self.where) + 1
        unit = "step" if phase == "train" else "episode"
        self.bars[cell] = self._tqdm(
            total=total,
            desc=f"{cell} {phase}",
            unit=unit,
            unit_scale=True,
            position=self.where[cell],
            leave=False,
            disable=None,
        )

    def advance(self, cell: str, n: int) -> None:
        if cell in self.bars:
            self.bars[cell].update(n)

    def done(self, cell: str) -> None:
        if cell in self.bars:
            self.bars.pop(cell).close()
        if cell in self.where:
            self.free.append(self.where.pop(cell))
            self.free.sort()
        self.cells.update(1)

    def write(self, line: str) -> None:
        """Print a line without breaking the bars."""
        self.cells.write(line)

    def close(self) -> None:
        """Close every bar."""
        for bar in self.bars.values():
            bar.close()
        self.cells.close()


# ------------------------------------------------------------------- environment


class MeteredVectorEnv(MusicRecVectorEnv):
    """``MusicRecVectorEnv`` that counts steps and sums the regret of every step.

    The regret of a step is ``info["regret"]`` (``optimal_reward - expected_reward``)
    summed over the slots; ``on_step(num_envs)`` is called after each step.
    """

    def __init__(
        self, *args: Any, on_step: Callable[[int], None] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.on_step = on_step
        self.steps_taken = 0
        self.cumulative_regret = 0.0

    def step(self, actions: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        """Step as ``MusicRecVectorEnv.step`` does, and meter it."""
        out = super().step(actions)
        self.steps_taken += self.num_envs
        self.cumulative_regret += float(np.sum(out[4]["regret"]))
        if self.on_step is not None:
            self.on_step(self.num_envs)
        return out


# ----------------------------------------------------------------------- one cell


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
    env = MusicRecVectorEnv(num_envs=num_envs, **env_kwargs)
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


def _atomic_write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=_json_default)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


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
    cpu0 = time.process_time()
    writer = SummaryWriter(log_dir=str(tb_dir))
    try:
        env = MeteredVectorEnv(
            num_envs=cell.env.num_envs,
            on_step=lambda n: progress.advance(cell.key, n),
            **cell.env.kwargs,
        )
        agent = make_agent(cell.agent.type, cell.agent.params)
        agent.bind(AgentContext.from_env(env, cell.seed))
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
            train_regret=env.cumulative_regret if learns else None,
            train_time_s=round(train_time, 3),
            eval_time_s=round(eval_time, 3),
            eval=summary,
            settings=cell.settings(),
            hyperparameters=hparams,
            finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            cpu_time_s=round(time.process_time() - cpu0, 3),
        )
        _atomic_write_json(cell_dir / "result.json", dataclasses.asdict(result))
        return result
    except BaseException:
        (cell_dir / "error.txt").write_text(traceback.format_exc(), encoding="utf-8")
        raise
    finally:
        writer.close()
        torch.set_num_threads(threads)
        if blas is not None:
            blas.restore_original_limits()
        progress.done(cell.key)


def _limit_blas_threads() -> Any:
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - scikit-learn brings it
        return None
    return threadpool_limits(limits=1)


def load_result(run_dir: Path, cell: Any, warn: Callable[[str], None] | None = None) -> Any:
    """The cell's saved result, if it exists, was made with the cell's settings and is sane.

    ``cells/<key>/result.json`` is the one record of a finished cell, whichever backend
    ran it: a rerun skips exactly the cells for which this returns a result. A file
    that cannot be read, or whose numbers the cell could not have produced (the
    result's ``problems(cell)``, e.g. a hand-edited return), is not trusted: ``warn``
    gets one line naming the file, and the cell is run again.
    """
    path = Path(run_dir) / "cells" / cell.key / "result.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        result = type(cell).result_type.from_dict(data)
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        if warn is not None:
            warn(f"{path}: cannot be read ({type(err).__name__}: {err}); running the cell again")
        return None
    # Round-trip the settings through JSON so tuples and lists compare equal.
    settings = json.loads(json.dumps(cell.settings(), default=_json_default))
    if result.settings != settings:
        return None
    problems = result.problems(cell) if hasattr(result, "problems") else []
    if problems:
        if warn is not None:
            warn(
                f"{path}: not a result this cell can produce ({'; '.join(problems)}); "
                "running the cell again"
            )
        return None
    return result


def write_output(path: Path, write: Callable[[Path], Any]) -> None:
    """Write one final output of a run through a temporary file, then rename it.

    ``write(tmp)`` writes the file at ``tmp`` (same directory and suffix). A full disk or
    any other ``OSError`` leaves the previous ``path`` untouched and raises an
    ``OutputWriteError`` naming ``path``.
    """
    tmp = path.with_name(f"{path.stem}.partial{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as err:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise output_error(path, err) from err


def output_error(path: Path, err: OSError) -> OutputWriteError:
    """The one-line ``OutputWriteError`` of a final output (or run directory) ``path``."""
    if isinstance(err, OutputWriteError):
        return err
    why = err.strerror or str(err) or type(err).__name__
    run_dir = path if path.is_dir() else path.parent
    return OutputWriteError(
        f"cannot write {path}: {why}. The finished cells are kept in {run_dir / 'cells'}; "
        "fix that and rerun the same command to write the outputs (no cell is run again)."
    )


def file_being_written(err: OSError, outputs: list[Path]) -> Path | None:
    """Which of ``outputs`` was being written when ``err`` was raised, if that is known.

    The file the OS names (an ``open`` that failed), else the innermost frame of the
    traceback that holds one of the paths (the argument of ``to_csv``, ``write_text``,
    ``savefig`` or ``plot_curves``): a write that fails midway (a full disk) names no file.
    """
    wanted = {os.path.abspath(p): p for p in outputs}
    if err.filename is not None:
        name = os.fsdecode(err.filename)
        return wanted.get(os.path.abspath(name), Path(name))
    for frame, _ in reversed(list(traceback.walk_tb(err.__traceback__))):
        for value in frame.f_locals.values():
            if isinstance(value, (str, Path)):
                found = wanted.get(os.path.abspath(value))
                if found is not None:
                    return found
    return None


# ------------------------------------------------------------------ worker glue

_CHANNEL: Any = None
#: prctl(2) option: the signal a process gets when its parent dies.
_PR_SET_PDEATHSIG = 1


def _init_worker(channel: Any, parent_pid: int | None = None) -> None:
    """Pool worker set-up: progress channel, one thread, Ctrl-C ignored, die with the parent."""
    global _CHANNEL
    _CHANNEL = channel
    # Ctrl-C reaches every process of the terminal's group: the main process decides
    # what stops (it stops the workers itself), so a worker never prints a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    import torch

    torch.set_num_threads(1)


def _die_with_parent(parent_pid: int, every_s: float = 0.5) -> None:
    """End this process when ``parent_pid`` (its parent) dies, even by ``kill -9``.

    On Linux the kernel sends SIGKILL (``prctl(PR_SET_PDEATHSIG)``); everywhere a
    daemon thread also polls the parent's pid and exits when the process has been
    re-parented. Checked once right away too, for a parent that died before this ran.
    """
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # pragma: no cover - no prctl: the watchdog only
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(every_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="musicrec-parent-watch", daemon=True).start()


def _run_cell_in_worker(cell: Any, run_dir: str) -> Any:
    progress = _QueueProgress(_CHANNEL) if _CHANNEL is not None else Progress()
    return cell.run(run_dir, progress)


# ------------------------------------------------------------------ lifecycle


@contextmanager
def lock_run_dir(run_dir: Path, log: Callable[[str], None] = print) -> Iterator[Path]:
    """Hold the run directory for this process: an exclusive ``flock`` on ``run.lock``.

    The kernel drops the lock when the process ends, even by ``kill -9``; the file
    stays, holding the pid (and host) of the run that has it while it runs.

    Raises:
        RunDirLockedError: Another process holds the lock.
    """
    path = Path(run_dir) / LOCK_FILE
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock
        yield path
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(fd)
        os.close(fd)
        raise RunDirLockedError(
            f"{run_dir} is in use by another `musicrec run` ({holder} holds {path}); wait for "
            "it to end or stop it, or choose another --out"
        ) from None
    except OSError as err:  # e.g. a filesystem without locks (ENOLCK)
        os.close(fd)
        log(f"warning: cannot lock {path} ({err.strerror}); nothing stops a second run here")
        yield path
        return
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        yield path
    finally:
        with suppress(OSError):  # while still holding it: never erase the next holder's pid
            os.ftruncate(fd, 0)
        os.close(fd)


def _lock_holder(fd: int) -> str:
    """``pid N on HOST`` from a lock file (``an unknown pid`` while it is being written)."""
    try:
        fields = os.pread(fd, 200, 0).decode("utf-8", "replace").split()
    except OSError:
        fields = []
    if not fields:
        return "an unknown pid"
    return f"pid {fields[0]}" + (f" on {fields[1]}" if len(fields) > 1 else "")


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore Ctrl-C in the block; processes started in it inherit that from birth.

    Around the pool's ``submit`` calls, which start the workers: a Ctrl-C then reaches
    a new worker before its initializer could ignore it (and print a traceback).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextmanager
def _second_interrupt_exits(cleanup: Callable[[], None]) -> Iterator[None]:
    """While stopping after a Ctrl-C: another Ctrl-C runs ``cleanup`` and exits (130)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def exit_now(signum: int, frame: Any) -> None:
        cleanup()
        with suppress(OSError):
            os.write(2, b"interrupted again: stopped at once; rerun the same command to resume\n")
        os._exit(INTERRUPTED_EXIT)

    old = signal.signal(signal.SIGINT, exit_now)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _interrupted(run_dir: Path, cells: list[Any], argv: list[str]) -> RunInterrupted:
    done = sum((run_dir / "cells" / c.key / "result.json").is_file() for c in cells)
    return RunInterrupted(
        f"interrupted; {done} of {len(cells)} cells are finished and kept in {run_dir}. "
        f"Resume with: {shlex.join(argv)}"
    )


# ------------------------------------------------------------------ experiment


def plan_cells(config: ExperimentConfig) -> list[Cell]:
    """Every (agent variant, seed) cell, the references first (see ``experiments.sweep``)."""
    from experiments.sweep import agent_variants

    variants = agent_variants(config)
    ordered = sorted(variants, key=lambda v: (v.agent.type not in ("random", "oracle"),))
    return [
        Cell(
            experiment=config.name,
            env=variant.env,
            agent=variant.agent,
            seed=seed,
            train_steps=config.train_steps(variant.agent),
            eval_episodes=config.budget.eval_episodes,
            eval_seed=config.budget.eval_seed,
            base=variant.base,
            point=variant.point,
            swept=variant.swept,
        )
        for variant in ordered
        for seed in config.seeds
    ]


def _flat(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flat(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(data, (list, tuple)) and data and all(isinstance(v, dict) for v in data):
        out = {}
        for i, value in enumerate(data):
            out.update(_flat(value, f"{prefix}[{i}]"))
        return out
    return {prefix: data}


def config_differences(old: ExperimentConfig, new: ExperimentConfig) -> list[str]:
    """Human-readable differences ``key: old -> new`` between two configs."""
    a, b = _flat(old.to_dict()), _flat(new.to_dict())
    lines = []
    for key in sorted(set(a) | set(b), key=lambda k: (k not in a, k)):
        if a.get(key, "<absent>") != b.get(key, "<absent>"):
            lines.append(f"{key}: {a.get(key, '<absent>')!r} -> {b.get(key, '<absent>')!r}")
    return lines


def _check_run_dir(run_dir: Path, config: ExperimentConfig, force: bool) -> None:
    saved_path = run_dir / "config.yaml"
    if not saved_path.is_file():
        return
    try:
        saved = parse_config(saved_path.read_text(encoding="utf-8"), source=str(saved_path))
        diffs = config_differences(saved, config)
    except ConfigError as err:
        diffs = [f"the saved config is no longer valid ({err})"]
    if diffs and not force:
        shown = "; ".join(diffs[:5]) + (f"; and {len(diffs) - 5} more" if len(diffs) > 5 else "")
        raise ConfigError(
            f"{run_dir} holds a run of a different config (saved in {saved_path}): {shown}. "
            "Rerun with the saved config, choose another --out, or pass --force to rerun "
            "the cells whose settings changed."
        )


def _preflight(config: ExperimentConfig) -> None:
    """Bind every agent variant to its grid point's environment before anything runs.

    Each environment is built once, so that a bad world or parameter fails at once.
    """
    from agents.base import AgentContext, make_agent
    from experiments.sweep import agent_variants

    contexts: dict[str, Any] = {}
    for variant in agent_variants(config):
        kwargs = variant.env.kwargs
        marker = json.dumps(kwargs, sort_keys=True, default=str)
        if marker not in contexts:
            try:
                env = MusicRecVectorEnv(num_envs=1, **kwargs)
            except MusicRecError as err:
                raise ConfigError(f"{config.source}: env.kwargs {kwargs}: {err}") from err
            contexts[marker] = AgentContext.from_env(env, 0)
        spec = variant.agent
        agent = make_agent(spec.type, spec.params)
        try:
            agent.bind(contexts[marker])
        except (ConfigError, ValueError, TypeError) as err:
            raise ConfigError(f"{config.source}: agent {spec.name!r}: {err}") from err


@dataclass(frozen=True)
class Task:
    """What differs between the kinds of experiment (``task:`` of the config).

    Attributes:
        plan: ``config -> cells`` (each has ``key``, ``tb_name``, ``settings()``,
            ``run(run_dir, progress)``, ``cost()`` and ``result_type``, whose
            ``problems(cell)`` says why a ``result.json`` read back cannot be trusted).
        preflight: ``config -> None``; raises ``ConfigError`` for what would fail later.
        report: ``(run_dir, config, cells, results) -> Markdown`` of ``results.md``;
            raises ``OutputWriteError`` naming the file it cannot write.
    """

    plan: Callable[[Any], list[Any]]
    preflight: Callable[[Any], None]
    report: Callable[[Path, Any, list[Any], dict[str, Any]], str]


#: The files ``experiments.report.write_report`` writes into the run directory, in order.
AGENT_OUTPUTS = ("results_per_seed.csv", "results.csv", "results.md", "curves.png")


def _write_agents_report(
    run_dir: Path, config: ExperimentConfig, cells: list[Cell], results: dict[str, Any]
) -> str:
    """``experiments.report.write_report``; an ``OSError`` becomes an ``OutputWriteError``.

    The error names the file being written (``file_being_written``).
    """
    from experiments.report import write_report

    try:
        return write_report(run_dir, config, cells, results)
    except OSError as err:
        outputs = [run_dir / name for name in AGENT_OUTPUTS]
        raise output_error(file_being_written(err, outputs) or run_dir, err) from err


AGENTS_TASK = Task(plan=plan_cells, preflight=_preflight, report=_write_agents_report)


def task_of(config: ExperimentConfig | EmbeddingExperimentConfig) -> Task:
    """The ``Task`` that runs a config."""
    if config.task == "embeddings":
        from experiments.embedding_task import EMBEDDINGS_TASK

        return EMBEDDINGS_TASK
    return AGENTS_TASK


def run_experiment(
    config_path: str | Path,
    out: str | Path | None = None,
    jobs: int | None = None,
    quiet: bool = False,
    force: bool = False,
    command: list[str] | None = None,
    log: Callable[[str], None] = print,
    backend: str = "local",
    address: str | None = None,
    ray_callbacks: list[Any] | None = None,
) -> RunSummary:
    """Run (or resume) an experiment.

    Args:
        config_path: The YAML config.
        out: Run directory (default ``runs/<name>``).
        jobs: Cells run at once: processes of the local pool (default ``min(2, cells to
            run)``), or Ray Tune's limit on concurrent trials (default: as many as the
            Ray instance has CPUs).
        quiet: No progress bars or per-cell lines.
        force: Accept a config that differs from the one saved in ``out``.
        command: The command line to save in ``command.txt`` (default ``sys.argv``).
        log: Where messages go.
        backend: ``local`` (a process pool) or ``ray`` (one Ray Tune trial per cell).
        address: The Ray cluster to use (``ray`` backend; default: a local instance,
            or ``RAY_ADDRESS`` when set, as ``ray.init`` does).
        ray_callbacks: More ``ray.tune.Callback`` objects for the ``ray`` backend (to
            watch the trials, log them elsewhere, or stop the run).

    Returns:
        What ran and the results.

    Raises:
        ConfigError: The config is invalid, or differs from the saved one.
        RunDirLockedError: Another run is using the run directory.
        CellFailedError: A cell raised (the others still ran and were reported).
        OutputWriteError: A table or the plot could not be written (the cells' results
            are on disk; rerunning writes it without running any cell).
        RunInterrupted: Ctrl-C; the finished cells are kept, the message says how to
            resume.
    """
    t_start = time.perf_counter()
    config_path = Path(config_path)
    config = load_config(config_path)
    if jobs is not None and (not isinstance(jobs, int) or jobs < 1):
        raise ConfigError(f"--jobs must be an int >= 1, got {jobs!r}")
    if backend not in BACKENDS:
        from musicrec_gym.errors import unknown_name_message

        raise ConfigError(f"--backend: {unknown_name_message('backend', str(backend), BACKENDS)}")
    if address is not None and backend != "ray":
        raise ConfigError(f"--address {address} needs --backend ray (got --backend {backend})")
    if backend == "ray":
        from experiments.backends import require_ray

        require_ray()
    task = task_of(config)
    task.preflight(config)
    run_dir = Path(out) if out is not None else Path("runs") / config.name
    argv = command if command is not None else [Path(sys.argv[0]).name, *sys.argv[1:]]

    cells = task.plan(config)

    run_dir.mkdir(parents=True, exist_ok=True)
    with lock_run_dir(run_dir, log):
        try:
            _check_run_dir(run_dir, config, force)
            shutil.copyfile(config_path, run_dir / "config.yaml")
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            with open(run_dir / "command.txt", "a", encoding="utf-8") as fh:
                fh.write(f"# {stamp} cwd={shlex.quote(os.getcwd())}\n{shlex.join(argv)}\n")
            if force:
                _remove_stale(run_dir, cells)
            results: dict[str, CellResult] = {}
            pending: list[Cell] = []
            for cell in cells:
                saved = load_result(run_dir, cell, warn=log)
                if saved is not None:
                    results[cell.key] = saved
                else:
                    pending.append(cell)
            skipped = [c.key for c in cells if c.key in results]
            if skipped and not quiet:
                log(f"resuming {run_dir}: {len(skipped)} of {len(cells)} cells already done")

            # Longest first (by training budget), so that the run does not end with one
            # long cell running alone while the other workers idle.
            pending.sort(key=lambda c: -c.cost())
            if backend == "ray":
                from experiments.backends import execute_on_ray

                failures = execute_on_ray(
                    pending, run_dir, jobs, address, quiet, results, log, callbacks=ray_callbacks
                )
            else:
                n_jobs = max(1, min(jobs if jobs is not None else 2, len(pending)))
                failures = _execute(pending, run_dir, n_jobs, quiet, results, log)

            # Every finished cell's result.json is on disk: now the tables and the plot.
            try:
                table = task.report(
                    run_dir, config, [c for c in cells if c.key in results], results
                )
                write_error = None
            except OSError as err:
                table, write_error = "", output_error(run_dir, err)
        except RunInterrupted:
            raise
        except KeyboardInterrupt:
            raise _interrupted(run_dir, cells, argv) from None
    elapsed = time.perf_counter() - t_start
    if failures:
        message = _failure_message(run_dir, failures)
        raise CellFailedError(message + (f" Also: {write_error}" if write_error else ""))
    if write_error is not None:
        raise write_error
    return RunSummary(
        run_dir=run_dir,
        config=config,
        results=results,
        computed=[c.key for c in pending],
        skipped=skipped,
        table=table,
        elapsed_s=elapsed,
    )


def _failure_message(run_dir: Path, failures: list[tuple[str, str]]) -> str:
    """What went wrong: the cells that raised, and those a stopped run did not finish."""
    broken = [(k, e) for k, e in failures if e != INTERRUPTED]
    stopped = [k for k, e in failures if e == INTERRUPTED]
    parts = []
    if broken:
        names = ", ".join(f"{k} ({e})" for k, e in broken)
        parts.append(
            f"{len(broken)} cell(s) failed: {names}; tracebacks in "
            f"{run_dir / 'cells'}/<cell>/error.txt"
        )
    if stopped:
        shown = ", ".join(stopped[:5]) + (
            f" and {len(stopped) - 5} more" if len(stopped) > 5 else ""
        )
        parts.append(f"the run was stopped before {len(stopped)} cell(s) finished: {shown}")
    return (
        "; ".join(parts) + f". The results of the other cells are in {run_dir}; rerun the "
        "same command to run only the cells that have no result yet."
    )


def _remove_stale(run_dir: Path, cells: list[Cell]) -> None:
    keep_cells = {c.key for c in cells}
    keep_tb = {c.tb_name for c in cells}
    for sub, keep in (("cells", keep_cells), ("tb", keep_tb)):
        base = run_dir / sub
        if base.is_dir():
            for child in base.iterdir():
                if child.is_dir() and child.name not in keep:
                    shutil.rmtree(child)


def _execute(
    pending: list[Cell],
    run_dir: Path,
    jobs: int,
    quiet: bool,
    results: dict[str, CellResult],
    log: Callable[[str], None],
) -> list[tuple[str, str]]:
    """Run the pending cells; returns (key, error) of the cells that failed."""
    if not pending:
        return []
    bars = None if quiet else _TqdmProgress(len(pending), jobs)
    say = (lambda line: None) if quiet else (bars.write if bars is not None else log)
    failures: list[tuple[str, str]] = []
    finished = finisher(run_dir, results, failures, say)

    try:
        if jobs == 1:
            for cell in pending:
                try:
                    finished(cell.key, cell.run(run_dir, bars), None)
                except Exception as err:
                    finished(cell.key, None, err)
        else:
            _execute_parallel(pending, run_dir, jobs, bars, finished)
    finally:
        if bars is not None:
            bars.close()
    return failures


def finisher(
    run_dir: Path,
    results: dict[str, Any],
    failures: list[tuple[str, str]],
    say: Callable[[str], None],
) -> Callable[[str, Any, BaseException | None], None]:
    """The callback of a finished cell: records its result or failure and says so."""

    def finished(key: str, result: Any, error: BaseException | None) -> None:
        if result is not None:
            results[key] = result
            say(f"{key}: {result.describe()}")
        else:
            failures.append((key, f"{type(error).__name__}: {error}"))
            report = run_dir / "cells" / key / "error.txt"
            if not report.exists():  # the cell died outside run_cell (e.g. a broken pool)
                report.parent.mkdir(parents=True, exist_ok=True)
                report.write_text("".join(traceback.format_exception(error)), encoding="utf-8")
            say(f"{key}: FAILED: {type(error).__name__}: {error}")

    return finished


def _execute_parallel(
    pending: list[Cell],
    run_dir: Path,
    jobs: int,
    bars: _TqdmProgress | None,
    finished: Callable[[str, CellResult | None, BaseException | None], None],
) -> None:
    ctx = mp.get_context("spawn")
    channel = ctx.Queue() if bars is not None else None
    pool = cf.ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(channel, os.getpid()),
    )
    try:
        with _sigint_ignored():  # submit starts the workers: they are born ignoring Ctrl-C
            futures = {pool.submit(_run_cell_in_worker, c, str(run_dir)): c for c in pending}
        remaining = set(futures)
        while remaining:
            done, remaining = cf.wait(remaining, timeout=0.1, return_when=cf.FIRST_COMPLETED)
            _drain(channel, bars)
            for fut in done:
                cell = futures[fut]
                err = fut.exception()
                finished(cell.key, None if err else fut.result(), err)
        _drain(channel, bars)
    except BaseException:
        # Ctrl-C, or a failure of the main process: the running cells are abandoned (a
        # rerun starts them afresh) and their workers stopped now, not at exit.
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _stop_pool(pool: cf.ProcessPoolExecutor, timeout_s: float = 5.0) -> None:
    """Kill the pool's workers and wait (boundedly) for them and its manager thread."""
    processes = list((getattr(pool, "_processes", None) or {}).values())

    def kill() -> None:
        for process in processes:
            with suppress(OSError, ValueError, AttributeError):
                process.kill()

    with _second_interrupt_exits(kill):
        kill()
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout_s
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        manager = getattr(pool, "_executor_manager_thread", None)
        if manager is not None:
            manager.join(max(0.0, deadline - time.monotonic()))


def _drain(channel: Any, bars: _TqdmProgress | None) -> None:
    if channel is None or bars is None:
        return
    while True:
        try:
            event = channel.get_nowait()
        except queue.Empty:
            return
        kind, cell, *rest = event
        if kind == "phase":
            bars.phase(cell, *rest)
        elif kind == "advance":
            bars.advance(cell, *rest)
        else:
            bars.done(cell)
