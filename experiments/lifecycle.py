"""A run's hold on its directory and its Ctrl-C handling.

``lock_run_dir`` keeps a second ``musicrec run`` out of a run directory while one runs
(an ``flock`` the kernel drops when the process ends, even by ``kill -9``). A first
Ctrl-C stops the run and keeps the finished cells (``RunInterrupted``, exit status
``INTERRUPTED_EXIT``); a second one while stopping exits at once.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from musicrec_gym.errors import RunDirLockedError

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
def sigint_ignored() -> Iterator[None]:
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
def second_interrupt_exits(cleanup: Callable[[], None]) -> Iterator[None]:
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


def interrupted_error(run_dir: Path, cells: list[Any], argv: list[str]) -> RunInterrupted:
    """The ``RunInterrupted`` of a stopped run: cells finished, and how to resume."""
    done = sum((run_dir / "cells" / c.key / "result.json").is_file() for c in cells)
    return RunInterrupted(
        f"interrupted; {done} of {len(cells)} cells are finished and kept in {run_dir}. "
        f"Resume with: {shlex.join(argv)}"
    )
