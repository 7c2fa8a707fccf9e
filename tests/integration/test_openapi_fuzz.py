"""Fuzzing every route of a real server: no request may end in a 5xx, nor log a traceback.

mlyard's own routes are fuzzed from the server's ``/openapi.json`` (it needs the token, like
everything but ``/healthz``): for each operation Schemathesis generates requests that fit the schema
and requests that do not. MLflow's routes read their parameters themselves, so the document has no
schema for them: ``mlflow_bodies.py`` builds their requests from a table of routes and fields, with
hostile JSON text among the values (``1e400``, ``NaN``, 2**70, lone surrogates, deep nesting,
control characters, a thousand ``and`` clauses), and the test checks that the table lists every
MLflow route the server has. Explicit cases cover shapes drawn too rarely to rely on. Examples are
bounded and derandomized, so a run is repeatable and short.

The operations are driven from Hypothesis directly, one subtest each, rather than through
``schemathesis.pytest.from_fixture``: its lazy loader sets ``Node._nodeid``, which pytest 9.2 no
longer has; and the schema can only be loaded once the server runs, so not at collection.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok

from mlyard.client import MlyardClient
from tests.integration.mlflow_bodies import ROUTES, Request, Seeds, requests
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 25
MLFLOW_EXAMPLES_PER_OPERATION = 100
SEED = "fuzz-seed"


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of its own: fuzzing fills its workspace with odd names and files."""
    ws: Path = tmp_path_factory.mktemp("fuzz") / "workspace"
    proc = ServerProcess(ws, free_port()).init().start()
    yield proc
    proc.stop()


def seed(server: ServerProcess, folder: Path) -> None:
    """A few real assets, so that reads, archives and downloads have something to work on."""
    client = MlyardClient(server.url, server.token)
    (folder / "rows.csv").write_text("a,b\n1,2\n")
    (folder / "model").mkdir()
    (folder / "model" / "weights.bin").write_bytes(bytes(range(256)))
    client.data.create({"name": SEED, "version": "1", "type": "uri_file", "path": str(folder / "rows.csv")})
    client.models.create({"name": SEED, "version": "1", "type": "custom_model", "path": str(folder / "model")})
    client.environments.create({"name": SEED, "version": "1", "image": "python:3.11-slim"})


def known_path_parameters(path: str) -> dict[str, str]:
    if path.startswith("/api/v1/datastores/{name}"):
        return {"name": "workspaceblobstore"}
    if "{name}" in path:
        return {"name": SEED, "version": "1"} if "{version}" in path else {"name": SEED}
    return {}


def requests_served(server: ServerProcess) -> dict[tuple[str, str, str], float]:
    """(method, route template, status) -> requests counted by the server's /metrics."""
    text = httpx.get(f"{server.url}/metrics", headers=server.headers()).text
    served: dict[tuple[str, str, str], float] = {}
    for line in text.splitlines():
        m = re.match(r'mlyard_http_requests_total\{method="([^"]*)",route="([^"]*)",status="([^"]*)"\} (\S+)', line)
        if m:
            served[(m[1], re.sub(r":\w+}", "}", m[2]), m[3])] = float(m[4])
    return served


def served_since(server: ServerProcess, before: dict[tuple[str, str, str], float]) -> dict[tuple[str, str, str], float]:
    return {key: n - before.get(key, 0) for key, n in requests_served(server).items() if n > before.get(key, 0)}


def assert_no_server_errors(server: ServerProcess, operations: list[tuple[str, str]],
                            served: dict[tuple[str, str, str], float], log_start: int) -> None:
    """The server's own request counters agree: every operation was exercised, none answered 5xx."""
    missed = [f"{m} {p}" for m, p in operations if not any(sm == m and sr == p for sm, sr, _ in served)]
    assert not missed, f"operations never reached the server: {missed}"
    errors = {key: n for key, n in served.items() if key[2].startswith("5")}
    with server.log_path.open(errors="replace") as f:
        f.seek(log_start)
        log = f.read()
    assert not errors, f"the server answered with server errors: {errors}\n{log[-6000:]}"
    assert "Traceback" not in log, f"the server logged a traceback while fuzzed:\n{log[-6000:]}"


def is_mlflow_json_route(path: str) -> bool:
    """MLflow's routes that read their own parameters (mlflow_bodies.py fuzzes them; artifacts have a schema)."""
    return path.startswith("/api/2.0/mlflow/")


