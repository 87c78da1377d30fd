"""Where ``musicrec build``/``fit`` may write a world, and writing it whole or not at all.

Where a world is written (``build_world``, ``fit_world``; ``--out`` on the command line):

* a new or empty directory is written;
* a non-empty directory is replaced only when musicrec wrote it: it holds a
  ``manifest.json`` of the same kind (``synthetic`` for ``build``, ``fitted`` for
  ``fit``) and nothing but the files that manifest lists (and, for a fitted world, the
  ``realism/`` report directory), and only with ``force=True`` (``--force``). Any other
  non-empty directory is refused, with or without ``--force``: it may hold someone's
  files;
* a path inside the installed ``musicrec_gym`` package (the built-in world's folder
  among them) is always refused: ``gym.make`` would silently give the new world;
* an existing file is refused.

The world is written into a fresh hidden sibling directory
(``.<name>.partial-<random>``) and renamed into place when complete, so an interrupted
build never leaves half a world and the manifest hashes only files the build wrote. A
build killed outright may leave that sibling behind; it is never read and may be
deleted.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from musicrec_gym.artifacts import FORMAT_VERSION, MANIFEST
from musicrec_gym.errors import ConfigError

__all__ = [
    "PACKAGE_DIR",
    "WORLD_EXTRAS",
    "check_side_dir",
    "check_world_out",
    "outside_package",
    "staged_world",
]

#: The installed package: nothing is ever written inside it (``--out``, ``--logs`` ...).
PACKAGE_DIR = Path(__file__).resolve().parent

#: Entries besides the manifest's files that a world directory of each kind may hold
#: and that replacing it (``--force``) deletes: ``musicrec realism``'s default report.
WORLD_EXTRAS = {"synthetic": (), "fitted": ("realism",)}


def outside_package(path: str | Path, option: str) -> Path:
    """``path`` resolved, refused when it is inside (or contains) the installed package.

    Args:
        path: A directory to write.
        option: Its name for messages, e.g. ``"--out"``.

    Returns:
        The absolute, resolved path.

    Raises:
        ConfigError: The path is in the ``musicrec_gym`` package (e.g. the built-in
            world's folder) or is a folder the package is in.
    """
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, TypeError) as err:
        raise ConfigError(f"{option} {path!r}: not a usable path ({err})") from err
    if resolved == PACKAGE_DIR or PACKAGE_DIR in resolved.parents:
        raise ConfigError(
            f"{option} {path}: inside the installed musicrec_gym package ({PACKAGE_DIR}); "
            "musicrec never writes there (it holds the built-in world that gym.make "
            "loads). Choose a directory outside the package"
        )
    if resolved in PACKAGE_DIR.parents:
        raise ConfigError(
            f"{option} {path}: this folder holds the installed musicrec_gym package "
            f"({PACKAGE_DIR}); choose a new directory for the output"
        )
    return resolved


def _own_manifest(directory: Path) -> dict[str, Any] | None:
    """The directory's manifest if musicrec wrote it (format, kind, files), else ``None``."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if (
        not isinstance(manifest, dict)
        or manifest.get("format") != FORMAT_VERSION
        or not isinstance(manifest.get("files"), dict)
    ):
        return None
    return manifest


