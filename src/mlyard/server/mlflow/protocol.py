"""The MLflow REST protocol's edge: request parameters, response shapes and error bodies.

MLflow clients send JSON bodies (POST, PATCH, DELETE) or query strings (GET), with 64-bit integers
sometimes as strings; ``mlflow_params`` reads either into one mapping. Errors leave as MLflow's
``{"error_code": ..., "message": ...}`` with the status MLflow's client maps back to the same code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Protocol

import orjson
from fastapi import Request, Response

from mlyard.core.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidRequestError,
    InvalidSpecError,
    MlyardError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
)
from mlyard.server.bodies import decode_json
from mlyard.store.tracking_schema import Dataset
from mlyard.tracking.checks import INT64_MAX, to_int64
from mlyard.tracking.experiments import ExperimentView
from mlyard.tracking.records import PointRow
from mlyard.tracking.runs import RunView

MLFLOW_API = "/api/2.0/mlflow"  # routers carry it themselves, so route templates (metric labels) are whole
MLFLOW_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow", "/api/2.0/mlflow-artifacts", "/api/3.0/mlflow")

_CODES: list[tuple[type[MlyardError], str, int]] = [
    (NotFoundError, "RESOURCE_DOES_NOT_EXIST", 404),
    (AlreadyExistsError, "RESOURCE_ALREADY_EXISTS", 400),
    (ConflictError, "INVALID_PARAMETER_VALUE", 400),
    (InvalidSpecError, "INVALID_PARAMETER_VALUE", 400),
    (InvalidRequestError, "INVALID_PARAMETER_VALUE", 400),
    (UnauthenticatedError, "UNAUTHENTICATED", 401),
    (PermissionDeniedError, "PERMISSION_DENIED", 403),
]


def is_mlflow_path(path: str) -> bool:
    return path.startswith(MLFLOW_PREFIXES)


def mlflow_error(err: MlyardError) -> tuple[dict[str, Any], int]:
    """MLflow's error body and status for an mlyard error."""
    for cls, code, status in _CODES:
        if isinstance(err, cls):
            return {"error_code": code, "message": err.message}, status
    return {"error_code": "INTERNAL_ERROR", "message": err.message}, 500


async def mlflow_params(request: Request) -> dict[str, Any]:
    """Query parameters merged with a JSON body, if any (a repeated query key becomes a list)."""
    params: dict[str, Any] = {}
    for key in request.query_params:
        values = request.query_params.getlist(key)
        params[key] = values if len(values) > 1 else values[0]
    if request.method != "GET":
        raw = await request.body()
        if raw.strip():
            body = decode_json(raw)
            if not isinstance(body, dict):
                raise InvalidRequestError("the request body must be a JSON object")
            params.update(body)
    return params


def reply(body: dict[str, Any]) -> Response:
    """``body`` as the route's JSON response, encoded once (orjson), without FastAPI's response-model pass."""
    return Response(orjson.dumps(body), media_type="application/json")


def text(params: dict[str, Any], key: str, *, required: bool = False, default: str | None = None) -> str | None:
    value = params.get(key)
    if value is None or value == "":
        if required:
            raise InvalidRequestError(f"missing value for required parameter '{key}'")
        return default
    if isinstance(value, dict | list):
        raise InvalidRequestError(f"parameter '{key}' must be a string")
    if isinstance(value, float) and abs(value) > INT64_MAX:  # an integer beyond 64 bits, as orjson reads it
        raise InvalidRequestError(f"parameter '{key}' is {value:g}, a number beyond a signed 64-bit integer")
    return str(value)


def required(params: dict[str, Any], key: str) -> str:
    value = text(params, key, required=True)
    assert value is not None
    return value


def integer(params: dict[str, Any], key: str) -> int | None:
    value = params.get(key)
    if value is None or value == "":
        return None
    return to_int64(f"parameter '{key}'", value)


def listing(params: dict[str, Any], key: str) -> list[Any]:
    value = params.get(key)
    if value is None or value == "":
        return []
    return value if isinstance(value, list) else [value]


