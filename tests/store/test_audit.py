"""The audit trail: a request's entry rides in the transaction of its change, or is written on its own; never twice."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.core.errors import NotFoundError
from mlyard.store.audit import PendingAudit, pending_audit
from mlyard.store.db import Database
from mlyard.store.migrate import upgrade
from mlyard.store.schema import AuditEntry, Datastore

PATH = "/api/2.0/mlflow/runs/log-metric"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def audit() -> Iterator[PendingAudit]:
    """The entry of a request in flight, as the server's middleware opens it."""
    entry = PendingAudit("alice", "POST", PATH)
    token = pending_audit.set(entry)
    yield entry
    pending_audit.reset(token)


def _entries(db: Database) -> list[tuple[str, str, str, int]]:
    with db.engine.connect() as conn:
        rows = conn.execute(select(AuditEntry.actor, AuditEntry.action, AuditEntry.resource, AuditEntry.status))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def _change(name: str) -> object:
    return lambda s: s.add(Datastore(name=name, type="local", root=f"/tmp/{name}"))


def test_entry_is_committed_with_the_change(db: Database, audit: PendingAudit) -> None:
    db.run_in_transaction(_change("one"))
    db.run_in_transaction(_change("two"))  # a second write in the same request adds no second entry
    assert _entries(db) == [("alice", "POST", PATH, 200)]  # before the response is settled
    assert audit.settled(200)
    audit.settle(db, 200)
    assert _entries(db) == [("alice", "POST", PATH, 200)]


def test_status_is_corrected_when_the_request_ends_otherwise(db: Database, audit: PendingAudit) -> None:
    db.run_in_transaction(_change("one"))
    assert not audit.settled(500)
    audit.settle(db, 500)
    assert _entries(db) == [("alice", "POST", PATH, 500)]


def test_a_rolled_back_change_leaves_the_entry_to_the_server(db: Database, audit: PendingAudit) -> None:
    def refused(s: Session) -> None:
        _change("one")(s)  # type: ignore[operator]
        raise NotFoundError("run 'x' not found")

    with pytest.raises(NotFoundError):
        db.run_in_transaction(refused)
    assert _entries(db) == []
    assert not audit.settled(404)
    audit.settle(db, 404)
    assert _entries(db) == [("alice", "POST", PATH, 404)]
    db.run_in_transaction(_change("late"))  # a write after the request settled carries nothing
    assert len(_entries(db)) == 1


def test_transactions_outside_a_request_write_no_entry(db: Database) -> None:
    db.run_in_transaction(_change("one"))
    assert _entries(db) == []
