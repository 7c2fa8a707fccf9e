"""Monitor runs as jobs (automation/monitors.py): Azure's default signals on a deployment's collected data, data
inputs bound as job inputs, the job's name, display name and experiment; refusals that create nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mlyard.automation.monitor_alerts import NO_SMTP, AlertedSignal
from mlyard.automation.monitors import DEFINITION_ENV, MONITOR_TAG, production_size
from mlyard.automation.scheduler import Scheduler
from mlyard.automation.schedules import ScheduleService
from mlyard.core.errors import ConflictError, InvalidRequestError, NotFoundError
from mlyard.core.settings import ServerSettings
from mlyard.server.services import Services
from mlyard.store.events import read_events
from mlyard.store.jobs_schema import Job

DUE = datetime(2026, 3, 1, 3, 15, tzinfo=UTC)
URI = "azureml://datastores/workspaceblobstore/paths"


@pytest.fixture
def services(tmp_path: Path, database_url: str) -> Iterator[Services]:
    """A server's services on each store (SQLite and PostgreSQL)."""
    (tmp_path / "ws").mkdir()
    svc = Services.open(ServerSettings(workspace=tmp_path / "ws", database_url=database_url))
    try:
        yield svc
    finally:
        svc.close()


def _collect(services: Services, endpoint: str = "ep", deployment: str = "blue") -> None:
    for collection in ("model_inputs", "model_outputs"):
        services.assets.create("data", {"name": f"{endpoint}-{deployment}-{collection}", "version": "1",
                                        "type": "uri_folder", "path": f"{URI}/mdc/{collection}/"}, [], "alice",
                               allow_missing_path=True)


def _monitor(create_monitor: dict[str, Any], trigger: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"name": "fraud-monitor", "trigger": trigger or {"type": "recurrence", "frequency": "day", "interval": 2,
                                                             "schedule": {"hours": 3, "minutes": 15}},
            "create_monitor": create_monitor}


def test_without_signals_the_three_default_signals_watch_the_deployments_collected_data(services: Services) -> None:
    _collect(services)
    spec = services.monitors.job_spec("fraud-monitor", {"monitoring_target": {
        "endpoint_deployment_id": "azureml:ep:blue"}}, _monitor({})["trigger"], DUE)
    schedule = json.loads(spec["environment_variables"][DEFINITION_ENV])
    signals = schedule["create_monitor"]["monitoring_signals"]
    assert {n: s["type"] for n, s in signals.items()} == {
        "data-drift-signal": "data_drift", "prediction-drift-signal": "prediction_drift",
        "data-quality-signal": "data_quality"}
    assert spec["inputs"] == {"d0": {"type": "uri_folder", "path": "azureml:ep-blue-model_inputs@latest"},
                              "d1": {"type": "uri_folder", "path": "azureml:ep-blue-model_outputs@latest"}}
    drift = signals["data-drift-signal"]
    assert drift["production_data"] == {"input_data": {"type": "uri_folder", "path": "${{inputs.d0}}"},
                                        "data_context": "model_inputs"}
    # recent past production data as the reference: the SDK's "default" window (2x the size, offset by it)
    assert drift["reference_data"]["data_window"] == {"lookback_window_size": "P4D", "lookback_window_offset": "P2D"}
    assert signals["prediction-drift-signal"]["production_data"]["input_data"]["path"] == "${{inputs.d1}}"
    assert spec["command"] == ("python -m mlyard.monitoring.job --monitor fraud-monitor --output ${{outputs.signals}} "
                               "--now 2026-03-01T03:15:00Z --input d0=${{inputs.d0}} --input d1=${{inputs.d1}}")
    assert spec["tags"] == {MONITOR_TAG: "fraud-monitor"}


