"""``/api/2.0/mlflow/experiments/*``, ``runs/*`` and ``metrics/*``: MLflow tracking over mlyard's store."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from mlyard.auth.tokens import Principal
from mlyard.core.errors import InvalidRequestError
from mlyard.core.paging import max_results, view_type
from mlyard.server.deps import get_principal, get_services
from mlyard.server.mlflow.protocol import (
    MLFLOW_API,
    experiment_json,
    history_json,
    integer,
    key_values,
    listing,
    mlflow_params,
    reply,
    required,
    run_info_json,
    run_json,
    text,
)
from mlyard.server.services import Services
from mlyard.tracking.checks import check_key
from mlyard.tracking.records import metric_point

router = APIRouter(prefix=MLFLOW_API, tags=["mlflow tracking"])
Svc = Annotated[Services, Depends(get_services)]
Who = Annotated[Principal, Depends(get_principal)]
Params = Annotated[dict[str, Any], Depends(mlflow_params)]
EMPTY: dict[str, Any] = {}


# -- runs ---------------------------------------------------------------------------------------------------


@router.post("/runs/create")
def create_run(p: Params, svc: Svc, who: Who) -> Response:
    tags = key_values(p.get("tags"), "tags")
    for key in tags:  # here, not in the service: a job's run carries its Azure tags, whatever their keys
        check_key("tag", key)
    view = svc.runs.create(text(p, "experiment_id"), text(p, "user_id"), text(p, "run_name"),
                           integer(p, "start_time"), tags, who.name)
    return reply({"run": run_json(view)})


@router.get("/runs/get")
def get_run(p: Params, svc: Svc) -> Response:
    run_id = text(p, "run_id") or required(p, "run_uuid")
    return reply({"run": run_json(svc.runs.get(run_id))})


@router.post("/runs/update")
def update_run(p: Params, svc: Svc, who: Who) -> Response:
    run_id = text(p, "run_id") or required(p, "run_uuid")
    view = svc.runs.update(run_id, text(p, "status"), integer(p, "end_time"), text(p, "run_name"), who.name)
    return reply({"run_info": run_info_json(view)})


@router.post("/runs/delete")
def delete_run(p: Params, svc: Svc) -> Response:
    svc.runs.set_lifecycle(required(p, "run_id"), "deleted")
    return reply(EMPTY)


@router.post("/runs/restore")
def restore_run(p: Params, svc: Svc) -> Response:
    svc.runs.set_lifecycle(required(p, "run_id"), "active")
    return reply(EMPTY)


@router.post("/runs/search")
def search_runs(p: Params, svc: Svc) -> Response:
    page = svc.run_search.search([str(e) for e in listing(p, "experiment_ids")], text(p, "filter"),
                                 view_type(p.get("run_view_type")), max_results(p.get("max_results"), 1000, 50000),
                                 listing(p, "order_by"), text(p, "page_token"))
    out: dict[str, Any] = {"runs": [run_json(v) for v in page.items]}
    if page.next_page_token:
        out["next_page_token"] = page.next_page_token
    return reply(out)


def _point(m: dict[str, Any]) -> Any:
    if not isinstance(m, dict):
        raise InvalidRequestError("each metric must be an object with key, value, timestamp and step")
    return metric_point(m.get("key"), m.get("value"), m.get("timestamp"), m.get("step"),
                        model_id=m.get("model_id") or None, dataset_name=m.get("dataset_name") or None,
                        dataset_digest=m.get("dataset_digest") or None)


@router.post("/runs/log-metric")
def log_metric(p: Params, svc: Svc) -> Response:
    run_id = text(p, "run_id") or required(p, "run_uuid")
    svc.run_logger.log_metric(run_id, _point({**p, "key": required(p, "key"), "value": p.get("value")}))
    return reply(EMPTY)


@router.post("/runs/log-parameter")
def log_param(p: Params, svc: Svc) -> Response:
    run_id = text(p, "run_id") or required(p, "run_uuid")
    svc.run_logger.log_batch(run_id, [], {required(p, "key"): text(p, "value", default="") or ""}, {})
    return reply(EMPTY)


@router.post("/runs/set-tag")
def set_tag(p: Params, svc: Svc) -> Response:
    run_id = text(p, "run_id") or required(p, "run_uuid")
    svc.run_logger.set_tag(run_id, required(p, "key"), text(p, "value", default="") or "")
    return reply(EMPTY)


@router.post("/runs/delete-tag")
def delete_tag(p: Params, svc: Svc) -> Response:
    svc.run_logger.delete_tag(required(p, "run_id"), required(p, "key"))
    return reply(EMPTY)


@router.post("/runs/log-batch")
def log_batch(p: Params, svc: Svc) -> Response:
    metrics = [_point(m) for m in listing(p, "metrics")]
    svc.run_logger.log_batch(required(p, "run_id"), metrics, key_values(p.get("params"), "params"),
                             key_values(p.get("tags"), "tags"))
    return reply(EMPTY)


@router.post("/runs/log-inputs")
def log_inputs(p: Params, svc: Svc) -> Response:
    datasets = [d for d in listing(p, "datasets") if isinstance(d, dict)]
    svc.run_logger.log_inputs(required(p, "run_id"), datasets)
    return reply(EMPTY)


@router.get("/metrics/get-history")
def metric_history(p: Params, svc: Svc) -> Response:
    run_id = text(p, "run_id") or required(p, "run_uuid")
    # MLflow's client reads the history in one call: without max_results, every point comes back.
    limit = max_results(p.get("max_results"), 0, 10_000_000) if p.get("max_results") not in (None, "", "0", 0) else None
    page = svc.run_logger.history(run_id, required(p, "metric_key"), limit, text(p, "page_token"))
    out: dict[str, Any] = {"metrics": history_json(page.items)}
    if page.next_page_token:
        out["next_page_token"] = page.next_page_token
    return reply(out)


# -- experiments ------------------------------------------------------------------------------------------


@router.post("/experiments/create")
def create_experiment(p: Params, svc: Svc) -> Response:
    experiment_id = svc.experiments.create(required(p, "name"), text(p, "artifact_location"),
                                           key_values(p.get("tags"), "tags"))
    return reply({"experiment_id": experiment_id})


@router.get("/experiments/get")
def get_experiment(p: Params, svc: Svc) -> Response:
    return reply({"experiment": experiment_json(svc.experiments.get(required(p, "experiment_id")))})


@router.get("/experiments/get-by-name")
def get_experiment_by_name(p: Params, svc: Svc) -> Response:
    return reply({"experiment": experiment_json(svc.experiments.get_by_name(required(p, "experiment_name")))})


@router.api_route("/experiments/search", methods=["GET", "POST"])
def search_experiments(p: Params, svc: Svc) -> Response:
    page = svc.experiments.search(view_type(p.get("view_type")), text(p, "filter"), listing(p, "order_by"),
                                  max_results(p.get("max_results"), 1000, 50000), text(p, "page_token"))
    out: dict[str, Any] = {"experiments": [experiment_json(v) for v in page.items]}
    if page.next_page_token:
        out["next_page_token"] = page.next_page_token
    return reply(out)


@router.post("/experiments/update")
def update_experiment(p: Params, svc: Svc) -> Response:
    svc.experiments.rename(required(p, "experiment_id"), required(p, "new_name"))
    return reply(EMPTY)


@router.post("/experiments/delete")
def delete_experiment(p: Params, svc: Svc) -> Response:
    svc.experiments.set_lifecycle(required(p, "experiment_id"), "deleted")
    return reply(EMPTY)


@router.post("/experiments/restore")
def restore_experiment(p: Params, svc: Svc) -> Response:
    svc.experiments.set_lifecycle(required(p, "experiment_id"), "active")
    return reply(EMPTY)


@router.post("/experiments/set-experiment-tag")
def set_experiment_tag(p: Params, svc: Svc) -> Response:
    svc.experiments.set_tag(required(p, "experiment_id"), required(p, "key"), text(p, "value", default="") or "")
    return reply(EMPTY)


@router.post("/experiments/delete-experiment-tag")
def delete_experiment_tag(p: Params, svc: Svc) -> Response:
    svc.experiments.delete_tag(required(p, "experiment_id"), required(p, "key"))
    return reply(EMPTY)
