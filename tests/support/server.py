"""Real mlyard servers for tests: a workspace in a temp folder, ``mlyard server`` as a process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
            check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mlyard ARGS`` as a user would, capturing its output."""
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run([sys.executable, "-m", "mlyard", *args], cwd=cwd, env=full_env, text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"mlyard {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


@dataclass
class ServerProcess:
    """One workspace and the server serving it."""

    workspace: Path
    port: int
    database_url: str | None = None
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.workspace.parent / f"{self.workspace.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def init(self) -> ServerProcess:
        args = ["workspace", "init", str(self.workspace), "--port", str(self.port)]
        if self.database_url:
            args += ["--database-url", self.database_url]
        run_cli(*args)
        client_yaml = yaml.safe_load((self.workspace / ".mlyard" / "client.yaml").read_text())
        self.token = client_yaml["token"]
        return self

    def start(self, timeout: float = 30) -> ServerProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mlyard", "--workspace", str(self.workspace), "server"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited at start-up:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=0.5).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server not healthy within {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def env(self) -> dict[str, str]:
        """Environment for CLI calls against this server."""
        return {"MLYARD_URL": self.url, "MLYARD_TOKEN": self.token}

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def worker_pids(server: ServerProcess, endpoint: str, deployment: str) -> list[int]:
    """Pids of ``server``'s online-deployment workers of ``endpoint``/``deployment``, sorted.

    Found in ``/proc`` by their command line and workspace, since other test runs may serve the same names.
    """
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"mlyard.serving.worker" in args and endpoint.encode() in args and deployment.encode() in args \
                and str(server.workspace).encode() in b" ".join(args):
            found.append(int(pid))
    return sorted(found)
