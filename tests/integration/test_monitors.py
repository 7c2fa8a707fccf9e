"""Monitor runs through a real server and the CLI: a monitor over two data assets alerts on the drifted features, its
job's MLflow run holds the metrics, a ``monitor.signal_alerted`` event is written, the alert e-mail reaches a real
local SMTP server and the report is an HTML page with charts; a monitor without drift does not alert; a monitor
without signals gets Azure's three defaults on a deployment's collected data; a malformed monitor file is refused
with file:line:field and creates nothing."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from aiosmtpd.controller import Controller

from tests.support.jobs import JobYard, write
from tests.support.server import ServerProcess, free_port, run_cli

MONITOR = """\
$schema: http://azureml/sdk-2-0/Schedule.json
name: @NAME@
trigger: {type: recurrence, frequency: day, interval: 1, schedule: {hours: 3, minutes: 15}}
create_monitor:
  monitoring_target: {ml_task: classification}
  monitoring_signals:
    features-drift:
      type: data_drift
      production_data: {input_data: {path: @PRODUCTION@, type: uri_file}, data_context: model_inputs}
      reference_data: {input_data: {path: azureml:mon-reference:1, type: uri_file}, data_context: training}
      features: all_features
    features-quality:
      type: data_quality
      production_data: {input_data: {path: @PRODUCTION@, type: uri_file}, data_context: model_inputs}
      reference_data: {input_data: {path: azureml:mon-reference:1, type: uri_file}, data_context: training}
      metric_thresholds: {numerical: {null_value_rate: 0.05}, categorical: {null_value_rate: 0.05}}
  alert_notification: {emails: [ops@example.com]}
"""

DEFAULT_MONITOR = """\
$schema: http://azureml/sdk-2-0/Schedule.json
name: default-monitor
trigger: {type: cron, expression: "0 6 * * *"}
create_monitor:
  monitoring_target: {ml_task: classification, endpoint_deployment_id: azureml:shop-ep:blue}
"""

BAD_MONITOR = """\
$schema: http://azureml/sdk-2-0/Schedule.json
name: bad-monitor
trigger: {type: cron, expression: "0 * * * *"}
create_monitor:
  monitoring_signals:
    drift:
      type: data_drift
      production_data: {input_data: {path: ./production.csv, type: uri_file}}
      reference_data: {input_data: {path: ./reference.csv, type: uri_file}}
      metric_thresholds:
        numerical: {pearsons_chi_squared_test: 0.05}
"""


class Mailbox:
    """Messages the local SMTP server received."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], str]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  envelope.content.decode("utf-8", "replace")))
        return "250 OK"


@pytest.fixture(scope="module")
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


