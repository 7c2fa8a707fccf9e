"""The REST API of a real server process: auth, errors, uploads, assets, metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mlyard.client import MlyardClient
from mlyard.core.errors import ConflictError, InvalidRequestError, NotFoundError, UnauthenticatedError
from mlyard.core.hashing import sha256_bytes
from mlyard.specs import load_spec
from tests.support.server import ServerProcess


def test_health_is_open_everything_else_needs_a_token(server: ServerProcess) -> None:
    assert httpx.get(f"{server.url}/healthz").json()["status"] == "ok"
    for path in ("/api/v1/data", "/metrics", "/openapi.json", "/api/v1/workspace", "/no/such/route"):
        r = httpx.get(f"{server.url}{path}")
        assert r.status_code == 401, path
        assert r.json()["error"]["code"] == "unauthenticated"
        assert r.headers["www-authenticate"] == "Bearer"
    wrong = httpx.get(f"{server.url}/api/v1/data", headers={"Authorization": "Bearer myd_wrong"})
    assert wrong.status_code == 401 and "invalid or revoked" in wrong.json()["error"]["message"]
    basic = httpx.get(f"{server.url}/api/v1/data", headers={"Authorization": "Basic abc"})
    assert basic.status_code == 401


def test_sdk_rebuilds_typed_errors(server: ServerProcess) -> None:
    with pytest.raises(UnauthenticatedError):
        MlyardClient(server.url, "myd_wrong").data.list()
    client = MlyardClient(server.url, server.token)
    with pytest.raises(NotFoundError, match="data ghost@latest not found"):
        client.data.get("ghost")
    with pytest.raises(InvalidRequestError):
        client.transport.json("POST", "/api/v1/data", json={"nonsense": 1})


def test_openapi_and_metrics_with_token(server: ServerProcess) -> None:
    doc = httpx.get(f"{server.url}/openapi.json", headers=server.headers()).json()
    assert "/api/v1/data" in doc["paths"] and "/api/v1/datastores/{name}/paths/{path}" in doc["paths"]
    httpx.get(f"{server.url}/api/v1/data", headers=server.headers())
    metrics = httpx.get(f"{server.url}/metrics", headers=server.headers()).text
    assert 'mlyard_http_requests_total{method="GET",route="/api/v1/data",status="200"}' in metrics


def test_create_download_roundtrip_of_a_folder(server: ServerProcess, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "MLmodel").write_text("flavors: {}\n")
    (folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 100)
    spec = tmp_path / "model.yml"
    spec.write_text("name: roundtrip-model\ntype: mlflow_model\npath: model\n")
    client = MlyardClient(server.url, server.token)
    created = client.models.create(load_spec(spec, "model"))
    assert created["created"] and created["version"] == "1"
    assert created["path"].startswith("azureml://datastores/workspaceblobstore/paths/LocalUpload/")
    assert created["path"].endswith("/model")
    assert sorted(f["path"] for f in created["files"]) == ["model/MLmodel", "model/sub/weights.bin"]
    again = client.models.create(load_spec(spec, "model"))
    assert again["created"] is False and again["version"] == "1"
    out = client.models.download("roundtrip-model:1", download_path=tmp_path / "dl")
    assert (out / "model" / "sub" / "weights.bin").read_bytes() == bytes(range(256)) * 100
    assert (out / "model" / "MLmodel").read_text() == "flavors: {}\n"


def test_upload_is_verified_and_immutable(server: ServerProcess) -> None:
    url = f"{server.url}/api/v1/datastores/workspaceblobstore/paths/scratch/immutable.txt"
    bad = httpx.put(url, content=b"abc", headers={**server.headers(), "X-Mlyard-Sha256": "0" * 64})
    assert bad.status_code == 400 and "not the announced" in bad.json()["error"]["message"]
    assert httpx.head(url, headers=server.headers()).status_code == 404
    ok = httpx.put(url, content=b"abc", headers={**server.headers(), "X-Mlyard-Sha256": sha256_bytes(b"abc")})
    assert ok.status_code == 201 and ok.json()["sha256"] == sha256_bytes(b"abc")
    same = httpx.put(url, content=b"abc", headers=server.headers())
    assert same.status_code == 200
    other = httpx.put(url, content=b"xyz", headers=server.headers())
    assert other.status_code == 409 and "never change" in other.json()["error"]["message"]
    assert httpx.get(url, headers=server.headers()).content == b"abc"
    escape = httpx.put(f"{server.url}/api/v1/datastores/workspaceblobstore/paths/a/%2E%2E/%2E%2E/x",
                       content=b"x", headers=server.headers())
    assert escape.status_code in (400, 404)


def test_version_conflict_through_the_sdk(server: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("a\n1\n")
    spec = tmp_path / "d.yml"
    spec.write_text("name: conflicted\nversion: 1\ntype: uri_file\npath: f.csv\n")
    client = MlyardClient(server.url, server.token)
    client.data.create(load_spec(spec, "data"))
    (tmp_path / "f.csv").write_text("a\n2\n")
    with pytest.raises(ConflictError, match="conflicted:1 already exists with different content"):
        client.data.create(load_spec(spec, "data"))
    assert [d["version"] for d in client.data.list("conflicted")] == ["1"]


def test_audit_log_records_mutations(server: ServerProcess) -> None:
    import sqlite3

    httpx.put(f"{server.url}/api/v1/datastores/workspaceblobstore/paths/scratch/audited.txt", content=b"1",
              headers=server.headers())
    httpx.post(f"{server.url}/api/v1/data", json={}, headers={"Authorization": "Bearer nope"})
    with sqlite3.connect(server.workspace / "mlyard.db") as conn:
        rows = conn.execute("SELECT actor, action, resource, status FROM audit_log").fetchall()
    assert ("admin", "PUT", "/api/v1/datastores/workspaceblobstore/paths/scratch/audited.txt", 201) in rows
    assert ("anonymous", "POST", "/api/v1/data", 401) in rows


def test_mlflow_requests_are_audited_once_with_how_they_ended(fresh_server: ServerProcess) -> None:
    import sqlite3

    api, headers = f"{fresh_server.url}/api/2.0/mlflow", fresh_server.headers()
    experiment = httpx.post(f"{api}/experiments/create", json={"name": "audited"}, headers=headers).json()
    run = httpx.post(f"{api}/runs/create", json=experiment, headers=headers).json()["run"]["info"]["run_id"]
    point = {"key": "loss", "value": 0.5, "timestamp": 1, "step": 0}
    assert httpx.post(f"{api}/runs/log-metric", json={"run_id": run, **point}, headers=headers).status_code == 200
    assert httpx.post(f"{api}/runs/log-metric", json={"run_id": "nope", **point}, headers=headers).status_code == 404
    httpx.post(f"{api}/runs/delete", json={"run_id": run}, headers=headers)
    assert httpx.post(f"{api}/runs/log-metric", json={"run_id": run, **point}, headers=headers).status_code == 400
    assert httpx.post(f"{api}/runs/search", json={"experiment_ids": [experiment["experiment_id"]]},
                      headers=headers).status_code == 200  # a read sent as POST: audited all the same
    with sqlite3.connect(fresh_server.workspace / "mlyard.db") as conn:
        rows = conn.execute("SELECT actor, action, resource, status FROM audit_log ORDER BY id").fetchall()
    assert [(resource.rsplit("/mlflow/", 1)[1], status) for actor, action, resource, status in rows] == [
        ("experiments/create", 200), ("runs/create", 200), ("runs/log-metric", 200), ("runs/log-metric", 404),
        ("runs/delete", 200), ("runs/log-metric", 400), ("runs/search", 200)]
    assert {(actor, action) for actor, action, _, _ in rows} == {("admin", "POST")}
