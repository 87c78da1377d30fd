"""Reading and writing a world directory's artifacts and its manifest.

A world directory holds data files only (CSV, NPZ, JSON, a torch state dict) and a
``manifest.json`` with the seed, configs, package versions and the sha256 of every
file, so that a corrupted or hand-edited artifact is caught at load time and a rebuild
can be compared with the shipped world hash for hash.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from musicrec_gym.errors import ArtifactError

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


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


def write_json(path: Path, data: Any) -> None:
    """Write JSON with sorted keys and a trailing newline (stable bytes)."""
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON artifact, naming the file and line on a parse error."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: file not found (expected a JSON artifact)")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        line = getattr(err, "lineno", "?")
        raise ArtifactError(f"{path}, line {line}: not valid JSON ({err})") from err


def load_npz(path: Path, keys: dict[str, tuple[int | None, ...]]) -> dict[str, np.ndarray]:
    """Load named arrays from an NPZ, checking each key is present with the expected rank/shape.

    Args:
        path: The NPZ file.
        keys: Expected key -> shape, ``None`` where any length is allowed.

    Returns:
        The arrays, by key.
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
                out[key] = arr
            return out
    except ArtifactError:
        raise
    except Exception as err:  # zipfile.BadZipFile, ValueError, OSError ...
        raise ArtifactError(f"{path}: not a readable NPZ file ({err})") from err


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


def verify_manifest(directory: Path, required: tuple[str, ...]) -> dict[str, Any]:
    """Check that the required files exist and match the manifest's sha256.

    Raises:
        ArtifactError: naming the missing or corrupted file.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: world directory not found")
    manifest = read_json(directory / MANIFEST)
    files = manifest.get("files", {})
    for name in required:
        path = directory / name
        if not path.is_file():
            raise ArtifactError(f"{path}: missing artifact (a world needs {', '.join(required)})")
        if name not in files:
            raise ArtifactError(f"{directory / MANIFEST}: no sha256 recorded for {name!r}")
        if sha256_file(path) != files[name]:
            raise ArtifactError(
                f"{path}: sha256 does not match {MANIFEST}; the file is corrupted or was "
                "edited (rebuild it with `musicrec build`)"
            )
    return manifest
