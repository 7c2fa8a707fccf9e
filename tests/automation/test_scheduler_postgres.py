"""Two servers on one PostgreSQL store race over the same due instants: each instant fires once."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from mlyard.automation.scheduler import Fired, Scheduler
from mlyard.automation.schedules import ScheduleService
from mlyard.core.settings import ServerSettings
from mlyard.server.services import Services
from mlyard.store.automation_schema import ScheduleFiringRow
from mlyard.store.jobs_schema import Job
from tests.automation.test_scheduler import JOB, Clock
from tests.support.postgres import PostgresServer


@pytest.fixture
def two_servers(postgres_server: PostgresServer, tmp_path: Path) -> Iterator[tuple[Services, Services]]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = postgres_server.create_database(name)
    opened = []
    try:
        for side in ("a", "b"):
            (tmp_path / side).mkdir()
            opened.append(Services.open(ServerSettings(workspace=tmp_path / side, database_url=url)))
        yield opened[0], opened[1]
    finally:
        for svc in opened:
            svc.close()
        postgres_server.drop_database(name)


def _race(start: threading.Barrier, scheduler: Scheduler, into: list[Fired]) -> None:
    start.wait()
    into.extend(scheduler.run_due())


@pytest.mark.postgres
def test_two_schedulers_on_one_postgresql_fire_each_instant_once(two_servers: tuple[Services, Services]) -> None:
    a, b = two_servers
    clock = Clock(datetime(2026, 5, 1, 10, 3, tzinfo=UTC))
    store = ScheduleService(a.db, clock=clock)
    for i in range(3):
        store.create({"name": f"s{i}", "trigger": {"type": "cron", "expression": "*/10 * * * *"},
                      "create_job": dict(JOB)}, "alice")
    schedulers = [Scheduler(a.db, a.jobs, clock=clock), Scheduler(b.db, b.jobs, clock=clock)]
    for _ in range(4):
        clock.now += timedelta(minutes=10)
        start = threading.Barrier(2)
        results: list[list[Fired]] = [[], []]

        threads = [threading.Thread(target=_race, args=(start, schedulers[i], results[i])) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        fired = results[0] + results[1]
        assert sorted(f.schedule for f in fired) == ["s0", "s1", "s2"]
        assert all(f.job is not None for f in fired)
    with a.db.session() as s:
        rows = list(s.scalars(select(ScheduleFiringRow)))
        jobs = [j for j in s.scalars(select(Job).where(Job.parent.is_(None)))
                if "mlyard.schedule" in (j.spec.get("tags") or {})]
    assert len(rows) == 12 and len({(r.schedule, r.fire_at) for r in rows}) == 12
    assert sorted(j.name for j in jobs) == sorted(r.job for r in rows)
