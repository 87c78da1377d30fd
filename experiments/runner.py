"""``musicrec run CONFIG``: train and evaluate every (agent, seed) cell of an experiment.

A *cell* trains one agent with one seed on ``make_vector_env(num_envs, **kwargs)``,
logging every finished training episode to TensorBoard, then evaluates it greedily on
``budget.eval_episodes`` episodes whose reset seeds depend only on the experiment seed
(the same listeners and randomness for every agent), in a separate environment so that
no training state leaks. The ``random`` and ``oracle`` references are cells too, for
every seed, so that every agent gets a normalised score. The cell itself is
``experiments.cells``; this module plans the cells and runs them.

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

Lifecycle (``experiments.lifecycle``, ``experiments.executors``):

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

import json
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from experiments.cells import Cell, CellResult
from experiments.cells import evaluate as evaluate
from experiments.config import load_config, parse_config
from experiments.executors import execute_locally
from experiments.lifecycle import INTERRUPTED, RunInterrupted, interrupted_error, lock_run_dir
from experiments.outputs import file_being_written, load_result, output_error
from experiments.schema import UPPER_REFERENCE, EmbeddingExperimentConfig, ExperimentConfig
from experiments.task import Task
from musicrec_gym.envs.factory import make_vector_env
from musicrec_gym.errors import CellFailedError, ConfigError, MusicRecError

#: Where ``musicrec run`` can run the cells.
BACKENDS = ("local", "ray")


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


def plan_cells(config: ExperimentConfig) -> list[Cell]:
    """Every (agent variant, seed) cell, the references first (see ``experiments.sweep``)."""
    from experiments.sweep import agent_variants

    variants = agent_variants(config)
    refs = ("random", *UPPER_REFERENCE.values())  # references first: every score needs them
    ordered = sorted(variants, key=lambda v: (v.agent.type not in refs,))
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
                env = make_vector_env(num_envs=1, **kwargs)
            except MusicRecError as err:
                raise ConfigError(f"{config.source}: env.kwargs {kwargs}: {err}") from err
            contexts[marker] = AgentContext.from_env(env, 0)
        spec = variant.agent
        agent = make_agent(spec.type, spec.params)
        try:
            agent.bind(contexts[marker])
        except (ConfigError, ValueError, TypeError) as err:
            raise ConfigError(f"{config.source}: agent {spec.name!r}: {err}") from err


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
                failures = execute_locally(pending, run_dir, n_jobs, quiet, results, log)

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
            raise interrupted_error(run_dir, cells, argv) from None
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
