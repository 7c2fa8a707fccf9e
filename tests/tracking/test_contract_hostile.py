"""Hostile request bodies on MLflow's routes: each is a 400 INVALID_PARAMETER_VALUE, never a 5xx.

Each case is sent as raw JSON text to the stock MLflow server and to mlyard. Where MLflow refuses
it too, both must answer 400; where MLflow takes it (a name with a newline, ``"value": true``) or
fails on it (a 500 on ``1e400``), mlyard is deliberately stricter (docs/tracking.md) and only mlyard
is held to the 400.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.mlflow_server import TrackingServer

pytest.importorskip("mlflow", reason="the MLflow contract suite needs the mlflow client: pip install -e '.[dev]'")

pytestmark = pytest.mark.slow

BIG = 2**70
DEEP = "[" * 100_000 + "]" * 100_000
THOUSAND_ANDS = " and ".join(["metrics.a > 1"] * 1000)


@dataclass(frozen=True)
class Case:
    route: str
    body: str  # JSON text; {run}, {exp} are filled in
    mlflow_agrees: bool = False  # the stock server answers 400 too


CASES: dict[str, Case] = {
    "timestamp-1e400": Case("runs/log-metric", '{"run_id":"{run}","key":"k","value":1,"timestamp":1e400,"step":0}'),
    "timestamp-Infinity": Case("runs/log-metric",
                               '{"run_id":"{run}","key":"k","value":1,"timestamp":Infinity,"step":0}'),
    "step-NaN": Case("runs/log-metric", '{"run_id":"{run}","key":"k","value":1,"timestamp":1,"step":NaN}', True),
    "value-bare-NaN": Case("runs/log-metric", '{"run_id":"{run}","key":"k","value":NaN,"timestamp":1,"step":0}'),
    "start_time-1e400": Case("runs/create", '{"experiment_id":"{exp}","start_time":1e400}'),
    "end_time-Infinity": Case("runs/update", '{"run_id":"{run}","end_time":-Infinity}'),
    "timestamp-2**70": Case("runs/log-metric",
                            f'{{"run_id":"{{run}}","key":"k","value":1,"timestamp":{BIG},"step":0}}'),
    "step-2**70": Case("runs/log-batch",
                       f'{{"run_id":"{{run}}","metrics":[{{"key":"k","value":1,"timestamp":1,"step":{BIG}}}]}}'),
    "start_time-2**70": Case("runs/create", f'{{"experiment_id":"{{exp}}","start_time":{BIG}}}'),
    "experiment_id-2**70": Case("runs/create", f'{{"experiment_id":{BIG}}}', True),
    "experiment_id-2**70-text": Case("runs/create", f'{{"experiment_id":"{BIG}"}}'),
    "nested-100000-deep": Case("runs/create", DEEP),
    "surrogate-in-experiment-name": Case("experiments/create", '{"name":"a\\ud800b"}', True),
    "surrogate-in-run-name": Case("runs/create", '{"experiment_id":"{exp}","run_name":"r\\ud800"}'),
    "surrogate-in-tag-value": Case("runs/set-tag", '{"run_id":"{run}","key":"t","value":"\\udc00"}'),
    "thousand-ands-in-a-filter": Case("runs/search", json.dumps({"experiment_ids": ["0"], "filter": THOUSAND_ANDS})),
    "newline-ending-an-experiment-name": Case("experiments/create", '{"name":"d\\n"}'),
    "bell-in-an-experiment-name": Case("experiments/create", '{"name":"d\\u0007x"}'),
    "newline-ending-a-run-name": Case("runs/create", '{"experiment_id":"{exp}","run_name":"r\\n"}'),
    "tab-in-a-run-rename": Case("runs/update", '{"run_id":"{run}","run_name":"r\\tx"}'),
    "newline-ending-a-registered-model-name": Case("registered-models/create", '{"name":"m\\n"}'),
    "NUL-in-a-registered-model-name": Case("registered-models/create", '{"name":"m\\u0000"}'),
    "newline-ending-a-metric-key": Case("runs/log-metric",
                                        '{"run_id":"{run}","key":"m\\n","value":1,"timestamp":1,"step":0}'),
    "newline-ending-a-tag-key": Case("runs/set-tag", '{"run_id":"{run}","key":"t\\n","value":"v"}'),
    "newline-ending-an-experiment-tag-key": Case("experiments/set-experiment-tag",
                                                 '{"experiment_id":"{exp}","key":"t\\n","value":"v"}'),
    "300-character-registered-model-name": Case("registered-models/create", '{"name":"' + "m" * 300 + '"}'),
    "300-character-run-name": Case("runs/create", '{"experiment_id":"{exp}","run_name":"' + "r" * 300 + '"}'),
    "NUL-in-a-param-key": Case("runs/log-parameter", '{"run_id":"{run}","key":"p\\u0000","value":"v"}', True),
    "true-as-a-metric-value": Case("runs/log-metric",
                                   '{"run_id":"{run}","key":"k","value":true,"timestamp":1,"step":0}'),
    "true-as-a-metric-value-in-a-batch": Case(
        "runs/log-batch", '{"run_id":"{run}","metrics":[{"key":"k","value":true,"timestamp":1,"step":0}]}'),
}


@pytest.fixture(scope="module")
def api(tracking_server: TrackingServer) -> Iterator[tuple[TrackingServer, httpx.Client, str, str]]:
    """A client for the server's MLflow API, with one experiment and one run to aim at."""
    headers = {"Authorization": f"Bearer {tracking_server.token}"} if tracking_server.token else {}
    with httpx.Client(base_url=f"{tracking_server.uri}/api/2.0/mlflow", headers=headers, timeout=60) as client:
        exp = client.post("/experiments/create", json={"name": f"hostile-{id(client)}"}).json()["experiment_id"]
        run = client.post("/runs/create", json={"experiment_id": exp}).json()["run"]["info"]["run_id"]
        yield tracking_server, client, exp, run


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_body_is_an_invalid_parameter_value(api: tuple[TrackingServer, httpx.Client, str, str],
                                                    name: str) -> None:
    server, client, exp, run = api
    case = CASES[name]
    if server.kind == "mlflow" and not case.mlflow_agrees:
        pytest.skip("the stock server takes this or fails on it; mlyard is stricter (docs/tracking.md)")
    body = case.body.replace("{run}", run).replace("{exp}", exp)
    r = client.post(f"/{case.route}", content=body.encode(), headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text[:300]
    assert r.json()["error_code"] == "INVALID_PARAMETER_VALUE"


def test_names_refused_leave_nothing_behind(api: tuple[TrackingServer, httpx.Client, str, str]) -> None:
    server, client, _, _ = api
    if server.kind == "mlflow":
        pytest.skip("the stock server creates these names")
    client.post("/experiments/create", content=b'{"name":"ghost\\n"}', headers={"content-type": "application/json"})
    client.post("/registered-models/create", content=b'{"name":"ghost\\n"}',
                headers={"content-type": "application/json"})
    assert client.get("/experiments/get-by-name", params={"experiment_name": "ghost"}).status_code == 404
    assert client.get("/registered-models/get", params={"name": "ghost"}).status_code == 404


def test_mlflow_clients_still_log_non_finite_values(api: tuple[TrackingServer, httpx.Client, str, str]) -> None:
    """MLflow's client spells NaN and infinities as strings, which strict JSON keeps."""
    from mlflow import MlflowClient

    server, _, _, run = api
    with pytest.MonkeyPatch.context() as patch:
        if server.token:
            patch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
        client = MlflowClient(tracking_uri=server.uri)
        for i, value in enumerate([math.nan, math.inf, -math.inf, True]):
            client.log_metric(run, f"odd{i}", value, step=0)
        metrics = client.get_run(run).data.metrics
    assert math.isnan(metrics["odd0"])
    # the stock server on SQLite keeps an infinity as the largest double
    assert metrics["odd1"] >= sys.float_info.max and metrics["odd2"] <= -sys.float_info.max
    assert metrics["odd3"] == 1.0
