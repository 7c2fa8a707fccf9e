"""Webhook subscriptions: create, change, delete, test, and the log of their deliveries.

A subscription names event types and, for mlyard's flavour, filters; the dispatcher
(``dispatcher.py``) sends it every event that matches from the moment it is created (or enabled
again): old events are not replayed. Its secret signs deliveries and is never read back.

Two flavours share one table: ``mlyard`` (mlyard's event names, ``entity.*`` patterns and filters,
mlyard's headers) and ``mlflow`` (made through MLflow's webhook API: MLflow's event names, payloads
and signature). Each API lists its own flavour's events; ``mlyard webhook list`` shows both.
"""

from __future__ import annotations

import builtins
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from mlyard.automation.delivery import Outcome, Sender, headers, mlflow_body, mlyard_body
from mlyard.automation.mlflow_events import EXAMPLES, MLFLOW_EVENTS, MlflowEvent
from mlyard.core.errors import AlreadyExistsError, InvalidRequestError, NotFoundError
from mlyard.core.timeutil import now_ms
from mlyard.store.automation_schema import WebhookDeliveryRow, WebhookRow
from mlyard.store.db import Database
from mlyard.store.events import EVENT_TYPES, last_event_id

FLAVORS = ("mlyard", "mlflow")
STATUSES = ("ACTIVE", "DISABLED")
# filter key -> what it compares
FILTERS = {
    "model_name": "the model a model.* event is about (its subject without :version or @alias)",
    "subject": "the event's subject, exactly",
    "subject_prefix": "the start of the event's subject",
    "actor": "who caused the event",
}
_NAME = re.compile(r"^(?=.{1,63}$)[a-z0-9]([a-z0-9._-]*[a-z0-9])?$", re.IGNORECASE)  # MLflow's rule
MAX_URL = 2000
MAX_SECRET = 255
MAX_DESCRIPTION = 5000
MAX_EVENTS = 64


def _invalid(message: str, field: str) -> InvalidRequestError:
    return InvalidRequestError(message, details={"field": field})


def check_name(name: Any) -> str:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise _invalid(f"webhook name {name!r} is invalid: 1 to 63 letters, digits, '.', '_' or '-', starting and "
                       "ending with a letter or digit", "name")
    return name