def check_world_out(out_dir: str | Path, kind: str, force: bool) -> Path:
    """Check that a world of ``kind`` may be written at ``out_dir`` (see the module docstring).

    Args:
        out_dir: The world directory to write.
        kind: ``"synthetic"`` (``musicrec build``) or ``"fitted"`` (``musicrec fit``).
        force: Replace an existing world of the same kind (``--force``).

    Returns:
        The resolved directory.

    Raises:
        ConfigError: Naming ``--out`` and the path: inside the package, an existing file,
            a non-empty directory that is not a world of this kind written by musicrec
            (or holds files its manifest does not list), or a world without ``force``.
    """
    target = outside_package(out_dir, "--out")
    if target.exists() and not target.is_dir():
        raise ConfigError(
            f"--out {out_dir}: is a file, not a directory; give the world directory to write"
        )
    if not target.is_dir():
        return target
    try:
        entries = sorted(p.name for p in target.iterdir())
    except OSError as err:
        raise ConfigError(f"--out {out_dir}: cannot list the directory ({err})") from err
    if not entries:
        return target
    command = "build" if kind == "synthetic" else "fit"
    manifest = _own_manifest(target)
    found = None if manifest is None else manifest.get("kind", "synthetic")
    if found != kind:
        what = (
            f"holds a {found} world, not a {kind} one"
            if found is not None
            else f"is not a world written by musicrec (no {MANIFEST} of one)"
        )
        shown = ", ".join(entries[:5]) + (", ..." if len(entries) > 5 else "")
        raise ConfigError(
            f"--out {out_dir}: the directory is not empty ({shown}) and {what}; `musicrec "
            f"{command}` only writes a new or empty directory or replaces a {kind} world "
            "(--force does not change this: nothing of yours is deleted). Choose another "
            "directory"
        )
    known = {MANIFEST, *manifest["files"], *WORLD_EXTRAS.get(kind, ())}
    extras = [name for name in entries if name not in known]
    if extras:
        raise ConfigError(
            f"--out {out_dir}: the {kind} world there also holds files its {MANIFEST} does "
            f"not list ({', '.join(extras[:5])}{', ...' if len(extras) > 5 else ''}); move "
            "them away first, or choose another directory (--force only replaces a world "
            "made of musicrec's own files)"
        )
    if not force:
        raise ConfigError(
            f"--out {out_dir}: holds a {kind} world already; pass --force (force=True) to "
            "replace it, or choose another directory"
        )
    return target


def check_side_dir(
    path: str | Path, option: str, world: Path, names: Sequence[str], force: bool
) -> Path:
    """Check a directory written next to a world (``--logs``, ``--tensorboard``).

    Args:
        path: The directory.
        option: Its option name, for messages.
        world: The resolved world directory (the side directory must not be in it).
        names: Files that will be written there; existing ones are only overwritten
            with ``force``.
        force: Overwrite them.

    Returns:
        The resolved directory.

    Raises:
        ConfigError: Inside the package or the world directory, an existing file, or
            holding one of ``names`` without ``force``.
    """
    resolved = outside_package(path, option)
    if resolved == world or world in resolved.parents or resolved in world.parents:
        raise ConfigError(
            f"{option} {path}: must be outside the world directory --out {world} (the "
            "world is written elsewhere and renamed into place)"
        )
    existing = next(p for p in (resolved, *resolved.parents) if p.exists())
    if not existing.is_dir():  # the directory itself, or the folder it would be made in
        raise ConfigError(f"{option} {path}: {existing} is a file, not a directory")
    present = [name for name in names if (resolved / name).exists()]
    if present and not force:
        raise ConfigError(
            f"{option} {path}: already holds {', '.join(present)}; pass --force "
            "(force=True) to overwrite, or choose another directory"
        )
    return resolved


@contextmanager
def staged_world(out_dir: str | Path, kind: str, force: bool) -> Iterator[Path]:
    """Write a world in a fresh sibling directory, then rename it to ``out_dir``.

    The checks of :func:`check_world_out` run before (and again just before the
    rename). On any exception (Ctrl-C included) the sibling is deleted and ``out_dir``
    is left as it was.

    Args:
        out_dir: The world directory.
        kind: ``"synthetic"`` or ``"fitted"``.
        force: Replace an existing world of the same kind.

    Yields:
        The empty staging directory to write into.

    Raises:
        ConfigError: As :func:`check_world_out`, or the parent cannot be written.
    """
    target = check_world_out(out_dir, kind, force)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        stage = target.parent / f".{target.name}.partial-{secrets.token_hex(4)}"
        stage.mkdir()
    except OSError as err:
        raise ConfigError(f"--out {out_dir}: cannot create the directory ({err})") from err
    try:
        yield stage
        check_world_out(out_dir, kind, force)
        _swap_in(stage, target)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _swap_in(stage: Path, target: Path) -> None:
    """Rename ``stage`` to ``target``, replacing an existing (checked) ``target``."""
    if not target.exists():
        os.rename(stage, target)
        return
    old = target.parent / f".{target.name}.old-{secrets.token_hex(4)}"
    os.rename(target, old)
    try:
        os.rename(stage, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