def key_values(items: Any, what: str) -> dict[str, str]:
    """``[{"key": k, "value": v}, ...]`` -> ``{k: v}``."""
    if items in (None, ""):
        return {}
    if not isinstance(items, list):
        raise InvalidRequestError(f"{what} must be a list of {{key, value}} objects")
    out: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise InvalidRequestError(f"each of {what} needs a string 'key'")
        value = item.get("value")
        out[item["key"]] = "" if value is None else str(value)
    return out


def tags_json(tags: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in sorted(tags.items())]


def number_json(value: float, is_nan: bool = False) -> float | str:
    """JSON has no NaN or infinity: MLflow's protobuf JSON spells them as strings."""
    if is_nan or math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


class MetricLike(Protocol):
    """A metric's value: a run's current value (``MetricValue``) or a logged point."""

    @property
    def key(self) -> str: ...
    @property
    def value(self) -> float: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def is_nan(self) -> bool: ...


class PointLike(MetricLike, Protocol):
    """A logged point, with the run, model and dataset it belongs to."""

    @property
    def run_id(self) -> str: ...
    @property
    def model_id(self) -> str | None: ...
    @property
    def dataset_name(self) -> str | None: ...
    @property
    def dataset_digest(self) -> str | None: ...


def metric_json(m: MetricLike) -> dict[str, Any]:
    return {"key": m.key, "value": number_json(m.value, m.is_nan), "timestamp": m.timestamp, "step": m.step}


def point_json(m: PointLike) -> dict[str, Any]:
    out = {"key": m.key, "value": number_json(m.value, m.is_nan), "timestamp": m.timestamp, "step": m.step}
    if m.model_id:
        out["model_id"] = m.model_id
    if m.dataset_name:
        out["dataset_name"] = m.dataset_name
    if m.dataset_digest:
        out["dataset_digest"] = m.dataset_digest
    out["run_id"] = m.run_id
    return out


def history_json(rows: Iterable[PointRow]) -> list[dict[str, Any]]:
    """What ``point_json`` makes, straight from history rows: a page holds up to 25,000 of them."""
    out = []
    for key, value, timestamp, step, is_nan, model_id, dataset_name, dataset_digest, run_id, _ in rows:
        point = {"key": key, "value": value if math.isfinite(value) and not is_nan else number_json(value, is_nan),
                 "timestamp": timestamp, "step": step}
        if model_id:
            point["model_id"] = model_id
        if dataset_name:
            point["dataset_name"] = dataset_name
        if dataset_digest:
            point["dataset_digest"] = dataset_digest
        point["run_id"] = run_id
        out.append(point)
    return out


def experiment_json(view: ExperimentView) -> dict[str, Any]:
    row = view.row
    return {"experiment_id": str(row.id), "name": row.name, "artifact_location": row.artifact_location,
            "lifecycle_stage": row.lifecycle_stage, "last_update_time": row.last_update_time,
            "creation_time": row.creation_time, "tags": tags_json(view.tags)}


def run_info_json(view: RunView) -> dict[str, Any]:
    row = view.row
    info: dict[str, Any] = {"run_id": row.id, "run_uuid": row.id, "run_name": row.name,
                            "experiment_id": str(row.experiment_id), "user_id": row.user_id, "status": row.status,
                            "start_time": row.start_time, "artifact_uri": row.artifact_uri,
                            "lifecycle_stage": row.lifecycle_stage}
    if row.end_time is not None:
        info["end_time"] = row.end_time
    return info


def _dataset_json(dataset: Dataset) -> dict[str, Any]:
    out = {"name": dataset.name, "digest": dataset.digest, "source_type": dataset.source_type,
           "source": dataset.source}
    if dataset.schema:
        out["schema"] = dataset.schema
    if dataset.profile:
        out["profile"] = dataset.profile
    return out


def run_json(view: RunView) -> dict[str, Any]:
    return {
        "info": run_info_json(view),
        "data": {"metrics": [metric_json(m) for m in view.metrics],
                 "params": [{"key": k, "value": v} for k, v in sorted(view.params.items())],
                 "tags": tags_json(view.tags)},
        "inputs": {"dataset_inputs": [{"tags": tags_json({k: str(v) for k, v in t.items()}),
                                       "dataset": _dataset_json(d)} for d, t in view.inputs]},
        "outputs": {"model_outputs": [{"model_id": o.model_id, "step": o.step} for o in view.outputs]},
    }
