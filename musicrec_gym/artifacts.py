"""Reading and writing a world directory's artifacts and its manifest.

A world directory holds data files only (CSV, NPZ, JSON, a torch state dict) and a
``manifest.json`` with the seed, configs, package versions and the sha256 of every
file, so that a corrupted or hand-edited artifact is caught at load time and a rebuild
can be compared with the shipped world hash for hash. The writers here give the same
bytes for the same content (sorted JSON keys, fixed NPZ timestamps) and replace a file
atomically.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import tempfile
import zipfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from musicrec_gym import __version__
from musicrec_gym.errors import ArtifactError, unknown_name_message
from musicrec_gym.reproducible import kernels_pinned

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
WORLD_KINDS = ("synthetic", "fitted")
"""``manifest.json``'s ``kind``: ``musicrec build`` or ``musicrec fit`` (default synthetic)."""


def default_world_dir() -> Path:
    """The built-in world's directory inside the installed package."""
    return Path(str(resources.files("musicrec_gym") / "assets" / "default_world"))


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (a temporary file, then a rename).

    Parent directories are created; the file gets the mode any new file gets (umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        # mkstemp makes the file private (0600); give it the mode any other file gets
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any) -> None:
    """Write JSON with sorted keys and a trailing newline (stable bytes), atomically."""
    text = json.dumps(data, indent=2, sort_keys=True) + "\n"
    write_bytes_atomic(path, text.encode())


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """An ``.npz`` archive (loadable by ``np.load``) with fixed timestamps and modes.

    ``np.savez`` stamps each member with the current time; these bytes depend only on
    the arrays, so the same arrays give the same sha256.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system = 3
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def package_versions() -> dict[str, str]:
    """The versions a manifest records: this package, Python, the numerical libraries.

    Also whether the CPU kernels were pinned (see :mod:`musicrec_gym.reproducible`):
    bit-for-bit rebuilds need them.
    """
    import gensim
    import pandas as pd
    import torch

    return {
        "musicrec_gym": __version__,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "gensim": gensim.__version__,
        "torch": torch.__version__,
        "cpu_kernels": "pinned" if kernels_pinned() else "native (machine-specific)",
    }


def jsonable(obj: Any) -> Any:
    """``obj`` with tuples as lists and NumPy scalars as Python numbers, for JSON."""
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def read_json(path: Path) -> Any:
    """Read a JSON artifact, naming the file and line on a parse error."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found (expected a JSON artifact)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ArtifactError(f"{path}: not valid JSON (not UTF-8 text: {err})") from err
    except OSError as err:  # unreadable: permissions, an I/O error
        raise ArtifactError(f"{path}: cannot be read ({err})") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise ArtifactError(f"{path}, line {err.lineno}: not valid JSON ({err})") from err
    except RecursionError as err:
        raise ArtifactError(f"{path}: JSON nested too deeply to read") from err


