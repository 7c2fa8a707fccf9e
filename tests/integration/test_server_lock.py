"""One server per workspace: a second one is refused, and a server killed with -9 can be started again."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import httpx

from mlyard.server.lock import running_server
from tests.support.server import free_port, run_cli


def _lock_pid(ws: Path) -> int:
    pid = json.loads((ws / ".mlyard" / "server.lock").read_text())["pid"]
    assert isinstance(pid, int)
    return pid


def test_second_server_is_refused_and_restart_after_kill_9_works(tmp_path: Path) -> None:
    ws, port = tmp_path / "ws", free_port()
    run_cli("workspace", "init", str(ws), "--port", str(port))
    url = f"http://127.0.0.1:{port}"
    first = run_cli("-W", str(ws), "server", "start")
    pid = _lock_pid(ws)
    assert f"pid {pid} at {url}" in first.stdout
    try:
        # starting it again at its own address is a no-op that says what runs, and exits 0
        same = run_cli("-W", str(ws), "server", "start")
        assert f"already running for {ws.resolve()}: pid {pid} at {url}" in same.stdout
        # a second server on the same workspace, in the background or the foreground, on another port
        other = free_port()
        again = run_cli("-W", str(ws), "server", "start", "--port", str(other), check=False)
        foreground = run_cli("-W", str(ws), "server", "--port", str(other), check=False, timeout=30)
        for proc in (again, foreground):
            assert proc.returncode == 1, proc.stdout
            assert f"a mlyard server is already running for {ws.resolve()}: pid {pid} at {url}" in proc.stderr
            assert "Traceback" not in proc.stderr
        assert httpx.get(f"{url}/healthz").status_code == 200  # the first one is untouched
        assert run_cli("data", "list", "-o", "json", cwd=ws).stdout.strip() == "[]"
        assert f"running for {ws.resolve()}: pid {pid} at {url}" in run_cli("-W", str(ws), "server", "status").stdout

        os.kill(pid, signal.SIGKILL)  # a crash: the lock file still names the dead pid
        _wait_gone(ws)
        assert "stopped" in run_cli("-W", str(ws), "server", "status").stdout
        restarted = run_cli("-W", str(ws), "server", "start")
        new_pid = _lock_pid(ws)
        assert new_pid != pid and f"pid {new_pid} at {url}" in restarted.stdout
        assert httpx.get(f"{url}/healthz").status_code == 200
        assert run_cli("data", "list", "-o", "json", cwd=ws).stdout.strip() == "[]"
    finally:
        stopped = run_cli("-W", str(ws), "server", "stop", check=False)
    assert "stopped" in stopped.stdout
    assert "stopped" in run_cli("-W", str(ws), "server", "status").stdout


def _wait_gone(ws: Path) -> None:
    """SIGKILL is delivered asynchronously: wait until the kernel has ended the process (and its lock)."""
    deadline = time.monotonic() + 30
    while running_server(ws) is not None:
        assert time.monotonic() < deadline, "the killed server still holds its lock"
        time.sleep(0.05)
