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

A worker claims up to 20 due attempts at a time by moving their due time a minute ahead (a lease, in
one conditional update: another server's worker skips what it did not claim, and waits behind it, so a
webhook is served by one server at a time), sends them, then writes their results and gives back the
ones it did not make (after a failure, or when the server stops). A server killed in the middle leaves
its claimed attempts pending: they are sent again, with the same delivery id, when the lease runs
out. Delivery is at least once; receivers drop duplicates by delivery id.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import takewhile
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
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
WAKE_S = 0.02  # how often the sleeping loop looks whether a worker finished (a flag, not the store)
READ_BATCH = 500
CLAIM = 20  # attempts a worker claims, sends, then records in one transaction
LEASE_MS = 60_000  # how long claimed attempts are left to the dispatcher that claimed them


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
        self._salt = random.randrange(1000)
        self._worker_done = threading.Event()
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
            seen = self._sleep(seen, timeout)

    def _sleep(self, seen: int, timeout: float) -> int:
        """Until an event is logged, a worker finishes, or ``timeout`` passes; returns the signal's generation."""
        deadline = time.monotonic() + timeout
        while not self._stopping.is_set() and not self._worker_done.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            now = signal.wait(seen, min(WAKE_S, left))
            if now != seen:
                return now
        self._worker_done.clear()
        return seen

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
            self._worker_done.set()  # the loop looks again: more may be due, or due later

    def _deliver_batch(self, hook: str) -> bool:
        """Claim and send the webhook's next due attempts in event order; True when more may be due."""
        now = _now_ms()
        with self._db.session() as s:
            row = s.get(WebhookRow, hook)
            if row is None or row.status != "ACTIVE":
                return False
            attempts = list(s.scalars(select(WebhookDeliveryRow)
                                      .where(WebhookDeliveryRow.webhook == hook, WebhookDeliveryRow.state == "pending")
                                      .order_by(WebhookDeliveryRow.event, WebhookDeliveryRow.id).limit(CLAIM)))
        if not attempts:
            return False
        due = list(takewhile(lambda a: (a.next_attempt_at or 0) <= now, attempts))
        if not due:  # a retry (or another server's claim) holds the line: later events wait behind it
            self._block(hook, attempts[0].next_attempt_at or now)
            return False
        ours = self._claim(due, now)
        if not ours:
            self._block(hook, now + int(POLL_S * 1000))
            return False
        with self._db.session() as s:
            ids = {a.event for a in ours if a.event is not None}
            events = {e.id: e for e in s.scalars(select(Event).where(Event.id.in_(ids)))} if ids else {}
        done: list[tuple[WebhookDeliveryRow, Outcome, int, int | None]] = []
        for attempt in ours:
            at = _now_ms()
            outcome = self._attempt(row, attempt, events.get(attempt.event or -1))
            retry_at = None
            if outcome.state == "failed":
                retry_at = at + int(self._sender.retry_delay(attempt.attempt) * 1000)
                self._block(hook, retry_at)
            done.append((attempt, outcome, at, retry_at))
            if retry_at is not None or self._stopping.is_set():
                break
        self._record(hook, done, ours[len(done):])
        with self._lock:
            blocked = hook in self._blocked
        return not blocked and len(attempts) == CLAIM

    def _claim(self, due: list[WebhookDeliveryRow], now: int) -> list[WebhookDeliveryRow]:
        """Take ``due`` for this dispatcher by moving them past a lease; those another server took are left out."""
        lease = now + LEASE_MS + self._salt  # the salt makes the lease's instant this dispatcher's own
        ids = [a.id for a in due]
        condition = (WebhookDeliveryRow.id.in_(ids), WebhookDeliveryRow.state == "pending",
                     func.coalesce(WebhookDeliveryRow.next_attempt_at, 0) <= now)
        def write(s: Session) -> int:
            result = s.execute(update(WebhookDeliveryRow).where(*condition).values(next_attempt_at=lease))
            return int(result.rowcount)  # type: ignore[attr-defined]

        claimed = self._db.run_in_transaction(write)
        if claimed == len(due):
            return due
        with self._db.session() as s:
            mine = set(s.scalars(select(WebhookDeliveryRow.id).where(WebhookDeliveryRow.id.in_(ids),
                                                                     WebhookDeliveryRow.next_attempt_at == lease)))
        return [a for a in due if a.id in mine]

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

    def _record(self, hook: str, done: list[tuple[WebhookDeliveryRow, Outcome, int, int | None]],
                unsent: list[WebhookDeliveryRow]) -> None:
        """Write each attempt's result (and its retry); give back the claimed attempts not made."""
        if not done and not unsent:
            return

        results = [{"_id": a.id, "_state": o.state, "_code": o.status_code, "_error": o.error, "_ms": o.duration_ms,
                    "_at": at} for a, o, at, _ in done]
        given_back = [{"_id": a.id, "_due": a.next_attempt_at} for a in unsent]
        retries = [{"webhook": hook, "event": a.event, "delivery_id": a.delivery_id, "attempt": a.attempt + 1,
                    "state": "pending", "next_attempt_at": retry_at, "created_at": at}
                   for a, _, at, retry_at in done if retry_at is not None]

        def write(s: Session) -> None:
            if s.get(WebhookRow, hook) is None:  # deleted meanwhile: its log went with it
                return
            conn = s.connection()  # one executemany per kind of change: a burst records 20 attempts at a time
            if given_back:  # their due time again: they go next, after a retry if there is one
                conn.execute(_GIVE_BACK, given_back)
            if results:
                conn.execute(_RESULT, results)
            if retries:
                conn.execute(insert(_DELIVERIES), retries)

        self._db.run_in_transaction(write)


_DELIVERIES = cast(Table, WebhookDeliveryRow.__table__)
_PENDING_ROW = (_DELIVERIES.c.id == bindparam("_id"), _DELIVERIES.c.state == "pending")
_GIVE_BACK = update(_DELIVERIES).where(*_PENDING_ROW).values(next_attempt_at=bindparam("_due"))
_RESULT = update(_DELIVERIES).where(*_PENDING_ROW).values(
    state=bindparam("_state"), status_code=bindparam("_code"), error=bindparam("_error"), duration_ms=bindparam("_ms"),
    next_attempt_at=None, created_at=bindparam("_at"))


def _now_ms() -> int:
    return int(time.time() * 1000)