def check_url(url: Any) -> str:
    if not isinstance(url, str) or not url.strip():
        raise _invalid("url is required: the http:// or https:// address deliveries are posted to", "url")
    if len(url) > MAX_URL or any(c.isspace() or ord(c) < 32 for c in url):
        raise _invalid(f"url must be one http(s) address of at most {MAX_URL} characters, without spaces", "url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (reading it checks it)
        httpx.URL(url)  # what will send it must be able to encode it (host names, IDNA)
    except (ValueError, httpx.InvalidURL) as exc:
        raise _invalid(f"url {url!r} is not a valid address: {exc}", "url") from exc
    if parts.scheme not in ("http", "https"):
        raise _invalid(f"url {url!r} must start with http:// or https:// (scheme {parts.scheme or 'none'!r} "
                       "cannot receive deliveries)", "url")
    if not parts.hostname:
        raise _invalid(f"url {url!r} has no host name", "url")
    return url


def _pattern_ok(pattern: str) -> bool:
    if pattern == "*" or pattern in EVENT_TYPES:
        return True
    return pattern.endswith(".*") and any(t.startswith(pattern[:-1]) for t in EVENT_TYPES)


def check_events(events: Any, flavor: str) -> list[str]:
    if not isinstance(events, list) or not events or len(events) > MAX_EVENTS \
            or not all(isinstance(e, str) for e in events):
        raise _invalid(f"events must be a list of 1 to {MAX_EVENTS} event type names", "events")
    unique = list(dict.fromkeys(events))
    if flavor == "mlflow":
        bad = [e for e in unique if e not in MLFLOW_EVENTS]
        if bad:
            raise _invalid(f"event {bad[0]!r} is not one of MLflow's webhook events: {', '.join(MLFLOW_EVENTS)}",
                           "events")
        return unique
    bad = [e for e in unique if not _pattern_ok(e)]
    if bad:
        raise _invalid(f"event {bad[0]!r} is not an mlyard event type; use one of {', '.join(EVENT_TYPES)}, "
                       "an entity's every action ('model.*') or '*'", "events")
    return unique


def check_filters(filters: Any, flavor: str) -> dict[str, str]:
    if filters in (None, {}):
        return {}
    if flavor == "mlflow":
        raise _invalid("webhooks made through MLflow's API take no filters", "filters")
    if not isinstance(filters, dict) or not all(isinstance(v, str) and v for v in filters.values()):
        raise _invalid("filters must map a filter name to a non-empty string", "filters")
    unknown = sorted(set(filters) - set(FILTERS))
    if unknown:
        raise _invalid(f"unknown filter {unknown[0]!r}; filters are {', '.join(FILTERS)}", f"filters.{unknown[0]}")
    return dict(filters)


def _check_text(value: Any, field: str, limit: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise _invalid(f"{field} must be a string of at most {limit} characters", field)
    return value


def _check_status(status: Any) -> str:
    if status not in STATUSES:
        raise _invalid(f"status {status!r} must be ACTIVE or DISABLED", "status")
    return str(status)


def model_name(event_type: str, subject: str) -> str | None:
    if not event_type.startswith("model."):
        return None
    for sep in (":", "@"):
        if sep in subject:
            return subject.rpartition(sep)[0]
    return subject


def matches(patterns: list[str], filters: dict[str, str], event_type: str, subject: str, actor: str) -> bool:
    """Whether an event of ``event_type`` about ``subject`` goes to an mlyard-flavoured subscription."""
    if not any(p == "*" or p == event_type or (p.endswith(".*") and event_type.startswith(p[:-1]))
               for p in patterns):
        return False
    for key, want in filters.items():
        have = {"model_name": model_name(event_type, subject), "subject": subject, "actor": actor}.get(key)
        if key == "subject_prefix":
            if not subject.startswith(want):
                return False
        elif have != want:
            return False
    return True


@dataclass(frozen=True)
class TestResult:
    """One test delivery: sent once, recorded in the delivery log, never retried."""

    event: str
    delivery_id: str
    outcome: Outcome


class WebhookService:
    """Subscriptions and their delivery log; sends test deliveries itself."""

    def __init__(self, db: Database, sender: Sender) -> None:
        self._db = db
        self._sender = sender

    def close(self) -> None:
        self._sender.close()

    # -- reading ---------------------------------------------------------------------------------

    @staticmethod
    def _find(s: Session, ref: str, flavor: str | None) -> WebhookRow:
        row = s.get(WebhookRow, ref)
        if row is None and flavor != "mlflow":  # mlyard's API and CLI also take a name
            rows = list(s.scalars(select(WebhookRow).where(WebhookRow.name == ref)))
            if len(rows) > 1:
                raise InvalidRequestError(f"{len(rows)} webhooks are named {ref!r}; give the id instead "
                                          "('mlyard webhook list' shows them)", details={"webhook": ref})
            row = rows[0] if rows else None
        if row is None or (flavor is not None and row.flavor != flavor):
            raise NotFoundError(f"webhook {ref!r} not found; 'mlyard webhook list' shows them",
                                details={"webhook": ref})
        return row

    def get(self, ref: str, flavor: str | None = None) -> WebhookRow:
        with self._db.session() as s:
            return self._find(s, ref, flavor)

    def list(self, flavor: str | None = None, *, offset: int = 0,
             limit: int | None = None) -> builtins.list[WebhookRow]:
        query = select(WebhookRow).order_by(WebhookRow.created_at, WebhookRow.id).offset(offset)
        if flavor is not None:
            query = query.where(WebhookRow.flavor == flavor)
        with self._db.session() as s:
            return list(s.scalars(query.limit(limit) if limit is not None else query))

    def deliveries(self, ref: str, *, limit: int = 100, flavor: str | None = None) -> builtins.list[WebhookDeliveryRow]:
        """The newest ``limit`` attempts, newest first."""
        with self._db.session() as s:
            row = self._find(s, ref, flavor)
            return list(s.scalars(select(WebhookDeliveryRow).where(WebhookDeliveryRow.webhook == row.id)
                                  .order_by(WebhookDeliveryRow.id.desc()).limit(limit)))

    # -- writing ---------------------------------------------------------------------------------

    def create(self, *, name: str, url: str, events: builtins.list[str], actor: str, flavor: str = "mlyard",
               filters: dict[str, str] | None = None, description: str | None = None, secret: str | None = None,
               status: str = "ACTIVE") -> WebhookRow:
        """Store a subscription; it receives the events logged after it (its cursor starts at the log's end)."""
        if flavor not in FLAVORS:
            raise _invalid(f"flavor {flavor!r} must be mlyard or mlflow", "flavor")
        at = now_ms()
        row = WebhookRow(id=str(uuid.uuid4()), name=check_name(name), url=check_url(url),
                         events=check_events(events, flavor), filters=check_filters(filters, flavor),
                         description=_check_text(description, "description", MAX_DESCRIPTION),
                         secret=_check_text(secret, "secret", MAX_SECRET), status=_check_status(status),
                         flavor=flavor, created_at=at, updated_at=at, created_by=actor)

        def write(s: Session) -> WebhookRow:
            # MLflow allows two webhooks of one name; mlyard's API refers to them by name, so it does not
            if flavor == "mlyard" and s.scalar(select(func.count()).select_from(WebhookRow)
                                               .where(WebhookRow.name == row.name)):
                raise AlreadyExistsError(f"a webhook named {row.name!r} already exists; choose another name or "
                                         f"change it with 'mlyard webhook update -n {row.name}'",
                                         details={"webhook": row.name})
            row.cursor = last_event_id(s)
            s.add(row)
            return row

        return self._db.run_in_transaction(write)

    def update(self, ref: str, changes: dict[str, Any], *, flavor: str | None = None) -> WebhookRow:
        """Change name, url, events, filters, description, secret or status (keys absent stay as they are)."""
        allowed = {"name", "url", "events", "filters", "description", "secret", "status"}
        unknown = sorted(set(changes) - allowed)
        if unknown:
            raise _invalid(f"field {unknown[0]!r} cannot be changed; change {', '.join(sorted(allowed))}", unknown[0])

        def write(s: Session) -> WebhookRow:
            row = self._find(s, ref, flavor)
            if "name" in changes:
                new = check_name(changes["name"])
                if row.flavor == "mlyard" and new != row.name and s.scalar(
                        select(func.count()).select_from(WebhookRow).where(WebhookRow.name == new)):
                    raise AlreadyExistsError(f"a webhook named {new!r} already exists", details={"webhook": new})
                row.name = new
            if "url" in changes:
                row.url = check_url(changes["url"])
            if "events" in changes:
                row.events = check_events(changes["events"], row.flavor)
            if "filters" in changes:
                row.filters = check_filters(changes["filters"], row.flavor)
            if "description" in changes:
                row.description = _check_text(changes["description"], "description", MAX_DESCRIPTION)
            if "secret" in changes:
                row.secret = _check_text(changes["secret"], "secret", MAX_SECRET)
            if "status" in changes:
                status = _check_status(changes["status"])
                if status == "ACTIVE" and row.status != "ACTIVE":  # no replay of what happened while disabled
                    row.cursor = last_event_id(s)
                row.status = status
            row.updated_at = now_ms()
            return row

        return self._db.run_in_transaction(write)

    def delete(self, ref: str, *, flavor: str | None = None) -> None:
        """Delete a subscription with its delivery log; its pending retries are dropped."""

        def write(s: Session) -> None:
            row = self._find(s, ref, flavor)
            s.execute(delete(WebhookDeliveryRow).where(WebhookDeliveryRow.webhook == row.id))
            s.delete(row)

        self._db.run_in_transaction(write)

    # -- testing ---------------------------------------------------------------------------------

    def test(self, ref: str, event: str | None, actor: str, *, flavor: str | None = None) -> TestResult:
        """Send one test delivery now (MLflow's example payload for MLflow's flavour) and log the attempt."""
        row = self.get(ref, flavor)
        if event is not None:
            check_events([event], row.flavor)
        if row.flavor == "mlflow":
            name = event or row.events[0]
            body = mlflow_body(MlflowEvent(name, EXAMPLES[name]), now_ms())
        else:
            pattern = event or row.events[0]
            name = pattern if pattern in EVENT_TYPES else next(
                (t for t in EVENT_TYPES if pattern == "*" or t.startswith(pattern[:-1])), pattern)
            body = mlyard_body(event_id=0, type=name, subject="test", actor=actor, at=now_ms(),
                               payload={"test": True, "message": f"a test delivery from webhook {row.name}"},
                               webhook=row.id, test=True)
        delivery = str(uuid.uuid4())
        outcome = self._sender.send(row.url, body, headers(row.flavor, row.secret, delivery, name, body, time.time()),
                                    attempt=self._sender.max_attempts)  # one attempt: a test is never retried

        def log(s: Session) -> None:
            if s.get(WebhookRow, row.id) is not None:
                s.add(WebhookDeliveryRow(webhook=row.id, event=None, delivery_id=delivery, attempt=1,
                                         state=outcome.state, status_code=outcome.status_code, error=outcome.error,
                                         duration_ms=outcome.duration_ms, created_at=now_ms()))

        self._db.run_in_transaction(log)
        return TestResult(name, delivery, outcome)


def pending_count(db: Database, webhook: str | None = None) -> int:
    """Attempts waiting to be made (all webhooks, or one)."""
    query = select(func.count()).select_from(WebhookDeliveryRow).where(WebhookDeliveryRow.state == "pending")
    if webhook is not None:
        query = query.where(WebhookDeliveryRow.webhook == webhook)
    with db.session() as s:
        return int(s.scalar(query) or 0)