def test_no_operation_answers_with_a_server_error(
    fuzzed_server: ServerProcess, subtests: Any, tmp_path: Path
) -> None:
    seed(fuzzed_server, tmp_path)
    log_start = fuzzed_server.log_path.stat().st_size
    before = requests_served(fuzzed_server)
    headers = fuzzed_server.headers()
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.url}/openapi.json", headers=headers, timeout=30)
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the server's OpenAPI document has an invalid operation: {result.err()}"
        if not is_mlflow_json_route(result.ok().path):
            operations.append(result.ok())
    assert len(operations) >= 30, [op.label for op in operations]

    for operation in operations:
        strategies = [operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)]
        known = known_path_parameters(operation.path)
        if known:  # random names only ever meet 404s: aim a share of the requests at things that exist
            strategies.append(operation.as_strategy(GenerationMode.POSITIVE, path_parameters=known))
        cases = st.one_of(strategies)

        @given(case=cases)
        @settings(max_examples=EXAMPLES_PER_OPERATION, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error], timeout=30)

        with subtests.test(msg=operation.label):
            no_server_error()

    assert_no_server_errors(fuzzed_server, [(op.method.upper(), op.path) for op in operations],
                            served_since(fuzzed_server, before), log_start)


def seed_mlflow(server: ServerProcess) -> Seeds:
    """An experiment, a run, a registered model with a version and a logged model on the fuzzed server."""
    api = httpx.Client(base_url=f"{server.url}/api/2.0/mlflow", headers=server.headers(), timeout=30)
    with api:
        experiment = api.post("/experiments/create", json={"name": "fuzz"}).raise_for_status().json()["experiment_id"]
        run = api.post("/runs/create", json={"experiment_id": experiment}).raise_for_status().json()["run"]["info"]
        api.post("/runs/log-metric", json={"run_id": run["run_id"], "key": "acc", "value": 0.5, "timestamp": 1})
        artifacts = run["artifact_uri"].removeprefix("mlflow-artifacts:/")
        httpx.put(f"{server.url}/api/2.0/mlflow-artifacts/artifacts/{artifacts}/model/MLmodel", content=b"x",
                  headers=server.headers()).raise_for_status()
        api.post("/registered-models/create", json={"name": "fuzz-model"}).raise_for_status()
        api.post("/model-versions/create", json={"name": "fuzz-model", "source": f"{run['artifact_uri']}/model",
                                                 "run_id": run["run_id"]}).raise_for_status()
        logged = api.post("/logged-models", json={"experiment_id": experiment, "name": "fuzzed"}).raise_for_status()
    return Seeds(experiment, run["run_id"], "fuzz-model", logged.json()["model"]["info"]["model_id"])


def test_no_mlflow_route_answers_with_a_server_error(fuzzed_server: ServerProcess, subtests: Any) -> None:
    """Every MLflow route, fed its fields oddly and hostile JSON text; refusals in MLflow's error shape."""
    seeds = seed_mlflow(fuzzed_server)
    log_start = fuzzed_server.log_path.stat().st_size
    before = requests_served(fuzzed_server)
    document = httpx.get(f"{fuzzed_server.url}/openapi.json", headers=fuzzed_server.headers()).json()
    in_document = {(m.upper(), p) for p, ops in document["paths"].items() if is_mlflow_json_route(p) for m in ops}
    in_table = {(m, "/api/2.0/mlflow" + r.path) for r in ROUTES for m in r.methods}
    assert in_table == in_document, "mlflow_bodies.ROUTES must list every MLflow route the server has"

    with httpx.Client(base_url=fuzzed_server.url, headers=fuzzed_server.headers(), timeout=30) as client:
        for route in ROUTES:
            for method in route.methods:

                @given(request=requests(route, method, seeds))
                @settings(max_examples=MLFLOW_EXAMPLES_PER_OPERATION, derandomize=True, database=None,
                          deadline=None, suppress_health_check=list(HealthCheck))
                def no_server_error(request: Request) -> None:
                    r = client.request(request.method, request.url, content=request.content,
                                       headers={"content-type": "application/json"})
                    assert r.status_code < 500, f"{request!r}: {r.status_code} {r.text[:300]}"
                    if r.status_code >= 400:
                        assert "error_code" in r.json(), f"{request!r}: not MLflow's error shape: {r.text[:300]}"

                with subtests.test(msg=f"{method} {route.path}"):
                    no_server_error()

    assert_no_server_errors(fuzzed_server, sorted(in_document), served_since(fuzzed_server, before), log_start)


