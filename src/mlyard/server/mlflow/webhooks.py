"""``/api/2.0/mlflow/webhooks``: MLflow's webhook API (``MlflowClient().create_webhook`` and the rest).

Webhooks made here are the ``mlflow`` flavour: MLflow's event names (sent as proto enum names,
``{"entity": "MODEL_VERSION", "action": "CREATED"}``), payloads and signature. This API lists only
them; mlyard's own webhooks have mlyard's event names, which MLflow's client could not read.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from mlyard.auth.tokens import Principal
from mlyard.automation.mlflow_events import ENTITY_ACTIONS
from mlyard.automation.webhooks import TestResult
from mlyard.core.errors import InvalidRequestError
from mlyard.core.paging import decode_token, encode_token, max_results
from mlyard.server.deps import get_principal, get_services
from mlyard.server.mlflow.protocol import MLFLOW_API, listing, mlflow_params, text
from mlyard.server.services import Services
from mlyard.store.automation_schema import WebhookRow

router = APIRouter(prefix=MLFLOW_API, tags=["mlflow webhooks"])
Svc = Annotated[Services, Depends(get_services)]
Who = Annotated[Principal, Depends(get_principal)]
Params = Annotated[dict[str, Any], Depends(mlflow_params)]
FLAVOR = "mlflow"

# proto enum numbers (mlflow/protos/webhooks.proto), for clients that send numbers instead of names
_ENTITIES = ["entity_unspecified", *ENTITY_ACTIONS]
_ACTIONS = ["action_unspecified", "created", "updated", "deleted", "set", "exceeded"]
_STATUSES = ["ACTIVE", "DISABLED"]


def _enum(value: Any, names: list[str], what: str) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < len(names):
        return names[value]
    if isinstance(value, str) and value.lower() in names[1:]:
        return value.lower()
    raise InvalidRequestError(f"invalid webhook event {what} {value!r}; expected one of "
                              f"{', '.join(n.upper() for n in names[1:])}")


def _event(item: Any) -> str:
    if not isinstance(item, dict):
        raise InvalidRequestError("each webhook event must be an object with 'entity' and 'action'")
    entity, action = _enum(item.get("entity"), _ENTITIES, "entity"), _enum(item.get("action"), _ACTIONS, "action")
    if action not in ENTITY_ACTIONS[entity]:
        raise InvalidRequestError(f"Invalid action '{action}' for entity '{entity}'. "
                                  f"Valid actions are: {sorted(ENTITY_ACTIONS[entity])}")
    return f"{entity}.{action}"


def _events(p: dict[str, Any]) -> list[str] | None:
    items = listing(p, "events")
    return [_event(item) for item in items] if items else None


def _status(p: dict[str, Any]) -> str | None:
    value = p.get("status")
    if value in (None, ""):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= len(_STATUSES):
        return _STATUSES[value - 1]
    if isinstance(value, str) and value.upper() in _STATUSES:
        return value.upper()
    raise InvalidRequestError(f"invalid webhook status {value!r}; expected ACTIVE or DISABLED")


def webhook_json(row: WebhookRow) -> dict[str, Any]:
    out: dict[str, Any] = {
        "webhook_id": row.id, "name": row.name, "url": row.url,
        "events": [{"entity": e.partition(".")[0].upper(), "action": e.partition(".")[2].upper()}
                   for e in row.events],
        "status": row.status, "creation_timestamp": row.created_at, "last_updated_timestamp": row.updated_at,
    }
    if row.description:
        out["description"] = row.description
    return out


def result_json(result: TestResult) -> dict[str, Any]:
    """MLflow's ``WebhookTestResult``: success is any status below 400, as MLflow judges it."""
    o = result.outcome
    out: dict[str, Any] = {"success": o.status_code is not None and o.status_code < 400}
    if o.status_code is not None:
        out["response_status"] = o.status_code
        if o.response_text:
            out["response_body"] = o.response_text
    else:
        out["error_message"] = f"Failed to test webhook: {o.error}"
    return out


@router.post("/webhooks")
def create_webhook(p: Params, svc: Svc, who: Who) -> dict[str, Any]:
    events = _events(p)
    if not events:
        raise InvalidRequestError("Webhook events must be a non-empty list of WebhookEvent objects.")
    row = svc.webhooks.create(name=text(p, "name", required=True) or "", url=text(p, "url", required=True) or "",
                              events=events, description=text(p, "description"), secret=text(p, "secret"),
                              status=_status(p) or "ACTIVE", flavor=FLAVOR, actor=who.name)
    return {"webhook": webhook_json(row)}


@router.get("/webhooks")
def list_webhooks(p: Params, svc: Svc) -> dict[str, Any]:
    size = max_results(p.get("max_results"), 100, 1000)
    offset = decode_token(text(p, "page_token"))
    if offset > 10**9:
        raise InvalidRequestError("invalid page_token: pass the next_page_token of the previous page")
    rows = svc.webhooks.list(FLAVOR, offset=offset, limit=size + 1)
    out: dict[str, Any] = {"webhooks": [webhook_json(r) for r in rows[:size]]}
    if len(rows) > size:
        out["next_page_token"] = encode_token(offset + size)
    return out


@router.get("/webhooks/{webhook_id}")
def get_webhook(webhook_id: str, svc: Svc) -> dict[str, Any]:
    return {"webhook": webhook_json(svc.webhooks.get(webhook_id, FLAVOR))}


@router.patch("/webhooks/{webhook_id}")
def update_webhook(webhook_id: str, p: Params, svc: Svc) -> dict[str, Any]:
    # as MLflow's server does: an empty value leaves the field as it is
    changes: dict[str, Any] = {k: text(p, k) for k in ("name", "description", "url", "secret") if text(p, k)}
    if (events := _events(p)) is not None:
        changes["events"] = events
    if (status := _status(p)) is not None:
        changes["status"] = status
    return {"webhook": webhook_json(svc.webhooks.update(webhook_id, changes, flavor=FLAVOR))}


@router.delete("/webhooks/{webhook_id}")
def delete_webhook(webhook_id: str, svc: Svc) -> dict[str, Any]:
    svc.webhooks.delete(webhook_id, flavor=FLAVOR)
    return {}


@router.post("/webhooks/{webhook_id}/test")
def test_webhook(webhook_id: str, p: Params, svc: Svc, who: Who) -> dict[str, Any]:
    event = _event(p["event"]) if p.get("event") not in (None, {}) else None
    return {"result": result_json(svc.webhooks.test(webhook_id, event, who.name, flavor=FLAVOR))}
