"""``/api/2.0/mlflow/registered-models/*`` and ``model-versions/*``: MLflow's registry on model assets."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mlyard.assets.registry import ModelView, VersionView, created_ms
from mlyard.assets.registry_search import search_models, search_versions
from mlyard.auth.tokens import Principal
from mlyard.core.paging import max_results
from mlyard.server.deps import get_principal, get_services
from mlyard.server.mlflow.protocol import MLFLOW_API, key_values, listing, mlflow_params, required, tags_json, text
from mlyard.server.services import Services
from mlyard.tracking.checks import MAX_MODEL_NAME, check_display_name, check_key

router = APIRouter(prefix=MLFLOW_API, tags=["mlflow registry"])
Svc = Annotated[Services, Depends(get_services)]
Who = Annotated[Principal, Depends(get_principal)]
Params = Annotated[dict[str, Any], Depends(mlflow_params)]
EMPTY: dict[str, Any] = {}


def version_json(v: VersionView) -> dict[str, Any]:
    record = v.record
    out: dict[str, Any] = {
        "name": v.asset.name, "version": v.asset.version, "creation_timestamp": created_ms(v.asset),
        "last_updated_timestamp": record.last_updated_time if record else created_ms(v.asset),
        "user_id": (record.user_id if record else v.asset.created_by) or "", "current_stage": v.stage,
        "description": (record.description if record else v.asset.description) or "",
        "source": (record.source if record else v.asset.path) or "", "status": "READY",
        "tags": tags_json(v.tags), "aliases": sorted(v.aliases),
    }
    for key in ("run_id", "run_link", "model_id"):
        if record is not None and getattr(record, key):
            out[key] = getattr(record, key)
    return out


def model_json(m: ModelView) -> dict[str, Any]:
    out: dict[str, Any] = {"name": m.name, "creation_timestamp": m.creation_time,
                           "last_updated_timestamp": m.last_updated_time, "tags": tags_json(m.tags),
                           "aliases": [{"alias": a, "version": v} for a, v in sorted(m.aliases.items())],
                           "latest_versions": [version_json(v) for v in m.latest]}
    if m.description:
        out["description"] = m.description
    return out


def _tags(p: dict[str, Any]) -> dict[str, str]:
    """The request's tags, their keys held to MLflow's rule."""
    tags = key_values(p.get("tags"), "tags")
    for key in tags:
        check_key("tag", key)
    return tags


# -- registered models --------------------------------------------------------------------------------------


@router.post("/registered-models/create")
def create_model(p: Params, svc: Svc, who: Who) -> dict[str, Any]:
    view = svc.registry.create_model(check_display_name("registered model", required(p, "name"), MAX_MODEL_NAME),
                                     text(p, "description"), _tags(p), actor=who.name)
    return {"registered_model": model_json(view)}


@router.get("/registered-models/get")
def get_model(p: Params, svc: Svc) -> dict[str, Any]:
    return {"registered_model": model_json(svc.registry.get_model(required(p, "name")))}


@router.patch("/registered-models/update")
def update_model(p: Params, svc: Svc) -> dict[str, Any]:
    return {"registered_model": model_json(svc.registry.update_model(required(p, "name"), text(p, "description")))}


@router.post("/registered-models/rename")
def rename_model(p: Params, svc: Svc) -> dict[str, Any]:
    new_name = check_display_name("registered model", required(p, "new_name"), MAX_MODEL_NAME)
    return {"registered_model": model_json(svc.registry.rename_model(required(p, "name"), new_name))}


@router.delete("/registered-models/delete")
def delete_model(p: Params, svc: Svc, who: Who) -> dict[str, Any]:
    svc.registry.delete_model(required(p, "name"), who.name)
    return EMPTY


@router.api_route("/registered-models/search", methods=["GET", "POST"])
def search_registered_models(p: Params, svc: Svc) -> dict[str, Any]:
    page = search_models(svc.registry, text(p, "filter"), listing(p, "order_by"),
                         max_results(p.get("max_results"), 100, 1000), text(p, "page_token"))
    out: dict[str, Any] = {"registered_models": [model_json(m) for m in page.items]}
    if page.next_page_token:
        out["next_page_token"] = page.next_page_token
    return out


@router.post("/registered-models/get-latest-versions")
def latest_versions(p: Params, svc: Svc) -> dict[str, Any]:
    versions = svc.registry.latest_versions(required(p, "name"), [str(s) for s in listing(p, "stages")])
    return {"model_versions": [version_json(v) for v in versions]}


@router.post("/registered-models/set-tag")
def set_model_tag(p: Params, svc: Svc) -> dict[str, Any]:
    svc.registry.set_model_tag(required(p, "name"), check_key("tag", required(p, "key")),
                               text(p, "value", default="") or "")
    return EMPTY


@router.delete("/registered-models/delete-tag")
def delete_model_tag(p: Params, svc: Svc) -> dict[str, Any]:
    svc.registry.set_model_tag(required(p, "name"), required(p, "key"), None)
    return EMPTY


@router.post("/registered-models/alias")
def set_alias(p: Params, svc: Svc, who: Who) -> dict[str, Any]:
    svc.registry.set_alias(required(p, "name"), required(p, "alias"), required(p, "version"), who.name)
    return EMPTY


@router.delete("/registered-models/alias")
def delete_alias(p: Params, svc: Svc, who: Who) -> dict[str, Any]:
    svc.registry.delete_alias(required(p, "name"), required(p, "alias"), who.name)
    return EMPTY


@router.get("/registered-models/alias")
def get_by_alias(p: Params, svc: Svc) -> dict[str, Any]:
    return {"model_version": version_json(svc.registry.by_alias(required(p, "name"), required(p, "alias")))}


# -- model versions -----------------------------------------------------------------------------------------


@router.post("/model-versions/create")
def create_version(p: Params, svc: Svc, who: Who) -> dict[str, Any]:
    view = svc.registry.create_version(required(p, "name"), required(p, "source"), text(p, "run_id"),
                                       _tags(p), text(p, "run_link"),
                                       text(p, "description"), text(p, "model_id"), who.name)
    return {"model_version": version_json(view)}


@router.get("/model-versions/get")
def get_version(p: Params, svc: Svc) -> dict[str, Any]:
    return {"model_version": version_json(svc.registry.get_version(required(p, "name"), required(p, "version")))}


@router.patch("/model-versions/update")
def update_version(p: Params, svc: Svc) -> dict[str, Any]:
    view = svc.registry.update_version(required(p, "name"), required(p, "version"), text(p, "description"))
    return {"model_version": version_json(view)}


@router.post("/model-versions/transition-stage")
def transition_stage(p: Params, svc: Svc) -> dict[str, Any]:
    archive = str(p.get("archive_existing_versions", False)).lower() == "true"
    view = svc.registry.transition_stage(required(p, "name"), required(p, "version"), required(p, "stage"), archive)
    return {"model_version": version_json(view)}


@router.delete("/model-versions/delete")
def delete_version(p: Params, svc: Svc, who: Who) -> dict[str, Any]:
    svc.registry.delete_version(required(p, "name"), required(p, "version"), who.name)
    return EMPTY


@router.api_route("/model-versions/search", methods=["GET", "POST"])
def search_model_versions(p: Params, svc: Svc) -> dict[str, Any]:
    page = search_versions(svc.registry, text(p, "filter"), listing(p, "order_by"),
                           max_results(p.get("max_results"), 10000, 200000), text(p, "page_token"))
    out: dict[str, Any] = {"model_versions": [version_json(v) for v in page.items]}
    if page.next_page_token:
        out["next_page_token"] = page.next_page_token
    return out


@router.get("/model-versions/get-download-uri")
def download_uri(p: Params, svc: Svc) -> dict[str, Any]:
    return {"artifact_uri": svc.registry.download_uri(required(p, "name"), required(p, "version"))}


@router.post("/model-versions/set-tag")
def set_version_tag(p: Params, svc: Svc, who: Who) -> dict[str, Any]:
    svc.registry.set_version_tag(required(p, "name"), required(p, "version"), check_key("tag", required(p, "key")),
                                 text(p, "value", default="") or "", actor=who.name)
    return EMPTY


@router.delete("/model-versions/delete-tag")
def delete_version_tag(p: Params, svc: Svc, who: Who) -> dict[str, Any]:
    svc.registry.set_version_tag(required(p, "name"), required(p, "version"), required(p, "key"), None,
                                 actor=who.name)
    return EMPTY
