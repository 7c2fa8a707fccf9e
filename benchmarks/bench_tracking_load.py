"""The two tracking servers of ``bench_tracking`` and the data they are seeded with (never timed).

- mlyard: ``python -m mlyard workspace init WS --port P`` (not timed), then
  ``python -m mlyard --workspace WS server``; the client sends the workspace's bearer token.
- peer: ``python -m mlflow server --backend-store-uri sqlite:///DIR/mlflow.db --artifacts-destination DIR/artifacts
  --serve-artifacts --host 127.0.0.1 --port P --workers 1`` (uvicorn, MLflow's default server), with telemetry off
  and MLflow's job runner off (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``: its huey consumers serve GenAI jobs,
  not tracking), exactly as the MLflow contract tests start it.

Both start fresh, each with its own new SQLite file, on loopback.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from procs import PYTHON, free_port, init_workspace, mlyard_server_args, spawn, stop, wait_healthy

if TYPE_CHECKING:
    from mlflow import MlflowClient

MLFLOW_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
SEARCH_FILTER = "metrics.acc > 0.9 and params.model = 'rf'"
MODELS = ("rf", "xgb")
CHUNK = 1000  # MLflow's limit of metrics per log_batch


@dataclass
class Server:
    name: str
    url: str
    proc: subprocess.Popen[bytes]


def mlflow_command(folder: Path, port: int) -> list[str]:
    return [PYTHON, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
            "--artifacts-destination", str(folder / "artifacts"), "--serve-artifacts",
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]


def start_mlyard(folder: Path) -> tuple[Server, str]:
    """A fresh workspace and its server; returns the server and the workspace's token."""
    folder.mkdir()
    ws, port, log = folder / "ws", free_port(), folder / "server.log"
    init_workspace(ws, port)
    proc = spawn(mlyard_server_args(ws), log)
    try:
        wait_healthy(proc, port, log)
    except BaseException:
        stop(proc)
        raise
    token = str(yaml.safe_load((ws / ".mlyard" / "client.yaml").read_text())["token"])
    return Server("mlyard", f"http://127.0.0.1:{port}", proc), token


def start_mlflow(folder: Path) -> Server:
    folder.mkdir()
    port, log = free_port(), folder / "server.log"
    proc = spawn(mlflow_command(folder, port), log, env=MLFLOW_ENV)
    try:
        wait_healthy(proc, port, log, timeout_s=120, path="/health")
    except BaseException:
        stop(proc)
        raise
    return Server("mlflow", f"http://127.0.0.1:{port}", proc)


def run_data(i: int) -> tuple[float, str]:
    """Run ``i``'s accuracy and model: 900 of 10,000 runs match SEARCH_FILTER (9 %), no value sits on 0.9."""
    k = (i * 7919) % 1000  # a permutation of 0..999 in every block of 1000 runs, with k's parity = i's
    return round(0.4905 + 0.0005 * k, 4), MODELS[i % 2]


def expected_matches(runs: int) -> int:
    return sum(1 for i in range(runs) if run_data(i)[0] > 0.9 and run_data(i)[1] == "rf")


def seed_runs(client: MlflowClient, experiment_id: str, runs: int, threads: int) -> None:
    """``runs`` runs, each: create_run, then one log_batch of 2 metrics, 2 params and 1 tag."""
    from mlflow.entities import Metric, Param, RunTag

    def one(i: int) -> None:
        acc, model = run_data(i)
        run_id = client.create_run(experiment_id, run_name=f"seed-{i}").info.run_id
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric("acc", acc, now, 0), Metric("loss", 1 - acc, now, 0)],
                         params=[Param("model", model), Param("lr", str(10 ** -(1 + i % 4)))],
                         tags=[RunTag("team", f"team-{i % 7}")])

    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(one, range(runs)):
            pass


def seed_history(client: MlflowClient, run_id: str, points: int) -> None:
    """``points`` points of metric "m" (steps 0..points-1) in log_batch calls of 1000."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    for start in range(0, points, CHUNK):
        client.log_batch(run_id, metrics=[Metric("m", float(i) / points, now, i)
                                          for i in range(start, min(start + CHUNK, points))])


def on_both(tasks: dict[str, Callable[[], Any]], progress: Callable[[str], None]) -> dict[str, Any]:
    """Run one seeding task per server at the same time (not timed); report how long each took."""
    def timed(name: str, task: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        out = task()
        progress(f"seeded {name} in {time.perf_counter() - start:.0f} s")
        return out

    with ThreadPoolExecutor(len(tasks)) as pool:
        futures = {name: pool.submit(timed, name, task) for name, task in tasks.items()}
        return {name: future.result() for name, future in futures.items()}
