"""How a run writes its files: atomically, and reading a cell's ``result.json`` back.

Every file a run finishes with is written under a temporary name and renamed, so that a
crash or a full disk never leaves a half-written file under the final name.
"""

from __future__ import annotations

import json
import os
import traceback
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

import numpy as np

from musicrec_gym.errors import OutputWriteError


def atomic_write_json(path: Path, data: Any) -> None:
    """Write ``data`` as JSON to a temporary file, flush it to disk, then rename it."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, default=json_default)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def json_default(obj: Any) -> Any:
    """``json.dump``'s ``default``: numpy scalars and arrays, paths, else ``repr``."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return repr(obj)


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
    settings = json.loads(json.dumps(cell.settings(), default=json_default))
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
