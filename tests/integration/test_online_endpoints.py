"""Online endpoints end to end: the real CLI, a real server, real worker processes serving a registered
MLflow model (reference §6.6's blue/green sequence)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.support.server import ServerProcess, run_cli, worker_pids

pytestmark = pytest.mark.slow

EP = "tiny-ep"
REQUEST = {"input_data": {"columns": ["a", "b"], "index": [0, 1], "data": [[1.0, 2.0], [8.0, 9.0]]}}


def _save_model(path: Path, flip: bool) -> None:
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"a": [1.0, 2.0, 8.0, 9.0], "b": [2.0, 1.0, 9.0, 8.0]})
    labels = [1, 1, 0, 0] if flip else [0, 0, 1, 1]
    model = LogisticRegression().fit(frame, labels)
    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(frame, model.predict(frame)),
                              serialization_format="pickle")


@pytest.fixture(scope="module")
def project(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two versions of a registered MLflow model and the YAML files of the sequence."""
    root = tmp_path_factory.mktemp("online")
    for version, flip in (("1", False), ("2", True)):
        folder = root / f"v{version}"
        _save_model(folder / "model", flip)
        (folder / "model.yml").write_text(f"name: tiny\nversion: {version}\ntype: mlflow_model\npath: ./model\n")
        run_cli("model", "create", "-f", str(folder / "model.yml"), env=server.env())
    (root / "endpoint.yml").write_text(f"name: {EP}\nauth_mode: key\n")
    for name, version in (("blue", "1"), ("green", "2")):
        (root / f"{name}.yml").write_text(
            f"name: {name}\nmodel: azureml:tiny:{version}\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n")
    (root / "request.json").write_text(json.dumps(REQUEST))
    code = root / "bad-code"
    code.mkdir()
    (code / "score.py").write_text("def init():\n    raise RuntimeError('the scoring script cannot start')\n\n"
                                   "def run(raw_data):\n    return raw_data\n")
    (root / "bad.yml").write_text(
        "name: bad\nmodel: azureml:tiny:1\ncode_configuration:\n  code: ./bad-code\n  scoring_script: score.py\n"
        "environment:\n  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:latest\n"
        "instance_type: Standard_DS3_v2\ninstance_count: 1\n")
    (root / "ghost.yml").write_text("name: ghost\nmodel: azureml:nosuch:1\ninstance_type: Standard_DS3_v2\n"
                                    "instance_count: 1\n")
    return root


def cli(server: ServerProcess, *args: str, check: bool = True) -> str:
    proc = run_cli(*args, env=server.env(), check=check)
    return proc.stdout + proc.stderr


def _key(server: ServerProcess) -> str:
    return cli(server, "online-endpoint", "get-credentials", "-n", EP, "--query", "primaryKey", "-o", "tsv").strip()


def _score(server: ServerProcess, body: object, key: str | None, deployment: str | None = None,
           client: httpx.Client | None = None) -> httpx.Response:
    headers = {"azureml-model-deployment": deployment} if deployment else {}
    if key is not None:
        headers["Authorization"] = f"Bearer {key}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return (client or httpx).post(f"{server.url}/endpoints/{EP}/score", content=content,
                                  headers={"content-type": "application/json", **headers}, timeout=30)


def test_blue_green_sequence(server: ServerProcess, project: Path) -> None:
    cli(server, "online-endpoint", "create", "-n", EP, "-f", str(project / "endpoint.yml"))
    out = cli(server, "online-deployment", "create", "-n", "blue", "--endpoint-name", EP,
              "-f", str(project / "blue.yml"), "--all-traffic")
    assert "blue" in out
    shown = json.loads(cli(server, "online-endpoint", "show", "-n", EP, "-o", "json"))
    assert shown["traffic"] == {"blue": 100}
    assert shown["scoring_uri"] == f"{server.url}/endpoints/{EP}/score"

    invoked = run_cli("online-endpoint", "invoke", "-n", EP, "--request-file", str(project / "request.json"),
                      env=server.env())
    assert "served by deployment blue" in invoked.stderr
    assert json.loads(invoked.stdout) == [0, 1]

    cli(server, "online-deployment", "update", "-n", "blue", "--endpoint-name", EP, "--set", "instance_count=2")
    blue = json.loads(cli(server, "online-deployment", "show", "-n", "blue", "-e", EP, "-o", "json"))
    assert blue["instance_count"] == 2 and len(worker_pids(server, EP, "blue")) == 2

    cli(server, "online-deployment", "create", "-n", "green", "--endpoint-name", EP, "-f", str(project / "green.yml"))
    invoked = run_cli("online-endpoint", "invoke", "-n", EP, "--deployment-name", "green",
                      "--request-file", str(project / "request.json"), env=server.env())
    assert "served by deployment green" in invoked.stderr and json.loads(invoked.stdout) == [1, 0]

    cli(server, "online-endpoint", "update", "-n", EP, "--mirror-traffic", "green=10")
    assert json.loads(cli(server, "online-endpoint", "show", "-n", EP, "-o", "json"))["mirror_traffic"] == {"green": 10}
    cli(server, "online-endpoint", "update", "-n", EP, "--mirror-traffic", "green=0")
    cli(server, "online-endpoint", "update", "-n", EP, "--traffic", "blue=90 green=10")

    # 2,000 draws at p=0.9: the share's standard deviation is 0.67 points, so +-3 points is 4.5 sigma
    key = _key(server)
    with httpx.Client() as client:
        served = Counter(_score(server, REQUEST, key, client=client).headers["azureml-model-deployment"]
                         for _ in range(2000))
    assert set(served) == {"blue", "green"}
    assert 1740 <= served["blue"] <= 1860, served

    refused = run_cli("online-deployment", "delete", "-n", "blue", "-e", EP, "--yes", env=server.env(), check=False)
    assert refused.returncode == 1 and "gets 90%" in refused.stderr
    cli(server, "online-endpoint", "update", "-n", EP, "--traffic", "blue=0 green=100")
    cli(server, "online-deployment", "delete", "-n", "blue", "-e", EP, "--yes")
    assert worker_pids(server, EP, "blue") == []
    names = json.loads(cli(server, "online-deployment", "list", "-e", EP, "-o", "json"))
    assert [d["name"] for d in names] == ["green"]
    assert _score(server, REQUEST, key).headers["azureml-model-deployment"] == "green"
    logs = cli(server, "online-deployment", "get-logs", "-n", "green", "-e", EP, "--lines", "20")
    assert "=== worker" in logs


