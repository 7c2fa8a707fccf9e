"""MLflow's webhook API against mlyard, driven by the real ``mlflow`` client, delivering to a real receiver.

What MLflow's server does is the reference: the routes and shapes of ``MlflowClient().create_webhook``
and the rest, MLflow's example payloads for ``test_webhook``, MLflow's envelope and payloads for
registry events, and MLflow's headers and signature, checked with MLflow's own signing function.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import mlflow
import pytest
from mlflow import MlflowClient
from mlflow.entities.webhook import WebhookEvent, WebhookStatus
from mlflow.exceptions import MlflowException
from mlflow.webhooks.constants import WEBHOOK_DELIVERY_ID_HEADER, WEBHOOK_SIGNATURE_HEADER, WEBHOOK_TIMESTAMP_HEADER
from mlflow.webhooks.delivery import _generate_hmac_signature
from mlflow.webhooks.types import get_example_payload_for_event

from mlyard.automation.signatures import verify_mlflow_signature
from mlyard.client import MlyardClient
from tests.support.receiver import Received, Receiver
from tests.support.server import ServerProcess, free_port, run_cli

pytestmark = pytest.mark.slow

SECRET = "mlflow-hook-secret-41d2"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("mlflow-hooks") / "workspace", free_port()).init().start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture
def client(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> Iterator[MlflowClient]:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.url)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    mlflow.set_tracking_uri(server.url)
    yield MlflowClient(server.url)


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _signed_as_mlflow_signs(got: Received) -> bool:
    """MLflow's documented check: HMAC-SHA256 of '<delivery id>.<timestamp>.<body>', base64, prefixed 'v1,'."""
    delivery, timestamp = got.header(WEBHOOK_DELIVERY_ID_HEADER), got.header(WEBHOOK_TIMESTAMP_HEADER)
    expected = _generate_hmac_signature(SECRET, delivery or "", timestamp or "", got.body.decode())
    return got.header(WEBHOOK_SIGNATURE_HEADER) == expected


def test_mlflow_client_creates_lists_updates_tests_and_deletes(
        server: ServerProcess, client: MlflowClient, receiver: Receiver) -> None:
    name = _name("ci")
    hook = client.create_webhook(name=name, url=receiver.url("/crud"), description="CI",
                                 events=["model_version.created", "model_version_alias.created"], secret=SECRET)
    assert (hook.name, hook.url, hook.description, hook.status) == (name, receiver.url("/crud"), "CI",
                                                                    WebhookStatus.ACTIVE)
    assert [str(e) for e in hook.events] == ["model_version.created", "model_version_alias.created"]
    assert hook.secret is None  # write-only
    assert client.get_webhook(hook.webhook_id).name == name
    assert hook.webhook_id in [h.webhook_id for h in client.list_webhooks()]

    # mlyard sees it, as the mlflow flavour; MLflow's API does not list mlyard's own webhooks
    with MlyardClient(server.url, server.token) as mine:
        own = mine.webhooks.create(name=_name("own"), url=receiver.url("/own"), events=["job.*"])
        listed = {h["id"]: h for h in mine.webhooks.list()}
    assert (listed[hook.webhook_id]["flavor"], listed[hook.webhook_id]["signed"]) == ("mlflow", True)
    assert own["id"] not in [h.webhook_id for h in client.list_webhooks()]
    with pytest.raises(MlflowException) as caught:
        client.get_webhook(own["id"])
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"

    updated = client.update_webhook(hook.webhook_id, description="nightly", status="DISABLED")
    assert (updated.description, updated.status, updated.name) == ("nightly", WebhookStatus.DISABLED, name)
    assert updated.last_updated_timestamp >= hook.last_updated_timestamp

    # test_webhook sends MLflow's example payload for the first event, or the one asked for, signed as MLflow signs
    for event in (None, "model_version_alias.created"):
        result = client.test_webhook(hook.webhook_id, event=event)
        assert (result.success, result.response_status, result.response_body) == (True, 200, "ok")
        got = receiver.on("/crud")[-1]
        body = json.loads(got.body)
        expected = WebhookEvent.from_str(event or "model_version.created")
        assert (body["entity"], body["action"]) == (expected.entity.value, expected.action.value)
        assert body["data"] == get_example_payload_for_event(expected)
        assert _signed_as_mlflow_signs(got)

    client.create_webhook(name=_name("second"), url=receiver.url("/second"), events=["prompt.created"])
    page = client.list_webhooks(max_results=1)
    assert len(page) == 1 and page.token
    assert client.list_webhooks(max_results=1, page_token=page.token)[0].webhook_id != page[0].webhook_id

    client.delete_webhook(hook.webhook_id)
    with pytest.raises(MlflowException) as caught:
        client.get_webhook(hook.webhook_id)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"


