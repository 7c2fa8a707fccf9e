"""The webhook dispatcher: a thread of the server that turns logged events into deliveries.

Two steps, each its own transaction, so that nothing is lost across a restart:

1. **Enqueue.** Read the events after the lowest cursor of the active webhooks (woken by the event
   log's signal, and polling every second for events another server wrote), match them against each
   webhook, and in one transaction add a ``pending`` attempt per match and move each webhook's cursor
   past what was read. The cursor moves only if no one else moved it meanwhile (compare and set),
   so two servers on one PostgreSQL store do not enqueue an event twice.
2. **Send.** A small thread pool sends; one worker per webhook at a time, taking its pending attempts
   in event order, so a slow receiver delays only its own webhook and each receives events in the
   order they happened. A failed attempt becomes a new ``pending`` row due after the back-off; until
   it succeeds or is given up, later events for that webhook wait behind it.

Results are written in small batches (at most 20 attempts or a quarter of a second): a server killed
in between sends those attempts again on start, with the same delivery id. Delivery is at least once.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from mlyard.assets.registry import Registry
from mlyard.automation.delivery import Outcome, Sender, delivery_id, headers, mlflow_body, mlyard_body
from mlyard.automation.mlflow_events import SOURCES, MlflowEvent, RegistryLookup, translate
from mlyard.automation.webhooks import matches
from mlyard.core.errors import NotFoundError
from mlyard.store.automation_schema import WebhookDeliveryRow, WebhookRow
from mlyard.store.db import Database
from mlyard.store.events import read_events, signal
from mlyard.store.tracking_schema import Event

log = logging.getLogger("mlyard.webhooks")

POLL_S = 1.0  # for events written by another server on the same store
BUSY_POLL_S = 0.05  # while workers run: to restart one as soon as more is due
READ_BATCH = 500
SEND_BATCH = 100
FLUSH_EVERY = 20
FLUSH_S = 0.25


class RegistryReader:
    """The registry as translation reads it (``RegistryLookup``)."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def model(self, name: str) -> tuple[dict[str, str], str | None] | None:
        try:
            view = self._registry.get_model(name)
        except NotFoundError:
            return None
        return dict(view.tags), view.description

    def version(self, name: str, version: str) -> tuple[dict[str, str], str | None] | None:
        try:
            view = self._registry.get_version(name, version)
        except NotFoundError:
            return None
        return dict(view.tags), (view.record.description if view.record else view.asset.description)


