"""The endpoint service on a real store (SQLite and PostgreSQL): traffic rules, keys, nothing half-created."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlyard.assets.service import AssetService
from mlyard.core.errors import AlreadyExistsError, InvalidRequestError, InvalidSpecError, NotFoundError
from mlyard.serving import keys
from mlyard.serving.endpoints import EndpointService, check_traffic
from mlyard.serving.supervisor import Supervisor
from mlyard.store.blobs import DatastoreRegistry
from mlyard.store.db import Database


@pytest.fixture
def service(db: Database, tmp_path: Path) -> Iterator[EndpointService]:
    registry = DatastoreRegistry(db)
    registry.ensure_default("workspaceblobstore", str(tmp_path / "artifacts"))
    supervisor = Supervisor(tmp_path / ".mlyard", ready_timeout_s=30)
    yield EndpointService(db, AssetService(db, registry), registry, supervisor)
    supervisor.close()


def test_endpoint_created_with_two_keys_and_no_traffic(service: EndpointService) -> None:
    row = service.create_endpoint({"name": "ep-one", "description": "d"}, "alice")
    assert row.auth_mode == "key" and row.traffic == {} and row.created_by == "alice"
    creds = service.credentials("ep-one")
    assert creds["primaryKey"] != creds["secondaryKey"]
    assert service.live["ep-one"].keys["primary"] == creds["primaryKey"]
    with pytest.raises(AlreadyExistsError, match="ep-one"):
        service.create_endpoint({"name": "ep-one"}, "alice")


def test_traffic_at_create_must_name_existing_deployments(service: EndpointService) -> None:
    with pytest.raises(InvalidRequestError, match="blue.*does not exist"):
        service.create_endpoint({"name": "ep-two", "traffic": {"blue": 100}}, "alice")
    with pytest.raises(NotFoundError):
        service.get_endpoint("ep-two")


def test_update_traffic_of_unknown_deployment_is_refused(service: EndpointService) -> None:
    service.create_endpoint({"name": "ep-three"}, "alice")
    with pytest.raises(InvalidRequestError, match="'green'"):
        service.update_endpoint("ep-three", traffic={"green": 100})
    assert service.get_endpoint("ep-three").traffic == {}


def test_traffic_rules() -> None:
    both = {"blue", "green"}
    check_traffic("ep", {"blue": 90, "green": 10}, {}, both)
    check_traffic("ep", {"blue": 100, "green": 0}, {"green": 10}, both)
    check_traffic("ep", {}, {}, both)
    with pytest.raises(InvalidRequestError, match="adds up to 95"):
        check_traffic("ep", {"blue": 90, "green": 5}, {}, both)
    with pytest.raises(InvalidRequestError, match="at most 50%"):
        check_traffic("ep", {"blue": 100}, {"green": 60}, both)
    with pytest.raises(InvalidRequestError, match="cannot also get mirror traffic"):
        check_traffic("ep", {"blue": 50, "green": 50}, {"green": 10}, both)


def test_spec_errors_name_the_field(service: EndpointService) -> None:
    with pytest.raises(InvalidSpecError, match="auth_mode"):
        service.create_endpoint({"name": "ep-four", "auth_mode": "password"}, "alice")


def test_regenerate_one_key_keeps_the_other(service: EndpointService) -> None:
    service.create_endpoint({"name": "ep-five"}, "alice")
    before = service.credentials("ep-five")
    service.regenerate_keys("ep-five", "secondary")
    after = service.credentials("ep-five")
    assert after["primaryKey"] == before["primaryKey"] and after["secondaryKey"] != before["secondaryKey"]
    assert keys.matches_key(after["secondaryKey"], service.live["ep-five"].keys)
    assert not keys.matches_key(before["secondaryKey"], service.live["ep-five"].keys)
    with pytest.raises(InvalidRequestError, match="tertiary"):
        service.regenerate_keys("ep-five", "tertiary")


def test_aml_token_expires_and_dies_with_the_primary_key(service: EndpointService) -> None:
    service.create_endpoint({"name": "ep-six", "auth_mode": "aml_token"}, "alice")
    creds = service.credentials("ep-six")
    primary = service.live["ep-six"].keys["primary"]
    assert keys.valid_token("ep-six", creds["accessToken"], primary)
    assert not keys.valid_token("ep-six", creds["accessToken"], primary, now=creds["expiryTimeUtc"] + 1)
    assert not keys.valid_token("ep-seven", creds["accessToken"], primary)
    service.regenerate_keys("ep-six", "primary")
    assert not keys.valid_token("ep-six", creds["accessToken"], service.live["ep-six"].keys["primary"])


def test_deployment_of_a_missing_model_leaves_nothing(service: EndpointService) -> None:
    service.create_endpoint({"name": "ep-eight"}, "alice")
    spec = {"name": "blue", "model": "azureml:nosuch:1", "instance_type": "Standard_DS3_v2"}
    with pytest.raises(NotFoundError, match="nosuch"):
        service.create_deployment("ep-eight", spec, "alice", all_traffic=True)
    assert service.list_deployments("ep-eight") == []
    assert service.get_endpoint("ep-eight").traffic == {}
    assert service.supervisor.pools == {}


def test_deployment_endpoint_must_agree(service: EndpointService) -> None:
    service.create_endpoint({"name": "ep-nine"}, "alice")
    with pytest.raises(InvalidRequestError, match="other-ep"):
        service.create_deployment("ep-nine", {"name": "blue", "endpoint_name": "other-ep", "model": "m:1"}, "alice")
    with pytest.raises(NotFoundError, match="no-ep"):
        service.create_deployment("no-ep", {"name": "blue", "model": "m:1"}, "alice")


def test_delete_endpoint_removes_it(service: EndpointService) -> None:
    service.create_endpoint({"name": "ep-ten"}, "alice")
    service.delete_endpoint("ep-ten")
    assert "ep-ten" not in service.live
    with pytest.raises(NotFoundError):
        service.delete_endpoint("ep-ten")


def test_data_collector_settings_reach_the_worker(service: EndpointService, tmp_path: Path) -> None:
    """Enabled collections become MLYARD_DATA_COLLECTOR: each with its folder, Azure's default path unless given."""
    spec = {
        "name": "blue", "endpoint_name": "ep-dc",
        "code_configuration": {"code": "azureml://datastores/workspaceblobstore/paths/LocalUpload/abc/src",
                               "scoring_script": "score.py"},
        "environment": {"image": "mcr.microsoft.com/azureml/minimal:latest"},
        "data_collector": {"sampling_rate": 0.5, "rolling_rate": "Minute", "collections": {
            "model_inputs": {"enabled": "True"},
            "model_outputs": {"enabled": True, "data": {
                "path": "azureml://datastores/workspaceblobstore/paths/mdc/outputs"}},
            "request": {"enabled": False}}},
    }
    plan = service.resolver.plan("ep-dc", service.resolver.validate("ep-dc", spec))
    settings = json.loads(plan.env["MLYARD_DATA_COLLECTOR"])
    root = tmp_path / "artifacts"
    assert settings == {
        "sampling_rate": 0.5, "rolling_rate": "minute", "source": "ep-dc/blue", "model_version": "",
        "collections": {"model_inputs": str(root / "modelDataCollector/ep-dc/blue/model_inputs"),
                        "model_outputs": str(root / "mdc/outputs")},
    }
    assert plan.code_dir == str(root / "LocalUpload/abc/src")
    del spec["data_collector"]
    assert "MLYARD_DATA_COLLECTOR" not in service.resolver.plan("ep-dc", service.resolver.validate("ep-dc", spec)).env


def test_collected_folders_are_registered_as_data_assets(service: EndpointService) -> None:
    """Azure's names and default path; registering again (an update) changes nothing."""
    spec = service.resolver.validate("ep-reg", {
        "name": "blue", "model": "azureml:m:1", "instance_type": "Standard_DS3_v2",
        "data_collector": {"collections": {"model_inputs": {"enabled": True},
                                           "model_outputs": {"enabled": True, "data": {"name": "my-out", "version": 3}},
                                           "response": {"enabled": False}}}})
    for _ in range(2):
        service._register_collections("ep-reg", spec, "alice")
    assets = service._assets
    inputs = assets.get("data", "ep-reg-blue-model_inputs")
    assert (inputs.version, inputs.asset_type, inputs.path) == (
        "1", "uri_folder", "azureml://datastores/workspaceblobstore/paths/modelDataCollector/ep-reg/blue/model_inputs")
    outputs = assets.list("data", "my-out")
    assert [a.version for a in outputs] == ["3"]
    assert outputs[0].path == "azureml://datastores/workspaceblobstore/paths/modelDataCollector/ep-reg/blue/model_outputs"
    with pytest.raises(NotFoundError):
        assets.get("data", "ep-reg-blue-response")
