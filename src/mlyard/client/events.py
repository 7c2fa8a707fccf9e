"""Event log operations of the SDK: pages, every page in turn, and the live stream (server-sent events).

The stream reconnects by itself when the connection drops or the server restarts, sending the id of the
last event it received (``Last-Event-ID``), so nothing is missed and nothing comes twice.
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import httpx

from mlyard.client.http import Transport, raise_for_error
from mlyard.core.errors import ServerUnavailableError

BASE = "/api/v1/events"
# The server sends a comment every 15 s on an idle stream: a read that waits far longer means a dead connection.
STREAM_TIMEOUT = httpx.Timeout(5.0, read=45.0)
RECONNECT_S = (0.5, 1.0, 2.0, 5.0)  # waits between tries; the last repeats


def _params(types: Sequence[str] | None, subject: str | None, after: int | None, **more: Any) -> dict[str, Any]:
    params: dict[str, Any] = {k: v for k, v in more.items() if v is not None}
    if types:
        params["type"] = list(types)
    if subject:
        params["subject"] = subject
    if after is not None:
        params["after"] = after
    return params


class EventOperations:
    """``client.events``."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def list(self, *, types: Sequence[str] | None = None, subject: str | None = None, after: int = 0,
             max_results: int = 100, newest: bool = False) -> dict[str, Any]:
        """One page: ``{"events": [...], "next_cursor": id or None}`` (a cursor when the page was full).

        Args:
            types: event types, or ``<entity>.*`` (``job.*``).
            subject: a subject, or its parent (a model's name matches ``name:3`` and ``name@prod``).
            after: an event id: only events after it.
            newest: the newest ``max_results`` events instead of the oldest after ``after`` (a tail).
        """
        params = _params(types, subject, after, max_results=max_results, newest="true" if newest else None)
        result: dict[str, Any] = self._t.json("GET", BASE, params=params)
        return result

    def iterate(self, *, types: Sequence[str] | None = None, subject: str | None = None, after: int = 0,
                page_size: int = 500) -> Iterator[dict[str, Any]]:
        """Every event after ``after`` that exists now, page by page, oldest first."""
        cursor: int | None = after
        while cursor is not None:
            page = self.list(types=types, subject=subject, after=cursor, max_results=page_size)
            yield from page["events"]
            cursor = page["next_cursor"]

    def types(self) -> builtins.list[dict[str, str]]:
        """The event types the server writes: ``[{"type", "description"}]``."""
        result: builtins.list[dict[str, str]] = self._t.json("GET", f"{BASE}/types")
        return result

    def stream(self, *, types: Sequence[str] | None = None, subject: str | None = None, after: int | None = None,
               reconnect: bool = True, give_up_after: float = 60.0) -> Iterator[dict[str, Any]]:
        """Events as they are written, forever (until the caller stops iterating).

        Args:
            after: start after this event id; None: only events written from now on.
            reconnect: when the connection ends (a network failure, the server restarting), connect again
                from the last event received; False: end the iteration instead.
            give_up_after: seconds of failing to reconnect before :class:`ServerUnavailableError` is raised.

        Raises:
            ServerUnavailableError: the server cannot be reached (at first, or for ``give_up_after`` seconds).
            InvalidRequestError: a filter the server refuses (an unknown event type).
        """
        last = after
        failing_since: float | None = None
        tries = 0
        connected = False
        while True:
            try:
                for event_id, event in self._connect(types, subject, last):
                    connected, failing_since, tries = True, None, 0
                    last = event_id
                    if event is not None:
                        yield event
            except httpx.TransportError as exc:
                if not connected:
                    raise ServerUnavailableError(
                        f"cannot reach the mlyard server at {self._t.url} ({exc.__class__.__name__}: {exc}); start "
                        "it with 'mlyard server start' or check MLYARD_URL") from exc
                if not reconnect:
                    raise ServerUnavailableError(f"the event stream from {self._t.url} ended: {exc}") from exc
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since > give_up_after:
                    raise ServerUnavailableError(
                        f"cannot reach the mlyard server at {self._t.url} to resume the event stream after event "
                        f"{last} ({exc.__class__.__name__}: {exc}); resume later with after={last}") from exc
            else:
                if not reconnect:
                    return
            time.sleep(RECONNECT_S[min(tries, len(RECONNECT_S) - 1)])
            tries += 1

    def _connect(self, types: Sequence[str] | None, subject: str | None,
                 last: int | None) -> Iterator[tuple[int | None, dict[str, Any] | None]]:
        """(id, event) per event of one connection; (id, None) for a frame that only moves the cursor."""
        headers = {"Accept": "text/event-stream"}
        if last is not None:
            headers["Last-Event-ID"] = str(last)
        params = _params(types, subject, None)
        with self._t.http.stream("GET", f"{BASE}/stream", params=params, headers=headers,
                                 timeout=STREAM_TIMEOUT) as response:
            if not response.is_success:
                response.read()
                raise_for_error(response)
            for frame in parse_frames(response.iter_lines()):
                event_id = int(frame["id"]) if frame.get("id", "").isdigit() else last
                data = json.loads(frame["data"]) if "data" in frame else None
                last = event_id
                yield event_id, data


def parse_frames(lines: Iterable[str]) -> Iterator[dict[str, str]]:
    """Server-sent event frames: ``id``, ``event``, ``data`` (data lines joined), comments skipped."""
    frame: dict[str, str] = {}
    for line in lines:
        if not line:
            if frame:
                yield frame
            frame = {}
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data" and "data" in frame:
            frame["data"] += "\n" + value
        elif field in ("id", "event", "data", "retry"):
            frame[field] = value
    if frame:
        yield frame
