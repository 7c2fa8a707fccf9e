"""Health, metrics and the workspace description."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from mlyard import __version__
from mlyard.server.deps import get_services
from mlyard.server.models import WorkspaceRead
from mlyard.server.services import Services

router = APIRouter()
Svc = Annotated[Services, Depends(get_services)]


@router.get("/healthz", tags=["system"], summary="Liveness: answers without authentication")
def healthz() -> dict[str, str]:
    return {"status": "ok", "version": __version__}


@router.get("/metrics", tags=["system"], summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics_registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/api/v1/workspace", response_model=WorkspaceRead, tags=["system"], summary="Describe the workspace")
def workspace(request: Request, services: Svc) -> WorkspaceRead:
    url = services.db.engine.url
    return WorkspaceRead(
        name=services.settings.workspace_name,
        version=__version__,
        default_datastore=services.datastores.default_name(),
        database=url.render_as_string(hide_password=True),
        mlflow_tracking_uri=str(request.base_url).rstrip("/"),
    )
