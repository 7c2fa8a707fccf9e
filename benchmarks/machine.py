"""What a result was measured on: date, machine, Python, commit and the peers' package versions."""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError
from pathlib import Path
from typing import Any

from procs import package_version

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mlyard", "uvicorn", "fastapi", "starlette", "httpx", "mlflow")


def _git(*args: str) -> str:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return float("nan")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _version_or_none(name: str) -> str:
    try:
        return package_version(name)
    except PackageNotFoundError:  # mlflow comes with the dev extra only
        return "not installed"


def describe() -> dict[str, Any]:
    dirty = bool(_git("status", "--porcelain"))
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": os.cpu_count(),
        "cpu": _cpu_model(),
        "memory_gib": round(_memory_gib(), 1),
        "os": f"{platform.system()} {platform.release()}",
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "python": platform.python_version(),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "worktree_dirty": dirty,
        "packages": {name: _version_or_none(name) for name in PACKAGES},
    }


def summary_line(info: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    dirty = " (+ uncommitted changes)" if info["worktree_dirty"] else ""
    return (f"{info['date']} · nproc {info['nproc']} ({info['cpu']}) · {info['memory_gib']} GiB RAM · "
            f"{info['os']} · load {info['loadavg_1m_at_start']} · Python {info['python']} · "
            f"commit {info['commit']}{dirty} · {packages}")