def test_keys_and_targeting(server: ServerProcess, project: Path) -> None:
    key = _key(server)
    missing = _score(server, REQUEST, None)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert "get-credentials" in missing.json()["error"]["message"]
    assert _score(server, REQUEST, "not-a-key").status_code == 401
    assert _score(server, REQUEST, server.token).status_code == 401  # a workspace token is no endpoint key
    secondary = json.loads(cli(server, "online-endpoint", "get-credentials", "-n", EP, "-o", "json"))["secondaryKey"]
    assert _score(server, REQUEST, secondary).status_code == 200
    cli(server, "online-endpoint", "regenerate-keys", "-n", EP, "--key-type", "primary")
    assert _score(server, REQUEST, key).status_code == 401
    assert _score(server, REQUEST, _key(server)).status_code == 200

    unknown = _score(server, REQUEST, secondary, deployment="purple")
    assert unknown.status_code == 404 and "purple" in unknown.json()["error"]["message"]


def test_malformed_payloads_are_400(server: ServerProcess, project: Path) -> None:
    key = _key(server)
    wrong_column = {"input_data": {"columns": ["a", "zz"], "index": [0], "data": [[1.0, 2.0]]}}
    answer = _score(server, wrong_column, key)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_request"
    assert answer.headers["azureml-model-deployment"] == "green"
    assert _score(server, b"{not json", key).status_code == 400


def test_failed_create_leaves_nothing(server: ServerProcess, project: Path) -> None:
    for spec, reason in (("ghost.yml", "nosuch"), ("bad.yml", "the scoring script cannot start")):
        name = spec.removesuffix(".yml")
        failed = run_cli("online-deployment", "create", "-e", EP, "-f", str(project / spec), "--all-traffic",
                         env=server.env(), check=False)
        assert failed.returncode == 1 and reason in failed.stderr, failed.stderr
        names = [d["name"] for d in json.loads(cli(server, "online-deployment", "list", "-e", EP, "-o", "json"))]
        assert name not in names
        assert json.loads(cli(server, "online-endpoint", "show", "-n", EP, "-o", "json"))["traffic"] == {"green": 100}
        assert worker_pids(server, EP, name) == []


def test_endpoint_delete_stops_its_workers(server: ServerProcess, project: Path) -> None:
    assert worker_pids(server, EP, "green")
    cli(server, "online-endpoint", "delete", "-n", EP, "--yes")
    assert worker_pids(server, EP, "green") == []
    assert _score(server, REQUEST, "any").status_code == 404


def test_token_auth_modes(server: ServerProcess, tmp_path: Path) -> None:
    """aml_token: tokens from get-credentials; aad_token: the workspace's own tokens (no deployment needed)."""
    for name, mode in (("tok-ep", "aml_token"), ("aad-ep", "aad_token")):
        (tmp_path / f"{name}.yml").write_text(f"name: {name}\nauth_mode: {mode}\n")
        cli(server, "online-endpoint", "create", "-f", str(tmp_path / f"{name}.yml"))

    def status(name: str, credential: str) -> httpx.Response:
        return httpx.post(f"{server.url}/endpoints/{name}/score", json=REQUEST,
                          headers={"Authorization": f"Bearer {credential}"}, timeout=30)

    creds = json.loads(cli(server, "online-endpoint", "get-credentials", "-n", "tok-ep", "-o", "json"))
    assert set(creds) == {"accessToken", "tokenType", "expiryTimeUtc"}
    # past authentication, the request finds no deployment with traffic
    assert status("tok-ep", creds["accessToken"]).status_code == 503
    assert status("tok-ep", creds["accessToken"] + "0").status_code == 401
    assert status("tok-ep", server.token).status_code == 401
    assert status("aad-ep", server.token).status_code == 503
    assert "no deployment with traffic" in status("aad-ep", server.token).json()["error"]["message"]
    assert status("aad-ep", creds["accessToken"]).status_code == 401
    refused = run_cli("online-endpoint", "get-credentials", "-n", "aad-ep", env=server.env(), check=False)
    assert refused.returncode == 1 and "workspace token" in refused.stderr
    cli(server, "online-endpoint", "update", "-n", "tok-ep", "--set", "description=scores things",
        "--set", "tags.team=ml")
    shown = json.loads(cli(server, "online-endpoint", "show", "-n", "tok-ep", "-o", "json"))
    assert (shown["description"], shown["tags"], shown["auth_mode"]) == ("scores things", {"team": "ml"}, "aml_token")
    (tmp_path / "other.yml").write_text("name: tok-ep\nauth_mode: key\n")
    changed = run_cli("online-endpoint", "update", "-n", "tok-ep", "-f", str(tmp_path / "other.yml"), env=server.env(),
                      check=False)
    assert changed.returncode == 1 and "auth_mode of endpoint 'tok-ep' cannot change" in changed.stderr
    for name in ("tok-ep", "aad-ep"):
        cli(server, "online-endpoint", "delete", "-n", name, "--yes")
