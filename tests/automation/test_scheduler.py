"""The scheduler under a fake clock on both real stores and the real job runner: when it fires, and that it
fires each instant once (disabled schedules, downtime, restarts, a crash between claim and job)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from mlyard.automation.scheduler import Scheduler
from mlyard.automation.schedules import ScheduleService
from mlyard.core.errors import ConflictError, InvalidRequestError, InvalidSpecError, NotFoundError
from mlyard.core.settings import ServerSettings
from mlyard.server.services import Services
from mlyard.store.automation_schema import ScheduleFiringRow, ScheduleRow
from mlyard.store.events import read_events
from mlyard.store.jobs_schema import Job

JOB = {"command": "echo scheduled", "environment": "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"}


class Clock:
    """The fake clock: time moves only when a test says so."""

    def __init__(self, at: datetime) -> None:
        self.now = at

    def __call__(self) -> datetime:
        return self.now


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


@pytest.fixture
def services(tmp_path: Path, database_url: str) -> Iterator[Services]:
    """A server's services on each store (SQLite and PostgreSQL), with the real job runner."""
    (tmp_path / "ws").mkdir()
    svc = Services.open(ServerSettings(workspace=tmp_path / "ws", database_url=database_url))
    try:
        yield svc
    finally:
        svc.close()


def schedule(name: str = "nightly", expression: str = "*/10 * * * *", **extra: Any) -> dict[str, Any]:
    return {"name": name, "trigger": {"type": "cron", "expression": expression}, "create_job": dict(JOB), **extra}


def firings(services: Services, name: str = "nightly") -> list[ScheduleFiringRow]:
    with services.db.session() as s:
        return list(s.scalars(select(ScheduleFiringRow).where(ScheduleFiringRow.schedule == name)
                              .order_by(ScheduleFiringRow.fire_at)))


def jobs_of(services: Services, name: str = "nightly") -> list[Job]:
    with services.db.session() as s:
        rows = s.scalars(select(Job).where(Job.parent.is_(None)).order_by(Job.created_at))
        return [r for r in rows if (r.spec.get("tags") or {}).get("mlyard.schedule") == name]


