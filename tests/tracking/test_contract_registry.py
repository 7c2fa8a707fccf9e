"""The model registry through the real MLflow client: registered models, versions, tags, aliases, stages."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("mlflow", reason="the MLflow contract suite needs the mlflow client: pip install -e '.[dev]'")

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

pytestmark = pytest.mark.slow


def _versions(client: MlflowClient, name: str, source: str, run_id: str, count: int) -> list[ModelVersion]:
    return [client.create_model_version(name, source, run_id=run_id, tags={"n": str(i)}, description=f"v{i}")
            for i in range(1, count + 1)]


@pytest.fixture
def run(mlflow_env: MlflowClient, uid: str, tmp_path: Path) -> Run:
    """A run with a small model folder at ``model/``, which the model versions point at.

    (The stock server would also register an empty folder; mlyard refuses, since a version's files
    are copied into an immutable asset when it is created.)
    """
    created = mlflow_env.create_run(mlflow_env.create_experiment(f"registry-{uid}"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "weights.bin").write_bytes(b"\x00\x01" * 100)
    mlflow_env.log_artifacts(created.info.run_id, str(folder), "model")
    return created


def test_registered_model_create_get_update(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    name = f"model-{uid}"
    created = client.create_registered_model(name, tags={"team": "vision"}, description="first")
    assert (created.name, created.description, created.tags) == (name, "first", {"team": "vision"})

    client.update_registered_model(name, description="second")
    client.set_registered_model_tag(name, "stage", "beta")
    client.set_registered_model_tag(name, "doomed", "yes")
    client.delete_registered_model_tag(name, "doomed")

    model = client.get_registered_model(name)
    assert model.description == "second"
    assert model.tags == {"team": "vision", "stage": "beta"}
    assert model.latest_versions == []
    assert model.aliases == {}
    assert model.last_updated_timestamp >= model.creation_timestamp > 0


def test_search_registered_models(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    prefix = f"search-{uid}"
    for suffix in ("a", "b", "c"):
        client.create_registered_model(f"{prefix}-{suffix}")
    client.create_registered_model(f"other-{uid}")

    found = client.search_registered_models(filter_string=f"name LIKE '{prefix}%'", order_by=["name DESC"])
    assert [m.name for m in found] == [f"{prefix}-c", f"{prefix}-b", f"{prefix}-a"]
    exact = client.search_registered_models(filter_string=f"name = '{prefix}-b'")
    assert [m.name for m in exact] == [f"{prefix}-b"]

    first = client.search_registered_models(filter_string=f"name LIKE '{prefix}%'", order_by=["name ASC"],
                                            max_results=2)
    assert [m.name for m in first] == [f"{prefix}-a", f"{prefix}-b"]
    assert first.token
    rest = client.search_registered_models(filter_string=f"name LIKE '{prefix}%'", order_by=["name ASC"],
                                           max_results=2, page_token=first.token)
    assert [m.name for m in rest] == [f"{prefix}-c"]


def test_rename_registered_model_keeps_versions(mlflow_env: MlflowClient, uid: str, run: Run) -> None:
    client = mlflow_env
    client.create_registered_model(f"before-{uid}")
    _versions(client, f"before-{uid}", f"{run.info.artifact_uri}/model", run.info.run_id, 2)

    client.rename_registered_model(f"before-{uid}", f"after-{uid}")
    assert client.get_registered_model(f"after-{uid}").name == f"after-{uid}"
    assert client.get_model_version(f"after-{uid}", "2").name == f"after-{uid}"
    with pytest.raises(MlflowException) as caught:
        client.get_registered_model(f"before-{uid}")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_model_versions(mlflow_env: MlflowClient, uid: str, run: Run, tmp_path: Path) -> None:
    client = mlflow_env
    name = f"versions-{uid}"
    source = f"{run.info.artifact_uri}/model"
    client.create_registered_model(name)
    created = _versions(client, name, source, run.info.run_id, 2)
    assert [v.version for v in created] == ["1", "2"]

    version = client.get_model_version(name, "1")
    assert (version.name, version.version, version.source, version.run_id) == (name, "1", source, run.info.run_id)
    assert (version.status, version.current_stage, version.description) == ("READY", "None", "v1")
    assert version.tags == {"n": "1"}
    assert version.creation_timestamp > 0

    client.update_model_version(name, "1", description="updated")
    client.set_model_version_tag(name, "1", "validated", "true")
    client.delete_model_version_tag(name, "1", "n")
    version = client.get_model_version(name, "1")
    assert (version.description, version.tags) == ("updated", {"validated": "true"})
    # MLflow points at the run's folder; mlyard at the version's immutable copy: the files are the same.
    import mlflow

    uri = client.get_model_version_download_uri(name, "1")
    got = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(tmp_path / "by-uri")))
    assert sorted(p.name for p in got.iterdir()) == ["MLmodel", "weights.bin"]
    assert (got / "weights.bin").read_bytes() == b"\x00\x01" * 100

    by_name = client.search_model_versions(f"name='{name}'")
    assert sorted(v.version for v in by_name) == ["1", "2"]
    by_run = client.search_model_versions(f"run_id='{run.info.run_id}'")
    assert sorted((v.name, v.version) for v in by_run) == [(name, "1"), (name, "2")]
    assert [m.version for m in client.get_registered_model(name).latest_versions] == ["2"]


def test_aliases(mlflow_env: MlflowClient, uid: str, run: Run) -> None:
    client = mlflow_env
    name = f"aliases-{uid}"
    client.create_registered_model(name)
    _versions(client, name, f"{run.info.artifact_uri}/model", run.info.run_id, 2)

    client.set_registered_model_alias(name, "champion", "1")
    client.set_registered_model_alias(name, "challenger", "2")
    assert client.get_model_version_by_alias(name, "champion").version == "1"
    assert client.get_registered_model(name).aliases == {"champion": "1", "challenger": "2"}
    assert client.get_model_version(name, "1").aliases == ["champion"]

    client.set_registered_model_alias(name, "champion", "2")  # moving an alias replaces it
    assert client.get_model_version_by_alias(name, "champion").version == "2"
    assert sorted(client.get_model_version(name, "2").aliases) == ["challenger", "champion"]
    assert client.get_model_version(name, "1").aliases == []

    client.delete_registered_model_alias(name, "champion")
    assert client.get_registered_model(name).aliases == {"challenger": "2"}
    with pytest.raises(MlflowException) as caught:
        client.get_model_version_by_alias(name, "champion")
    # MLflow answers a missing alias with 400 INVALID_PARAMETER_VALUE, not RESOURCE_DOES_NOT_EXIST.
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_stage_transitions(mlflow_env: MlflowClient, uid: str, run: Run) -> None:
    """Deprecated in MLflow 3 (a FutureWarning) but still served: 2.x clients depend on it."""
    client = mlflow_env
    name = f"stages-{uid}"
    client.create_registered_model(name)
    _versions(client, name, f"{run.info.artifact_uri}/model", run.info.run_id, 2)

    with pytest.warns(FutureWarning):
        staged = client.transition_model_version_stage(name, "1", "Staging")
    assert staged.current_stage == "Staging"
    with pytest.warns(FutureWarning):
        client.transition_model_version_stage(name, "2", "Staging", archive_existing_versions=True)
    assert client.get_model_version(name, "1").current_stage == "Archived"
    assert client.get_model_version(name, "2").current_stage == "Staging"
    latest = client.get_registered_model(name).latest_versions
    assert sorted((v.version, v.current_stage) for v in latest) == [("1", "Archived"), ("2", "Staging")]

    with pytest.raises(MlflowException) as caught, pytest.warns(FutureWarning):
        client.transition_model_version_stage(name, "1", "Bogus")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_delete_model_version_and_registered_model(mlflow_env: MlflowClient, uid: str, run: Run) -> None:
    client = mlflow_env
    name = f"deleted-{uid}"
    client.create_registered_model(name)
    _versions(client, name, f"{run.info.artifact_uri}/model", run.info.run_id, 2)

    client.delete_model_version(name, "1")
    with pytest.raises(MlflowException) as caught:
        client.get_model_version(name, "1")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    assert [v.version for v in client.search_model_versions(f"name='{name}'")] == ["2"]
    # Version numbers are never reused.
    assert client.create_model_version(name, f"{run.info.artifact_uri}/model", run_id=run.info.run_id).version == "3"

    client.delete_registered_model(name)
    for call in (lambda: client.get_registered_model(name), lambda: client.get_model_version(name, "2")):
        with pytest.raises(MlflowException) as caught:
            call()
        assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_registry_errors(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    client.create_registered_model(f"dup-{uid}")
    with pytest.raises(MlflowException) as caught:
        client.create_registered_model(f"dup-{uid}")
    assert caught.value.error_code == "RESOURCE_ALREADY_EXISTS"
    with pytest.raises(MlflowException) as caught:
        client.get_registered_model(f"missing-{uid}")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as caught:
        client.get_model_version(f"dup-{uid}", "7")
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
    with pytest.raises(MlflowException) as caught:
        client.create_model_version(f"dup-{uid}", "/not/an/artifact/location")
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"
