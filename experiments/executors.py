"""Run pending cells on this machine: in this process or a pool of worker processes.

Any cell with ``key``, ``run(run_dir, progress)`` and a result with ``describe()`` will
do, so every task runs here. Workers are spawned ignoring Ctrl-C and die with the main
process; on Ctrl-C the main process kills them and the running cells are abandoned (a
rerun starts them afresh).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import queue
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from experiments.lifecycle import second_interrupt_exits, sigint_ignored
from experiments.progress import Progress, QueueProgress, TqdmProgress

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
    progress = QueueProgress(_CHANNEL) if _CHANNEL is not None else Progress()
    return cell.run(run_dir, progress)


def execute_locally(
    pending: list[Any],
    run_dir: Path,
    jobs: int,
    quiet: bool,
    results: dict[str, Any],
    log: Callable[[str], None],
) -> list[tuple[str, str]]:
    """Run the pending cells; returns (key, error) of the cells that failed."""
    if not pending:
        return []
    bars = None if quiet else TqdmProgress(len(pending), jobs)
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
    pending: list[Any],
    run_dir: Path,
    jobs: int,
    bars: TqdmProgress | None,
    finished: Callable[[str, Any, BaseException | None], None],
) -> None:
    ctx = mp.get_context("spawn")
    channel = ctx.Queue() if bars is not None else None
    # Workers inherit the environment at spawn, before their OpenMP runtime starts: idle
    # OpenMP threads (numba's kernels) then sleep instead of spinning against PyTorch in
    # the cells beside them (a PPO cell of the quickstart: 8 s instead of 36 s with two
    # cells side by side; the user's own setting wins).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    pool = cf.ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(channel, os.getpid()),
    )
    try:
        with sigint_ignored():  # submit starts the workers: they are born ignoring Ctrl-C
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

    with second_interrupt_exits(kill):
        kill()
        pool.shutdown(wait=False, cancel_futures=True)
        deadline = time.monotonic() + timeout_s
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
        manager = getattr(pool, "_executor_manager_thread", None)
        if manager is not None:
            manager.join(max(0.0, deadline - time.monotonic()))


def _drain(channel: Any, bars: TqdmProgress | None) -> None:
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
