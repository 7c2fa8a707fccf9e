"""Starting, polling and stopping the server processes the benchmarks measure.

Every process is started in its own session (process group) so that stopping it by its pid
also stops anything it spawned; callers stop it in ``finally``.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

PYTHON = sys.executable  # the virtualenv's interpreter when run as `.venv/bin/python benchmarks/run.py`
POLL_S = 0.005


def clean_env() -> dict[str, str]:
    """The environment for children: no MLYARD_* settings leaking in from the caller's shell."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLYARD_")}


def package_version(name: str) -> str:
    return version(name)


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_quiet(args: Sequence[str], *, cwd: Path | None = None) -> None:
    """Run ``args`` to completion; raise with its output when it fails."""
    done = subprocess.run(list(args), cwd=cwd, env=clean_env(), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        output = (done.stderr or done.stdout)[-2000:]
        raise RuntimeError(f"{' '.join(map(str, args))} exited {done.returncode}: {output}")


def spawn(args: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start ``args`` in its own process group, stdout and stderr into ``log``; ``env`` adds variables."""
    with log.open("ab") as out:
        return subprocess.Popen(list(args), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**clean_env(), **(env or {})}, start_new_session=True)


def _tail(log: Path, limit: int = 2000) -> str:
    try:
        return log.read_text(errors="replace")[-limit:]
    except FileNotFoundError:
        return ""


def healthy(port: int, path: str = "/healthz") -> bool:
    """True when ``GET path`` on the loopback ``port`` answers 200."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


def wait_healthy(proc: subprocess.Popen[bytes], port: int, log: Path, timeout_s: float = 60.0,
                 path: str = "/healthz") -> None:
    """Poll every 5 ms until ``GET path`` answers 200; fail fast if the process dies."""
    deadline = time.monotonic() + timeout_s
    while not healthy(port, path):
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited {proc.returncode} before it was healthy:\n"
                               f"{_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"not healthy after {timeout_s:.0f} s:\n{_tail(log)}")
        time.sleep(POLL_S)


def stop(proc: subprocess.Popen[bytes] | None, grace_s: float = 10.0) -> None:
    """SIGTERM the process group we started, SIGKILL it after ``grace_s``; always reaps it."""
    if proc is None or proc.returncode is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=grace_s)
            break
        except subprocess.TimeoutExpired:
            continue
    proc.wait()


def init_workspace(ws: Path, port: int) -> None:
    """``python -m mlyard workspace init WS --port PORT`` (never timed)."""
    run_quiet([PYTHON, "-m", "mlyard", "workspace", "init", str(ws), "--port", str(port)])


def mlyard_server_args(ws: Path) -> list[str]:
    return [PYTHON, "-m", "mlyard", "--workspace", str(ws), "server"]
