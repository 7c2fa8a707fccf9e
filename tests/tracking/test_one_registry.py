"""What mlyard adds to the MLflow protocol: one registry for both sides, events, alias history, auth.

Real server process, real ``mlflow`` client, the real ``mlyard`` CLI; the store is read only to check
what no API shows yet (the event log).
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression

from tests.support.server import ServerProcess, free_port, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("one") / "workspace", free_port()).init().start()
    yield proc
    proc.stop()


@pytest.fixture
def client(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    mlflow.set_tracking_uri(server.url)
    yield MlflowClient(server.url)
    while mlflow.active_run():
        mlflow.end_run()


def _model() -> tuple[LogisticRegression, np.ndarray]:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(60, 3))
    return LogisticRegression().fit(x, (x[:, 0] > 0).astype(int)), x


def _events(server: ServerProcess) -> list[tuple[str, str, dict[str, object]]]:
    with sqlite3.connect(f"file:{server.workspace / 'mlyard.db'}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT type, subject, payload FROM events ORDER BY id").fetchall()
    return [(t, s, json.loads(p)) for t, s, p in rows]


def test_unauthenticated_calls_get_mlflow_401(server: ServerProcess) -> None:
    r = httpx.post(f"{server.url}/api/2.0/mlflow/experiments/create", json={"name": "x"})
    assert r.status_code == 401
    assert r.json()["error_code"] == "UNAUTHENTICATED" and "bearer token" in r.json()["message"]
    wrong = MlflowClient(server.url)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_TOKEN", "myd_wrong")
        with pytest.raises(MlflowException) as caught:
            wrong.search_experiments()
    assert caught.value.error_code == "UNAUTHENTICATED"


def test_mlflow_version_is_an_mlyard_asset_with_its_run(server: ServerProcess, client: MlflowClient) -> None:
    name = f"churn-{uuid.uuid4().hex[:8]}"
    mlflow.set_experiment(f"exp-{name}")
    model, x = _model()
    with mlflow.start_run() as run:
        mlflow.log_input(mlflow.data.from_numpy(x, name="train-x"), context="training")
        mlflow.sklearn.log_model(model, name="model", registered_model_name=name)
    client.set_registered_model_alias(name, "champion", "1")

    shown = json.loads(run_cli("model", "show", "-n", f"{name}@champion", "-o", "json", env=server.env()).stdout)
    assert (shown["name"], shown["version"], shown["type"]) == (name, "1", "mlflow_model")
    assert shown["path"].startswith("azureml://datastores/workspaceblobstore/paths/LocalUpload/")
    assert any(f["path"] == "model/MLmodel" for f in shown["files"])
    registry = shown["registry"]
    assert registry["run_id"] == run.info.run_id and registry["aliases"] == ["champion"]
    assert registry["experiment_id"] == run.info.experiment_id
    assert [i["name"] for i in registry["inputs"]] == ["train-x"]
    table = run_cli("model", "show", "-n", f"{name}:1", env=server.env()).stdout
    assert run.info.run_id in table and "champion" in table

    # the version loads through MLflow by alias, from its frozen copy
    loaded = mlflow.pyfunc.load_model(f"models:/{name}@champion")
    assert list(loaded.predict(x[:4])) == list(model.predict(x[:4]))


def test_mlyard_model_loads_through_mlflow(server: ServerProcess, client: MlflowClient, tmp_path: Path) -> None:
    model, x = _model()
    mlflow.sklearn.save_model(model, tmp_path / "model")
    name = f"made-by-cli-{uuid.uuid4().hex[:8]}"
    spec = tmp_path / "model.yml"
    spec.write_text(f"name: {name}\ntype: mlflow_model\npath: model\n")
    run_cli("model", "create", "-f", str(spec), env=server.env())

    loaded = mlflow.pyfunc.load_model(f"models:/{name}/1")
    assert list(loaded.predict(x[:5])) == list(model.predict(x[:5]))
    assert [v.version for v in client.search_model_versions(f"name='{name}'")] == ["1"]
    client.set_registered_model_alias(name, "prod", "1")
    assert list(mlflow.pyfunc.load_model(f"models:/{name}@prod").predict(x[:2])) == list(model.predict(x[:2]))
    assert client.get_latest_versions(name)[0].version == "1"


def test_events_and_alias_history(server: ServerProcess, client: MlflowClient, tmp_path: Path) -> None:
    name = f"evented-{uuid.uuid4().hex[:8]}"
    experiment = client.create_experiment(f"exp-{name}")
    run = client.create_run(experiment)
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "MLmodel").write_text("flavors: {}\n")
    client.log_artifacts(run.info.run_id, str(tmp_path / "m"), "m")
    client.set_terminated(run.info.run_id, "FINISHED")
    client.create_registered_model(name)
    for _ in range(2):
        client.create_model_version(name, f"runs:/{run.info.run_id}/m", run_id=run.info.run_id)
    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "champion", "2")
    client.delete_registered_model_alias(name, "champion")

    mine = [(t, s, p) for t, s, p in _events(server) if run.info.run_id in s or name in s]
    assert [(t, p.get("status")) for t, s, p in mine if t == "run.status_changed"] == [
        ("run.status_changed", "RUNNING"), ("run.status_changed", "FINISHED")]
    assert [s for t, s, _ in mine if t == "model.version_created"] == [f"{name}:1", f"{name}:2"]
    moves = [(p["previous"], p["version"]) for t, _, p in mine if t == "model.alias_moved"]
    assert moves == [(None, "1"), ("1", "2"), ("2", None)]
    with sqlite3.connect(f"file:{server.workspace / 'mlyard.db'}?mode=ro", uri=True) as conn:
        history = conn.execute("SELECT from_version, to_version, actor FROM alias_history WHERE name = ? "
                               "ORDER BY id", (name,)).fetchall()
    assert history == [(None, "1", "admin"), ("1", "2", "admin"), ("2", None, "admin")]


def test_registering_from_an_empty_folder_says_what_to_do(client: MlflowClient) -> None:
    name = f"empty-{uuid.uuid4().hex[:8]}"
    run = client.create_run(client.create_experiment(f"exp-{name}"))
    client.create_registered_model(name)
    with pytest.raises(MlflowException) as caught:
        client.create_model_version(name, f"runs:/{run.info.run_id}/nothing", run_id=run.info.run_id)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert "no files under" in caught.value.message
    assert client.search_model_versions(f"name='{name}'") == []
