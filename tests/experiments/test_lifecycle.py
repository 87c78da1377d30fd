"""``musicrec run`` under faults: kill -9, Ctrl-C, a second run, tampered results, full disk.

The signal tests run ``musicrec run`` in a subprocess of its own session (so that a
signal to its process group is what a terminal's Ctrl-C does) on the built-in world,
with one cell whose training budget (100M steps) does not end within a test: it is
always running when the signal comes. Every wait has a timeout, and the process group
is killed at the end whatever happened.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from musicrec_gym.cli import main

#: One cell (EpsGreedy) that never ends, three quick ones (random, oracle, Popularity).
ENDLESS = """\
name: endless
env:
  kwargs: {}
  num_envs: 8
seeds: [0]
budget:
  train_steps: 400
  eval_episodes: 12
agents:
  - name: EpsGreedy
    type: epsilon_greedy
    train_steps: 100000000
  - name: Popularity
    type: popularity
"""

#: Four quick cells: EpsGreedy, Popularity, random, oracle.
TINY = """\
name: tiny
env:
  kwargs: {{}}
  num_envs: 8
seeds: [0]
budget:
  train_steps: 400
  eval_episodes: 12
agents:
  - name: EpsGreedy
    type: epsilon_greedy
  - name: {fixed}
    type: {fixed_type}
"""

try:
    import fcntl
except ImportError:  # not POSIX
    fcntl = None  # type: ignore[assignment]

#: The tests that read processes from /proc, or take the run directory's lock.
reads_proc = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="needs /proc")
takes_locks = pytest.mark.skipif(fcntl is None, reason="needs fcntl.flock")

#: Bounds of the waits (generous: they only matter when something is wrong).
START_S = 180.0
STOP_S = 15.0


# --------------------------------------------------------------------- helpers


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state, process group)`` of a process, or ``None`` when it is gone."""
    try:
        text = (Path("/proc") / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[2])


def _group(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _stat(int(entry.name))
            if stat is not None and stat[1] == pgid and stat[0] != "Z":
                pids.append(int(entry.name))
    return pids


def _workers(pgid: int) -> list[int]:
    """The pool's worker processes in a process group."""
    found = []
    for pid in _group(pgid):
        try:
            cmdline = (Path("/proc") / str(pid) / "cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            found.append(pid)
    return found


def _alive(pids: list[int]) -> list[int]:
    return [pid for pid in pids if (_stat(pid) or ("Z", 0))[0] != "Z"]


def _wait(condition: Callable[[], object], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return bool(condition())


def _results(out: Path) -> dict[str, int]:
    return {p.parent.name: p.stat().st_mtime_ns for p in out.glob("cells/*/result.json")}


def _default_sigint() -> None:
    # A shell's background job ignores SIGINT, and children inherit that: undo it, as
    # in the foreground of a terminal.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def endless(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[subprocess.Popen, Path, Path]]:
    """``musicrec run endless.yaml --jobs 2 --quiet``, once the endless cell is running.

    Options (indirect parameter, a set): ``"finished cell"``: once a quick cell has
    finished, too; ``"bars"``: without ``--quiet`` (progress events flow from the workers).
    """
    options = getattr(request, "param", set())
    wait_for_result = "finished cell" in options
    quiet = [] if "bars" in options else ["--quiet"]
    config = tmp_path / "endless.yaml"
    config.write_text(ENDLESS, encoding="utf-8")
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "musicrec_gym.cli", "run", str(config), "--out", str(out),
         "--jobs", "2", *quiet],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_default_sigint,
    )  # fmt: skip
    try:
        started = _wait(
            lambda: (
                proc.poll() is not None
                or (
                    (out / "cells" / "EpsGreedy__seed0").is_dir()
                    and (_results(out) or not wait_for_result)
                )
            ),
            START_S,
        )
        assert started and proc.poll() is None, proc.communicate(timeout=STOP_S)
        yield proc, config, out
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # the group this test started
        if proc.returncode is None:
            proc.communicate(timeout=STOP_S)


# ------------------------------------------------------------------ kill -9


@takes_locks
@reads_proc
def test_pool_workers_die_with_a_killed_run(endless) -> None:
    proc, _, out = endless
    workers = _workers(proc.pid)
    assert workers, "no pool worker found"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=STOP_S)
    assert _wait(lambda: not _alive(workers), 5.0), f"orphaned workers still run: {workers}"
    # The lock died with the run: a new run may take the directory at once.
    fd = os.open(out / "run.lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)


# -------------------------------------------------------------------- Ctrl-C


@reads_proc
@pytest.mark.parametrize("endless", [{"finished cell"}], indirect=True, ids=["a-cell-finished"])
def test_ctrl_c_keeps_finished_cells_and_prints_one_line_to_resume(endless) -> None:
    proc, config, out = endless
    finished = _results(out)
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    stdout, stderr = proc.communicate(timeout=STOP_S)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and stdout == ""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("musicrec run: interrupted; ")
    assert lines[0].endswith(f"Resume with: musicrec run {config} --out {out} --jobs 2 --quiet")
    assert _wait(lambda: not _group(proc.pid), 5.0), _group(proc.pid)
    after = _results(out)
    assert {k: after.get(k) for k in finished} == finished  # nothing finished was lost


@reads_proc
@pytest.mark.parametrize("endless", [{"bars"}], indirect=True, ids=["with-progress"])
def test_a_second_ctrl_c_exits_at_once(endless) -> None:
    proc, _, _ = endless
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=STOP_S)
    # 130 when the second one came while the run was stopping; killed by SIGINT when
    # it came after (the first had been handled and the process was ending).
    assert proc.returncode in (130, -signal.SIGINT), stderr
    assert "Traceback" not in stderr
    assert _wait(lambda: not _group(proc.pid), 5.0), _group(proc.pid)


