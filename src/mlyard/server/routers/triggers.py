"""``/api/v1/triggers``: rules that create a job when an event matches; their firings."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from mlyard.auth.tokens import Principal
from mlyard.automation.triggers import TriggerService
from mlyard.server.deps import get_principal, get_services
from mlyard.server.services import Services
from mlyard.store.automation_schema import TriggerFiringRow, TriggerRow

router = APIRouter(tags=["triggers"])
Who = Annotated[Principal, Depends(get_principal)]
BASE = "/api/v1/triggers"


async def get_triggers(services: Annotated[Services, Depends(get_services)]) -> TriggerService:
    return services.triggers


Svc = Annotated[TriggerService, Depends(get_triggers)]


class TriggerCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The trigger spec, its create_job inline with local content uploaded.")


class FiringRead(BaseModel):
    event: int = Field(description="The id of the event that matched.")
    outcome: str = Field(description="started, cooling_down (no job: within the cool-down) or failed.")
    job: str | None
    error: str | None
    created_at: int

    @classmethod
    def of(cls, row: TriggerFiringRow) -> FiringRead:
        return cls(event=row.event, outcome=row.outcome, job=row.job, error=row.error, created_at=row.created_at)


class TriggerRead(BaseModel):
    name: str
    description: str | None = None
    enabled: bool
    event: dict[str, Any] = Field(description="The rule: type (a list), subject, filter.")
    cool_down: str = Field(description="ISO-8601 duration; PT0S: none.")
    inputs: dict[str, Any] = Field(description="Job inputs bound from the event (${{event...}}).")
    job_type: str
    experiment_name: str | None
    cursor: int = Field(description="The last event id the trigger has looked at.")
    last_fired_at: int | None = Field(description="Time (ms) of the event that last started a job.")
    created_at: int
    updated_at: int
    created_by: str
    spec: dict[str, Any] | None = Field(default=None, description="The whole stored spec (show only).")
    firings: list[FiringRead] | None = Field(default=None, description="The latest firings, newest first (show only).")

    @classmethod
    def of(cls, row: TriggerRow, firings: list[TriggerFiringRow] | None = None) -> TriggerRead:
        spec, job = row.spec, row.spec.get("create_job") or {}
        return cls(name=row.name, description=spec.get("description"), enabled=row.enabled,
                   event=spec.get("event") or {}, cool_down=str(spec.get("cool_down") or "PT0S"),
                   inputs=spec.get("inputs") or {}, job_type=str(job.get("type") or "command"),
                   experiment_name=job.get("experiment_name"), cursor=row.cursor, last_fired_at=row.last_fired_at,
                   created_at=row.created_at, updated_at=row.updated_at, created_by=row.created_by,
                   spec=spec if firings is not None else None,
                   firings=[FiringRead.of(f) for f in firings] if firings is not None else None)


@router.post(BASE, response_model=TriggerRead, status_code=201, summary="Create a trigger")
def create_trigger(body: TriggerCreate, triggers: Svc, who: Who) -> TriggerRead:
    return TriggerRead.of(triggers.create(body.spec, actor=who.name, role=who.role))


@router.get(BASE, response_model=list[TriggerRead], summary="List triggers")
def list_triggers(triggers: Svc) -> list[TriggerRead]:
    return [TriggerRead.of(r) for r in triggers.list()]


@router.get(BASE + "/{name}", response_model=TriggerRead, summary="Show a trigger and its latest firings")
def show_trigger(name: str, triggers: Svc,
                 max_firings: Annotated[int, Query(ge=1, le=1000)] = 20) -> TriggerRead:
    row = triggers.get(name)
    return TriggerRead.of(row, triggers.firings(name, limit=max_firings))


@router.post(BASE + "/{name}/enable", response_model=TriggerRead,
             summary="Enable a trigger (it starts at the log's end)")
def enable_trigger(name: str, triggers: Svc) -> TriggerRead:
    return TriggerRead.of(triggers.set_enabled(name, True))


@router.post(BASE + "/{name}/disable", response_model=TriggerRead, summary="Disable a trigger")
def disable_trigger(name: str, triggers: Svc) -> TriggerRead:
    return TriggerRead.of(triggers.set_enabled(name, False))


@router.delete(BASE + "/{name}", status_code=204, summary="Delete a trigger and its firings (its jobs stay)")
def delete_trigger(name: str, triggers: Svc) -> None:
    triggers.delete(name)