def load_npz(path: Path, keys: dict[str, tuple[int | None, ...]]) -> dict[str, np.ndarray]:
    """Load named arrays from an NPZ, checking each key's presence, shape and values.

    Args:
        path: The NPZ file.
        keys: Expected key -> shape, ``None`` where any length is allowed.

    Returns:
        The arrays, by key: numeric (bool, int or float) and finite.

    Raises:
        ArtifactError: Naming the file (and the key): missing, not an NPZ archive
            (truncated or corrupted), a missing array, a wrong shape, a non-numeric
            array, or a NaN or infinity.
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found (expected an NPZ artifact)")
    try:
        with np.load(path, allow_pickle=False) as data:
            out = {}
            for key, shape in keys.items():
                if key not in data.files:
                    raise ArtifactError(f"{path}: missing array {key!r} (has {sorted(data.files)})")
                arr = data[key]
                ok = arr.ndim == len(shape) and all(
                    s is None or s == a for s, a in zip(shape, arr.shape, strict=True)
                )
                if not ok:
                    raise ArtifactError(
                        f"{path}: array {key!r} has shape {arr.shape}, expected {shape}"
                    )
                if arr.dtype.kind not in "biuf":
                    raise ArtifactError(
                        f"{path}: array {key!r} holds {arr.dtype} values, expected numbers"
                    )
                if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                    raise ArtifactError(
                        f"{path}: array {key!r} holds NaN or infinite values, expected "
                        "finite numbers"
                    )
                out[key] = arr
            return out
    except ArtifactError:
        raise
    except Exception as err:  # zipfile.BadZipFile, ValueError, OSError, EOFError ...
        raise ArtifactError(
            f"{path}: not a readable NPZ file, truncated or corrupted ({err})"
        ) from err


def write_manifest(directory: Path, meta: dict[str, Any]) -> dict[str, Any]:
    """Hash every file in ``directory`` (but the manifest) and write the manifest.

    Args:
        directory: The world directory.
        meta: Seed, configs, versions and reports to record beside the hashes.

    Returns:
        The manifest as written.
    """
    directory = Path(directory)
    files = {
        p.name: sha256_file(p)
        for p in sorted(directory.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {"format": FORMAT_VERSION, **meta, "files": files}
    write_json(directory / MANIFEST, manifest)
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    """A world directory's ``manifest.json``, checked to be an object with a ``files`` table.

    Raises:
        ArtifactError: ``directory`` is missing or not a directory, or the manifest is
            missing, not JSON, not an object, or has no ``files`` object of sha256 strings
            (or a ``kind`` or ``format`` this version cannot read).
    """
    directory = Path(directory)
    if directory.is_file():
        raise ArtifactError(
            f"{directory}: is a file, expected a world directory (holding {MANIFEST})"
        )
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: world directory not found")
    path = directory / MANIFEST
    manifest = read_json(path)
    if not isinstance(manifest, dict):
        raise ArtifactError(
            f"{path}: expected a JSON object with a 'files' table, got {type(manifest).__name__}"
        )
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ArtifactError(
            f"{path}: missing key 'files' (an object of file name -> sha256)"
            if files is None
            else f"{path}: key 'files' must be an object of file name -> sha256, got {files!r}"
        )
    for name, digest in files.items():
        if not isinstance(digest, str):
            raise ArtifactError(
                f"{path}: key 'files' -> {name!r} must be a sha256 hex string, got {digest!r}"
            )
    kind = manifest.get("kind", "synthetic")
    if kind not in WORLD_KINDS:
        raise ArtifactError(
            f"{path}: key 'kind': {unknown_name_message('world kind', str(kind), WORLD_KINDS)}"
        )
    fmt = manifest.get("format", FORMAT_VERSION)
    if fmt != FORMAT_VERSION or isinstance(fmt, bool):
        raise ArtifactError(
            f"{path}: key 'format' is {fmt!r}; this version of musicrec-gym reads format "
            f"{FORMAT_VERSION} (rebuild the world, or upgrade musicrec-gym)"
        )
    return manifest


def verify_manifest(directory: Path, required: tuple[str, ...]) -> dict[str, Any]:
    """Check that the required files exist and match the manifest's sha256.

    Returns:
        The manifest (see ``read_manifest``).

    Raises:
        ArtifactError: naming the missing or corrupted file, or the manifest's fault.
    """
    directory = Path(directory)
    manifest = read_manifest(directory)
    files = manifest["files"]
    for name in required:
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path}: missing artifact (a world needs {', '.join(required)})")
        if name not in files:
            raise ArtifactError(f"{directory / MANIFEST}: no sha256 recorded for {name!r}")
        try:
            digest = sha256_file(path)
        except OSError as err:
            raise ArtifactError(f"{path}: cannot be read ({err})") from err
        if digest != files[name]:
            raise ArtifactError(
                f"{path}: sha256 does not match {MANIFEST}; the file is truncated, corrupted "
                "or was edited (rebuild it with `musicrec build`)"
            )
    return manifest
