"""``mlyard workspace migrate``: a SQLite workspace moves to a real PostgreSQL, resuming after an interruption; the
MLflow client then sees the same experiments, runs, metric points, model versions and artifacts, and the moved
workspace backs up with pg_dump and restores into another database.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from mlyard.store.lifecycle.copy import migrate_to_postgres
from mlyard.store.lifecycle.layout import open_workspace
from tests.support.server import ServerProcess, free_port, run_cli

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from tests.support.postgres import PostgresServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


class Interrupted(Exception):
    pass


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    yield url.replace("postgresql+psycopg://", "postgresql://")
    postgres_server.drop_database(name)


@pytest.fixture
def mlflow_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    for key, value in NO_TELEMETRY.items():
        monkeypatch.setenv(key, value)


def _fill(client: MlflowClient, tmp_path: Path, url: str) -> None:
    """Runs with params, tags, metric histories and artifacts, and a registered sklearn model."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    exp = client.create_experiment("churn")
    for r in range(3):
        run = client.create_run(exp, run_name=f"trial-{r}", tags={"team": "risk"})
        rid = run.info.run_id
        client.log_param(rid, "C", str(0.1 * (r + 1)))
        for step in range(150):
            client.log_metric(rid, "loss", 1.0 / (step + 1) + r, step=step)
        client.log_metric(rid, "auc", float("nan"))
        folder = tmp_path / f"art-{r}"
        (folder / "plots").mkdir(parents=True)
        (folder / "plots" / "roc.bin").write_bytes(os.urandom(20_000 + r))
        (folder / "notes.txt").write_text(f"trial {r}\n")
        client.log_artifacts(rid, str(folder))
        client.set_terminated(rid)
    client.delete_run(client.search_runs([exp], "tags.team = 'risk'")[0].info.run_id)
    mlflow.set_tracking_uri(url)
    mlflow.set_experiment("churn")
    x = np.array([[0.0], [1.0], [2.0], [3.0]])
    with mlflow.start_run(run_name="model"):
        mlflow.log_metric("accuracy", 1.0)
        mlflow.sklearn.log_model(LogisticRegression().fit(x, [0, 0, 1, 1]), name="model",
                                 registered_model_name="churn-model")


def _view(client: MlflowClient, tmp_path: Path, tag: str) -> dict[str, Any]:
    """What the MLflow client sees: experiments, runs (with deleted ones), metric histories, models, artifact bytes."""
    from mlflow.entities import ViewType

    exps = sorted((e.name, e.lifecycle_stage) for e in client.search_experiments(view_type=ViewType.ALL))
    runs = {}
    for exp in client.search_experiments():
        for run in client.search_runs([exp.experiment_id], run_view_type=ViewType.ALL):
            rid = run.info.run_id
            history = {k: [(m.step, m.value if m.value == m.value else "nan", m.timestamp)
                           for m in client.get_metric_history(rid, k)] for k in run.data.metrics}
            dl = Path(client.download_artifacts(rid, "", str(tmp_path / tag / rid)))
            files = {p.relative_to(dl).as_posix(): p.read_bytes() for p in sorted(dl.rglob("*")) if p.is_file()}
            runs[rid] = (run.info.run_name, run.info.lifecycle_stage, run.info.status, run.data.params,
                         {k: v for k, v in run.data.tags.items()}, history, files)
    models = sorted((v.name, v.version, v.run_id, v.source, v.status) for v in client.search_model_versions())
    import mlflow

    model_dir = Path(mlflow.artifacts.download_artifacts("models:/churn-model/1", dst_path=str(tmp_path / tag / "m")))
    model_files = {p.relative_to(model_dir).as_posix(): p.read_bytes() for p in model_dir.rglob("*") if p.is_file()}
    return {"experiments": exps, "runs": runs, "models": models, "model_files": model_files}


