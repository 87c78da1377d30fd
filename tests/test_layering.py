"""The code's shape: small modules, and nothing private shared between them.

The import layering and the absence of cycles are checked by ``lint-imports`` (the
contracts in ``setup.cfg``), which the test command runs before pytest.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("musicrec_gym", "agents", "experiments")
MAX_MODULE_LINES = 600


def _modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private_imports(path: Path) -> list[str]:
    """``from <project module> import _name`` in ``path``, another module's private name."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    this = _module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:  # relative import: resolve against this package
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            source = ".".join([*base, *([node.module] if node.module else [])])
        else:
            source = node.module or ""
        if source.split(".")[0] not in PACKAGES or source == this:
            continue
        for alias in node.names:
            if alias.name.startswith("_") and not alias.name.startswith("__"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {source}.{alias.name}")
    return found


def test_the_scan_sees_the_whole_library():
    names = {_module_name(path) for path in _modules()}
    assert {"musicrec_gym.envs.core", "experiments", "agents.linear"} <= names


def test_no_module_imports_another_modules_private_names():
    found = [hit for path in _modules() for hit in _private_imports(path)]
    assert found == [], "private names imported across modules:\n" + "\n".join(found)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_600_lines(path: Path):
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.relative_to(ROOT)} has {lines} lines"
