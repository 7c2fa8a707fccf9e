"""Batch endpoints in the studio: endpoints with their deployments and jobs; a batch job's progress on its job page.

Read through the same service as ``/api/v1/batch-endpoints``; the progress is the job's
``batch-progress.json``, the file the job API's ``progress`` field reads.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from mlyard.jobs.parallel import PROGRESS_FILE
from mlyard.server.deps import get_services
from mlyard.server.services import Services
from mlyard.server.studio.auth import PREFIX, Signed, StudioRoute
from mlyard.server.studio.templating import render
from mlyard.serving.batch_endpoints import BatchEndpointService

router = APIRouter(route_class=StudioRoute, include_in_schema=False)
Svc = Annotated[Services, Depends(get_services)]


def _batch(services: Services) -> BatchEndpointService:
    return BatchEndpointService(services.db, services.assets, services.jobs)


def progress(services: Services, job: str) -> dict[str, Any] | None:
    """A batch scoring job's (or parallel step's) progress: mini-batches, files, rows, failed files; else None."""
    try:
        value = json.loads((services.jobs.jobs_dir / job / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


@router.get(PREFIX + "/batch-endpoints", response_class=HTMLResponse)
def batch_endpoints(request: Request, session: Signed, services: Svc) -> Response:
    batch = _batch(services)
    rows = [(e, batch.list_deployments(e.name)) for e in batch.list_endpoints()]
    return render(request, "batch_endpoints.html", session=session, section="batch-endpoints", endpoints=rows)


@router.get(PREFIX + "/batch-endpoints/{name}", response_class=HTMLResponse)
def batch_endpoint(request: Request, session: Signed, services: Svc, name: str) -> Response:
    batch = _batch(services)
    endpoint = batch.get_endpoint(name)
    jobs = batch.list_jobs(name, max_results=100)
    return render(request, "batch_endpoint.html", session=session, section="batch-endpoints", endpoint=endpoint,
                  deployments=batch.list_deployments(name), jobs=jobs,
                  progress={j.name: progress(services, j.name) for j in jobs})
