"""The MLflow contract suite: the real ``mlflow`` client against the stock MLflow server and against mlyard.

Every test runs twice: once against ``mlflow server`` (the reference: what it answers is the contract) and once
against an mlyard server. The servers are shared by the whole session, so each test uses its own names.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support.mlflow_server import NO_TELEMETRY, MlflowServerProcess, TrackingServer, mlflow_server_missing
from tests.support.server import ServerProcess, free_port

if TYPE_CHECKING:
    from mlflow import MlflowClient

# Before any test module imports mlflow: its telemetry client starts at import and would try the internet.
for _key, _value in NO_TELEMETRY.items():
    os.environ.setdefault(_key, _value)


@pytest.fixture(scope="session", params=["mlflow", "mlyard"])
def tracking_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                    ) -> Iterator[TrackingServer]:
    """A stock MLflow server or an mlyard server, shared by every contract test of the session."""
    pytest.importorskip("mlflow", reason="the MLflow contract suite needs the mlflow client (pip install -e '.[dev]')")
    if request.param == "mlflow":
        missing = mlflow_server_missing()
        if missing:
            pytest.skip(missing)
        server = MlflowServerProcess(tmp_path_factory.mktemp("mlflow-server"), free_port()).start()
        try:
            yield TrackingServer("mlflow", server.url, None)
        finally:
            server.stop()
        return
    workspace = tmp_path_factory.mktemp("mlyard-server") / "workspace"
    mlyard = ServerProcess(workspace, free_port()).init().start()
    try:
        yield TrackingServer("mlyard", mlyard.url, mlyard.token)
    finally:
        mlyard.stop()


@pytest.fixture
def mlflow_env(tracking_server: TrackingServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    """Point the fluent API and a fresh ``MlflowClient`` at the server; leave no run or experiment behind.

    Yields the ``MlflowClient``.
    """
    import mlflow
    import mlflow.tracking.fluent

    # mlflow itself writes MLFLOW_* variables (set_tracking_uri, set_experiment): put them all back afterwards.
    saved = {key: value for key, value in os.environ.items() if key.startswith("MLFLOW_")}
    for key in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server.uri)
    if tracking_server.token is not None:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", tracking_server.token)
    else:
        monkeypatch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
    mlflow.set_tracking_uri(tracking_server.uri)
    mlflow.set_registry_uri(tracking_server.uri)
    try:
        yield mlflow.MlflowClient(tracking_uri=tracking_server.uri, registry_uri=tracking_server.uri)
    finally:
        while mlflow.active_run() is not None:
            mlflow.end_run()
        # set_experiment() is process-global: a later test on the other server must not inherit its id.
        mlflow.tracking.fluent._active_experiment_id = None
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        for key in [key for key in os.environ if key.startswith("MLFLOW_")]:
            del os.environ[key]
        os.environ.update(saved)


@pytest.fixture(scope="module")
def module_client(tracking_server: TrackingServer) -> Iterator[MlflowClient]:
    """An ``MlflowClient`` for data that a module's tests share (built once, read by many)."""
    import mlflow

    with pytest.MonkeyPatch.context() as patch:
        if tracking_server.token is not None:
            patch.setenv("MLFLOW_TRACKING_TOKEN", tracking_server.token)
        else:
            patch.delenv("MLFLOW_TRACKING_TOKEN", raising=False)
        yield mlflow.MlflowClient(tracking_uri=tracking_server.uri, registry_uri=tracking_server.uri)


@pytest.fixture
def uid() -> str:
    """A short suffix that keeps this test's names apart from every other test's on a shared server."""
    return uuid.uuid4().hex[:10]
