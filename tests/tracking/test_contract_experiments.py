"""Experiments through the real MLflow client: create, read, search, rename, tag, delete and restore."""

from __future__ import annotations

import pytest

pytest.importorskip("mlflow", reason="the MLflow contract suite needs the mlflow client: pip install -e '.[dev]'")

import mlflow
from mlflow import MlflowClient
from mlflow.entities import ViewType
from mlflow.exceptions import MlflowException

pytestmark = pytest.mark.slow


def test_create_and_get_experiment(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    name = f"exp-{uid}"
    experiment_id = client.create_experiment(name, tags={"team": "vision", "owner": "ada"})

    experiment = client.get_experiment(experiment_id)
    assert experiment.experiment_id == experiment_id
    assert experiment.name == name
    assert experiment.lifecycle_stage == "active"
    assert experiment.tags["team"] == "vision"
    assert experiment.tags["owner"] == "ada"
    # Artifacts are proxied by the tracking server, so the client uploads through it.
    assert experiment.artifact_location.startswith("mlflow-artifacts:/")
    assert experiment.creation_time > 0

    by_name = mlflow.get_experiment_by_name(name)
    assert by_name is not None
    assert by_name.experiment_id == experiment_id
    assert mlflow.get_experiment_by_name(f"missing-{uid}") is None


def test_set_experiment_creates_then_reuses(mlflow_env: MlflowClient, uid: str) -> None:
    name = f"fluent-{uid}"
    created = mlflow.set_experiment(name)
    assert created.name == name
    again = mlflow.set_experiment(name)
    assert again.experiment_id == created.experiment_id
    with mlflow.start_run() as run:
        pass
    assert run.info.experiment_id == created.experiment_id


def test_search_experiments_filter_and_order(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    prefix = f"search-{uid}"
    for suffix, stage in (("a", "dev"), ("b", "prod"), ("c", "prod")):
        client.create_experiment(f"{prefix}-{suffix}", tags={"stage": stage})

    found = client.search_experiments(filter_string=f"name LIKE '{prefix}%'", order_by=["name DESC"])
    assert [e.name for e in found] == [f"{prefix}-c", f"{prefix}-b", f"{prefix}-a"]

    prod = client.search_experiments(filter_string=f"name LIKE '{prefix}%' AND tags.stage = 'prod'",
                                     order_by=["name ASC"])
    assert [e.name for e in prod] == [f"{prefix}-b", f"{prefix}-c"]

    first_page = client.search_experiments(filter_string=f"name LIKE '{prefix}%'", order_by=["name ASC"],
                                           max_results=2)
    assert [e.name for e in first_page] == [f"{prefix}-a", f"{prefix}-b"]
    assert first_page.token
    second_page = client.search_experiments(filter_string=f"name LIKE '{prefix}%'", order_by=["name ASC"],
                                            max_results=2, page_token=first_page.token)
    assert [e.name for e in second_page] == [f"{prefix}-c"]
    assert not second_page.token


def test_rename_and_tag_experiment(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    experiment_id = client.create_experiment(f"old-{uid}")
    client.rename_experiment(experiment_id, f"new-{uid}")
    client.set_experiment_tag(experiment_id, "purpose", "contract")

    experiment = client.get_experiment(experiment_id)
    assert experiment.name == f"new-{uid}"
    assert experiment.tags["purpose"] == "contract"
    assert client.get_experiment_by_name(f"old-{uid}") is None
    assert client.get_experiment_by_name(f"new-{uid}").experiment_id == experiment_id


def test_delete_and_restore_experiment(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    name = f"doomed-{uid}"
    experiment_id = client.create_experiment(name)

    client.delete_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "deleted"
    pattern = f"name = '{name}'"
    assert client.search_experiments(filter_string=pattern) == []
    deleted = client.search_experiments(view_type=ViewType.DELETED_ONLY, filter_string=pattern)
    assert [e.experiment_id for e in deleted] == [experiment_id]

    client.restore_experiment(experiment_id)
    assert client.get_experiment(experiment_id).lifecycle_stage == "active"
    assert [e.experiment_id for e in client.search_experiments(filter_string=pattern)] == [experiment_id]


def test_missing_experiment_is_resource_does_not_exist(mlflow_env: MlflowClient) -> None:
    with pytest.raises(MlflowException) as caught:
        mlflow_env.get_experiment("987654321")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_duplicate_experiment_is_resource_already_exists(mlflow_env: MlflowClient, uid: str) -> None:
    mlflow_env.create_experiment(f"twice-{uid}")
    with pytest.raises(MlflowException) as caught:
        mlflow_env.create_experiment(f"twice-{uid}")
    assert caught.value.error_code == "RESOURCE_ALREADY_EXISTS"