def test_migrate_to_postgres_resumes_and_keeps_everything_the_mlflow_client_sees(
        tmp_path: Path, pg_url: str, mlflow_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("sklearn", reason="needs scikit-learn (pip install -e '.[dev]')")
    from mlflow import MlflowClient

    server = ServerProcess(tmp_path / "workspace", free_port()).init().start()
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    try:
        client = MlflowClient(server.url)
        _fill(client, tmp_path, server.url)
        before = _view(client, tmp_path, "before")
        refused = run_cli("--workspace", str(server.workspace), "workspace", "migrate", "--database-url", pg_url,
                          check=False)
        assert refused.returncode == 1 and "stop it first" in refused.stderr
    finally:
        server.stop()
    assert len(before["runs"]) == 4 and before["model_files"]

    # an interrupted copy (cut after a few tables) leaves the workspace on SQLite; running migrate again resumes
    seen: list[str] = []

    def cut(line: str) -> None:
        seen.append(line)
        if len(seen) == 12:
            raise Interrupted(line)

    with open_workspace(server.workspace) as ws, pytest.raises(Interrupted):
        migrate_to_postgres(ws, pg_url, cut)
    assert "database_url" not in yaml.safe_load((server.workspace / "mlyard.yaml").read_text())
    done = run_cli("--workspace", str(server.workspace), "workspace", "migrate", "--database-url", pg_url)
    copied, total = (int(w) for w in done.stdout.split()[1:4:2])
    assert 0 < copied < total, done.stdout  # the rows of the first tables were not copied twice
    assert "every table verified" in done.stdout
    assert yaml.safe_load((server.workspace / "mlyard.yaml").read_text())["database_url"] == pg_url
    again = run_cli("--workspace", str(server.workspace), "workspace", "migrate", "--database-url", pg_url,
                    check=False)
    assert again.returncode == 1 and "already PostgreSQL" in again.stderr

    server.start()
    try:
        client = MlflowClient(server.url)
        assert _view(client, tmp_path, "after") == before
        # the moved store takes new writes: sequences continue after the copied ids
        exp = client.create_experiment("after-the-move")
        rid = client.create_run(exp).info.run_id
        client.log_metric(rid, "loss", 0.1)
        assert client.get_run(rid).data.metrics == {"loss": 0.1}
        checked = run_cli("--workspace", str(server.workspace), "workspace", "check")
        assert checked.stdout.rstrip().endswith("ok")
        run_cli("--workspace", str(server.workspace), "workspace", "backup", str(tmp_path / "pg-backup"))
    finally:
        server.stop()
    assert (tmp_path / "pg-backup" / "mlyard.pgdump").is_file()


def test_a_postgres_backup_restores_into_another_database(tmp_path: Path, pg_url: str,
                                                          postgres_server: PostgresServer) -> None:
    server = ServerProcess(tmp_path / "workspace", free_port(), database_url=pg_url).init().start()
    try:
        data = tmp_path / "rows"
        data.mkdir()
        (data / "rows.csv").write_text("a\n1\n")
        run_cli("data", "create", "--name", "rows", "--type", "uri_folder", "--path", str(data), env=server.env())
        run_cli("--workspace", str(server.workspace), "workspace", "backup", str(tmp_path / "b"))
    finally:
        server.stop()
    refused = run_cli("workspace", "restore", str(tmp_path / "b"), str(tmp_path / "r0"), check=False)
    assert refused.returncode == 1 and "--database-url" in refused.stderr
    name = f"t_{uuid.uuid4().hex[:16]}"
    other = postgres_server.create_database(name).replace("postgresql+psycopg://", "postgresql://")
    try:
        out = run_cli("workspace", "restore", str(tmp_path / "b"), str(tmp_path / "r"), "--database-url", other)
        assert "check ok" in out.stdout
        assert yaml.safe_load((tmp_path / "r" / "mlyard.yaml").read_text())["database_url"] == other
    finally:
        postgres_server.drop_database(name)
