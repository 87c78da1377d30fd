"""``Task``: what differs between the kinds of experiment (``task:`` of a config)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
