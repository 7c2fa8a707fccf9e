"""``/api/v1/datastores``: named datastores, and upload/download of their files."""

from __future__ import annotations

from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import ClientDisconnect

from mlyard.core.errors import InvalidRequestError, NotFoundError
from mlyard.server.deps import get_services
from mlyard.server.models import BlobRead, DatastoreRead
from mlyard.server.services import Services
from mlyard.specs import load_spec_dict
from mlyard.store.datastores import clean_relpath, datastore_uri
from mlyard.store.object_stores import redact
from mlyard.store.schema import Datastore as DatastoreRow

router = APIRouter(prefix="/api/v1/datastores", tags=["datastores"])
Svc = Annotated[Services, Depends(get_services)]
SHA_HEADER = "X-Mlyard-Sha256"


def _read(r: DatastoreRow) -> DatastoreRead:
    return DatastoreRead(name=r.name, type=r.type, root=r.root, is_default=r.is_default, spec=redact(r.spec or {}))


@router.get("", response_model=list[DatastoreRead], summary="List datastores (credentials masked)")
def list_datastores(services: Svc) -> list[DatastoreRead]:
    return [_read(r) for r in services.datastores.list_rows()]


class DatastoreCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any]
    set_default: bool = False


@router.post("", response_model=DatastoreRead, status_code=201,
             summary="Create a datastore (Azure Blob, ADLS Gen2)")
def create_datastore(body: DatastoreCreate, services: Svc) -> DatastoreRead:
    """Validate the spec, check the store answers with its credentials, and record it (credentials never echoed)."""
    spec = load_spec_dict(body.spec, "datastore").to_dict()
    return _read(services.datastores.create(spec, make_default=body.set_default))


@router.get("/{name}", response_model=DatastoreRead, summary="Show a datastore (credentials masked)")
def show_datastore(name: str, services: Svc) -> DatastoreRead:
    for r in services.datastores.list_rows():
        if r.name == name:
            return _read(r)
    known = ", ".join(r.name for r in services.datastores.list_rows())
    raise NotFoundError(f"no datastore named {name!r} (known: {known})", details={"datastore": name})


class FileRead(BaseModel):
    path: str
    size: int


@router.get("/{name}/files", response_model=list[FileRead], summary="List the files under a path")
def list_files(name: str, services: Svc,
               prefix: Annotated[str, Query(min_length=1, max_length=1024)],
               max_results: Annotated[int, Query(ge=1, le=100_000)] = 10_000) -> list[FileRead]:
    """Every file under ``prefix`` (or the file itself), paths relative to the datastore."""
    store = services.datastores.get(name)
    result = []
    for f in store.list_files(clean_relpath(prefix)):
        result.append(FileRead(path=f.path, size=f.size))
        if len(result) >= max_results:
            break
    return result


@router.put("/{name}/paths/{path:path}", response_model=BlobRead, status_code=201, summary="Upload a file")
async def upload(
    name: str,
    path: str,
    request: Request,
    response: Response,
    services: Svc,
    sha256: Annotated[str | None, Header(alias=SHA_HEADER, pattern=r"^[0-9a-fA-F]{64}$")] = None,
    overwrite: Annotated[bool, Query(description=(
        "Replace other content at the path (never under LocalUpload/, nor a registered asset's file)."))] = False,
) -> BlobRead:
    """Stream the body into ``path``; with ``X-Mlyard-Sha256`` the content is verified first.

    Other content already at ``path`` is a 409 unless ``overwrite``.
    """
    written, created = await services.blobs.upload(name, path, request.stream(), sha256, overwrite=overwrite)
    if not created:
        response.status_code = 200
    return BlobRead(datastore=name, path=written.path, sha256=written.sha256, size=written.size,
                    uri=datastore_uri(name, written.path), created=created)


class UploadBegin(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")
    size: int = Field(ge=0)


class UploadHeld(BaseModel):
    id: str
    path: str
    size: int
    held: int  # bytes the server holds: send the rest from here


class UploadResumed(BlobRead):
    offset: int  # where this request went on from
    received: int  # bytes this request brought


@router.post("/{name}/uploads", response_model=UploadHeld, summary="Start or resume a large file's upload")
def begin_upload(name: str, body: UploadBegin, services: Svc) -> UploadHeld:
    """How many bytes of this file (path, sha256, size) the server already holds; the upload goes on from there."""
    found = services.resumable.begin(name, body.path, body.sha256, body.size)
    return UploadHeld(id=found.key, path=found.path, size=found.size, held=found.held)


@router.put("/{name}/uploads/{upload_id}", response_model=UploadResumed, status_code=201,
            summary="Send the rest of a large file's upload")
async def resume_upload(
    name: str,
    upload_id: str,
    request: Request,
    response: Response,
    services: Svc,
    offset: Annotated[int, Query(ge=0, description="Byte of the file the body starts at (the server's 'held').")],
    overwrite: Annotated[bool, Query(description=(
        "Replace other content at the path (never under LocalUpload/, nor a registered asset's file)."))] = False,
) -> UploadResumed:
    """Append the body from ``offset``; once the whole file is held it is verified and written like any upload."""
    try:
        got = await services.resumable.receive(name, upload_id, offset, request.stream(), overwrite=overwrite)
    except ClientDisconnect:  # what arrived is kept; nobody is left to answer
        raise InvalidRequestError("the sender went away; what arrived is kept for the same upload run again") from None
    if not got.created:
        response.status_code = 200
    return UploadResumed(datastore=name, path=got.written.path, sha256=got.written.sha256, size=got.written.size,
                         uri=datastore_uri(name, got.written.path), created=got.created, offset=got.offset,
                         received=got.received)


@router.head("/{name}/paths/{path:path}", summary="Is this file stored, and with which sha256")
def stat(name: str, path: str, services: Svc) -> Response:
    blob = services.blobs.stat(name, path)
    return Response(headers={SHA_HEADER: blob.sha256, "X-Mlyard-Size": str(blob.size)})


@router.get("/{name}/paths/{path:path}", summary="Download a file", response_class=Response)
async def download(name: str, path: str, services: Svc) -> Response:
    rel = clean_relpath(path)
    store = services.datastores.get(name)
    local = store.local_path(rel)
    if local is not None:
        if not await anyio.Path(local).is_file():
            raise NotFoundError(f"no file {rel!r} in datastore {name!r}", details={"path": rel})
        return FileResponse(local, media_type="application/octet-stream")
    handle = store.open_read(rel)

    def chunks() -> object:
        with handle:
            while chunk := handle.read(1 << 20):
                yield chunk

    return StreamingResponse(chunks(), media_type="application/octet-stream")  # type: ignore[arg-type]
