"""Monitors in the studio: monitors with their latest runs, a run's status and alerted signals, and its HTML report.

The report (the run's output ``report.html``) is generated from user data, so it is served with a
Content-Security-Policy that sandboxes it and allows no script at all, and the studio shows it in a sandboxed
iframe. Alerts are read as the API reads them (``routers/monitors.py``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from mlyard.core.errors import MlyardError, NotFoundError
from mlyard.server.deps import get_services
from mlyard.server.routers.monitors import _alerts
from mlyard.server.services import Services
from mlyard.server.studio.auth import PREFIX, Signed, StudioRoute
from mlyard.server.studio.templating import render
from mlyard.specs.references import parse_datastore_uri

router = APIRouter(route_class=StudioRoute, include_in_schema=False)
Svc = Annotated[Services, Depends(get_services)]
MAX_REPORT = 50 * 1024 * 1024
REPORT_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                               "font-src data:; frame-ancestors 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@router.get(PREFIX + "/monitors", response_class=HTMLResponse)
def monitors(request: Request, session: Signed, services: Svc) -> Response:
    rows = services.monitors.monitors()
    alerts = {m["name"]: _alerts(services, m["name"]) for m in rows if m["last_run"] is not None}
    return render(request, "monitors.html", session=session, section="monitors", monitors=rows, alerts=alerts)


@router.get(PREFIX + "/monitors/{name}", response_class=HTMLResponse)
def monitor(request: Request, session: Signed, services: Svc, name: str) -> Response:
    runs = services.monitors.runs(name, limit=20)
    schedule = services.monitors.schedule_of(name)
    if not runs and schedule is None:
        raise NotFoundError(f"monitor {name!r} has no schedule and no runs; 'mlyard monitor list' lists monitors",
                            details={"monitor": name})
    return render(request, "monitor.html", session=session, section="monitors", monitor=name, runs=runs,
                  schedule=schedule, alerts=_alerts(services, name))


@router.get(PREFIX + "/monitors/{name}/runs/{job}", response_class=HTMLResponse)
def monitor_run(request: Request, session: Signed, services: Svc, name: str, job: str) -> Response:
    row = services.monitors.run_of(name, job)
    result = services.monitors.signals(row) if row.ended_at else None
    return render(request, "monitor_run.html", session=session, section="monitors", monitor=name, run=row,
                  result=result, alerts=_alerts(services, name).get(job, []),
                  has_report=bool(row.ended_at and services.monitors.report_uri(row)))


@router.get(PREFIX + "/monitors/{name}/runs/{job}/report.html")
def monitor_report(session: Signed, services: Svc, name: str, job: str) -> Response:
    """The run's report, sandboxed: no script runs in it, whether framed by the studio or opened alone."""
    row = services.monitors.run_of(name, job)
    uri = services.monitors.report_uri(row) if row.ended_at else None
    missing = NotFoundError(f"monitor run {job!r} has no report.html (it has not ended, or failed before writing "
                            "it); its job page has the log", details={"monitor": name, "job": job})
    if uri is None:
        raise missing
    try:
        where = parse_datastore_uri(uri)
        with services.datastores.get(where.datastore).open_read(where.path) as handle:
            body = handle.read(MAX_REPORT)
    except (MlyardError, OSError):
        raise missing from None
    return Response(body, media_type="text/html; charset=utf-8", headers=REPORT_HEADERS)
