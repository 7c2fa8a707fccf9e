"""The attrition example as a user runs it: Azure's MLOps template files, the real CLI, a real server.

``data create`` and ``environment create`` register what ``pipeline.yml`` names (``azureml:...@latest``),
``job create --stream`` runs the four steps, and the model they register is looked up the way a user would:
the registry, then the run it came from, then the pipeline's train step. The same pipeline submitted again
runs nothing: every step is reused and no new model version appears. Then the example's online endpoint files
deploy that model (blue: no-code; green: ``score.py``) and answer both of Azure's request shapes alike.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.server import ServerProcess, run_cli

if TYPE_CHECKING:
    from mlflow import MlflowClient

pytestmark = pytest.mark.slow

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "attrition"
TRAIN = EXAMPLE / "mlops" / "azureml" / "train"
DEPLOY = EXAMPLE / "mlops" / "azureml" / "deploy" / "online"
REQUESTS = [EXAMPLE / "data" / "attrition-request.json", EXAMPLE / "data" / "attrition-request-rows.json"]
MODEL = "attrition-model"
STEPS = ["prep_data", "train_model", "evaluate_model", "register_model"]
# mlflow's telemetry client starts at import and would try the internet.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


@pytest.fixture
def client(fresh_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    pytest.importorskip("sklearn", reason="the attrition example needs scikit-learn (pip install -e '.[dev]')")
    from mlflow import MlflowClient

    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    for key, value in NO_TELEMETRY.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", fresh_server.token)
    yield MlflowClient(tracking_uri=fresh_server.url, registry_uri=fresh_server.url)


def _pipeline(server: ServerProcess, name: str, cwd: Path) -> dict[str, Any]:
    """``mlyard job create -f pipeline.yml --stream`` (exit 0), then the job as ``job show`` returns it."""
    run = run_cli("job", "create", "-f", str(TRAIN / "pipeline.yml"), "--name", name, "--stream",
                  cwd=cwd, env={**server.env(), **NO_TELEMETRY}, check=False, timeout=240)
    if run.returncode != 0:
        log = server.log_path.read_text()[-3000:] if server.log_path.exists() else ""
        raise AssertionError(f"job create exited {run.returncode}\n{run.stdout}\n{run.stderr}\n--- server log\n{log}")
    shown = run_cli("job", "show", "-n", name, "-o", "json", env=server.env())
    return json.loads(shown.stdout)  # type: ignore[no-any-return]


def _invoke(server: ServerProcess, endpoint: str, request: Path, deployment: str) -> Any:
    """``mlyard online-endpoint invoke --deployment-name``: the answer, checked to come from that deployment."""
    run = run_cli("online-endpoint", "invoke", "-n", endpoint, "--request-file", str(request),
                  "--deployment-name", deployment, env=server.env())
    assert f"served by deployment {deployment}" in run.stderr
    return json.loads(run.stdout)


def test_the_template_pipeline_registers_a_model_and_is_reused_when_run_again(
        fresh_server: ServerProcess, client: MlflowClient, tmp_path: Path) -> None:
    env = fresh_server.env()
    assert "data employee-attrition:1 created" in run_cli("data", "create", "-f", str(TRAIN / "data.yml"),
                                                           env=env).stdout
    assert "environment attrition-train-env:1 created" in run_cli(
        "environment", "create", "-f", str(TRAIN / "train-env.yml"), env=env).stdout

    # 1. The first run executes the four steps in order and registers version 1.
    first = _pipeline(fresh_server, "attrition-1", tmp_path)
    assert first["status"] == "Completed" and first["experiment_name"] == "attrition-training"
    assert [(s["step"], s["status"], s["reused_from"]) for s in first["steps"]] == \
        [(step, "Completed", None) for step in STEPS]

    shown = json.loads(run_cli("model", "show", "-n", f"{MODEL}@latest", "-o", "json", env=env).stdout)
    assert shown["version"] == "1" and shown["type"] == "mlflow_model"
    version = client.get_model_version(MODEL, "1")
    assert version.run_id == shown["registry"]["run_id"] == "attrition-1_register_model" and version.status == "READY"
    # lineage: the version's run, its pipeline, and the pipeline's train step with the training metrics
    source = client.get_run(version.run_id)
    assert source.data.metrics == {"deploy_flag": 1.0}
    assert source.data.tags["mlflow.parentRunId"] == "attrition-1"
    siblings = {r.data.tags["mlyard.step"]: r for r in client.search_runs(
        [source.info.experiment_id], "tags.mlflow.parentRunId = 'attrition-1'")}
    assert set(siblings) == set(STEPS)
    train = siblings["train_model"].data
    assert {"train_accuracy", "train_f1", "train_auc"} <= set(train.metrics)
    assert train.params["n_estimators"] == "200"
    prep = siblings["prep_data"].data.metrics
    assert prep["raw_rows"] == prep["train_rows"] + prep["test_rows"] == 1470
    assert siblings["evaluate_model"].data.metrics["test_auc"] > 0.6

    # the pipeline's outputs, downloaded in Azure ML's layout: the deploy flag and the model info
    run_cli("job", "download", "-n", "attrition-1", "--all", "--download-path", str(tmp_path / "dl"), env=env)
    outputs = tmp_path / "dl" / "named-outputs"
    assert (outputs / "evaluation_output" / "deploy_flag").read_text() == "1"
    assert json.loads((outputs / "model_info_output_path" / "model_info.json").read_text()) == \
        {"id": f"{MODEL}:1", "name": MODEL, "version": "1"}
    assert (outputs / "trained_model" / "MLmodel").is_file()

    # 2. Submitted again, unchanged: every step is reused, nothing runs, nothing new is registered.
    again = _pipeline(fresh_server, "attrition-2", tmp_path)
    assert again["status"] == "Completed"
    assert [(s["step"], s["status"], s["reused_from"]) for s in again["steps"]] == \
        [(step, "Completed", f"attrition-1_{step}") for step in STEPS]
    assert sorted(v.version for v in client.search_model_versions(f"name='{MODEL}'")) == ["1"]
    # a reused step's run shows the metrics of the run it reuses
    assert client.get_run("attrition-2_train_model").data.metrics == train.metrics

    # 3. The example's online endpoint serves that model: blue as a no-code deployment with all the traffic, green
    # through score.py at 0%; both answer both request shapes with one 0/1 per row, and the same ones.
    endpoint = run_cli("online-endpoint", "create", "-f", str(DEPLOY / "online-endpoint.yml"), "-o", "json", env=env)
    name = json.loads(endpoint.stdout)["name"]
    assert json.loads(endpoint.stdout)["auth_mode"] == "key"
    run_cli("online-deployment", "create", "-n", "blue", "--endpoint-name", name,
            "-f", str(DEPLOY / "online-deployment.yml"), "--all-traffic", env=env, timeout=300)
    rows = len(json.loads(REQUESTS[0].read_text())["input_data"]["data"])
    answers = [_invoke(fresh_server, name, request, "blue") for request in REQUESTS]
    assert answers[0] == answers[1] and len(answers[0]) == rows and set(answers[0]) <= {0, 1}, answers
    run_cli("online-deployment", "create", "-n", "green", "--endpoint-name", name,
            "-f", str(DEPLOY / "online-deployment-green.yml"), env=env, timeout=300)
    assert [_invoke(fresh_server, name, request, "green") for request in REQUESTS] == answers
    shown = json.loads(run_cli("online-endpoint", "show", "-n", name, "-o", "json", env=env).stdout)
    assert shown["traffic"] == {"blue": 100}
