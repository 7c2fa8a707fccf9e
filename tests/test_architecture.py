"""Imports point downward only (docs/architecture.md); the CLI and SDK never reach into the server."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "mlyard"

# package -> mlyard packages it may import
ALLOWED: dict[str, set[str]] = {
    "core": {"core"},
    "specs": {"core", "specs"},
    "store": {"core", "specs", "store"},
    "assets": {"core", "specs", "store", "assets"},
    "tracking": {"core", "specs", "store", "tracking"},
    "auth": {"core", "specs", "store", "auth"},
    "jobs": {"core", "specs", "store", "assets", "tracking", "jobs"},
    "serving": {"core", "specs", "store", "assets", "auth", "tracking", "jobs", "serving"},
    "automation": {"core", "specs", "store", "assets", "auth", "tracking", "jobs", "automation"},
    "monitoring": {"core", "specs", "monitoring"},
    "server": {"core", "specs", "store", "assets", "auth", "tracking", "jobs", "serving", "automation", "monitoring",
               "server"},
    "client": {"core", "specs", "client"},
    "cli": {"core", "specs", "client", "cli"},
    "datasets": {"datasets"},
}
# The two CLI commands that act on a local workspace folder import the server, lazily.
EXCEPTIONS = {("cli/local.py", "server")}


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mlyard."):
            found.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("mlyard."))
    return found


def test_imports_point_downward() -> None:
    offences = []
    for package, allowed in ALLOWED.items():
        for path in sorted((SRC / package).rglob("*.py")):
            rel = path.relative_to(SRC).as_posix()
            for imported in _imports(path) - allowed:
                if (rel, imported) not in EXCEPTIONS:
                    offences.append(f"{rel} imports mlyard.{imported}")
    assert offences == []


def test_every_package_is_covered() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(ALLOWED), packages - set(ALLOWED)