def test_a_scheduled_firing_is_a_job_named_after_the_schedule_and_instant(services: Services) -> None:
    _collect(services)
    given = {"monitoring_target": {"endpoint_deployment_id": "azureml:ep:blue"}}
    name = services.monitors.scheduled("fraud-monitor", given, DUE)
    assert name == "fraud-monitor-20260301t031500z"
    assert services.monitors.scheduled("fraud-monitor", given, DUE) == name  # a retried firing finds its job
    job = services.jobs.get(name)
    assert (job.display_name, job.experiment_name) == ("fraud-monitor-20260301T031500Z", "fraud-monitor")
    assert services.monitors.runs("fraud-monitor")[0].name == name


def test_given_signals_keep_their_data_and_share_one_input_per_asset(services: Services) -> None:
    _collect(services)
    services.assets.create("data", {"name": "train", "version": "1", "type": "uri_file",
                                    "path": f"{URI}/train.csv"}, [], "alice", allow_missing_path=True)
    reference = {"input_data": {"path": "azureml:train:1", "type": "uri_file"}, "data_context": "training"}
    spec = services.monitors.job_spec("m", {
        "monitoring_target": {"endpoint_deployment_id": "azureml:ep:blue"},
        "monitoring_signals": {
            "drift": {"type": "data_drift", "reference_data": reference},
            "quality": {"type": "data_quality", "reference_data": reference,
                        "production_data": {"input_data": {"path": f"{URI}/prod.csv", "type": "uri_file"}}}}},
        None, DUE)
    assert spec["inputs"] == {"d0": {"type": "uri_folder", "path": "azureml:ep-blue-model_inputs@latest"},
                              "d1": {"type": "uri_file", "path": "azureml:train:1"},
                              "d2": {"type": "uri_file", "path": f"{URI}/prod.csv"}}


@pytest.mark.parametrize(("create_monitor", "error", "text"), [
    ({}, InvalidRequestError, "no monitoring_signals and no monitoring_target"),
    ({"monitoring_target": {"endpoint_deployment_id": "azureml:nope:blue"}}, NotFoundError,
     "enable data_collector.collections.model_inputs"),
    ({"monitoring_target": {"endpoint_deployment_id": "ep-without-deployment"}}, InvalidRequestError,
     "is not azureml:<endpoint>:<deployment>"),
    ({"monitoring_signals": {"mine": {"type": "custom", "component_id": "azureml:c:1"}}}, InvalidRequestError,
     "no signal mlyard computes: the signals are custom"),
    ({"monitoring_signals": {"d": {"type": "data_drift", "production_data": {
        "input_data": {"path": "azureml:missing:1", "type": "uri_file"}}, "reference_data": {
        "input_data": {"path": "azureml:missing:1", "type": "uri_file"}}}}}, NotFoundError, "missing"),
])
def test_monitors_that_cannot_run_are_refused_and_create_no_job(services: Services, create_monitor: dict[str, Any],
                                                                 error: type[Exception], text: str) -> None:
    with pytest.raises(error, match=text):
        services.monitors.run(_monitor(create_monitor), actor="alice")
    with services.db.session() as s:
        assert s.scalars(select(Job)).all() == []


@pytest.mark.parametrize("name", ["a" * 201, "with/slash", "-dash-first", "with space"])
def test_a_monitor_name_that_cannot_name_its_jobs_and_events_is_refused(services: Services, name: str) -> None:
    _collect(services)
    spec = {**_monitor({"monitoring_target": {"endpoint_deployment_id": "azureml:ep:blue"}}), "name": name}
    with pytest.raises(InvalidRequestError, match="is not a letter or digit followed by"):
        services.monitors.run(spec, actor="alice")
    with services.db.session() as s:
        assert s.scalars(select(Job)).all() == []


def test_the_default_production_window_follows_the_trigger() -> None:
    assert production_size({"type": "recurrence", "frequency": "hour", "interval": 3}).days == 1
    assert production_size({"type": "recurrence", "frequency": "week", "interval": 2}).days == 14
    assert production_size({"type": "cron", "expression": "0 * * * *"}).days == 7
    assert production_size(None).days == 7


class Clock:
    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now


