"""Models (versions, aliases, tags, lineage: run, job, data, deployments), data assets, environments, endpoints."""

from __future__ import annotations

import posixpath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from mlyard.core.errors import InvalidRequestError, NotFoundError
from mlyard.server.deps import get_services
from mlyard.server.services import Services
from mlyard.server.studio.auth import PREFIX, Signed, StudioRoute
from mlyard.server.studio.previews import Preview, kind_of, preview
from mlyard.server.studio.templating import render

router = APIRouter(route_class=StudioRoute, include_in_schema=False)
Svc = Annotated[Services, Depends(get_services)]
DATASTORE_PREFIX = "azureml://datastores/"


@router.get(PREFIX + "/models", response_class=HTMLResponse)
def models(request: Request, session: Signed, services: Svc) -> Response:
    return render(request, "models.html", session=session, section="models", models=services.registry.all_models())


@router.get(PREFIX + "/models/{name}", response_class=HTMLResponse)
def model(request: Request, session: Signed, services: Svc, name: str) -> Response:
    view = services.registry.get_model(name)
    versions = sorted((v for v in services.registry.all_versions() if v.asset.name == name),
                      key=lambda v: _number(v.asset.version), reverse=True)
    return render(request, "model.html", session=session, section="models", model=view, versions=versions)


def _number(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (0, version)


def deployments_of(services: Services, reference: str) -> list[dict[str, Any]]:
    """Online deployments serving ``name:version``, with their endpoint's traffic share."""
    found = []
    for endpoint in services.endpoints.list_endpoints():
        for deployment in services.endpoints.list_deployments(endpoint.name):
            if deployment.model == reference:
                found.append({"endpoint": endpoint.name, "deployment": deployment.name, "state": deployment.state,
                              "traffic": (endpoint.traffic or {}).get(deployment.name, 0)})
    return found


@router.get(PREFIX + "/models/{name}/versions/{version}", response_class=HTMLResponse)
def model_version(request: Request, session: Signed, services: Svc, name: str, version: str) -> Response:
    view = services.registry.get_version(name, version)
    lineage = services.registry.describe(view.asset)
    job = parent = None
    run_id = lineage.get("run_id")
    if run_id:
        try:
            job = services.jobs.get(run_id)
            parent = services.jobs.get(job.parent) if job.parent else None
        except NotFoundError:
            pass
    return render(request, "model_version.html", session=session, section="models", version=view,
                  lineage=lineage, job=job, parent=parent, deployments=deployments_of(services, f"{name}:{version}"))


@router.get(PREFIX + "/data", response_class=HTMLResponse)
def data_assets(request: Request, session: Signed, services: Svc) -> Response:
    return render(request, "assets.html", session=session, section="data", kind="data", title="Data assets",
                  assets=services.assets.list("data"))


@router.get(PREFIX + "/environments", response_class=HTMLResponse)
def environments(request: Request, session: Signed, services: Svc) -> Response:
    return render(request, "assets.html", session=session, section="environments", kind="environment",
                  title="Environments", assets=services.assets.list("environment"))


@router.get(PREFIX + "/environments/{name}/versions/{version}", response_class=HTMLResponse)
def environment(request: Request, session: Signed, services: Svc, name: str, version: str) -> Response:
    asset = services.assets.get("environment", name, version)
    return render(request, "asset.html", session=session, section="environments", kind="environment", asset=asset,
                  preview=None, shown=None)


def _file_key(asset: Any, file_path: str) -> tuple[str, str]:
    """The datastore and path of one of a data asset's files (stored beside the asset's path)."""
    path = asset.path or ""
    if not path.startswith(DATASTORE_PREFIX) or "/paths/" not in path:
        raise InvalidRequestError(f"data asset {asset.name}:{asset.version} lives at {path!r}, outside the "
                                  "workspace's datastores: its files cannot be previewed here")
    datastore, _, rel = path[len(DATASTORE_PREFIX):].partition("/paths/")
    folder = posixpath.dirname(rel.strip("/"))
    return datastore, f"{folder}/{file_path}" if folder else file_path


@router.get(PREFIX + "/data/{name}/versions/{version}", response_class=HTMLResponse)
def data_asset(request: Request, session: Signed, services: Svc, name: str, version: str,
               file: Annotated[str | None, Query(max_length=1024)] = None) -> Response:
    asset = services.assets.get("data", name, version)
    files = [f.path for f in asset.files]
    shown = file or next((f for f in files if kind_of(f) in ("csv", "parquet")), None)
    shown_preview: Preview | None = None
    if shown is not None:
        if shown not in files:
            raise NotFoundError(f"data asset {name}:{version} has no file {shown!r}; its files are listed on its page")
        datastore, key = _file_key(asset, shown)
        with services.datastores.get(datastore).open_read(key) as stream:
            shown_preview = preview(shown, stream)
    return render(request, "asset.html", session=session, section="data", kind="data", asset=asset,
                  preview=shown_preview, shown=shown)


@router.get(PREFIX + "/endpoints", response_class=HTMLResponse)
def endpoints(request: Request, session: Signed, services: Svc) -> Response:
    rows = [(e, services.endpoints.list_deployments(e.name)) for e in services.endpoints.list_endpoints()]
    return render(request, "endpoints.html", session=session, section="endpoints", endpoints=rows)
