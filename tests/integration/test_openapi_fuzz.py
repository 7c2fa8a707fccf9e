"""Fuzzing every operation of a real server's OpenAPI document: no request may end in a 5xx.

The schema is the server's own ``/openapi.json`` (it needs the token, like everything but
``/healthz``). For each operation Schemathesis generates requests that fit the schema and
requests that do not, sends them with the bearer token, and fails on any server error.
Examples are bounded and derandomized, so a run is repeatable and short.

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
from tests.support.server import ServerProcess, free_port

pytestmark = pytest.mark.slow

EXAMPLES_PER_OPERATION = 25
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

    # the server's own request counters agree: every operation was exercised, none answered 5xx
    served = {key: n - before.get(key, 0) for key, n in requests_served(fuzzed_server).items()}
    served = {key: n for key, n in served.items() if n > 0}
    missed = [op.label for op in operations if not any(m == op.method.upper() and r == op.path
                                                          for m, r, _ in served)]
    assert not missed, f"operations never reached the server: {missed}"
    errors = {key: n for key, n in served.items() if key[2].startswith("5")}
    with fuzzed_server.log_path.open(errors="replace") as f:
        f.seek(log_start)
        log = f.read()
    assert not errors, f"the server answered with server errors: {errors}\n{log[-6000:]}"
    assert "Traceback" not in log, f"the server logged a traceback while fuzzed:\n{log[-6000:]}"


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
