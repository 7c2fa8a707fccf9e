"""Reading the event log: filtered pages with a cursor, and a feed that wakes live readers.

The log is written by the services that change things (``store/events.py``: an event commits with its
change). This module reads it: :class:`EventService` answers one page at a time, each read in a short
session of its own, so a live stream never holds a database session while it waits.

:class:`EventFeed` tells waiting streams that there may be something new. One thread per server does the
waiting for all of them: it wakes at once on :data:`mlyard.store.events.signal` (a commit of this
process that appended events) and, while anyone is waiting, asks the store for its newest event id every
second, because another server on the same PostgreSQL store appends events this process hears nothing
of. Streams wait on an ``asyncio`` event, so a thousand open streams hold no worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from mlyard.core.errors import InvalidRequestError
from mlyard.store.db import Database
from mlyard.store.events import EVENT_TYPES, last_event_id, read_events, signal
from mlyard.store.tracking_schema import Event

log = logging.getLogger("mlyard.automation")

MAX_PAGE = 1000
MAX_ID = 2**63 - 1  # the largest cursor any store can compare with
POLL_S = 1.0  # how often the feed looks for events another server wrote, while streams wait


@dataclass(frozen=True)
class EventPage:
    """One page of events, oldest first; ``next_cursor`` is set when the page was full (there may be more)."""

    events: list[Event]
    next_cursor: int | None


def check_types(types: Sequence[str] | None) -> list[str]:
    """The type filters, each an event type mlyard writes or ``<entity>.*``; anything else is refused."""
    entities = {t.split(".", 1)[0] for t in EVENT_TYPES}
    checked: list[str] = []
    for raw in types or ():
        t = raw.strip()
        known = t[:-2] in entities if t.endswith(".*") else t in EVENT_TYPES
        if not known:
            raise InvalidRequestError(
                f"type {raw!r} is not an event type mlyard writes: give one of 'mlyard events types' (e.g. "
                f"job.status_changed) or an entity's every action (e.g. job.*)", details={"field": "type"})
        checked.append(t)
    return checked


def check_page(after: int, max_results: int) -> None:
    if not 0 <= after <= MAX_ID:
        raise InvalidRequestError(f"after must be an event id (0 to {MAX_ID}), not {after}",
                                  details={"field": "after"})
    if not 1 <= max_results <= MAX_PAGE:
        raise InvalidRequestError(f"max_results must be 1 to {MAX_PAGE}, not {max_results}",
                                  details={"field": "max_results"})


class EventService:
    """Pages of the event log, and the feed live readers wait on."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.feed = EventFeed(db)

    def list(self, *, after: int = 0, types: Sequence[str] | None = None, subject: str | None = None,
             max_results: int = 100, newest: bool = False) -> EventPage:
        """Events after the cursor ``after`` (an event id), oldest first, at most ``max_results``.

        Args:
            newest: the newest ``max_results`` of them (a tail, still oldest first); a tail is one page,
                read on with the live stream from its last id.
        """
        check_page(after, max_results)
        checked = check_types(types)
        with self._db.session() as s:
            rows = read_events(s, after=after, types=checked or None, subject=subject or None, limit=max_results,
                               newest=newest)
        full = len(rows) == max_results and not newest
        return EventPage(rows, rows[-1].id if full else None)

    def last_id(self) -> int:
        """The newest event's id (0 when the log is empty): where a reader that wants only new events starts."""
        with self._db.session() as s:
            return last_event_id(s)

    def close(self) -> None:
        self.feed.close()


class EventFeed:
    """Wakes live readers when the log may have grown; ends their wait for good once closed."""

    def __init__(self, db: Database, poll_s: float = POLL_S) -> None:
        self._db = db
        self._poll_s = poll_s
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()
        self._generation = 0
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def generation(self) -> int:
        """Moves on each time the log may have grown; take it before reading, wait on it after."""
        return self._generation

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    async def wait(self, seen: int, timeout: float) -> int:
        """Until the generation moves past ``seen``, the feed closes, or ``timeout`` seconds pass."""
        if self._generation != seen or self.closed:
            return self._generation
        waiter = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._waiters.add(waiter)
            self._ensure_thread()
        try:
            if self._generation == seen and not self.closed:  # it may have moved while we registered
                try:
                    await asyncio.wait_for(waiter[1].wait(), timeout)
                except TimeoutError:
                    pass
        finally:
            with self._lock:
                self._waiters.discard(waiter)
        return self._generation

    def close(self) -> None:
        """End every wait now and for good (the server is stopping)."""
        self._closed.set()
        self._wake()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2 * self._poll_s)

    def _ensure_thread(self) -> None:
        if (self._thread is None or not self._thread.is_alive()) and not self.closed:
            self._thread = threading.Thread(target=self._watch, name="mlyard-event-feed", daemon=True)
            self._thread.start()

    def _wake(self) -> None:
        with self._lock:
            self._generation += 1
            waiters = list(self._waiters)
        for loop, event in waiters:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop has closed: its stream is gone
                pass

    def _watch(self) -> None:
        seen_signal = signal.generation
        newest: int | None = None
        while not self.closed:
            generation = signal.wait(seen_signal, self._poll_s)
            if self.closed:
                return
            if generation != seen_signal:
                seen_signal = generation
                self._wake()
                continue
            with self._lock:
                idle = not self._waiters
            if idle:  # nobody waits: no need to ask the store
                continue
            try:
                current = self.last_id()
            except Exception:  # the store is away for a moment: streams read again when it is back
                log.warning("the event feed could not read the newest event id", exc_info=True)
                continue
            # Compared with the last look, however long ago: what other servers wrote meanwhile (perhaps just
            # after a stream read) wakes the streams. The very first look wakes them too, having nothing to go by.
            if current != newest:
                self._wake()
            newest = current

    def last_id(self) -> int:
        with self._db.session() as s:
            return last_event_id(s)
