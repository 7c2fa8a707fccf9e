"""The event log on a real store: an event commits with its change or not at all, pages read by cursor
miss nothing even while many writers append, and the feed wakes waiting readers."""

from __future__ import annotations

import asyncio
import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from mlyard.assets.service import AssetService
from mlyard.automation.events import EventFeed, EventService
from mlyard.core.errors import InvalidRequestError
from mlyard.store.blobs import DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.events import append_event, signal
from mlyard.store.migrate import upgrade
from mlyard.store.schema import Asset
from mlyard.store.tracking_schema import Event
from tests.support.postgres import PostgresServer

WAIT_S = 30.0  # a bound on waiting for what must happen, not a measure of speed


def _events(db: Database) -> list[Event]:
    with db.session() as s:
        return list(s.scalars(select(Event).order_by(Event.id)))


@pytest.fixture
def assets(db: Database, tmp_path: Path) -> AssetService:
    datastores = DatastoreRegistry(db)
    datastores.ensure_default("workspaceblobstore", str(tmp_path / "blobs"))
    return AssetService(db, datastores)


def _data(name: str, version: str = "1") -> dict[str, str]:
    return {"name": name, "version": version, "type": "uri_file",
            "path": f"azureml://datastores/workspaceblobstore/paths/{name}.csv"}


def test_a_change_that_fails_after_its_event_was_appended_leaves_no_event(db: Database,
                                                                           assets: AssetService) -> None:
    def fail_late(s: Session, row: Asset) -> None:
        raise InvalidRequestError("refused after the version and its event were written")

    generation = signal.generation
    with pytest.raises(InvalidRequestError):
        assets.create("data", _data("late"), [], "alice", on_create=fail_late, allow_missing_path=True)
    assert _events(db) == [] and assets.list("data") == []
    assert signal.generation == generation  # a rollback wakes no reader

    assets.create("data", _data("late"), [], "alice", allow_missing_path=True)
    [event] = _events(db)
    assert (event.type, event.subject, event.actor) == ("data.version_created", "late:1", "alice")
    assert event.payload == {"name": "late", "version": "1", "type": "uri_file",
                             "path": "azureml://datastores/workspaceblobstore/paths/late.csv"}
    assert signal.generation != generation  # the commit woke this process's readers


def test_a_model_name_seen_first_writes_model_created(db: Database, assets: AssetService, tmp_path: Path) -> None:
    spec = {"name": "m", "type": "custom_model", "path": "azureml://datastores/workspaceblobstore/paths/m"}
    assets.create("model", {**spec, "version": "1"}, [], "bob", allow_missing_path=True)
    assets.create("model", {**spec, "version": "2"}, [], "bob", allow_missing_path=True)
    assert [(e.type, e.subject) for e in _events(db)] == [
        ("model.created", "m"), ("model.version_created", "m:1"), ("model.version_created", "m:2")]


def test_pages_filters_and_tail(db: Database) -> None:
    def write(s: Session) -> None:
        for i in range(5):
            append_event(s, "job.status_changed", f"job-{i % 2}", "runner", status="Running", type="command")
        append_event(s, "model.alias_moved", "m@prod", "carol", alias="prod")
        append_event(s, "model.version_created", "m:1", "carol")
        append_event(s, "model.version_created", "mm:1", "carol")

    db.run_in_transaction(write)
    events = EventService(db)
    page = events.list(max_results=3)
    assert len(page.events) == 3 and page.next_cursor == page.events[-1].id
    rest = events.list(after=page.next_cursor or 0, max_results=1000)
    assert rest.next_cursor is None and len(page.events) + len(rest.events) == 8
    assert [e.payload["type"] for e in events.list(types=["job.*"]).events] == ["command"] * 5
    assert [e.subject for e in events.list(subject="m").events] == ["m@prod", "m:1"]  # not mm:1
    assert [e.subject for e in events.list(types=["model.version_created"], subject="m").events] == ["m:1"]
    tail = events.list(newest=True, max_results=2)
    assert [e.subject for e in tail.events] == ["m:1", "mm:1"] and tail.next_cursor is None
    for bad in (["job.exploded"], ["nothing.*"], ["job"]):
        with pytest.raises(InvalidRequestError, match="events types"):
            events.list(types=bad)
    with pytest.raises(InvalidRequestError, match="max_results"):
        events.list(max_results=1001)


