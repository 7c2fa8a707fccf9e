"""Jobs: the list, a job (a pipeline's steps with live status and reuse, outputs), its live log, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mlyard.server.deps import get_services
from mlyard.server.services import Services
from mlyard.server.studio import batch_pages
from mlyard.server.studio.auth import API_PREFIX, PREFIX, Signed, StudioRoute, checked_form
from mlyard.server.studio.templating import render

router = APIRouter(route_class=StudioRoute, include_in_schema=False)
Svc = Annotated[Services, Depends(get_services)]
TERMINAL = frozenset({"Completed", "Failed", "Canceled"})
STOP_POLLING = 286  # htmx stops an "every" trigger on this status
LOG_CHUNK = 256 * 1024


@router.get(PREFIX + "/jobs", response_class=HTMLResponse)
def jobs(request: Request, session: Signed, services: Svc,
         size: Annotated[int, Query(ge=1, le=1000)] = 100) -> Response:
    return render(request, "jobs.html", session=session, section="jobs", jobs=services.jobs.list(None, size),
                  size=size)


def _steps(services: Services, name: str, row: Any) -> list[Any]:
    return services.jobs.children(name) if row.type == "pipeline" else []


@router.get(PREFIX + "/jobs/{name}", response_class=HTMLResponse)
def job(request: Request, session: Signed, services: Svc, name: str) -> Response:
    row = services.jobs.get(name)
    parent = services.jobs.get(row.parent) if row.parent else None
    return render(request, "job.html", session=session, section="jobs", job=row, parent=parent,
                  steps=_steps(services, name, row), terminal=TERMINAL, progress=batch_pages.progress(services, name))


@router.get(PREFIX + "/jobs/{name}/status", response_class=HTMLResponse)
def job_status(request: Request, session: Signed, services: Svc, name: str) -> Response:
    """The status and steps fragment the job page polls; polling stops once the job has ended."""
    row = services.jobs.get(name)
    response = render(request, "job_status.html", session=session, job=row, steps=_steps(services, name, row),
                      terminal=TERMINAL, progress=batch_pages.progress(services, name))
    if row.status in TERMINAL:
        response.status_code = STOP_POLLING
    return response


@router.get(API_PREFIX + "jobs/{name}/log")
def job_log(session: Signed, services: Svc, name: str, offset: Annotated[int, Query(ge=0)] = 0) -> Any:
    status = services.jobs.get(name).status
    data, next_offset = services.jobs.read_log(name, offset, LOG_CHUNK)
    return {"text": data.decode(errors="replace"), "offset": next_offset, "status": status,
            "done": status in TERMINAL and len(data) < LOG_CHUNK}


@router.post(PREFIX + "/jobs/{name}/cancel")
def cancel(session: Signed, services: Svc, name: str,
           fields: Annotated[dict[str, str], Depends(checked_form)]) -> Response:
    services.jobs.cancel(name, session.principal.name)
    return RedirectResponse(f"{PREFIX}/jobs/{name}", status_code=303)