def test_a_test_to_a_failing_receiver_is_not_a_success(client: MlflowClient, receiver: Receiver) -> None:
    receiver.script("/teapot", 418)
    hook = client.create_webhook(name=_name("teapot"), url=receiver.url("/teapot"), events=["registered_model.created"])
    result = client.test_webhook(hook.webhook_id)
    assert (result.success, result.response_status) == (False, 418)
    down = client.create_webhook(name=_name("down"), url=f"http://127.0.0.1:{free_port()}/", events=["prompt.created"])
    result = client.test_webhook(down.webhook_id)
    assert result.success is False and "cannot reach the receiver" in (result.error_message or "")


def test_registry_events_reach_an_mlflow_webhook_with_mlflow_payloads(
        client: MlflowClient, receiver: Receiver, tmp_path: Path) -> None:
    client.create_webhook(name=_name("registry"), url=receiver.url("/registry"), secret=SECRET,
                          events=["registered_model.created", "model_version.created",
                                  "model_version_alias.created", "model_version_alias.deleted"])
    name = _name("attrition")
    run = client.create_run(client.create_experiment(f"exp-{name}"))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "MLmodel").write_text("flavors: {}\n")
    client.log_artifacts(run.info.run_id, str(tmp_path / "m"), "m")
    client.create_registered_model(name, tags={"team": "hr"}, description="who leaves")
    source = f"runs:/{run.info.run_id}/m"
    client.create_model_version(name, source, run_id=run.info.run_id, tags={"stage": "candidate"},
                                description="first")
    client.set_registered_model_alias(name, "champion", "1")
    client.delete_registered_model_alias(name, "champion")

    def mine(rs: list[Received]) -> list[Received]:
        return [r for r in rs if json.loads(r.body)["data"].get("name") == name]

    got = mine(receiver.wait_for("/registry", lambda rs: len(mine(rs)) >= 4))
    bodies = [json.loads(r.body) for r in got]
    assert [(b["entity"], b["action"], b["data"]) for b in bodies] == [
        ("registered_model", "created", {"name": name, "tags": {"team": "hr"}, "description": "who leaves"}),
        ("model_version", "created", {"name": name, "version": "1", "source": source, "run_id": run.info.run_id,
                                      "tags": {"stage": "candidate"}, "description": "first"}),
        ("model_version_alias", "created", {"name": name, "alias": "champion", "version": "1"}),
        ("model_version_alias", "deleted", {"name": name, "alias": "champion"}),
    ]
    assert all(set(b) == {"entity", "action", "timestamp", "data"} for b in bodies)
    assert all(_signed_as_mlflow_signs(r) for r in got)
    assert all(verify_mlflow_signature(SECRET, r.body, r.header(WEBHOOK_DELIVERY_ID_HEADER),
                                       r.header(WEBHOOK_TIMESTAMP_HEADER), r.header(WEBHOOK_SIGNATURE_HEADER))
               for r in got)
    assert all(r.header("X-Mlyard-Signature") is None for r in got)  # MLflow's headers only