# ------------------------------------------------- in-process: resume, lock, checks

#: Set by a test: the ``interrupts`` agent raises KeyboardInterrupt while it is true.
PRESS_CTRL_C = {"now": False}


@pytest.fixture
def interrupts_agent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Registers ``interrupts``: a random policy that presses Ctrl-C when told to."""
    from agents import base
    from agents.baselines import RandomAgent

    @dataclass
    class Interrupts(RandomAgent):
        def act(self, obs: Any, info: Any, explore: bool = True) -> Any:
            if PRESS_CTRL_C["now"]:
                raise KeyboardInterrupt
            return super().act(obs, info, explore)

    monkeypatch.setitem(base._REGISTRY, "interrupts", Interrupts)


def test_an_interrupted_run_keeps_its_cells_and_resumes_from_them(
    interrupts_agent: None, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(fixed="Stops", fixed_type="interrupts"), encoding="utf-8")
    out = tmp_path / "run"
    command = ["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"]
    PRESS_CTRL_C["now"] = True
    try:
        code = main(command)
    except KeyboardInterrupt:  # escaped main(): would stop pytest itself
        code = "KeyboardInterrupt escaped main()"
    finally:
        PRESS_CTRL_C["now"] = False
    assert code == 130
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "interrupted; 3 of 4 cells are finished and kept in" in err
    assert err.strip().endswith(f"Resume with: musicrec {' '.join(command)}")
    done = _results(out)
    assert sorted(done) == ["EpsGreedy__seed0", "oracle__seed0", "random__seed0"]
    if fcntl is not None:
        assert not (out / "run.lock").read_text()  # released, and the pid cleared

    assert main(command) == 0
    after = _results(out)
    assert {k: after[k] for k in done} == done  # reused, not recomputed
    assert sorted(after) == sorted([*done, "Stops__seed0"])


@takes_locks
def test_a_second_run_into_a_busy_directory_fails_at_once(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY.format(fixed="Popularity", fixed_type="popularity"), encoding="utf-8")
    out = tmp_path / "run"
    out.mkdir()
    fd = os.open(out / "run.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running `musicrec run` does
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        t0 = time.monotonic()
        assert main(["run", str(config), "--out", str(out), "--quiet"]) == 2
        assert time.monotonic() - t0 < 60
    finally:
        os.close(fd)
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"{out} is in use by another `musicrec run` (pid {os.getpid()} on " in err
    assert not (out / "cells").exists() and not (out / "config.yaml").exists()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A finished run of the tiny config (one process), shared by the tests below."""
    base = tmp_path_factory.mktemp("finished")
    config = base / "tiny.yaml"
    config.write_text(TINY.format(fixed="Popularity", fixed_type="popularity"), encoding="utf-8")
    out = base / "run"
    assert main(["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    return config, out


def _edit(path: Path, key: str, value: object) -> None:
    data = json.loads(path.read_text())
    node = data
    *parents, last = key.split(".")
    for part in parents:
        node = node[part]
    node[last] = value
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        ("eval.mean_return", 1e9, "eval.mean_return = 1e+09 is outside [0, 20]"),
        ("eval.mean_return", -0.5, "eval.mean_return = -0.5 is outside [0, 20]"),
        ("eval.mean_return", math.inf, "eval.mean_return is inf"),
        ("eval.listen_rate", 1.5, "eval.listen_rate = 1.5 is outside [0, 1]"),
        ("eval.episodes", 3, "eval.episodes is 3, the cell has 12"),
        ("eval.fraction_of_optimal", 0.99, "eval.fraction_of_optimal is 0.99, but mean_return"),
        ("train_regret", float("nan"), "train_regret is NaN"),
    ],
)
def test_a_tampered_result_is_not_trusted_and_is_recomputed(
    finished_run: tuple[Path, Path], capsys: pytest.CaptureFixture, key: str, value: object,
    why: str,
) -> None:  # fmt: skip
    config, out = finished_run
    tampered = out / "cells" / "EpsGreedy__seed0" / "result.json"
    honest = json.loads(tampered.read_text())
    _edit(tampered, key, value)
    before = _results(out)
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    output = capsys.readouterr().out
    assert f"{tampered}: not a result this cell can produce ({why}" in output
    assert "running the cell again" in output
    after = _results(out)
    assert {k for k in after if after[k] != before[k]} == {"EpsGreedy__seed0"}
    redone = json.loads(tampered.read_text())
    assert redone["eval"] == honest["eval"]  # the same numbers as the honest run
    table = pd.read_csv(out / "results.csv").set_index("agent")
    assert table.loc["EpsGreedy", "return_mean"] == pytest.approx(honest["eval"]["mean_return"])


