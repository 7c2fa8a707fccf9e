"""The audit trail: a request's entry rides in the transaction of its change, or is written on its own; never twice.
Requests refused for want of a token are written at a bounded rate, the rest counted."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.core.errors import NotFoundError
from mlyard.store.audit import PendingAudit, pending_audit
from mlyard.store.db import Database
from mlyard.store.refusals import CLIENTS, MAX_PATH, OTHER_CLIENTS, PER_CLIENT, PER_MINUTE, Entry, RefusalLog
from mlyard.store.schema import AuditEntry, Datastore

PATH = "/api/2.0/mlflow/runs/log-metric"


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
    audit.settle(db.run_in_transaction, 200)
    assert _entries(db) == [("alice", "POST", PATH, 200)]


def test_status_is_corrected_when_the_request_ends_otherwise(db: Database, audit: PendingAudit) -> None:
    db.run_in_transaction(_change("one"))
    assert not audit.settled(500)
    audit.settle(db.run_in_transaction, 500)
    assert _entries(db) == [("alice", "POST", PATH, 500)]


def test_a_rolled_back_change_leaves_the_entry_to_the_server(db: Database, audit: PendingAudit) -> None:
    def refused(s: Session) -> None:
        _change("one")(s)  # type: ignore[operator]
        raise NotFoundError("run 'x' not found")

    with pytest.raises(NotFoundError):
        db.run_in_transaction(refused)
    assert _entries(db) == []
    assert not audit.settled(404)
    audit.settle(db.run_in_transaction, 404)
    assert _entries(db) == [("alice", "POST", PATH, 404)]
    db.run_in_transaction(_change("late"))  # a write after the request settled carries nothing
    assert len(_entries(db)) == 1


def test_transactions_outside_a_request_write_no_entry(db: Database) -> None:
    db.run_in_transaction(_change("one"))
    assert _entries(db) == []


class Clock:
    """The refusal log's clock, moved by hand: minutes are what it counts in."""

    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_flood_of_refusals_from_one_address_is_listed_briefly_then_counted() -> None:
    clock = Clock()
    log = RefusalLog(clock)
    entries = [e for _ in range(5000) for e in log.refuse("10.0.0.7", "POST", "/api/v1/data/" + "x" * 5000)]
    assert len(entries) == PER_CLIENT
    assert entries[0] == Entry("anonymous", "POST", ("/api/v1/data/" + "x" * 5000)[:MAX_PATH], 401)
    assert not log.due()

    clock.now += 60  # the next minute's first refusal brings the last minute's summary along
    assert log.due()
    summary, listed = log.refuse("10.0.0.7", "POST", "/api/v1/data")
    assert summary.action == "REFUSED" and summary.status == 401
    assert summary.resource.startswith(f"{5000 - PER_CLIENT} more requests without a valid token from 10.0.0.7 ")
    assert listed == Entry("anonymous", "POST", "/api/v1/data", 401)
    assert log.sweep() == []


def test_many_addresses_add_a_bounded_number_of_entries_a_minute() -> None:
    log = RefusalLog(Clock())
    entries = [e for i in range(1000) for _ in range(20) for e in log.refuse(f"10.0.{i // 256}.{i % 256}", "PUT", "/")]
    entries += log.flush()
    assert len(entries) <= PER_MINUTE + CLIENTS + 1
    counted = sum(int(e.resource.split()[0]) for e in entries if e.action == "REFUSED")
    assert counted + sum(e.action == "PUT" for e in entries) == 20_000  # every refusal is accounted for
    assert any(OTHER_CLIENTS in e.resource for e in entries)


def test_a_path_with_nul_is_written_with_the_nul_spelled_out(db: Database) -> None:
    """A request refused for a NUL in its path is audited all the same; PostgreSQL cannot store NUL."""
    PendingAudit("alice", "GET", "/api/v1/data/a\x00b").settle(db.run_in_transaction, 400)
    assert _entries(db) == [("alice", "GET", "/api/v1/data/a\\x00b", 400)]
