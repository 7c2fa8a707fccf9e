"""Automation in the studio: re-running a job, schedules (next firings, latest firings, enable/disable), and the
event log (filters, newest first, new events appended live by polling with a cursor).

Pages read and write through the same services as the API (``services.jobs``, ``services.schedules``);
every post carries the session's CSRF token.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mlyard.automation.events import MAX_ID
from mlyard.automation.schedules import CATCH_UP_RULE, from_ms
from mlyard.core.errors import InvalidRequestError
from mlyard.server.deps import get_services
from mlyard.server.services import Services
from mlyard.server.studio.auth import PREFIX, Signed, StudioRoute, checked_form
from mlyard.server.studio.templating import render
from mlyard.store.events import EVENT_TYPES

router = APIRouter(route_class=StudioRoute, include_in_schema=False)
Svc = Annotated[Services, Depends(get_services)]
Form = Annotated[dict[str, str], Depends(checked_form)]


@router.post(PREFIX + "/jobs/{name}/rerun")
def rerun(session: Signed, services: Svc, name: str, fields: Form) -> Response:
    """Submit the job's stored spec again as a new job (a new name), as ``POST /api/v1/jobs`` does."""
    row = services.jobs.get(name)
    if row.parent:
        raise InvalidRequestError(f"job {name!r} is a step of {row.parent!r}: re-run the pipeline instead",
                                  details={"job": name})
    spec: dict[str, Any] = {k: v for k, v in row.spec.items() if k != "name"}
    new = services.jobs.submit(spec, actor=session.principal.name, role=session.principal.role,
                               experiment_name=row.experiment_name, display_name=row.display_name,
                               env_mode=row.env_mode)
    return RedirectResponse(f"{PREFIX}/jobs/{new.name}", status_code=303)


def _trigger(spec: dict[str, Any]) -> str:
    trigger = spec.get("trigger") or {}
    if trigger.get("type") == "cron":
        return f"cron {trigger.get('expression', '')} ({trigger.get('time_zone') or 'UTC'})"
    every = f"every {trigger.get('interval', 1)} {trigger.get('frequency', '')}"
    pattern = trigger.get("schedule") or {}
    parts = [f"{k} {','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in pattern.items() if v]
    return every + (f" at {'; '.join(parts)}" if parts else "") + f" ({trigger.get('time_zone') or 'UTC'})"


@router.get(PREFIX + "/schedules", response_class=HTMLResponse)
def schedules(request: Request, session: Signed, services: Svc) -> Response:
    rows = services.schedules.list()
    return render(request, "schedules.html", session=session, section="schedules", schedules=rows,
                  trigger=_trigger, utc=lambda ms: from_ms(ms).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "-")


@router.get(PREFIX + "/schedules/{name}", response_class=HTMLResponse)
def schedule(request: Request, session: Signed, services: Svc, name: str) -> Response:
    view = services.schedules.show(name, count=5, firings=20)
    upcoming = list(zip(view.next_firings, view.next_firings_local, strict=True))
    return render(request, "schedule.html", session=session, section="schedules", view=view, s=view.row,
                  upcoming=upcoming, trigger=_trigger, rule=CATCH_UP_RULE,
                  utc=lambda ms: from_ms(ms).strftime("%Y-%m-%d %H:%M:%S UTC") if ms else "-")


@router.post(PREFIX + "/schedules/{name}/enable")
def enable(session: Signed, services: Svc, name: str, fields: Form) -> Response:
    services.schedules.set_enabled(name, True)
    return RedirectResponse(f"{PREFIX}/schedules/{name}", status_code=303)


@router.post(PREFIX + "/schedules/{name}/disable")
def disable(session: Signed, services: Svc, name: str, fields: Form) -> Response:
    services.schedules.set_enabled(name, False)
    return RedirectResponse(f"{PREFIX}/schedules/{name}", status_code=303)


EVENTS_SHOWN = 200


def _event_filters(type: str, subject: str) -> tuple[list[str] | None, str | None]:
    return ([type.strip()] if type.strip() else None), (subject.strip() or None)


@router.get(PREFIX + "/events", response_class=HTMLResponse)
def events(request: Request, session: Signed, services: Svc, type: Annotated[str, Query(max_length=200)] = "",
           subject: Annotated[str, Query(max_length=512)] = "") -> Response:
    """The newest events (newest first) with the type/subject filters; the page polls for newer ones by cursor."""
    types, subj = _event_filters(type, subject)
    page = services.events.list(types=types, subject=subj, max_results=EVENTS_SHOWN, newest=True)
    cursor = page.events[-1].id if page.events else services.events.last_id()
    return render(request, "events.html", session=session, section="events", events=page.events[::-1],
                  cursor=cursor, type=type, subject=subject, event_types=EVENT_TYPES, shown=EVENTS_SHOWN)


@router.get(PREFIX + "/events/live", response_class=HTMLResponse)
def events_live(request: Request, session: Signed, services: Svc, after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
                type: Annotated[str, Query(max_length=200)] = "",
                subject: Annotated[str, Query(max_length=512)] = "") -> Response:
    """The events after the cursor (newest first) and the next poller, which replace the current poller."""
    types, subj = _event_filters(type, subject)
    page = services.events.list(after=after, types=types, subject=subj, max_results=EVENTS_SHOWN)
    cursor = page.events[-1].id if page.events else after
    return render(request, "events_live.html", session=session, events=page.events[::-1], cursor=cursor,
                  type=type, subject=subject)
