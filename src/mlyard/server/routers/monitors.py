"""``/api/v1/monitors``: run a monitor now, its runs and results, and the alerts its jobs post back."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from mlyard.auth.tokens import Principal
from mlyard.automation.monitor_alerts import ALERTED, AlertedSignal, AlertRecorder
from mlyard.automation.monitors import MonitorService
from mlyard.server.deps import get_principal, get_services
from mlyard.server.services import Services
from mlyard.store.events import read_events
from mlyard.store.jobs_schema import Job

router = APIRouter(tags=["monitors"])
Who = Annotated[Principal, Depends(get_principal)]
BASE = "/api/v1/monitors"


async def get_monitors(services: Annotated[Services, Depends(get_services)]) -> MonitorService:
    return services.monitors


async def get_alerts(services: Annotated[Services, Depends(get_services)]) -> AlertRecorder:
    return services.monitor_alerts


Svc = Annotated[MonitorService, Depends(get_monitors)]
Alerts = Annotated[AlertRecorder, Depends(get_alerts)]
ServicesDep = Annotated[Services, Depends(get_services)]


class MonitorRunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="A schedule spec with create_monitor, local data already uploaded.")


class AlertItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signal: str = Field(min_length=1, max_length=255)
    breaches: list[dict[str, Any]] = Field(description="Azure's alert rows: metric_name, metric_value, "
                                                       "threshold_value, group (the feature).")


class AlertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    signals: list[AlertItem] = Field(max_length=1000)


class RunRead(BaseModel):
    monitor: str
    job: str
    display_name: str | None
    status: str
    created_at: int
    ended_at: int | None
    error: str | None
    alerts: list[dict[str, Any]] = Field(description="Alerted signals recorded for this run (signal, metrics).")
    report: str | None = Field(description="Datastore URI of the run's report.html.")
    result: dict[str, Any] | None = Field(default=None, description="signals.json, once the run has ended.")


class MonitorRead(BaseModel):
    name: str
    scheduled: bool = Field(description="Whether a stored schedule runs it.")
    enabled: bool
    last_run: RunRead | None = None
    runs: list[RunRead] | None = Field(default=None, description="The latest runs, newest first (show only).")


def _alerts(services: Services, monitor: str) -> dict[str, list[dict[str, Any]]]:
    with services.db.session() as s:
        events = read_events(s, types=[ALERTED], subject=monitor, limit=2000, newest=True)
    out: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        payload = e.payload or {}
        if payload.get("monitor") == monitor and payload.get("job"):
            out.setdefault(payload["job"], []).append({"event": e.id, "signal": payload.get("signal"),
                                                      "signal_type": payload.get("signal_type"),
                                                      "metrics": payload.get("metrics") or [],
                                                      "emails": payload.get("emails")})
    return out


def _run(monitors: MonitorService, monitor: str, row: Job, alerts: dict[str, list[dict[str, Any]]], *,
         result: bool = False) -> RunRead:
    return RunRead(monitor=monitor, job=row.name, display_name=row.display_name, status=row.status,
                   created_at=row.created_at, ended_at=row.ended_at, error=row.error,
                   alerts=alerts.get(row.name, []), report=monitors.report_uri(row) if row.ended_at else None,
                   result=monitors.signals(row) if result and row.ended_at else None)


@router.post(BASE + "/run", response_model=RunRead, status_code=201, summary="Run a monitor now from its spec")
def run_monitor(body: MonitorRunRequest, monitors: Svc, who: Who) -> RunRead:
    row = monitors.run(body.spec, actor=who.name, role=who.role)
    return _run(monitors, str(body.spec.get("name")), row, {})


@router.post(BASE + "/{name}/runs", response_model=RunRead, status_code=201,
             summary="Run a stored monitor schedule now")
def run_stored_monitor(name: str, monitors: Svc, who: Who) -> RunRead:
    return _run(monitors, name, monitors.run_stored(name, actor=who.name, role=who.role), {})


@router.get(BASE, response_model=list[MonitorRead], summary="List monitors (stored schedules and monitors that ran)")
def list_monitors(monitors: Svc, services: ServicesDep) -> list[MonitorRead]:
    out = []
    for m in monitors.monitors():
        last = m["last_run"]
        out.append(MonitorRead(name=m["name"], scheduled=m["scheduled"], enabled=m["enabled"],
                               last_run=_run(monitors, m["name"], last, _alerts(services, m["name"]))
                               if last is not None else None))
    return out


@router.get(BASE + "/{name}", response_model=MonitorRead, summary="Show a monitor's latest runs and alerts")
def show_monitor(name: str, monitors: Svc, services: ServicesDep,
                 max_runs: Annotated[int, Query(ge=1, le=500)] = 20) -> MonitorRead:
    known = monitors.schedule_of(name)
    runs = monitors.runs(name, limit=max_runs)
    if known is None and not runs:
        from mlyard.core.errors import NotFoundError

        raise NotFoundError(f"monitor {name!r} not found: no monitor schedule of that name and no run; "
                            "'mlyard monitor list' shows them", details={"monitor": name})
    alerts = _alerts(services, name)
    rows = [_run(monitors, name, r, alerts) for r in runs]
    return MonitorRead(name=name, scheduled=known is not None, enabled=bool(known is not None and known.enabled),
                       last_run=rows[0] if rows else None, runs=rows)


@router.get(BASE + "/{name}/runs/{job}", response_model=RunRead, summary="One run, with its signals' results")
def show_run(name: str, job: str, monitors: Svc, services: ServicesDep) -> RunRead:
    return _run(monitors, name, monitors.run_of(name, job), _alerts(services, name), result=True)


@router.post(BASE + "/{name}/runs/{job}/alerts", summary="Record a run's alerted signals (called by its job)")
def post_alerts(name: str, job: str, body: AlertRequest, alerts: Alerts, who: Who) -> dict[str, Any]:
    return alerts.record(name, job, [AlertedSignal(a.signal, a.breaches) for a in body.signals], who.name)
