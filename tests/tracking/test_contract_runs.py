"""Runs through the real MLflow client: lifecycle, params, metrics, tags, batches, datasets and errors."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("mlflow", reason="the MLflow contract suite needs the mlflow client: pip install -e '.[dev]'")

import mlflow
import mlflow.data
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag, ViewType
from mlflow.exceptions import MlflowException

pytestmark = pytest.mark.slow


def test_run_lifecycle_with_params_metrics_and_tags(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    experiment_id = client.create_experiment(f"runs-{uid}")
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"life-{uid}") as run:
        run_id = run.info.run_id
        mlflow.log_param("model", "rf")
        mlflow.log_params({"depth": 4, "lr": 0.1})
        for step, loss in enumerate([0.9, 0.5, 0.25]):
            mlflow.log_metric("loss", loss, step=step, timestamp=1_700_000_000_000 + step)
        mlflow.log_metrics({"acc": 0.75, "f1": 0.5}, step=3)
        mlflow.set_tag("team", "vision")
        mlflow.set_tags({"doomed": "yes", "owner": "ada"})
        mlflow.delete_tag("doomed")
        assert mlflow.active_run().info.status == "RUNNING"

    fetched = client.get_run(run_id)
    assert fetched.info.status == "FINISHED"
    assert fetched.info.run_name == f"life-{uid}"
    assert fetched.info.experiment_id == experiment_id
    assert fetched.info.lifecycle_stage == "active"
    assert fetched.info.end_time >= fetched.info.start_time > 0
    assert fetched.info.artifact_uri.startswith("mlflow-artifacts:/")
    assert fetched.data.params == {"model": "rf", "depth": "4", "lr": "0.1"}
    assert fetched.data.metrics == {"loss": 0.25, "acc": 0.75, "f1": 0.5}
    assert fetched.data.tags["team"] == "vision"
    assert fetched.data.tags["owner"] == "ada"
    assert fetched.data.tags["mlflow.runName"] == f"life-{uid}"
    assert "doomed" not in fetched.data.tags

    history = client.get_metric_history(run_id, "loss")
    assert [(m.step, m.value, m.timestamp) for m in sorted(history, key=lambda m: m.step)] == [
        (0, 0.9, 1_700_000_000_000), (1, 0.5, 1_700_000_000_001), (2, 0.25, 1_700_000_000_002)]
    assert [(m.key, m.step, m.value) for m in client.get_metric_history(run_id, "acc")] == [("acc", 3, 0.75)]


def test_latest_metric_is_the_highest_step(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    experiment_id = client.create_experiment(f"latest-{uid}")
    run_id = client.create_run(experiment_id).info.run_id
    client.log_metric(run_id, "loss", 0.1, step=5, timestamp=1000)
    client.log_metric(run_id, "loss", 0.9, step=1, timestamp=2000)

    assert client.get_run(run_id).data.metrics["loss"] == 0.1
    assert len(client.get_metric_history(run_id, "loss")) == 2


@pytest.mark.parametrize("status", ["FAILED", "KILLED"])
def test_end_run_records_status(mlflow_env: MlflowClient, uid: str, status: str) -> None:
    experiment_id = mlflow_env.create_experiment(f"status-{status}-{uid}")
    run = mlflow.start_run(experiment_id=experiment_id)
    mlflow.end_run(status=status)

    fetched = mlflow_env.get_run(run.info.run_id)
    assert fetched.info.status == status
    assert fetched.info.end_time is not None


def test_nested_runs_carry_parent_tag(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    experiment_id = client.create_experiment(f"nested-{uid}")
    mlflow.set_experiment(experiment_id=experiment_id)  # nested runs go to the active experiment, not the parent's
    with mlflow.start_run(run_name="parent") as parent:
        with mlflow.start_run(run_name="child-a", nested=True) as child_a:
            pass
        with mlflow.start_run(run_name="child-b", nested=True) as child_b:
            pass

    for child in (child_a, child_b):
        assert client.get_run(child.info.run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert "mlflow.parentRunId" not in client.get_run(parent.info.run_id).data.tags
    children = client.search_runs([experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
                                  order_by=["attributes.run_name ASC"])
    assert [r.info.run_name for r in children] == ["child-a", "child-b"]


def test_log_batch_and_set_terminated(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    experiment_id = client.create_experiment(f"batch-{uid}")
    run_id = client.create_run(experiment_id, run_name="batched", tags={"source": "client"}).info.run_id
    metrics = [Metric("loss", 1.0 / (step + 1), 1_700_000_000_000 + step, step) for step in range(10)]
    client.log_batch(run_id, metrics=metrics, params=[Param("alpha", "0.5"), Param("beta", "x")],
                     tags=[RunTag("stage", "dev")])
    client.set_terminated(run_id, status="KILLED")

    run = client.get_run(run_id)
    assert run.info.status == "KILLED"
    assert run.data.params == {"alpha": "0.5", "beta": "x"}
    assert run.data.tags["stage"] == "dev"
    assert run.data.tags["source"] == "client"
    assert run.data.metrics == {"loss": 0.1}
    history = client.get_metric_history(run_id, "loss")
    assert sorted(m.step for m in history) == list(range(10))


@pytest.mark.filterwarnings("ignore:Hint. Inferred schema contains integer:UserWarning")
def test_log_input_dataset(mlflow_env: MlflowClient, uid: str) -> None:
    frame = pd.DataFrame({"x1": [1.0, 2.0, 3.0], "x2": [0.5, 0.25, 0.125], "y": [0, 1, 0]})
    dataset = mlflow.data.from_pandas(frame, source="https://data.example/train.csv", name=f"train-{uid}",
                                      targets="y")
    experiment_id = mlflow_env.create_experiment(f"inputs-{uid}")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_input(dataset, context="training", tags={"split": "train"})

    inputs = mlflow_env.get_run(run.info.run_id).inputs.dataset_inputs
    assert len(inputs) == 1
    logged = inputs[0].dataset
    assert logged.name == f"train-{uid}"
    assert logged.digest == dataset.digest
    assert logged.source_type == "http"
    assert json.loads(logged.source) == {"url": "https://data.example/train.csv"}
    assert [column["name"] for column in json.loads(logged.schema)["mlflow_colspec"]] == ["x1", "x2", "y"]
    assert json.loads(logged.profile) == {"num_rows": 3, "num_elements": 9}
    assert {t.key: t.value for t in inputs[0].tags} == {"mlflow.data.context": "training", "split": "train"}


def test_update_run_name(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    run_id = client.create_run(client.create_experiment(f"rename-{uid}"), run_name="before").info.run_id
    client.update_run(run_id, name="after")

    run = client.get_run(run_id)
    assert run.info.run_name == "after"
    assert run.data.tags["mlflow.runName"] == "after"


def test_delete_and_restore_run(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    experiment_id = client.create_experiment(f"del-run-{uid}")
    run_id = client.create_run(experiment_id).info.run_id
    client.set_terminated(run_id)

    client.delete_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "deleted"
    assert client.search_runs([experiment_id]) == []
    assert [r.info.run_id for r in client.search_runs([experiment_id], run_view_type=ViewType.DELETED_ONLY)] == [
        run_id]

    client.restore_run(run_id)
    assert client.get_run(run_id).info.lifecycle_stage == "active"
    assert [r.info.run_id for r in client.search_runs([experiment_id])] == [run_id]


def test_missing_run_is_resource_does_not_exist(mlflow_env: MlflowClient) -> None:
    with pytest.raises(MlflowException) as caught:
        mlflow_env.get_run("0" * 32)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_changing_a_param_is_invalid_parameter_value(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    run_id = client.create_run(client.create_experiment(f"param-{uid}")).info.run_id
    client.log_param(run_id, "model", "rf")
    client.log_param(run_id, "model", "rf")  # the same value again is allowed

    with pytest.raises(MlflowException) as caught:
        client.log_param(run_id, "model", "lr")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
    assert client.get_run(run_id).data.params == {"model": "rf"}


def test_run_status_values_round_trip(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    run_id = client.create_run(client.create_experiment(f"statuses-{uid}")).info.run_id
    assert client.get_run(run_id).info.status == "RUNNING"
    client.update_run(run_id, status=RunStatus.to_string(RunStatus.SCHEDULED))
    assert client.get_run(run_id).info.status == "SCHEDULED"
    client.set_terminated(run_id, status="FINISHED", end_time=1_700_000_009_000)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.end_time == 1_700_000_009_000
