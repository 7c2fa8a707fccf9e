"""Cold start to healthy: ``mlyard server`` against a bare uvicorn + FastAPI app with one route.

Each round: a fresh workspace (``mlyard workspace init``, not timed), then the time from spawning
``python -m mlyard --workspace WS server`` until ``GET /healthz`` answers 200. The peer is the same
interpreter running ``python -m uvicorn`` on a FastAPI app with a single ``/healthz`` route, polled
by the same loop. Both servers are stopped (and their folders removed) after every round.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from harness import Comparison, alternate
from procs import PYTHON, free_port, init_workspace, mlyard_server_args, package_version, spawn, stop, wait_healthy

PEER_APP = '''\
from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
'''


def peer_label() -> str:
    return f"bare uvicorn {package_version('uvicorn')} + FastAPI {package_version('fastapi')}, one route"


def _time_to_healthy(args: list[str], port: int, log: Path) -> float:
    proc = None
    try:
        start = time.perf_counter()
        proc = spawn(args, log)
        wait_healthy(proc, port, log)
        return time.perf_counter() - start
    finally:
        stop(proc)


def _mlyard_round(base: Path) -> Callable[[], float]:
    def run() -> float:
        folder = Path(tempfile.mkdtemp(prefix="mlyard-", dir=base))
        try:
            port = free_port()
            ws = folder / "ws"
            init_workspace(ws, port)
            return _time_to_healthy(mlyard_server_args(ws), port, folder / "server.log")
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    return run


def _peer_round(base: Path) -> Callable[[], float]:
    app_dir = base / "peer-app"
    app_dir.mkdir(exist_ok=True)
    (app_dir / "bench_peer_app.py").write_text(PEER_APP)

    def run() -> float:
        port = free_port()
        log = base / "peer.log"
        log.unlink(missing_ok=True)
        args = [PYTHON, "-m", "uvicorn", "bench_peer_app:app", "--app-dir", str(app_dir), "--host", "127.0.0.1",
                "--port", str(port), "--log-level", "warning", "--no-access-log"]
        return _time_to_healthy(args, port, log)

    return run


def run(rounds: int, progress: Callable[[str], None] | None = None) -> Comparison:
    base = Path(tempfile.mkdtemp(prefix="mlyard-bench-server-"))
    try:
        subject_s, peer_s = alternate(rounds, _mlyard_round(base), _peer_round(base), progress=progress)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return Comparison(
        name="Server cold start → GET /healthz 200",
        subject=f"mlyard {package_version('mlyard')}: python -m mlyard --workspace WS server (fresh SQLite workspace)",
        peer=peer_label(),
        workload="spawn the server process, poll GET /healthz every 5 ms over loopback until 200; stop it",
        subject_s=subject_s,
        peer_s=peer_s,
        notes=["workspace init is done before the clock starts; 1 warm-up round of each is not counted"],
    )