def test_an_unreadable_result_is_recomputed_with_a_warning(
    finished_run: tuple[Path, Path], capsys: pytest.CaptureFixture
) -> None:
    config, out = finished_run
    broken = out / "cells" / "Popularity__seed0" / "result.json"
    broken.write_text('{"cell": "Popularity__seed0", "eval": ')  # cut short
    capsys.readouterr()
    assert main(["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    assert f"{broken}: cannot be read (JSONDecodeError" in capsys.readouterr().out
    assert json.loads(broken.read_text())["cell"] == "Popularity__seed0"


def test_a_full_disk_while_drawing_names_the_file_and_keeps_the_tables(
    finished_run: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from matplotlib.figure import Figure

    config, out = finished_run
    before = _results(out)
    old_png = (out / "curves.png").read_bytes()
    (out / "results.csv").unlink()

    def disk_full(self: Figure, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Figure, "savefig", disk_full)
    capsys.readouterr()
    command = ["run", str(config), "--out", str(out), "--jobs", "1", "--quiet"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"musicrec run: error: cannot write {out / 'curves.png'}: No space left on device" in err
    assert "rerun the same command" in err
    assert _results(out) == before  # no cell was touched
    assert len(pd.read_csv(out / "results.csv")) == 4  # the tables were written first
    assert (out / "curves.png").read_bytes() == old_png

    monkeypatch.undo()
    assert main(command) == 0
    assert _results(out) == before
    assert (out / "curves.png").stat().st_size > 10_000


def test_write_output_leaves_the_old_file_when_the_write_fails(tmp_path: Path) -> None:
    from experiments.outputs import write_output
    from musicrec_gym.errors import OutputWriteError

    path = tmp_path / "results.csv"
    path.write_text("old\n")

    def half_then_full(tmp: Path) -> None:
        tmp.write_text("new, cut sh")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OutputWriteError, match=rf"cannot write {path}: No space left on device"):
        write_output(path, half_then_full)
    assert path.read_text() == "old\n" and sorted(tmp_path.iterdir()) == [path]
    write_output(path, lambda tmp: tmp.write_text("new\n"))
    assert path.read_text() == "new\n" and sorted(tmp_path.iterdir()) == [path]


def test_an_embeddings_result_out_of_range_is_not_trusted() -> None:
    from experiments.config import SessionSource
    from experiments.embedding_task import EmbeddingCell, EmbeddingCellResult

    cell = EmbeddingCell("e", "sgns", SessionSource(), {"epochs": 1}, k=10, seed=0)
    scores = {"k": 10, "n_queries": 50, "hit": 0.2, "ndcg": 0.1, "pop_hit": 0.1, "pop_ndcg": 0.05}

    def result(**changes: object) -> EmbeddingCellResult:
        return EmbeddingCellResult(
            cell=cell.key, agent=cell.name, seed=0, scores={**scores, **changes}, n_sessions=9,
            time_s=1.0, cpu_time_s=1.0, settings=cell.settings(),
        )  # fmt: skip

    assert result().problems(cell) == []
    assert result(hit=1.5).problems(cell) == ["scores.hit = 1.5 is outside [0, 1]"]
    assert result(ndcg=float("nan"), k=5).problems(cell) == [
        "scores.ndcg is NaN",
        "scores.k is 5, the cell has 10",
    ]