class WebhookDispatcher:
    """Reads the event log and delivers what matches to each active webhook."""

    def __init__(self, db: Database, sender: Sender, registry: RegistryLookup, *, workers: int = 8) -> None:
        self._db = db
        self._sender = sender
        self._registry = registry
        self._workers = workers
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._busy: set[str] = set()
        self._dirty: set[str] = set()  # more was enqueued for a busy webhook
        self._blocked: dict[str, int] = {}  # webhook -> when its first pending attempt is due (ms)
        self._pool: ThreadPoolExecutor | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="mlyard-webhook")
        self._thread = threading.Thread(target=self._run, name="mlyard-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop reading and sending; attempts in flight finish (within the receiver timeout), pending ones wait."""
        self._stopping.set()
        signal.notify()  # wakes the reader (other readers read once more and find nothing new)
        if self._thread is not None:
            self._thread.join(timeout=POLL_S + 5)
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        seen = signal.generation
        while not self._stopping.is_set():
            try:
                while self._enqueue() and not self._stopping.is_set():
                    pass
                timeout = self._dispatch()
            except Exception:  # a store hiccup must not end delivery for the server's life
                log.exception("webhook dispatch pass failed; trying again in %s s", POLL_S)
                timeout = POLL_S
            seen = signal.wait(seen, timeout)

    # -- enqueue ---------------------------------------------------------------------------------

    def _enqueue(self) -> bool:
        """Match one batch of new events; True when there may be more to read."""
        with self._db.session() as s:
            hooks = list(s.execute(select(WebhookRow.id, WebhookRow.cursor, WebhookRow.events, WebhookRow.filters,
                                          WebhookRow.flavor).where(WebhookRow.status == "ACTIVE")))
            if not hooks:
                return False
            events = read_events(s, after=min(h.cursor for h in hooks), limit=READ_BATCH)
        if not events:
            return False
        last, now = events[-1].id, int(time.time() * 1000)
        translated: dict[int, list[MlflowEvent]] = {}
        plan: list[tuple[str, int, list[dict[str, Any]]]] = []
        for hook in hooks:
            rows: list[dict[str, Any]] = []
            for event in events:
                if event.id <= hook.cursor:
                    continue
                if hook.flavor == "mlflow":
                    if event.type not in SOURCES:
                        continue
                    if event.id not in translated:
                        translated[event.id] = translate(event, self._registry)
                    indexes = [i for i, m in enumerate(translated[event.id]) if m.name in hook.events]
                elif matches(hook.events, hook.filters or {}, event.type, event.subject, event.actor):
                    indexes = [0]
                else:
                    continue
                rows += [{"webhook": hook.id, "event": event.id, "delivery_id": delivery_id(hook.id, event.id, i),
                          "attempt": 1, "state": "pending", "next_attempt_at": now, "created_at": now}
                         for i in indexes]
            plan.append((hook.id, hook.cursor, rows))

        def write(s: Session) -> None:
            for hook_id, cursor, rows in plan:
                moved = s.execute(update(WebhookRow).where(WebhookRow.id == hook_id, WebhookRow.cursor == cursor,
                                                           WebhookRow.status == "ACTIVE").values(cursor=last))
                if moved.rowcount == 1 and rows:  # type: ignore[attr-defined]
                    s.execute(insert(WebhookDeliveryRow), rows)

        self._db.run_in_transaction(write)
        return len(events) == READ_BATCH

    # -- send ------------------------------------------------------------------------------------

    def _dispatch(self) -> float:
        """Start a worker for each webhook with an attempt due; returns how long the loop may sleep."""
        now = int(time.time() * 1000)
        with self._db.session() as s:
            heads = list(s.execute(
                select(WebhookDeliveryRow.webhook, func.min(WebhookDeliveryRow.next_attempt_at))
                .join(WebhookRow, WebhookRow.id == WebhookDeliveryRow.webhook)
                .where(WebhookDeliveryRow.state == "pending", WebhookRow.status == "ACTIVE")
                .group_by(WebhookDeliveryRow.webhook)))
        timeout = POLL_S
        with self._lock:
            for hook, due in heads:
                if hook in self._busy:
                    self._dirty.add(hook)
                    continue
                due = max(due or 0, self._blocked.get(hook, 0))
                if due > now:
                    timeout = min(timeout, (due - now) / 1000)
                    continue
                self._blocked.pop(hook, None)
                self._busy.add(hook)
                assert self._pool is not None
                self._pool.submit(self._drain, hook)
            if self._busy:
                timeout = min(timeout, BUSY_POLL_S)
        return max(timeout, 0.005)

    def _drain(self, hook: str) -> None:
        try:
            while not self._stopping.is_set():
                with self._lock:
                    self._dirty.discard(hook)
                if self._deliver_batch(hook):
                    continue
                with self._lock:
                    if hook not in self._dirty or hook in self._blocked:
                        return
        except Exception:
            log.exception("delivering to webhook %s failed; its pending attempts wait for the next pass", hook)
        finally:
            with self._lock:
                self._busy.discard(hook)

    def _deliver_batch(self, hook: str) -> bool:
        """Send the webhook's due attempts in event order; True when a full batch went out (more may wait)."""
        with self._db.session() as s:
            row = s.get(WebhookRow, hook)
            if row is None or row.status != "ACTIVE":
                return False
            attempts = list(s.scalars(select(WebhookDeliveryRow)
                                      .where(WebhookDeliveryRow.webhook == hook, WebhookDeliveryRow.state == "pending")
                                      .order_by(WebhookDeliveryRow.event, WebhookDeliveryRow.id).limit(SEND_BATCH)))
            ids = {a.event for a in attempts if a.event is not None}
            events = {e.id: e for e in s.scalars(select(Event).where(Event.id.in_(ids)))} if ids else {}
        done: list[tuple[WebhookDeliveryRow, Outcome, int, int | None]] = []
        flushed = time.monotonic()
        for attempt in attempts:
            now = int(time.time() * 1000)
            if (attempt.next_attempt_at or 0) > now:
                self._block(hook, attempt.next_attempt_at or now)
                break
            outcome = self._attempt(row, attempt, events.get(attempt.event or -1))
            retry_at = None
            if outcome.state == "failed":
                retry_at = now + int(self._sender.retry_delay(attempt.attempt) * 1000)
                self._block(hook, retry_at)
            done.append((attempt, outcome, now, retry_at))
            if retry_at is not None or self._stopping.is_set():
                break
            if len(done) >= FLUSH_EVERY or time.monotonic() - flushed > FLUSH_S:
                self._record(hook, done)
                done, flushed = [], time.monotonic()
        self._record(hook, done)
        with self._lock:
            blocked = hook in self._blocked
        return not blocked and len(attempts) == SEND_BATCH

    def _block(self, hook: str, until: int) -> None:
        with self._lock:
            self._blocked[hook] = until

    def _attempt(self, hook: WebhookRow, attempt: WebhookDeliveryRow, event: Event | None) -> Outcome:
        if event is None:
            return Outcome("gave_up", None, "the event is no longer in the log", 0)
        if hook.flavor == "mlflow":
            found = [m for i, m in enumerate(translate(event, self._registry))
                     if delivery_id(hook.id, event.id, i) == attempt.delivery_id]
            if not found:
                return Outcome("gave_up", None, "the event no longer stands for this MLflow event", 0)
            body, name = mlflow_body(found[0], event.at), found[0].name
        else:
            body = mlyard_body(event_id=event.id, type=event.type, subject=event.subject, actor=event.actor,
                               at=event.at, payload=event.payload or {}, webhook=hook.id)
            name = event.type
        outcome = self._sender.send(hook.url, body, headers(hook.flavor, hook.secret, attempt.delivery_id, name, body,
                                                            time.time()), attempt.attempt)
        if outcome.state == "gave_up":
            log.warning("webhook %s gave up on event %s after attempt %d: %s", hook.name, event.id, attempt.attempt,
                        outcome.error)
        return outcome

    def _record(self, hook: str, done: list[tuple[WebhookDeliveryRow, Outcome, int, int | None]]) -> None:
        if not done:
            return

        def write(s: Session) -> None:
            if s.get(WebhookRow, hook) is None:  # deleted meanwhile: its log went with it
                return
            for attempt, outcome, at, retry_at in done:
                s.execute(update(WebhookDeliveryRow)
                          .where(WebhookDeliveryRow.id == attempt.id, WebhookDeliveryRow.state == "pending")
                          .values(state=outcome.state, status_code=outcome.status_code, error=outcome.error,
                                  duration_ms=outcome.duration_ms, next_attempt_at=None, created_at=at))
                if retry_at is not None:
                    s.add(WebhookDeliveryRow(webhook=hook, event=attempt.event, delivery_id=attempt.delivery_id,
                                             attempt=attempt.attempt + 1, state="pending", next_attempt_at=retry_at,
                                             created_at=at))

        self._db.run_in_transaction(write)
