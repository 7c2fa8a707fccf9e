"""``/api/v1/{data,environments,models,components}``: versioned assets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from mlyard.assets.service import AssetKind, FileEntry
from mlyard.auth.tokens import Principal
from mlyard.server.deps import get_principal, get_services
from mlyard.server.models import AssetCreate, AssetRead, ModelUpdate
from mlyard.server.services import Services
from mlyard.store.schema import Asset

SEGMENTS: dict[AssetKind, str] = {
    "data": "data",
    "environment": "environments",
    "model": "models",
    "component": "components",
}

Svc = Annotated[Services, Depends(get_services)]
Who = Annotated[Principal, Depends(get_principal)]
NamePath = Annotated[str, "asset name"]


def asset_router(kind: AssetKind) -> APIRouter:
    """The routes of one asset kind; every kind behaves the same."""
    seg = SEGMENTS[kind]
    router = APIRouter(prefix=f"/api/v1/{seg}", tags=[seg])

    @router.post("", response_model=AssetRead, status_code=201, summary=f"Create a {kind} version")
    def create(body: AssetCreate, response: Response, services: Svc, who: Who,
               allow_missing_path: Annotated[bool, Query(description=(
                   "Accept a datastore path that holds no files yet, with a warning (refused otherwise)."))] = False,
               ) -> AssetRead:
        files = [FileEntry(f.path, f.sha256, f.size) for f in body.files]
        warnings: list[str] = []
        row, created = services.assets.create(kind, body.spec, files, actor=who.name,
                                              allow_missing_path=allow_missing_path, warnings=warnings)
        if not created:
            response.status_code = 200
        return AssetRead.of(row, created=created).model_copy(update={"warnings": warnings})

    @router.get("", response_model=list[AssetRead], summary=f"List {seg}")
    def list_(
        services: Svc,
        name: Annotated[str | None, Query(description="Only versions of this asset.")] = None,
        include_archived: bool = False,
    ) -> list[AssetRead]:
        return [AssetRead.of(r) for r in services.assets.list(kind, name, include_archived=include_archived)]

    def detailed(services: Services, row: Asset) -> AssetRead:
        """One version, with the registry's record when it is a model."""
        return AssetRead.of(row, registry=services.registry.describe(row) if kind == "model" else None)

    @router.get("/{name}", response_model=AssetRead, summary=f"Show the latest {kind} version (or ?label=<alias>)")
    def latest(name: str, services: Svc, label: str = "latest") -> AssetRead:
        return detailed(services, services.assets.get(kind, name, label=label))

    @router.get("/{name}/versions", response_model=list[AssetRead], summary=f"List the versions of a {kind}")
    def versions(name: str, services: Svc, include_archived: bool = False) -> list[AssetRead]:
        return [AssetRead.of(r) for r in services.assets.list(kind, name, include_archived=include_archived)]

    @router.get("/{name}/versions/{version}", response_model=AssetRead, summary=f"Show a {kind} version")
    def show(name: str, version: str, services: Svc) -> AssetRead:
        return detailed(services, services.assets.get(kind, name, version))

    if kind == "model":
        @router.patch("/{name}/versions/{version}", response_model=AssetRead,
                      summary="Update a model version's description, tags or stage (content never changes)")
        def update(name: str, version: str, body: ModelUpdate, services: Svc, who: Who) -> AssetRead:
            services.registry.update_metadata(
                name, version, description=body.description, set_description="description" in body.model_fields_set,
                tags=body.tags, stage=body.stage, actor=who.name)
            return detailed(services, services.assets.get(kind, name, version))

    @router.post("/{name}/archive", response_model=list[AssetRead], summary=f"Archive a {kind} (or one version)")
    def archive(name: str, services: Svc, version: str | None = None) -> list[AssetRead]:
        return [AssetRead.of(r) for r in services.assets.set_archived(kind, name, version, True)]

    @router.post("/{name}/restore", response_model=list[AssetRead], summary=f"Restore an archived {kind}")
    def restore(name: str, services: Svc, version: str | None = None) -> list[AssetRead]:
        return [AssetRead.of(r) for r in services.assets.set_archived(kind, name, version, False)]

    return router
