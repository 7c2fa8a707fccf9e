"""``/api/v1/webhooks``: subscriptions to the event log, test deliveries and the delivery log.

A webhook is named by its id or, in mlyard's API, by its name. Its secret is write-only: no response
carries it (``signed`` says whether it has one).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from mlyard.auth.tokens import Principal
from mlyard.automation.webhooks import TestResult, WebhookService
from mlyard.server.deps import get_principal, get_services
from mlyard.server.services import Services
from mlyard.store.automation_schema import WebhookDeliveryRow, WebhookRow

router = APIRouter(tags=["webhooks"])
Who = Annotated[Principal, Depends(get_principal)]
BASE = "/api/v1/webhooks"


async def get_webhooks(services: Annotated[Services, Depends(get_services)]) -> WebhookService:
    return services.webhooks


Svc = Annotated[WebhookService, Depends(get_webhooks)]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(max_length=63, description="1 to 63 letters, digits, '.', '_' or '-'.")
    url: str = Field(max_length=2000, description="http:// or https:// address deliveries are posted to.")
    events: list[str] = Field(description="Event types ('model.version_created'), an entity's every action "
                                          "('model.*'), or '*'.")
    filters: dict[str, str] = Field(default_factory=dict,
                                    description="model_name, subject, subject_prefix or actor: all must match.")
    description: str | None = Field(default=None, max_length=5000)
    secret: str | None = Field(default=None, max_length=255, description="Signs deliveries; write-only.")
    status: Literal["ACTIVE", "DISABLED"] = "ACTIVE"


class WebhookUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=63)
    url: str | None = Field(default=None, max_length=2000)
    events: list[str] | None = None
    filters: dict[str, str] | None = None
    description: str | None = Field(default=None, max_length=5000)
    secret: str | None = Field(default=None, max_length=255, description="A new secret; '' removes it.")
    status: Literal["ACTIVE", "DISABLED"] | None = None


class WebhookRead(BaseModel):
    id: str
    name: str
    url: str
    events: list[str]
    filters: dict[str, str]
    description: str | None
    status: str
    flavor: str = Field(description="mlyard, or mlflow for a webhook made through MLflow's API.")
    signed: bool = Field(description="Whether deliveries are signed (the webhook has a secret).")
    created_at: int
    updated_at: int
    created_by: str

    @classmethod
    def of(cls, row: WebhookRow) -> WebhookRead:
        return cls(id=row.id, name=row.name, url=row.url, events=list(row.events), filters=dict(row.filters or {}),
                   description=row.description, status=row.status, flavor=row.flavor, signed=bool(row.secret),
                   created_at=row.created_at, updated_at=row.updated_at, created_by=row.created_by)


class DeliveryRead(BaseModel):
    delivery_id: str
    event: int | None = Field(description="The event's id in the log; null for a test delivery.")
    attempt: int
    state: str = Field(description="pending, succeeded, failed (tried again later) or gave_up.")
    status_code: int | None
    error: str | None
    duration_ms: int | None
    next_attempt_at: int | None
    created_at: int = Field(description="When the attempt was made (when it was queued, while pending).")

    @classmethod
    def of(cls, row: WebhookDeliveryRow) -> DeliveryRead:
        return cls(delivery_id=row.delivery_id, event=row.event, attempt=row.attempt, state=row.state,
                   status_code=row.status_code, error=row.error, duration_ms=row.duration_ms,
                   next_attempt_at=row.next_attempt_at, created_at=row.created_at)


class WebhookTest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event: str | None = Field(default=None, description="Event type to send (default: the first subscribed).")


class TestRead(BaseModel):
    success: bool
    event: str
    delivery_id: str
    state: str
    status_code: int | None
    error: str | None
    duration_ms: int
    response_body: str | None

    @classmethod
    def of(cls, result: TestResult) -> TestRead:
        o = result.outcome
        return cls(success=o.ok, event=result.event, delivery_id=result.delivery_id, state=o.state,
                   status_code=o.status_code, error=o.error, duration_ms=o.duration_ms, response_body=o.response_text)


@router.post(BASE, response_model=WebhookRead, status_code=201, summary="Create a webhook")
def create_webhook(body: WebhookCreate, hooks: Svc, who: Who) -> WebhookRead:
    return WebhookRead.of(hooks.create(name=body.name, url=body.url, events=body.events, filters=body.filters,
                                       description=body.description, secret=body.secret, status=body.status,
                                       actor=who.name))


@router.get(BASE, response_model=list[WebhookRead], summary="List webhooks (both flavours)")
def list_webhooks(hooks: Svc) -> list[WebhookRead]:
    return [WebhookRead.of(row) for row in hooks.list()]


@router.get(BASE + "/{ref}", response_model=WebhookRead, summary="Show a webhook (by id or name)")
def get_webhook(ref: str, hooks: Svc) -> WebhookRead:
    return WebhookRead.of(hooks.get(ref))


@router.patch(BASE + "/{ref}", response_model=WebhookRead, summary="Change a webhook")
def update_webhook(ref: str, body: WebhookUpdate, hooks: Svc) -> WebhookRead:
    changes: dict[str, Any] = body.model_dump(exclude_unset=True)
    return WebhookRead.of(hooks.update(ref, changes))


@router.delete(BASE + "/{ref}", status_code=204, summary="Delete a webhook and its delivery log")
def delete_webhook(ref: str, hooks: Svc) -> None:
    hooks.delete(ref)


@router.post(BASE + "/{ref}/test", response_model=TestRead, summary="Send a test delivery now")
def test_webhook(ref: str, hooks: Svc, who: Who, body: WebhookTest | None = None) -> TestRead:
    return TestRead.of(hooks.test(ref, body.event if body else None, who.name))


@router.get(BASE + "/{ref}/deliveries", response_model=list[DeliveryRead], summary="A webhook's delivery attempts")
def list_deliveries(ref: str, hooks: Svc,
                    limit: Annotated[int, Query(ge=1, le=10000, description="Newest first.")] = 100
                    ) -> list[DeliveryRead]:
    return [DeliveryRead.of(row) for row in hooks.deliveries(ref, limit=limit)]
