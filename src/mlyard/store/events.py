"""The event log: what happened in the workspace, in order, written with the change it describes.

A service that changes something calls :func:`append_event` with the session of the transaction that
makes the change, so the event commits with it or not at all: none is lost, none invented.

Order: an event's id is its place in the log, and readers resume from the last id they saw. For that
to hold, ids must become visible in increasing order. SQLite has one writer at a time, so they do.
PostgreSQL hands out sequence values when rows are inserted, not when they commit, so a transaction
that appends an event first takes a transaction-wide advisory lock: appends (and only they) take
turns until their transaction ends, and a reader never sees event 11 before event 10 has committed.

After a commit that appended events, :data:`signal` wakes this process's readers (the live stream,
webhook delivery, triggers) at once; readers also poll, for events written by another server on the
same PostgreSQL store.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import func, insert, or_, select, text
from sqlalchemy.orm import Session

from mlyard.core.event_types import EVENT_TYPES as EVENT_TYPES  # re-exported: the catalogue is in core
from mlyard.core.timeutil import now_ms
from mlyard.store.tracking_schema import Event

# pg_advisory_xact_lock key for appends: any 64-bit number no other part of mlyard uses
_PG_APPEND_LOCK = 0x6D6C7961_72640001
_PENDING = "mlyard_events_appended"

# The event types mlyard writes (entity.action) and what each means: core/event_types.py, where spec files
# (a trigger's event.type) can check them too. Add a new type there.


class EventSignal:
    """Wakes this process's event readers when a transaction that appended events commits."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._generation = 0

    @property
    def generation(self) -> int:
        with self._changed:
            return self._generation

    def notify(self) -> None:
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        """Block until the generation moves past ``seen`` or ``timeout`` seconds pass; returns the generation."""
        with self._changed:
            self._changed.wait_for(lambda: self._generation != seen, timeout=timeout)
            return self._generation


signal = EventSignal()


@sa_event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop(_PENDING, False):
        signal.notify()


@sa_event.listens_for(Session, "after_rollback")
def _after_rollback(session: Session) -> None:
    session.info.pop(_PENDING, None)


def append_event(session: Session, type: str, subject: str, actor: str, /, **payload: Any) -> None:
    """Append one event in ``session``'s transaction (it commits, or is dropped, with the change).

    The first four are positional-only, so a payload may have fields of those names (``type``).
    """
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}; add it to EVENT_TYPES")
    conn = session.connection()
    if conn.dialect.name == "postgresql" and not session.info.get(_PENDING):
        conn.execute(text(f"SELECT pg_advisory_xact_lock({_PG_APPEND_LOCK})"))
    conn.execute(insert(Event), {"at": now_ms(), "type": type, "subject": subject[:512], "actor": actor,
                                 "payload": payload})
    session.info[_PENDING] = True


def read_events(session: Session, *, after: int = 0, types: Sequence[str] | None = None,
                subject: str | None = None, limit: int = 100, newest: bool = False) -> list[Event]:
    """Events with id greater than ``after``, oldest first.

    Args:
        newest: the newest ``limit`` of them (still oldest first) rather than the oldest: a log's tail.
        types: only these types; an entry ending in ``.*`` matches an entity's every action (``job.*``).
        subject: only events whose subject is this, or starts with it followed by ``:``, ``@`` or ``/``.
    """
    query = select(Event).where(Event.id > after)
    if types:
        exact = [t for t in types if not t.endswith(".*")]
        prefixes = [t[:-1] for t in types if t.endswith(".*")]
        conditions = [Event.type.startswith(p, autoescape=True) for p in prefixes]
        query = query.where(or_(Event.type.in_(exact), *conditions) if exact else or_(*conditions))
    if subject:  # a model's name matches its versions (name:3) and aliases (name@prod), an endpoint its deployments
        query = query.where(or_(Event.subject == subject,
                                *(Event.subject.startswith(subject + sep, autoescape=True) for sep in ":@/")))
    if newest:
        return list(reversed(session.scalars(query.order_by(Event.id.desc()).limit(limit)).all()))
    return list(session.scalars(query.order_by(Event.id).limit(limit)))


def last_event_id(session: Session) -> int:
    """The id of the newest event (0 for an empty log)."""
    return int(session.scalar(select(func.coalesce(func.max(Event.id), 0))) or 0)
