"""Running cells as Ray Tune trials: ``musicrec run CONFIG --backend ray [--address ADDR]``.

Ray Tune only schedules. Each pending cell becomes one trial of a grid search over the
cell keys; the trial calls the cell's own ``run`` (the same function the local process
pool calls), which writes ``cells/<key>/result.json``, ``curve.csv`` and the TensorBoard
files into the run directory exactly as a local run does, and reports the result to
the driver. What was finished is therefore decided by ``result.json`` alone: a rerun
after a crash, a Ctrl-C or a lost node skips the cells that have one and runs the rest;
Tune's own experiment state (kept in ``<run dir>/ray_tune/``) is never restored.

Without an address, ``ray.init`` starts a local Ray instance for the run and stops it
afterwards (it connects to ``RAY_ADDRESS`` instead when that is set, as Ray always
does); with one, it connects to that running cluster. On a cluster every node must
have musicrec-gym (and the world, if the config names one) at the same paths, and the
run directory must be on a filesystem every node sees, since cells write their files
where they run. When Ray is already initialised in this process (a notebook, a test),
that instance is used and left running.

Lifecycle: the driver holds the run directory's lock (``experiments.lifecycle``) as a
local run does. A first Ctrl-C is Tune's: it stops the trials, and the run ends with a
``CellFailedError`` listing the cells not finished (rerun the same command to resume); a
second Ctrl-C raises ``KeyboardInterrupt`` at once (``musicrec run`` prints one line and
exits with 130). When the driver dies (even ``kill -9``), Ray ends the driver's trials
with it (a local instance started here is fate-shared with the driver; its agent
processes may take a minute or two to notice).

Ray Tune is an optional dependency (``pip install "musicrec-gym[ray]"``); without it,
``--backend ray`` fails with a ``ConfigError`` saying so.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from experiments.executors import finisher
from experiments.lifecycle import INTERRUPTED
from experiments.outputs import json_default
from experiments.progress import TqdmProgress
from musicrec_gym.errors import ConfigError

#: How to get Ray Tune.
INSTALL_HINT = 'pip install "musicrec-gym[ray]"  (or: pip install "ray[tune]>=2.9")'


def require_ray() -> tuple[Any, Any]:
    """Import Ray and Ray Tune, or explain how to install them.

    Returns:
        The ``ray`` and ``ray.tune`` modules.

    Raises:
        ConfigError: Ray Tune is not installed.
    """
    try:
        import ray
        from ray import tune
    except ImportError as err:
        raise ConfigError(
            f"--backend ray needs Ray Tune, which is not installed ({err}). Install it with: "
            f"{INSTALL_HINT}; or run the cells locally with --backend local."
        ) from err
    return ray, tune


def run_trial(config: dict[str, Any], cells: dict[str, Any], run_dir: str, cwd: str) -> None:
    """The Tune trainable: run one cell and report its result.

    Args:
        config: The trial's config, ``{"cell": key}``.
        cells: Every pending cell, by key.
        run_dir: The run directory (absolute).
        cwd: The driver's working directory: relative paths in the config (a world
            directory) mean the same on the worker (Tune starts trials in their own
            directory).
    """
    from ray import tune

    if os.path.isdir(cwd):
        os.chdir(cwd)
    cell = cells[config["cell"]]
    result = cell.run(run_dir)
    tune.report(
        {
            "cell": cell.key,
            "result_json": json.dumps(dataclasses.asdict(result), default=json_default),
        }
    )


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    """Set environment variables for the duration of the block (restored afterwards)."""
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextmanager
def ray_session(address: str | None, quiet: bool) -> Iterator[Any]:
    """Ray for the run: the instance already initialised here, or a new connection.

    A connection made here is shut down at the end (a local instance started here is
    stopped with it).

    Raises:
        ConfigError: Ray is not installed, or the cluster at ``address`` cannot be reached.
    """
    ray, _ = require_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=not quiet,
        )
    except (ConnectionError, TimeoutError, RuntimeError, ValueError) as err:
        where = f"the Ray cluster at {address!r}" if address else "a local Ray instance"
        auth = (
            " If the cluster uses token authentication (what `ray start` of Ray 2.60 does by "
            "default), run with RAY_AUTH_MODE=token and the cluster's token in "
            "~/.ray/auth_token."
            if address and os.environ.get("RAY_AUTH_MODE") is None
            else ""
        )
        raise ConfigError(
            f"--backend ray: cannot start or reach {where}: {err}. Start a head node with "
            "`ray start --head` and pass the address it prints (--address HOST:6379), or "
            f"omit --address for a local instance.{auth}"
        ) from err
    try:
        yield ray
    finally:
        ray.shutdown()


def execute_on_ray(
    pending: list[Any],
    run_dir: Path,
    jobs: int | None,
    address: str | None,
    quiet: bool,
    results: dict[str, Any],
    log: Callable[[str], None],
    callbacks: list[Any] | None = None,
) -> list[tuple[str, str]]:
    """Run the pending cells as Ray Tune trials (one CPU each).

    Args:
        pending: The cells to run, in the order to start them.
        run_dir: The run directory.
        jobs: Trials at once (``None``: as many as Ray has CPUs).
        address: The Ray cluster (``None``: a local instance, or ``RAY_ADDRESS``).
        quiet: No progress bar or per-cell lines.
        results: Receives the result of every cell that finishes, by key.
        log: Where messages go.
        callbacks: More Tune callbacks (e.g. to watch or stop the run).

    Returns:
        ``(key, error)`` of every cell that failed or did not finish.
    """
    if not pending:
        return []
    _, tune = require_ray()
    run_dir = Path(run_dir).resolve()
    by_key = {cell.key: cell for cell in pending}
    bars = None if quiet else TqdmProgress(len(pending), 0)
    say = (lambda line: None) if quiet else bars.write  # type: ignore[union-attr]
    failures: list[tuple[str, str]] = []
    finished = finisher(run_dir, results, failures, say)
    seen: set[str] = set()

    def record(key: str, result: Any, error: BaseException | None) -> None:
        if key in seen:
            return
        seen.add(key)
        finished(key, result, error)
        if bars is not None:
            bars.done(key)

    class Collect(tune.Callback):
        """Records each cell as its trial completes (on the driver)."""

        def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
            data = (trial.last_result or {}).get("result_json")
            key = trial.config["cell"]
            if data is not None:
                record(key, type(by_key[key]).result_type.from_dict(json.loads(data)), None)

        # Errors are taken from the result grid after the run: when a trial errs, Tune
        # has not stored its exception yet.

    trainable = tune.with_resources(
        tune.with_parameters(run_trial, cells=by_key, run_dir=str(run_dir), cwd=os.getcwd()),
        {"cpu": 1},
    )
    stamp = time.strftime("%Y%m%d-%H%M%S")
    try:
        with (
            ray_session(address, quiet),
            _environ(TUNE_DISABLE_AUTO_CALLBACK_LOGGERS="1", RAY_AIR_NEW_OUTPUT="0"),
            _quiet_logger("ray.tune.analysis.experiment_analysis", logging.ERROR),
            _quiet_logger("ray.tune.tune", logging.WARNING),
        ):
            tuner = tune.Tuner(
                trainable,
                param_space={"cell": tune.grid_search([cell.key for cell in pending])},
                tune_config=tune.TuneConfig(
                    max_concurrent_trials=jobs,
                    reuse_actors=True,  # a worker imports torch & co. once, not per cell
                    trial_name_creator=lambda trial: trial.config["cell"],
                    trial_dirname_creator=lambda trial: trial.config["cell"],
                ),
                run_config=tune.RunConfig(
                    name=f"run-{stamp}",
                    storage_path=str(run_dir / "ray_tune"),
                    verbose=0,
                    callbacks=[Collect(), *(callbacks or [])],
                    failure_config=tune.FailureConfig(max_failures=0, fail_fast=False),
                ),
            )
            grid = tuner.fit()
            for outcome in grid:
                key = (outcome.config or {}).get("cell")
                if key is None or key in seen:
                    continue
                data = (outcome.metrics or {}).get("result_json")
                if data is not None:
                    record(key, type(by_key[key]).result_type.from_dict(json.loads(data)), None)
                elif outcome.error is not None:
                    record(key, None, _cause(outcome.error))
    finally:
        if bars is not None:
            bars.close()
    for cell in pending:
        if cell.key not in seen:
            failures.append((cell.key, INTERRUPTED))
            say(f"{cell.key}: {INTERRUPTED}")
    if len(seen) < len(pending):
        say(
            "The run stopped early. Rerun the same command to resume: the cells with a "
            "result.json are skipped (Tune's `Tuner.restore` hint above is not needed)."
        )
    return failures


@contextmanager
def _quiet_logger(name: str, level: int) -> Iterator[None]:
    """Raise a logger's level for the block.

    Tune's own per-trial result files are switched off (the cells write theirs), and
    its end-of-run analysis warns that it cannot find them (the results came through
    the ``Collect`` callback instead); its INFO lines are about its own state files.
    """
    logger = logging.getLogger(name)
    old = logger.level
    logger.setLevel(level)
    try:
        yield
    finally:
        logger.setLevel(old)


def _cause(error: BaseException) -> BaseException:
    """The cell's own exception inside Ray's wrappers (``RayTaskError``, ``TuneError``)."""
    seen = 0
    while seen < 5:
        inner = getattr(error, "cause", None) or error.__cause__
        if not isinstance(inner, BaseException):
            break
        error, seen = inner, seen + 1
    return error