def test_cron_schedule_fires_at_its_instants_with_azure_display_name_and_link(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    store = ScheduleService(services.db, clock=clock)
    scheduler = Scheduler(services.db, services.jobs, clock=clock)
    store.create(schedule(), "alice", "admin")
    clock.now = utc(2026, 5, 1, 10, 9, 59)
    assert scheduler.run_due() == []
    clock.now = utc(2026, 5, 1, 10, 10)
    [fired] = scheduler.run_due()
    assert (fired.fire_at, fired.catch_up, fired.error) == (utc(2026, 5, 1, 10, 10), False, None)
    job = services.jobs.get(fired.job or "")
    assert job.display_name == "nightly-20260501T101000Z"
    assert job.experiment_name == "nightly"  # the job names no experiment: the schedule's name
    assert job.spec["tags"]["mlyard.schedule"] == "nightly"
    assert job.created_by == "alice"
    assert any("started by schedule nightly" in n for n in job.notes)
    clock.now = utc(2026, 5, 1, 10, 19)
    assert scheduler.run_due() == []
    clock.now = utc(2026, 5, 1, 10, 20, 1)
    assert [f.fire_at for f in scheduler.run_due()] == [utc(2026, 5, 1, 10, 20)]
    assert [f.job for f in firings(services)] == [j.name for j in jobs_of(services)]
    with services.db.session() as s:
        events = read_events(s, types=["schedule.fired"])
    assert [(e.subject, e.payload["job"]) for e in events] == [("nightly", f.job) for f in firings(services)]


def test_experiment_of_the_job_wins_over_the_schedule_name(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    ScheduleService(services.db, clock=clock).create(
        schedule(create_job={**JOB, "experiment_name": "nightly-training"}), "alice")
    clock.now = utc(2026, 5, 1, 10, 10)
    [fired] = Scheduler(services.db, services.jobs, clock=clock).run_due()
    assert services.jobs.get(fired.job or "").experiment_name == "nightly-training"


def test_disabled_schedule_does_not_fire_and_enabling_skips_the_time_it_was_off(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    store = ScheduleService(services.db, clock=clock)
    scheduler = Scheduler(services.db, services.jobs, clock=clock)
    store.create(schedule(), "alice")
    store.set_enabled("nightly", False)
    clock.now = utc(2026, 5, 1, 12, 0)
    assert scheduler.run_due() == [] and firings(services) == []
    clock.now = utc(2026, 5, 1, 12, 5)
    store.set_enabled("nightly", True)
    assert scheduler.run_due() == []
    clock.now = utc(2026, 5, 1, 12, 10)
    assert [f.fire_at for f in scheduler.run_due()] == [utc(2026, 5, 1, 12, 10)]


def test_schedule_created_disabled_does_not_fire(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    ScheduleService(services.db, clock=clock).create(schedule(is_enabled=False), "alice")
    clock.now = utc(2026, 5, 2)
    assert Scheduler(services.db, services.jobs, clock=clock).recover() == []


def test_downtime_gives_one_catch_up_for_the_latest_missed_instant(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    ScheduleService(services.db, clock=clock).create(schedule(), "alice")
    clock.now = utc(2026, 5, 1, 15, 37)  # the server was down from 10:03: 33 instants missed
    [fired] = Scheduler(services.db, services.jobs, clock=clock).recover()
    assert (fired.fire_at, fired.catch_up) == (utc(2026, 5, 1, 15, 30), True)
    assert "catch-up" in services.jobs.get(fired.job or "").notes[-1]
    with services.db.session() as s:
        assert s.get(ScheduleRow, "nightly").next_fire_at == int(utc(2026, 5, 1, 15, 40).timestamp() * 1000)
    assert len(firings(services)) == 1


def test_restart_does_not_fire_an_instant_twice(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    ScheduleService(services.db, clock=clock).create(schedule(), "alice")
    clock.now = utc(2026, 5, 1, 10, 10)
    assert len(Scheduler(services.db, services.jobs, clock=clock).run_due()) == 1
    for _ in range(2):  # two restarts at the same instant
        assert Scheduler(services.db, services.jobs, clock=clock).recover() == []
    assert len(firings(services)) == 1 and len(jobs_of(services)) == 1


class Crash(BaseException):
    """The server dies (kill -9) at this point."""


class CrashingRunner:
    """The real runner, with the process dying just before (or just after) it submits."""

    def __init__(self, services: Services, *, after_submit: bool) -> None:
        self._services = services
        self._after = after_submit

    def submit(self, spec: dict[str, Any], **kwargs: Any) -> Any:
        if self._after:
            self._services.jobs.submit(spec, **kwargs)
        raise Crash()


@pytest.mark.parametrize("after_submit", [False, True], ids=["before-submit", "after-submit"])
def test_claim_left_without_its_job_is_completed_at_start_once(services: Services, after_submit: bool) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    ScheduleService(services.db, clock=clock).create(schedule(), "alice")
    clock.now = utc(2026, 5, 1, 10, 10)
    with pytest.raises(Crash):
        Scheduler(services.db, CrashingRunner(services, after_submit=after_submit), clock=clock).run_due()
    [claimed] = firings(services)
    assert claimed.job is None
    [done] = Scheduler(services.db, services.jobs, clock=clock).recover()
    assert done.fire_at == utc(2026, 5, 1, 10, 10) and done.job is not None
    assert [f.job for f in firings(services)] == [done.job]
    assert [j.name for j in jobs_of(services)] == [done.job]


def test_job_refused_at_firing_is_recorded_not_retried(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    ScheduleService(services.db, clock=clock).create(
        schedule(create_job={"type": "pipeline", "jobs": {"a": {"type": "command",
                                                               "component": "azureml:gone-component:1"}}}), "alice")
    clock.now = utc(2026, 5, 1, 10, 10)
    [fired] = Scheduler(services.db, services.jobs, clock=clock).run_due()
    assert fired.job is None and "gone-component" in (fired.error or "")
    assert firings(services)[0].error == fired.error
    assert Scheduler(services.db, services.jobs, clock=clock).recover() == []


def test_schedule_of_an_existing_job_reruns_its_spec(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    first = services.jobs.submit(dict(JOB), actor="alice", name="train-once")
    ScheduleService(services.db, clock=clock).create(
        {"name": "again", "trigger": {"type": "cron", "expression": "0 * * * *"},
         "create_job": {"job": f"azureml:{first.name}", "tags": {"why": "hourly"}}}, "alice")
    clock.now = utc(2026, 5, 1, 11)
    [fired] = Scheduler(services.db, services.jobs, clock=clock).run_due()
    job = services.jobs.get(fired.job or "")
    assert job.spec["command"] == "echo scheduled" and job.spec["tags"] == {"why": "hourly", "mlyard.schedule": "again"}


MONITOR = {"compute": {"instance_type": "standard_e4s_v3", "runtime_version": "3.4"},
           "monitoring_target": {"ml_task": "classification", "endpoint_deployment_id": "azureml:ep:blue"}}


def test_monitor_schedule_firings_are_recorded_and_go_to_the_monitor_runner_when_set(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    ScheduleService(services.db, clock=clock).create(
        {"name": "drift", "trigger": {"type": "recurrence", "frequency": "hour", "interval": 1},
         "create_monitor": MONITOR}, "alice")
    clock.now = utc(2026, 5, 1, 11, 3)
    [fired] = Scheduler(services.db, services.jobs, clock=clock).run_due()
    assert fired.job is None and fired.error is None
    [row] = firings(services, "drift")
    assert "monitoring engine" in (row.error or "")
    calls: list[tuple[str, datetime]] = []
    runner = Scheduler(services.db, services.jobs, clock=clock,
                       monitor_runner=lambda name, monitor, at: calls.append((name, at)) or "monitor-job-1")
    clock.now = utc(2026, 5, 1, 12, 3)
    assert [f.job for f in runner.run_due()] == ["monitor-job-1"]
    assert calls == [("drift", utc(2026, 5, 1, 12, 3))]


def test_bad_schedules_are_refused_and_create_nothing(services: Services) -> None:
    store = ScheduleService(services.db, clock=Clock(utc(2026, 5, 1)))
    with pytest.raises(InvalidRequestError, match="import_data schedules are not supported"):
        store.create({"name": "imp", "trigger": {"type": "cron", "expression": "0 * * * *"},
                      "import_data": {"type": "mltable"}}, "alice")
    with pytest.raises(NotFoundError, match="job 'nope'"):
        store.create({**schedule("ref"), "create_job": "azureml:nope"}, "alice")
    with pytest.raises(InvalidSpecError) as err:
        store.create(schedule("local", create_job={**JOB, "code": "./src"}), "alice")
    assert err.value.field == "create_job.code"
    with pytest.raises(InvalidRequestError, match="never fire") as never:
        store.create(schedule("ended", trigger={"type": "cron", "expression": "0 * * * *",
                                                "end_time": "2026-04-01T00:00:00"}), "alice")
    assert never.value.details["field"] == "trigger.end_time"
    assert store.list() == []


def test_delete_is_refused_while_enabled(services: Services) -> None:
    store = ScheduleService(services.db, clock=Clock(utc(2026, 5, 1)))
    store.create(schedule(), "alice")
    with pytest.raises(ConflictError, match="disable it first"):
        store.delete("nightly")
    store.set_enabled("nightly", False)
    store.delete("nightly")
    assert store.list() == []


def test_update_changes_the_trigger_and_recomputes_the_next_firing(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    store = ScheduleService(services.db, clock=clock)
    store.create(schedule(), "alice")
    row = store.update("nightly", schedule(expression="0 12 * * *", description="noon"))
    assert row.spec["description"] == "noon"
    view = store.show("nightly")
    assert view.next_firings == [utc(2026, 5, d, 12) for d in range(1, 6)]


@pytest.mark.parametrize("name", ["a/b", "x" * 201, "-dash-first", "é"])
def test_names_that_cannot_be_addressed_are_refused(services: Services, name: str) -> None:
    with pytest.raises(InvalidRequestError, match="schedule name .* is not valid") as err:
        ScheduleService(services.db).create(schedule(name), "alice")
    assert err.value.details["field"] == "name"


def test_two_servers_completing_one_left_claim_start_one_job_and_log_one_event(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    ScheduleService(services.db, clock=clock).create(schedule(), "alice")
    clock.now = utc(2026, 5, 1, 10, 10)
    with pytest.raises(Crash):
        Scheduler(services.db, CrashingRunner(services, after_submit=False), clock=clock).run_due()
    start = threading.Barrier(2)
    done: list[list[Any]] = [[], []]

    def recover(i: int) -> None:
        start.wait()
        done[i] = Scheduler(services.db, services.jobs, clock=clock).recover()

    threads = [threading.Thread(target=recover, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(jobs_of(services)) == 1 and [f.job for f in firings(services)] == [jobs_of(services)[0].name]
    with services.db.session() as s:
        assert len(read_events(s, types=["schedule.fired"])) == 1
    assert sum(n.startswith("started by schedule") for n in jobs_of(services)[0].notes) == 1


def test_monitor_claim_left_without_its_run_is_completed_when_a_monitor_runner_is_set(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    ScheduleService(services.db, clock=clock).create(
        {"name": "drift", "trigger": {"type": "cron", "expression": "0 * * * *"}, "create_monitor": MONITOR}, "alice")
    clock.now = utc(2026, 5, 1, 11)

    def dies(name: str, monitor: dict[str, Any], at: datetime) -> str:
        raise Crash()

    with pytest.raises(Crash):
        Scheduler(services.db, services.jobs, clock=clock, monitor_runner=dies).run_due()
    assert Scheduler(services.db, services.jobs, clock=clock).recover() == []  # no runner: left as it is
    runs: list[datetime] = []
    [done] = Scheduler(services.db, services.jobs, clock=clock,
                       monitor_runner=lambda name, monitor, at: runs.append(at) or "monitor-run-1").recover()
    assert (done.job, runs) == ("monitor-run-1", [utc(2026, 5, 1, 11)])


def test_update_that_keeps_the_trigger_keeps_an_instant_that_is_due_now(services: Services) -> None:
    clock = Clock(utc(2026, 5, 1, 10, 3))
    store = ScheduleService(services.db, clock=clock)
    store.create(schedule(), "alice")
    clock.now = utc(2026, 5, 1, 10, 10, 30)  # 10:10 is due, and the scheduler has not fired it yet
    store.update("nightly", schedule(description="same trigger"))
    assert [f.fire_at for f in Scheduler(services.db, services.jobs, clock=clock).run_due()] == [
        utc(2026, 5, 1, 10, 10)]
