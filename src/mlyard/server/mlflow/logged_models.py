"""``/api/2.0/mlflow/logged-models/*`` and ``runs/outputs``: MLflow 3 logged models."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mlyard.core.errors import InvalidRequestError
from mlyard.core.paging import max_results
from mlyard.server.deps import get_services
from mlyard.server.mlflow.protocol import (
    MLFLOW_API,
    key_values,
    listing,
    mlflow_params,
    point_json,
    required,
    tags_json,
    text,
)
from mlyard.server.services import Services
from mlyard.tracking.logged_models import LoggedModelView

router = APIRouter(prefix=MLFLOW_API, tags=["mlflow logged models"])
Svc = Annotated[Services, Depends(get_services)]
Params = Annotated[dict[str, Any], Depends(mlflow_params)]


def logged_model_json(view: LoggedModelView) -> dict[str, Any]:
    row = view.row
    info: dict[str, Any] = {"model_id": row.id, "experiment_id": str(row.experiment_id), "name": row.name,
                            "artifact_uri": row.artifact_location, "creation_timestamp_ms": row.creation_time,
                            "last_updated_timestamp_ms": row.last_updated_time, "status": row.status,
                            "tags": tags_json(view.tags)}
    if row.model_type:
        info["model_type"] = row.model_type
    if row.source_run_id:
        info["source_run_id"] = row.source_run_id
    return {"info": info, "data": {"params": [{"key": k, "value": v} for k, v in sorted(view.params.items())],
                                   "metrics": [point_json(m) for m in view.metrics]}}


@router.post("/logged-models")
def create_logged_model(p: Params, svc: Svc) -> dict[str, Any]:
    view = svc.logged_models.create(required(p, "experiment_id"), text(p, "name"), text(p, "source_run_id"),
                                    text(p, "model_type"), key_values(p.get("params"), "params"),
                                    key_values(p.get("tags"), "tags"))
    return {"model": logged_model_json(view)}


@router.post("/logged-models/search")
def search_logged_models(p: Params, svc: Svc) -> dict[str, Any]:
    if listing(p, "order_by") or listing(p, "datasets"):
        raise InvalidRequestError("mlyard orders logged models newest first; order_by and datasets are not "
                                  "supported yet")
    page = svc.logged_models.search([str(e) for e in listing(p, "experiment_ids")], text(p, "filter"),
                                    max_results(p.get("max_results"), 100, 1000), text(p, "page_token"))
    out: dict[str, Any] = {"models": [logged_model_json(v) for v in page.items]}
    if page.next_page_token:
        out["next_page_token"] = page.next_page_token
    return out


@router.get("/logged-models/{model_id}")
def get_logged_model(model_id: str, svc: Svc) -> dict[str, Any]:
    return {"model": logged_model_json(svc.logged_models.get(model_id))}


@router.patch("/logged-models/{model_id}")
def finalize_logged_model(model_id: str, p: Params, svc: Svc) -> dict[str, Any]:
    return {"model": logged_model_json(svc.logged_models.finalize(model_id, required(p, "status")))}


@router.delete("/logged-models/{model_id}")
def delete_logged_model(model_id: str, svc: Svc) -> dict[str, Any]:
    svc.logged_models.delete(model_id)
    return {}


@router.patch("/logged-models/{model_id}/tags")
def set_logged_model_tags(model_id: str, p: Params, svc: Svc) -> dict[str, Any]:
    view = svc.logged_models.set_tags(model_id, key_values(p.get("tags"), "tags"))
    return {"model": logged_model_json(view)}


@router.delete("/logged-models/{model_id}/tags/{tag_key}")
def delete_logged_model_tag(model_id: str, tag_key: str, svc: Svc) -> dict[str, Any]:
    svc.logged_models.delete_tag(model_id, tag_key)
    return {}


@router.post("/logged-models/{model_id}/params")
def log_logged_model_params(model_id: str, p: Params, svc: Svc) -> dict[str, Any]:
    svc.logged_models.log_params(model_id, key_values(p.get("params"), "params"))
    return {}


@router.post("/runs/outputs")
def log_outputs(p: Params, svc: Svc) -> dict[str, Any]:
    svc.logged_models.log_outputs(required(p, "run_id"), [m for m in listing(p, "models") if isinstance(m, dict)])
    return {}