def test_the_feed_wakes_a_waiting_reader_on_commit_and_ends_waits_when_closed(db: Database) -> None:
    feed = EventFeed(db, poll_s=0.05)

    async def wait_for_commit() -> tuple[int, int]:
        seen = feed.generation
        threading.Thread(target=db.run_in_transaction,
                         args=(lambda s: append_event(s, "model.deleted", "gone", "dave"),)).start()
        return seen, await feed.wait(seen, WAIT_S)

    seen, after = asyncio.run(wait_for_commit())
    assert after != seen

    async def wait_then_close() -> bool:
        seen = feed.generation
        waiting = asyncio.ensure_future(feed.wait(seen, WAIT_S))
        await asyncio.sleep(0)
        threading.Thread(target=feed.close).start()
        await waiting
        return feed.closed

    assert asyncio.run(wait_then_close())


def test_the_feed_sees_events_another_server_wrote(db: Database) -> None:
    """Another server's commit sends no signal here: the feed finds its event by polling the store."""
    feed = EventFeed(db, poll_s=0.05)

    def other_server() -> None:
        with db.engine.begin() as conn:  # no Session: this process's commit hook does not run
            conn.execute(insert(Event), {"at": 1, "type": "model.deleted", "subject": "elsewhere", "actor": "eve",
                                         "payload": {}})

    async def wait_for_it() -> bool:
        await feed.wait(feed.generation, WAIT_S)  # the feed's first look wakes once, having nothing to go by
        seen, generation = feed.generation, signal.generation
        threading.Thread(target=other_server).start()
        return await feed.wait(seen, WAIT_S) != seen and signal.generation == generation

    try:
        assert asyncio.run(wait_for_it())
    finally:
        feed.close()


@pytest.fixture
def pg_db(postgres_server: PostgresServer) -> Iterator[Database]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    database = Database(postgres_server.create_database(name))
    upgrade(database.engine)
    yield database
    database.dispose()
    postgres_server.drop_database(name)


@pytest.mark.postgres
def test_a_reader_paging_by_cursor_misses_nothing_while_many_threads_append(pg_db: Database) -> None:
    writers, per_writer = 8, 40
    done = threading.Event()
    errors: list[BaseException] = []

    def append_many(w: int) -> None:
        rng = random.Random(w)
        try:
            for i in range(per_writer):
                def write(s: Session, i: int = i) -> None:
                    append_event(s, "job.status_changed", f"w{w}-{i}", "runner", writer=w)
                    time.sleep(rng.random() / 500)  # hold the transaction open after the insert took its id

                pg_db.run_in_transaction(write)
        except BaseException as exc:  # reported by the test, not lost on a thread
            errors.append(exc)

    threads = [threading.Thread(target=append_many, args=(w,)) for w in range(writers)]
    for t in threads:
        t.start()
    watcher = threading.Thread(target=lambda: ([t.join() for t in threads], done.set()))
    watcher.start()
    events = EventService(pg_db)
    seen: list[int] = []
    cursor = 0
    while True:
        finished = done.is_set()  # taken before the read: a read after every writer ended is the last
        page = events.list(after=cursor, max_results=7)
        seen += [e.id for e in page.events]
        cursor = seen[-1] if seen else 0
        if finished and not page.events:
            break
    watcher.join()
    assert errors == []
    written = [e.id for e in _events(pg_db)]
    assert len(written) == writers * per_writer
    assert seen == written  # every id, once, in order
