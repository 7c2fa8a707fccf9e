"""The stock ``mlflow server`` as a process: the reference that mlyard's MLflow endpoints must match."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

# The telemetry client would try to reach the internet, which tests must never do.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
# The job runner (six huey consumers, for GenAI scorers) doubles start-up time and is no part of the contract.
NO_JOBS = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


def mlflow_server_missing() -> str | None:
    """Why ``mlflow server`` cannot run in this interpreter, or None when it can."""
    for module in ("mlflow", "mlflow.server", "flask", "uvicorn", "alembic"):
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            return (f"'{module}' is not importable: the stock MLflow server needs the full 'mlflow' package "
                    "(pip install -e '.[dev]')")
    return None


@dataclass(frozen=True)
class TrackingServer:
    """Where an MLflow client should point: ``MLFLOW_TRACKING_URI`` and ``MLFLOW_TRACKING_TOKEN`` (None: no auth)."""

    kind: str
    uri: str
    token: str | None


@dataclass
class MlflowServerProcess:
    """``mlflow server`` on a SQLite file, proxying artifacts (``mlflow-artifacts:/``) to a local folder."""

    root: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.root / "mlflow-server.log"

    def start(self, timeout: float = 90) -> MlflowServerProcess:
        self.root.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
            "--artifacts-destination", str(self.root / "artifacts"),
            "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(self.port),
            "--workers", "1",
            # MLflow 3's host-header check already admits localhost; naming the hosts keeps that explicit.
            "--allowed-hosts", f"127.0.0.1:{self.port},localhost:{self.port}",
        ]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **NO_TELEMETRY, **NO_JOBS}, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited at start-up:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"mlflow server not healthy within {timeout} s:\n{self.log_path.read_text()[-3000:]}")

    def stop(self, timeout: float = 20) -> None:
        """Terminate the whole process group: ``mlflow server`` runs uvicorn (and its workers) as children."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):  # the group outlives its leader if a worker hangs
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