@pytest.fixture(scope="module")
def yard(mailbox: tuple[Mailbox, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobYard]:
    """A server whose workspace sends alert e-mails to the local SMTP server, and the monitors' data."""
    root = tmp_path_factory.mktemp("monitors")
    proc = ServerProcess(root / "workspace", free_port()).init()
    with (proc.workspace / "mlyard.yaml").open("a") as settings:
        settings.write(f"\nsmtp_host: 127.0.0.1\nsmtp_port: {mailbox[1]}\nsmtp_from: monitors@mlyard.test\n")
    proc.start()
    rng = np.random.default_rng(7)
    n = 1500
    reference = pd.DataFrame({
        "age": rng.normal(40, 8, n).round(1), "income": rng.normal(5000, 1200, n).round(0),
        "travel": rng.choice(["rarely", "often", "never"], n, p=[0.7, 0.2, 0.1]),
        "tenure": rng.integers(0, 30, n).astype(float)})
    drifted = reference.sample(n=1000, random_state=1).reset_index(drop=True)
    drifted["income"] = rng.normal(3500, 1200, 1000).round(0)
    drifted["travel"] = rng.choice(["rarely", "often", "never"], 1000, p=[0.2, 0.7, 0.1])
    steady = reference.sample(n=1000, random_state=2).reset_index(drop=True)  # same rows: no drift, in bounds
    reference.to_csv(root / "reference.csv", index=False)
    drifted.to_csv(root / "production.csv", index=False)
    steady.to_csv(root / "steady.csv", index=False)
    yard = JobYard(proc, root)
    yard.cli("data", "create", "--name", "mon-reference", "--version", "1", "--type", "uri_file",
             "--path", "reference.csv")
    yard.cli("data", "create", "--name", "mon-production", "--version", "1", "--type", "uri_file",
             "--path", "production.csv")
    write(root / "drift-monitor.yml", MONITOR.replace("@NAME@", "drift-monitor")
          .replace("@PRODUCTION@", "azureml:mon-production@latest"))
    write(root / "steady-monitor.yml", MONITOR.replace("@NAME@", "steady-monitor")
          .replace("@PRODUCTION@", "./steady.csv"))
    write(root / "bad-monitor.yml", BAD_MONITOR)
    write(root / "default-monitor.yml", DEFAULT_MONITOR)
    # a deployment's collected data, as the data collector lays it out: last week's traffic (the reference of the
    # default signals) like the reference file, this week's like the drifted one
    now = datetime.now(UTC)
    for collection, frames in (("model_inputs", (reference, drifted)),
                               ("model_outputs", (pd.DataFrame({"prediction": (reference["income"] < 4500)
                                                                .astype(int)}),
                                                  pd.DataFrame({"prediction": (drifted["income"] < 4500)
                                                                .astype(int)})))):
        for frame, at in zip(frames, (now - timedelta(days=10), now - timedelta(hours=1)), strict=True):
            _collected(root / "collected" / collection, at, frame)
        yard.cli("data", "create", "--name", f"shop-ep-blue-{collection}", "--version", "1", "--type", "uri_folder",
                 "--path", str(root / "collected" / collection))
    yield yard
    proc.stop()


def _collected(folder: Path, at: datetime, frame: pd.DataFrame) -> None:
    hour = folder / at.strftime("%Y/%m/%d/%H")
    hour.mkdir(parents=True, exist_ok=True)
    rows = frame.to_dict(orient="records")
    stamp = at.isoformat().replace("+00:00", "Z")
    with (hour / "instance-0.jsonl").open("w") as out:
        for start in range(0, len(rows), 100):
            out.write(json.dumps({"specversion": "1.0", "id": f"e{start}", "time": stamp,
                                  "data": rows[start:start + 100], "correlationid": f"c{start}"}) + "\n")


def _json(yard: JobYard, *args: str) -> Any:
    return json.loads(yard.cli(*args, "-o", "json").stdout)


def _alerted(result: dict[str, Any]) -> dict[str, set[str]]:
    return {s["signalName"]: {f for f, v in s["metrics"]["features"].items() if v["status"] == "alerted"}
            for s in result["signals"] if s["status"] == "alerted"}


def _events(yard: JobYard, monitor: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{yard.server.url}/api/v1/events", headers=yard.server.headers(),
                       params={"type": "monitor.signal_alerted", "subject": monitor})
    answer.raise_for_status()
    return list(answer.json()["events"])


def test_a_drifted_production_asset_alerts_and_records_metrics_event_mail_and_report(
        yard: JobYard, mailbox: tuple[Mailbox, int], monkeypatch: pytest.MonkeyPatch) -> None:
    result = _json(yard, "monitor", "run", "-f", "drift-monitor.yml")
    assert result["status"] == "alerted"
    assert _alerted(result) == {"features-drift": {"income", "travel"}}
    drift = next(s for s in result["signals"] if s["signalName"] == "features-drift")
    assert drift["metrics"]["rowCount"] == {"baselineCount": 1500, "targetCount": 1000}
    income = drift["metrics"]["features"]["income"]["metrics"][0]
    assert income["metricName"] == "NormalizedWassersteinDistance" and income["threshold"] == 0.1

    shown = _json(yard, "monitor", "show", "-n", "drift-monitor")
    run = shown["runs"][0]
    job = run["job"]
    assert run["status"] == "Completed" and run["display_name"].startswith("drift-monitor-")
    assert [a["signal"] for a in run["alerts"]] == ["features-drift"]
    assert _json(yard, "job", "show", "-n", job)["experiment_name"] == "drift-monitor"

    # the job's MLflow run holds each feature's metric and the signals' status
    from mlflow import MlflowClient

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", yard.server.token)
    client = MlflowClient(tracking_uri=yard.server.url)
    mlflow_run = client.get_run(job)
    metrics = mlflow_run.data.metrics
    assert metrics["features-drift.income.NormalizedWassersteinDistance"] == pytest.approx(income["metricValue"])
    assert metrics["features-drift.age.NormalizedWassersteinDistance"] < 0.1
    assert metrics["features-drift.alerted"] == 1.0 and metrics["features-quality.alerted"] == 0.0
    assert mlflow_run.data.tags["mlyard.signal.features-drift.status"] == "alerted"
    assert mlflow_run.data.tags["mlyard.monitor.status"] == "alerted"

    # one event, in the same shape the triggers read, with the mail's outcome
    events = _events(yard, "drift-monitor")
    assert [e["subject"] for e in events] == ["drift-monitor/features-drift"]
    data = events[0]["data"]
    assert (data["monitor"], data["signal"], data["signal_type"], data["job"]) == \
        ("drift-monitor", "features-drift", "data_drift", job)
    assert {m["group"] for m in data["metrics"]} == {"income", "travel"}
    assert data["emails"] == {"to": ["ops@example.com"], "status": "sent to ops@example.com"}
    box = mailbox[0]
    assert len(box.messages) == 1
    sender, recipients, content = box.messages[0]
    assert (sender, recipients) == ("monitors@mlyard.test", ["ops@example.com"])
    assert "features-drift" in content and "income" in content

    # the report: one HTML file with inline charts, beside signals.json in the job's output
    out = yard.root / "download"
    yard.cli("job", "download", "-n", job, "--output-name", "signals", "--download-path", str(out))
    report = (out / "named-outputs" / "signals" / "report.html").read_text()
    # two metric-against-threshold charts and eight distributions (four features, two signals)
    assert report.startswith("<!DOCTYPE html>") and report.count("<svg") >= 10
    assert "<script" not in report and "http" not in report.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert json.loads((out / "named-outputs" / "signals" / "signals.json").read_text())["status"] == "alerted"

    # a second run: the event is written again for it, and its report draws the metric's history
    again = yard.cli("monitor", "run", "-f", "drift-monitor.yml").stdout
    assert "ALERT features-drift: income, travel" in again and "NormalizedWassersteinDistance" in again
    assert len(_events(yard, "drift-monitor")) == 2
    second = _json(yard, "monitor", "show", "-n", "drift-monitor")["runs"][0]["job"]
    out2 = yard.root / "download2"
    yard.cli("job", "download", "-n", second, "--output-name", "signals", "--download-path", str(out2))
    assert "History of the alerted metrics" in (out2 / "named-outputs" / "signals" / "report.html").read_text()


def test_a_monitor_without_drift_does_not_alert(yard: JobYard) -> None:
    result = _json(yard, "monitor", "run", "-f", "steady-monitor.yml")  # a local file, uploaded by the CLI
    assert result["status"] == "passed", _alerted(result)
    assert {s["signalName"] for s in result["signals"]} == {"features-drift", "features-quality"}
    assert _events(yard, "steady-monitor") == []
    assert _json(yard, "monitor", "show", "-n", "steady-monitor")["runs"][0]["alerts"] == []


def test_without_signals_azure_s_defaults_compare_this_week_s_collected_data_with_the_weeks_before(
        yard: JobYard) -> None:
    result = _json(yard, "monitor", "run", "-f", "default-monitor.yml")
    signals = {s["signalName"]: s for s in result["signals"]}
    assert set(signals) == {"data-drift-signal", "prediction-drift-signal", "data-quality-signal"}
    assert _alerted(result)["data-drift-signal"] == {"income", "travel"}
    assert signals["prediction-drift-signal"]["status"] == "alerted"  # more leave predictions: income fell
    drift = signals["data-drift-signal"]
    assert drift["metrics"]["rowCount"] == {"baselineCount": 1500, "targetCount": 1000}
    # a cron trigger: a production window of 7 days; the reference is the 14 days before it
    windows = {k: {e: datetime.fromisoformat(v[e].replace("Z", "+00:00")) for e in ("start", "end")}
               for k, v in drift["windows"].items()}
    assert windows["production"]["end"] - windows["production"]["start"] == timedelta(days=7)
    assert windows["baseline"]["end"] == windows["production"]["start"]
    assert windows["baseline"]["end"] - windows["baseline"]["start"] == timedelta(days=14)


def test_a_malformed_monitor_file_is_refused_with_its_line_and_field_and_creates_nothing(yard: JobYard) -> None:
    jobs_before = _json(yard, "job", "list")
    refused = run_cli("monitor", "run", "-f", str(yard.root / "bad-monitor.yml"), env=yard.server.env(),
                      check=False)
    assert refused.returncode != 0
    assert "bad-monitor.yml:11: create_monitor.monitoring_signals.drift.metric_thresholds" in refused.stderr
    assert "numerical.pearsons_chi_squared_test" in refused.stderr and "Traceback" not in refused.stderr
    assert _json(yard, "job", "list") == jobs_before
    missing = run_cli("monitor", "show", "-n", "bad-monitor", env=yard.server.env(), check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_a_stored_monitor_schedule_runs_by_name(yard: JobYard) -> None:
    yard.cli("schedule", "create", "-f", "drift-monitor.yml", "--set", "name=stored-monitor", "--set",
             "is_enabled=false")
    result = _json(yard, "monitor", "run", "--name", "stored-monitor")
    assert _alerted(result) == {"features-drift": {"income", "travel"}}
    listed = {m["name"]: m for m in _json(yard, "monitor", "list")}
    assert listed["stored-monitor"]["scheduled"] and not listed["stored-monitor"]["enabled"]
    assert listed["stored-monitor"]["last_run"]["alerts"][0]["signal"] == "features-drift"
    unknown = run_cli("monitor", "run", "--name", "no-such-monitor", env=yard.server.env(), check=False)
    assert unknown.returncode != 0 and "no-such-monitor" in unknown.stderr