def test_tag_changes_reach_an_mlflow_webhook_one_per_tag(server: ServerProcess, client: MlflowClient,
                                                         receiver: Receiver, tmp_path: Path) -> None:
    client.create_webhook(name=_name("tags"), url=receiver.url("/tags"),
                          events=["model_version_tag.set", "model_version_tag.deleted"])
    name = _name("tagged")
    run = client.create_run(client.create_experiment(f"exp-{name}"))
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "MLmodel").write_text("flavors: {}\n")
    client.log_artifacts(run.info.run_id, str(tmp_path / "m"), "m")
    client.create_registered_model(name)
    client.create_model_version(name, f"runs:/{run.info.run_id}/m", run_id=run.info.run_id, tags={"old": "x"})
    run_cli("model", "update", "-n", name, "-v", "1", "--set", "tags.reviewed=yes", "--set", "tags.owner=hr",
            "--remove", "tags.old", env=server.env())

    got = receiver.wait_for("/tags", lambda rs: len([r for r in rs if name in r.body.decode()]) >= 3)
    bodies = [json.loads(r.body) for r in got if name in r.body.decode()]
    assert [(b["entity"], b["action"], b["data"]) for b in bodies] == [
        ("model_version_tag", "deleted", {"name": name, "version": "1", "key": "old"}),
        ("model_version_tag", "set", {"name": name, "version": "1", "key": "owner", "value": "hr"}),
        ("model_version_tag", "set", {"name": name, "version": "1", "key": "reviewed", "value": "yes"}),
    ]
    assert len({r.header(WEBHOOK_DELIVERY_ID_HEADER) for r in got}) == len(got)  # one delivery per tag

    # and through MLflow's own tag calls
    client.set_model_version_tag(name, "1", "approved", "no")
    client.delete_model_version_tag(name, "1", "owner")
    got = receiver.wait_for("/tags", lambda rs: len([r for r in rs if name in r.body.decode()]) >= 5)
    bodies = [json.loads(r.body) for r in got if name in r.body.decode()][3:]
    assert [(b["action"], b["data"]) for b in bodies] == [
        ("set", {"name": name, "version": "1", "key": "approved", "value": "no"}),
        ("deleted", {"name": name, "version": "1", "key": "owner"}),
    ]


def test_a_version_made_with_mlyard_reaches_an_mlflow_webhook(server: ServerProcess, client: MlflowClient,
                                                               receiver: Receiver, tmp_path: Path) -> None:
    client.create_webhook(name=_name("mine"), url=receiver.url("/mine"), events=["model_version.created"])
    name = _name("registered-by-mlyard")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "weights.bin").write_bytes(b"w")
    with MlyardClient(server.url, server.token) as mine:
        mine.models.create({"name": name, "type": "custom_model", "path": str(tmp_path / "m"),
                            "tags": {"team": "hr"}, "description": "by the CLI"})
    [got] = receiver.wait_for("/mine", lambda rs: any(name in r.body.decode() for r in rs))
    data = json.loads(got.body)["data"]
    assert {k: data[k] for k in ("name", "version", "run_id", "tags", "description")} == {
        "name": name, "version": "1", "run_id": None, "tags": {"team": "hr"}, "description": "by the CLI"}
    assert data["source"].startswith("azureml://datastores/")


@pytest.mark.parametrize(("body", "says"), [
    ({"name": "x", "url": "ftp://example.com/", "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}]},
     "http://"),
    ({"name": "x", "url": "http://example.com/", "events": [{"entity": "MODEL_VERSION", "action": "SET"}]},
     "Invalid action"),
    ({"name": "x", "url": "http://example.com/", "events": []}, "non-empty"),
    ({"name": "bad name", "url": "http://example.com/", "events": [{"entity": "PROMPT", "action": "CREATED"}]},
     "name"),
])
def test_bad_input_is_refused_in_mlflow_shape_and_creates_nothing(server: ServerProcess, client: MlflowClient,
                                                                  body: dict[str, Any], says: str) -> None:
    before = len(client.list_webhooks(max_results=1000))
    r = httpx.post(f"{server.url}/api/2.0/mlflow/webhooks", json=body, headers=server.headers())
    assert r.status_code == 400 and r.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert says in r.json()["message"]
    assert len(client.list_webhooks(max_results=1000)) == before