def test_the_scheduler_runs_a_monitor_schedule_as_its_job(services: Services) -> None:
    _collect(services)
    clock = Clock(datetime(2026, 3, 1, 3, 0, tzinfo=UTC))
    spec = _monitor({"monitoring_target": {"endpoint_deployment_id": "azureml:ep:blue"}})
    ScheduleService(services.db, clock=clock).create(spec, "alice", "admin")
    scheduler = Scheduler(services.db, services.jobs, clock=clock, monitor_runner=services.monitors.scheduled)
    clock.now = DUE
    [fired] = scheduler.run_due()
    assert (fired.job, fired.error) == ("fraud-monitor-20260301t031500z", None)
    job = services.jobs.get(fired.job)
    assert job.spec["tags"] == {MONITOR_TAG: "fraud-monitor", "mlyard.schedule": "fraud-monitor"}
    assert job.created_by == "alice" and "--now 2026-03-01T03:15:00Z" in job.spec["command"]


# -- alerts ---------------------------------------------------------------------------------------


def _running_run(services: Services, name: str = "m-run-1", status: str = "Running") -> str:
    definition = {"name": "m", "create_monitor": {
        "monitoring_signals": {"drift": {"type": "data_drift"}, "quiet": {"type": "data_quality",
                                                                         "alert_enabled": False}},
        "alert_notification": {"emails": ["ops@example.com"]}}}
    with services.db.session() as s:
        s.add(Job(name=name, parent=None, step=None, position=0, type="command", status=status, display_name=name,
                  experiment_name="m", experiment_id=0, compute=None, env_mode="inherit",
                  spec={"tags": {MONITOR_TAG: "m"}, "environment_variables": {DEFINITION_ENV: json.dumps(definition)}},
                  inputs={}, outputs={}, depends_on=[], force_rerun=False, notes=[], created_at=1,
                  created_by="alice", actor_role="admin"))
        s.commit()
    return name


BREACH = [{"metric_name": "JensenShannonDistance", "metric_value": 0.3, "threshold_value": 0.1, "group": "city"}]


def test_an_alert_is_one_event_per_signal_and_run_however_often_it_is_posted(services: Services) -> None:
    job = _running_run(services)
    alerts = services.monitor_alerts
    first = alerts.record("m", job, [AlertedSignal("drift", BREACH), AlertedSignal("quiet", BREACH)], "alice")
    assert first["recorded"] == ["drift"] and first["alert_disabled"] == ["quiet"]
    assert first["email"] == NO_SMTP
    again = alerts.record("m", job, [AlertedSignal("drift", BREACH)], "alice")
    assert again["recorded"] == [] and again["already_recorded"] == ["drift"]
    with services.db.session() as s:
        events = read_events(s, types=["monitor.signal_alerted"])
    assert [(e.subject, e.payload["job"], e.payload["metrics"]) for e in events] == [("m/drift", job, BREACH)]
    assert events[0].payload["emails"] == {"to": ["ops@example.com"], "status": NO_SMTP}


@pytest.mark.parametrize(("monitor", "signal", "breaches", "error", "text"), [
    ("m", "nope", BREACH, InvalidRequestError, "has no signal 'nope'"),
    ("m", "drift", [], InvalidRequestError, "lists the metrics"),
    ("other", "drift", BREACH, NotFoundError, "has no run"),
])
def test_alerts_that_do_not_fit_the_run_are_refused(services: Services, monitor: str, signal: str,
                                                    breaches: list[dict[str, Any]], error: type[Exception],
                                                    text: str) -> None:
    job = _running_run(services)
    with pytest.raises(error, match=text):
        services.monitor_alerts.record(monitor, job, [AlertedSignal(signal, breaches)], "alice")
    with services.db.session() as s:
        assert read_events(s, types=["monitor.signal_alerted"]) == []


def test_a_run_that_has_ended_takes_no_alert(services: Services) -> None:
    job = _running_run(services, status="Completed")
    with pytest.raises(ConflictError, match="has ended"):
        services.monitor_alerts.record("m", job, [AlertedSignal("drift", BREACH)], "alice")
