"""``/api/v1/schedules``: job and monitor schedules (create, update, enable, disable, delete, list, show).

``show`` adds what a user asks before trusting a schedule: the next five firing instants (UTC, with
the schedule's zone), the latest firings and their jobs, and the catch-up rule.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from mlyard.auth.tokens import Principal
from mlyard.automation.schedules import CATCH_UP_RULE, MONITOR_NOTE, ScheduleService, ScheduleView, from_ms
from mlyard.server.deps import get_principal, get_services
from mlyard.server.services import Services
from mlyard.store.automation_schema import ScheduleFiringRow, ScheduleRow

router = APIRouter(tags=["schedules"])
Who = Annotated[Principal, Depends(get_principal)]
BASE = "/api/v1/schedules"


async def get_schedules(services: Annotated[Services, Depends(get_services)]) -> ScheduleService:
    return services.schedules


Svc = Annotated[ScheduleService, Depends(get_schedules)]


class ScheduleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The schedule spec (Azure ML YAML fields); create_job inline with "
                                             "its local code and data already uploaded, or azureml:<job>.")


class ScheduleUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(description="The whole new spec (description, tags, display_name, trigger, job); "
                                             "is_enabled is changed by enable and disable.")


def _iso(ms: int | None) -> str | None:
    return from_ms(ms).isoformat().replace("+00:00", "Z") if ms is not None else None


class ScheduleRead(BaseModel):
    name: str
    display_name: str | None = None
    description: str | None = None
    tags: dict[str, Any] = Field(default_factory=dict)
    action: str = Field(description="create_job or create_monitor.")
    is_enabled: bool
    trigger: dict[str, Any]
    next_fire_at: str | None = Field(description="The next firing instant (UTC); null while none is left.")
    last_fired_at: str | None = Field(description="The due instant of the latest firing (UTC).")
    provisioning_state: str = "Succeeded"
    created_at: int
    updated_at: int
    created_by: str
    spec: dict[str, Any]

    @classmethod
    def of(cls, row: ScheduleRow) -> ScheduleRead:
        return cls(name=row.name, display_name=row.spec.get("display_name"), description=row.spec.get("description"),
                   tags=row.spec.get("tags") or {}, action=row.action, is_enabled=row.enabled,
                   trigger=row.spec["trigger"], next_fire_at=_iso(row.next_fire_at),
                   last_fired_at=_iso(row.last_fired_at), created_at=row.created_at, updated_at=row.updated_at,
                   created_by=row.created_by, spec=row.spec)


class FiringRead(BaseModel):
    fire_at: str = Field(description="The instant it was due (UTC).")
    catch_up: bool = Field(description="Fired at start-up for an instant missed while the server was down.")
    job: str | None
    error: str | None = None
    note: str | None = None
    created_at: int

    @classmethod
    def of(cls, row: ScheduleFiringRow, action: str) -> FiringRead:
        note = row.error if action == "create_monitor" and row.job is None and row.error == MONITOR_NOTE else None
        return cls(fire_at=_iso(row.fire_at) or "", catch_up=row.catch_up, job=row.job,
                   error=None if note else row.error, note=note, created_at=row.created_at)


class ScheduleShow(ScheduleRead):
    time_zone: str = Field(description="The trigger's zone, in which its times of day are read.")
    next_firings: list[str] = Field(description="The next five firing instants (UTC); none while disabled.")
    next_firings_local: list[str] = Field(description="The same instants on the clock of the schedule's zone.")
    last_job: str | None = Field(description="The job of the latest firing that started one.")
    firings: list[FiringRead] = Field(description="The latest firings, newest first.")
    catch_up_rule: str = CATCH_UP_RULE
    note: str | None = Field(default=None, description="What a create_monitor schedule's firings do for now.")

    @classmethod
    def of_view(cls, view: ScheduleView, *, runs_monitors: bool = True) -> ScheduleShow:
        base = ScheduleRead.of(view.row).model_dump()
        return cls(**base, time_zone=view.zone,
                   next_firings=[t.isoformat().replace("+00:00", "Z") for t in view.next_firings],
                   next_firings_local=[t.isoformat() for t in view.next_firings_local],
                   last_job=next((f.job for f in view.firings if f.job), None),
                   firings=[FiringRead.of(f, view.row.action) for f in view.firings],
                   note=MONITOR_NOTE if view.row.action == "create_monitor" and not runs_monitors else None)


@router.post(BASE, response_model=ScheduleRead, status_code=201, summary="Create a schedule")
def create_schedule(body: ScheduleCreate, schedules: Svc, who: Who) -> ScheduleRead:
    return ScheduleRead.of(schedules.create(body.spec, who.name, who.role))


@router.get(BASE, response_model=list[ScheduleRead], summary="List schedules")
def list_schedules(schedules: Svc) -> list[ScheduleRead]:
    return [ScheduleRead.of(r) for r in schedules.list()]


@router.get(BASE + "/{name}", response_model=ScheduleShow,
            summary="Show a schedule, its next five firings and its latest firings")
def show_schedule(name: str, schedules: Svc, services: Annotated[Services, Depends(get_services)]) -> ScheduleShow:
    return ScheduleShow.of_view(schedules.show(name), runs_monitors=services.scheduler.monitor_runner is not None)


@router.patch(BASE + "/{name}", response_model=ScheduleRead, summary="Replace a schedule's spec")
def update_schedule(name: str, body: ScheduleUpdate, schedules: Svc) -> ScheduleRead:
    return ScheduleRead.of(schedules.update(name, body.spec))


@router.post(BASE + "/{name}/enable", response_model=ScheduleRead, summary="Enable a schedule")
def enable_schedule(name: str, schedules: Svc) -> ScheduleRead:
    return ScheduleRead.of(schedules.set_enabled(name, True))


@router.post(BASE + "/{name}/disable", response_model=ScheduleRead, summary="Disable a schedule")
def disable_schedule(name: str, schedules: Svc) -> ScheduleRead:
    return ScheduleRead.of(schedules.set_enabled(name, False))


@router.delete(BASE + "/{name}", status_code=204, summary="Delete a disabled schedule (refused while enabled)")
def delete_schedule(name: str, schedules: Svc) -> None:
    schedules.delete(name)