@pytest.mark.parametrize(("method", "path"), [
    ("PUT", "a" * 300),  # a name longer than the filesystem allows
    ("GET", "a" * 300),
    ("PUT", "nul%00byte"),  # a NUL byte in the name
    ("GET", "nul%00byte"),
    ("PUT", "folder"),  # a name that is already a folder (folder/file is written first)
], ids=["put-long-name", "get-long-name", "put-nul", "get-nul", "put-over-folder"])
def test_odd_datastore_paths_are_client_errors(fuzzed_server: ServerProcess, method: str, path: str) -> None:
    """Paths the fuzzer draws too rarely to rely on: each is the client's mistake, never a 5xx."""
    base = f"{fuzzed_server.url}/api/v1/datastores/workspaceblobstore/paths"
    httpx.put(f"{base}/folder/file", content=b"x", headers=fuzzed_server.headers())
    r = httpx.request(method, f"{base}/{path}", content=b"x" if method == "PUT" else None,
                      headers=fuzzed_server.headers())
    assert r.status_code < 500, f"{method} {path[:40]}: {r.status_code} {r.text[:300]}"


HOSTILE_V1 = {
    "bare-NaN": '{"spec": {"name": "h", "version": "1", "image": "python:3.11", "x": NaN}}',
    "1e400": '{"spec": {"name": "h", "version": "1", "image": "python:3.11", "x": 1e400}}',
    "2**70": '{"spec": {"name": "h", "version": ' + str(2**70) + ', "image": "python:3.11"}}',
    "2**63": '{"spec": {"name": "h", "version": "1", "image": "python:3.11"}, "files": [{"path": "a", "sha256": "'
             + "0" * 64 + '", "size": ' + str(2**63) + "}]}",
    "lone-surrogate": '{"spec": {"name": "h\\ud800", "version": "1", "image": "python:3.11"}}',
    "NUL": '{"spec": {"name": "h", "version": "1", "image": "python\\u0000:3.11"}}',
    "100000-deep": '{"spec": ' + '{"a": ' * 100_000 + "1" + "}" * 100_000 + "}",
    "65-deep": '{"spec": ' + '{"a": ' * 65 + "1" + "}" * 65 + "}",
}


@pytest.mark.parametrize("route", ["/api/v1/environments", "/api/v1/jobs", "/api/v1/computes"])
@pytest.mark.parametrize("name", list(HOSTILE_V1))
def test_hostile_json_on_mlyard_routes_is_an_invalid_request(fuzzed_server: ServerProcess, route: str,
                                                              name: str) -> None:
    """JSON the standard library takes but no client means: a 400 naming the problem, nothing created."""
    r = httpx.post(f"{fuzzed_server.url}{route}", content=HOSTILE_V1[name].encode(),
                   headers={**fuzzed_server.headers(), "content-type": "application/json"})
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error"]["code"] == "invalid_request"
    assert httpx.get(f"{fuzzed_server.url}/api/v1/environments/h", headers=fuzzed_server.headers()).status_code == 404


@pytest.mark.parametrize("url", [
    "/api/v1/data/a%00", "/api/v1/data?name=a%00", "/api/v1/jobs/a%00", "/api/v1/computes/a%00",
    "/api/2.0/mlflow/experiments/get-by-name?experiment_name=a%00", "/api/2.0/mlflow/logged-models/a%00",
    "/ajax-api/2.0/mlflow/registered-models/get?name=a%00", "/api/2.0/mlflow-artifacts/artifacts?path=a%00",
])  # fmt: skip
def test_nul_in_a_path_or_query_is_an_invalid_request(fuzzed_server: ServerProcess, url: str) -> None:
    """PostgreSQL cannot compare text holding NUL: refused before any lookup, in the route's error shape."""
    r = httpx.get(f"{fuzzed_server.url}{url}", headers=fuzzed_server.headers())
    assert r.status_code == 400, r.text[:300]
    body = r.json()
    assert "NUL" in (body["message"] if "mlflow" in url else body["error"]["message"])


def test_a_json_file_is_uploaded_as_it_is(fuzzed_server: ServerProcess) -> None:
    """Strict JSON is for request bodies a route parses, not for files: a datastore keeps any bytes."""
    content = b'{"loss": NaN, "deep": ' + b"[" * 100 + b"]" * 100 + b"}"
    url = f"{fuzzed_server.url}/api/v1/datastores/workspaceblobstore/paths/uploads/metrics.json"
    put = httpx.put(url, content=content, headers={**fuzzed_server.headers(), "content-type": "application/json"})
    assert put.status_code == 201, put.text[:300]
    assert httpx.get(url, headers=fuzzed_server.headers()).content == content
