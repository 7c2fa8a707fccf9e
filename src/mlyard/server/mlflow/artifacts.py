"""``/api/2.0/mlflow-artifacts/artifacts``: MLflow's proxied artifact service on the default datastore."""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, Response, StreamingResponse

from mlyard.core.errors import NotFoundError
from mlyard.server.deps import get_services
from mlyard.server.services import Services
from mlyard.store.datastores import clean_relpath

router = APIRouter(prefix="/api/2.0/mlflow-artifacts", tags=["mlflow artifacts"])
Svc = Annotated[Services, Depends(get_services)]


@router.put("/artifacts/{path:path}", summary="Upload an artifact (replaces the file at that path)")
async def upload(path: str, request: Request, svc: Svc) -> dict[str, Any]:
    await svc.artifacts.upload(path, request.stream())
    return {}


@router.get("/artifacts/{path:path}", summary="Download an artifact", response_class=Response)
async def download(path: str, svc: Svc) -> Response:
    rel = clean_relpath(path)
    local = svc.artifacts.local_path(rel)
    if local is not None:
        if not await anyio.Path(local).is_file():
            raise NotFoundError(f"no artifact at {rel!r}")
        return FileResponse(local, media_type="application/octet-stream",
                            filename=posixpath.basename(rel), content_disposition_type="attachment")
    handle = svc.artifacts.open(rel)

    def chunks() -> Iterator[bytes]:
        with handle:
            while chunk := handle.read(1 << 20):
                yield chunk

    return StreamingResponse(chunks(), media_type="application/octet-stream")


@router.get("/artifacts", summary="List the artifacts directly under a path")
def list_artifacts(svc: Svc, path: str | None = None) -> dict[str, Any]:
    files = []
    for entry in svc.artifacts.list(path):
        item: dict[str, Any] = {"path": entry.name, "is_dir": entry.is_dir}
        if not entry.is_dir:
            item["file_size"] = entry.size
        files.append(item)
    return {"files": files}


@router.delete("/artifacts/{path:path}", summary="Delete an artifact or a folder of artifacts")
def delete(path: str, svc: Svc) -> dict[str, Any]:
    svc.artifacts.delete(path)
    return {}
