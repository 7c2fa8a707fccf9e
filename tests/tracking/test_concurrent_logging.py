"""Eight processes log to their own runs and to one shared run at once: every point is kept.

The full load (8 x 1,000 points to each process's run and 8 x 1,000 to the shared run, one HTTP call
per point) runs on the embedded SQLite store; a quarter of it on a real PostgreSQL server, where
writers race for real, to keep the suite's time in bounds.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tests.support.postgres import PostgresServer
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.slow

PROCESSES = 8
POINTS = {"sqlite": 1000, "postgresql": 250}
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[ServerProcess, int]]:
    """A server on the store under test, and how many points each writer logs to it."""
    database_url = None
    if request.param == "postgresql":
        pg: PostgresServer = request.getfixturevalue("postgres_server")
        database_url = pg.create_database(f"t_{uuid.uuid4().hex[:16]}")
    proc = ServerProcess(tmp_path / "workspace", free_port(), database_url=database_url).init().start()
    yield proc, POINTS[request.param]
    proc.stop()


def test_eight_writers_lose_no_point(target: tuple[ServerProcess, int], monkeypatch: pytest.MonkeyPatch) -> None:
    server, points = target
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    client = MlflowClient(server.url)
    experiment = client.create_experiment("concurrency")
    shared = client.create_run(experiment).info.run_id
    own = [client.create_run(experiment).info.run_id for _ in range(PROCESSES)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    writers = [subprocess.Popen([sys.executable, "-m", "tests.support.metric_logger", server.url, server.token,
                                 own[i], shared, str(i), str(points)], cwd=ROOT, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for i in range(PROCESSES)]
    for w in writers:
        out, err = w.communicate(timeout=600)
        assert w.returncode == 0, err[-2000:]

    for run_id in own:
        history = client.get_metric_history(run_id, "loss")
        assert sorted(m.step for m in history) == list(range(points))
        assert client.get_run(run_id).data.metrics["loss"] == pytest.approx(1.0 / points)
    shared_history = client.get_metric_history(shared, "loss")
    assert sorted(m.step for m in shared_history) == list(range(PROCESSES * points))
    assert sorted(m.value for m in shared_history) == [float(v) for v in range(PROCESSES * points)]
    # the shared run's current value is the point with the highest step, whoever wrote it last
    assert client.get_run(shared).data.metrics["loss"] == float(PROCESSES * points - 1)
