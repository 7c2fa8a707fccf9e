"""The closed loop of the attrition example, with the real server, endpoint and CLI and nothing done by hand in
between: drifted traffic to the online endpoint -> collected data -> a monitor alert -> an event -> the retraining
job the trigger starts -> a new model version."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess, free_port, run_cli

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "attrition"
AZUREML = EXAMPLE / "mlops" / "azureml"
PRODUCTION = sorted((EXAMPLE / "data" / "production").glob("*.csv"))


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "workspace", free_port()).init().start()
    yield proc
    proc.stop()


def _cli(server: ServerProcess, *args: str, timeout: float = 300) -> str:
    return run_cli(*args, cwd=ROOT, env=server.env(), timeout=timeout).stdout


def _json(server: ServerProcess, *args: str) -> Any:
    return json.loads(_cli(server, *args, "-o", "json"))


def _wait(check: Any, what: str, timeout: float = 240) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def test_drifted_traffic_ends_in_a_new_model_version_through_monitor_alert_event_and_trigger(
        server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # the model in production: trained by the pipeline, served by blue, which collects its inputs and outputs
    _cli(server, "data", "create", "-f", str(AZUREML / "train" / "data.yml"))
    _cli(server, "environment", "create", "-f", str(AZUREML / "train" / "train-env.yml"))
    _cli(server, "job", "create", "-f", str(AZUREML / "train" / "pipeline.yml"), "--name", "attrition-first",
         "--stream")
    assert [v["version"] for v in _json(server, "model", "list", "--name", "attrition-model")] == ["1"]
    _cli(server, "online-endpoint", "create", "-f", str(AZUREML / "deploy" / "online" / "online-endpoint.yml"))
    _cli(server, "online-deployment", "create", "-n", "blue", "--endpoint-name", "attrition-online", "-f",
         str(AZUREML / "deploy" / "online" / "online-deployment.yml"), "--all-traffic")
    # the example's retraining trigger (force_rerun: a retraining on unchanged data would reuse every step)
    _cli(server, "trigger", "create", "-f", str(AZUREML / "automation" / "retrain-on-drift.yml"))

    # this quarter's employees, whose income, overtime, commute and travel moved, sent as production traffic
    uri = _cli(server, "online-endpoint", "show", "-n", "attrition-online", "--query", "scoring_uri", "-o",
               "tsv").strip()
    key = _cli(server, "online-endpoint", "get-credentials", "-n", "attrition-online", "--query", "primaryKey",
               "-o", "tsv").strip()
    sent = subprocess.run([sys.executable, str(EXAMPLE / "mlops" / "monitoring" / "send_traffic.py"),
                           "--scoring-uri", uri, "--key", key, *map(str, PRODUCTION)],
                          capture_output=True, text=True, timeout=120, check=True)
    assert sent.stdout.startswith("sent 900 rows")

    # the monitor reads what blue collected and alerts on the moved features
    result = _json(server, "monitor", "run", "-f", str(AZUREML / "monitoring" / "attrition-monitor.yml"))
    drift = next(s for s in result["signals"] if s["signalName"] == "attrition-data-drift")
    assert drift["status"] == "alerted" and drift["metrics"]["rowCount"]["targetCount"] == 900
    drifted = {f for f, v in drift["metrics"]["features"].items() if v["status"] == "alerted"}
    assert {"MonthlyIncome", "OverTime"} <= drifted

    # the alert is an event; the trigger answers it with the training pipeline, which registers version 2
    events = httpx.get(f"{server.url}/api/v1/events", headers=server.headers(),
                       params={"type": "monitor.signal_alerted", "subject": "attrition-monitor"}).json()["events"]
    assert [e["subject"] for e in events] == ["attrition-monitor/attrition-data-drift"]
    firing = _wait(lambda: next((f for f in _json(server, "trigger", "show", "-n",
                                                  "attrition-retrain-on-drift")["firings"] if f["job"]), None),
                   "the trigger's job")
    assert firing["event"] == events[0]["id"]
    job = firing["job"]
    finished = _wait(lambda: (j := _json(server, "job", "show", "-n", job))["status"] in
                     ("Completed", "Failed", "Canceled") and j, "the retraining pipeline", timeout=300)
    assert finished["status"] == "Completed", finished.get("error")
    assert finished["experiment_name"] == "attrition-retraining"
    versions = {v["version"]: v for v in _json(server, "model", "list", "--name", "attrition-model")}
    assert set(versions) == {"1", "2"}
    steps = {s["step"]: s for s in finished.get("steps") or []}
    assert not steps["train_model"].get("reused_from")  # trained again, not taken over from the first pipeline

    # version 2 comes from a step of the retraining pipeline the alert started
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
    client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
    run = client.get_run(client.get_model_version("attrition-model", "2").run_id)
    assert run.data.tags["mlflow.parentRunId"] == job
