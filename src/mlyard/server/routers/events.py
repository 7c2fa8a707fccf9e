"""``/api/v1/events``: the event log, page by page with a cursor, or live as server-sent events.

The stream reads a page, sends it, and waits on the event feed (``automation/events.py``) with no
database session open; each read is a short session in a worker thread. It ends when the client goes
away (Starlette cancels it) or when the server starts to stop (``app.state.stopping``), so an open
stream never holds a shutdown up.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from mlyard.automation.events import MAX_ID, MAX_PAGE, EventPage, EventService, check_page, check_types
from mlyard.core.errors import InvalidRequestError
from mlyard.server.deps import get_services
from mlyard.server.services import Services
from mlyard.store.events import EVENT_TYPES
from mlyard.store.tracking_schema import Event

router = APIRouter(tags=["events"])
Svc = Annotated[Services, Depends(get_services)]
BASE = "/api/v1/events"
KEEPALIVE_S = 15.0
STREAM_PAGE = 200
RETRY_MS = 1000  # how soon a browser's EventSource reconnects

Types = Annotated[list[str] | None, Query(alias="type", description="Event type, or <entity>.* (repeatable).")]
Subject = Annotated[str | None, Query(max_length=512, description="A subject, or its parent (a model's name "
                                                                   "matches name:3 and name@prod).")]


class EventRead(BaseModel):
    id: int = Field(description="The event's place in the log: a cursor to read on from.")
    time: int = Field(description="When it was written, in milliseconds since the epoch.")
    type: str
    subject: str
    actor: str
    data: dict[str, Any]

    @classmethod
    def of(cls, row: Event) -> EventRead:
        return cls(id=row.id, time=row.at, type=row.type, subject=row.subject, actor=row.actor,
                   data=dict(row.payload or {}))


class EventList(BaseModel):
    events: list[EventRead]
    next_cursor: int | None = Field(description="Pass as after= for the next page; null when this page was the last.")


class EventTypeRead(BaseModel):
    type: str
    description: str


def _service(services: Services) -> EventService:
    svc: EventService = services.events
    return svc


@router.get(BASE, response_model=EventList, summary="Events after a cursor, oldest first")
def list_events(services: Svc, types: Types = None, subject: Subject = None,
                after: Annotated[int, Query(ge=0, le=MAX_ID, description="An event id: only events after it.")] = 0,
                max_results: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
                newest: Annotated[bool, Query(description="The newest max_results events (a tail), still oldest "
                                                          "first; no next_cursor.")] = False) -> EventList:
    page = _service(services).list(after=after, types=types, subject=subject, max_results=max_results,
                                   newest=newest)
    return EventList(events=[EventRead.of(e) for e in page.events], next_cursor=page.next_cursor)


@router.get(BASE + "/types", response_model=list[EventTypeRead], summary="The event types mlyard writes")
def list_types() -> list[EventTypeRead]:
    return [EventTypeRead(type=t, description=d) for t, d in EVENT_TYPES.items()]


def _cursor(after: int | None, last_event_id: str | None) -> int | None:
    """``Last-Event-ID`` (a reconnecting client) wins over ``after`` (the first connection)."""
    if last_event_id is not None and last_event_id.strip():
        text = last_event_id.strip()
        if not (text.isascii() and text.isdigit() and len(text) <= 19 and int(text) <= MAX_ID):
            raise InvalidRequestError(f"Last-Event-ID {last_event_id[:40]!r} is not an event id; send the id: of "
                                      "the last event received", details={"field": "Last-Event-ID"})
        return int(text)
    return after


def _frame(row: Event) -> bytes:
    data = json.dumps(EventRead.of(row).model_dump(), separators=(",", ":"))
    return f"id: {row.id}\nevent: {row.type}\ndata: {data}\n\n".encode()


# Not in the OpenAPI document: it cannot describe a stream, and a client that reads it to the end waits forever.
@router.get(BASE + "/stream", summary="The event log live, as server-sent events", include_in_schema=False)
async def stream_events(request: Request, services: Svc, types: Types = None, subject: Subject = None,
                        after: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None,
                        last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
                        ) -> StreamingResponse:
    """Events after ``Last-Event-ID`` (or ``after``), then each new one as it is written; without either, only
    events written from now on. A comment line every 15 s keeps proxies from closing an idle stream."""
    svc = _service(services)
    checked = check_types(types)
    start = _cursor(after, last_event_id)
    check_page(start or 0, STREAM_PAGE)
    if start is None:
        start = await anyio.to_thread.run_sync(svc.last_id)
    stopping: threading.Event = request.app.state.stopping
    return StreamingResponse(_frames(svc, stopping, start, checked, subject), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def _frames(svc: EventService, stopping: threading.Event, cursor: int, types: list[str],
                  subject: str | None) -> AsyncIterator[bytes]:
    feed = svc.feed

    def ended() -> bool:
        return feed.closed or stopping.is_set()

    # no data: nothing is dispatched, but a client's last id is now the start, so a reconnect misses nothing
    yield f"retry: {RETRY_MS}\nid: {cursor}\n\n".encode()
    quiet_since = time.monotonic()
    while not ended():
        seen = feed.generation  # before reading: a commit after the read moves it, and the wait returns at once
        page: EventPage = await anyio.to_thread.run_sync(
            partial(svc.list, after=cursor, types=types, subject=subject, max_results=STREAM_PAGE))
        for row in page.events:
            yield _frame(row)
            cursor = row.id
        if page.events:
            quiet_since = time.monotonic()
        if page.next_cursor is not None:
            continue  # a full page: there may be more at once
        while feed.generation == seen and not ended():
            idle = time.monotonic() - quiet_since
            if idle >= KEEPALIVE_S:
                yield b": keep-alive\n\n"
                quiet_since, idle = time.monotonic(), 0.0
            # a second at a time at most (no store read meanwhile): the server stopping is seen within one
            await feed.wait(seen, min(1.0, KEEPALIVE_S - idle))
