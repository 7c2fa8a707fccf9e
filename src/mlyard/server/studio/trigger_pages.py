"""Triggers and webhooks in the studio, read-only: the lists, a trigger with its latest firings (and their jobs), a
webhook with its latest deliveries. A webhook's secret is never read into a page: only whether one is set."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from mlyard.server.deps import get_services
from mlyard.server.services import Services
from mlyard.server.studio.auth import PREFIX, Signed, StudioRoute
from mlyard.server.studio.templating import render

router = APIRouter(route_class=StudioRoute, include_in_schema=False)
Svc = Annotated[Services, Depends(get_services)]


@router.get(PREFIX + "/triggers", response_class=HTMLResponse)
def triggers(request: Request, session: Signed, services: Svc) -> Response:
    return render(request, "triggers.html", session=session, section="triggers", triggers=services.triggers.list(),
                  webhooks=services.webhooks.list())


@router.get(PREFIX + "/triggers/{name}", response_class=HTMLResponse)
def trigger(request: Request, session: Signed, services: Svc, name: str) -> Response:
    row = services.triggers.get(name)
    return render(request, "trigger.html", session=session, section="triggers", t=row,
                  firings=services.triggers.firings(name, limit=50))


@router.get(PREFIX + "/webhooks/{ref}", response_class=HTMLResponse)
def webhook(request: Request, session: Signed, services: Svc, ref: str) -> Response:
    row = services.webhooks.get(ref)
    return render(request, "webhook.html", session=session, section="triggers", w=row, has_secret=bool(row.secret),
                  deliveries=services.webhooks.deliveries(ref, limit=50))
