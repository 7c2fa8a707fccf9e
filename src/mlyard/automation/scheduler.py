"""The scheduler: fires due schedules, exactly once, from a thread of the server.

A firing is claimed before anything runs: one transaction inserts its ``schedule_firings`` row
(primary key: schedule and due instant) and moves the schedule's ``next_fire_at`` past it, under a
row lock on the schedule. Two servers on one PostgreSQL store, or a restart racing a late thread,
cannot both claim an instant: the second sees ``next_fire_at`` moved (or hits the primary key) and
fires nothing. The job is submitted after the claim, under a name derived from the schedule and
the instant, and recorded on the firing with a ``schedule.fired`` event in one more transaction.
A claim left without its job (the server died between the two) is completed at start-up; if the job
had been created, its name finds it, so it is not created twice.

Missed firings: the instant fired is always the latest due one, never a backlog. At start-up a
schedule whose next instant passed while the server was down fires once, for the latest missed
instant, flagged ``catch_up``; the instants before it are skipped.

Time comes from ``clock`` (tests pass a fake one and call :meth:`Scheduler.run_due` themselves).
The thread sleeps until the next due instant, at most ``poll_s`` (another server may change the
store), and wakes at once when a schedule changes (:meth:`Scheduler.wake`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from mlyard.automation.schedule_jobs import display_name, job_for_firing, job_name, job_note
from mlyard.automation.schedules import MONITOR_NOTE, Clock, firing_times, from_ms, to_ms, utc_now
from mlyard.core.errors import AlreadyExistsError, MlyardError, ServerUnavailableError
from mlyard.store.automation_schema import ScheduleFiringRow, ScheduleRow
from mlyard.store.db import Database
from mlyard.store.events import append_event
from mlyard.store.jobs_schema import Job

log = logging.getLogger("mlyard.scheduler")


class JobSubmitter(Protocol):
    """What the scheduler needs of the job runner."""

    def submit(self, spec: dict[str, Any], *, actor: str, role: str = ..., name: str | None = ...,
               experiment_name: str | None = ..., display_name: str | None = ...,
               env_mode: str | None = ...) -> Any: ...


MonitorRunner = Callable[[str, dict[str, Any], datetime], str | None]
"""Runs a monitor schedule's firing: (schedule, its create_monitor, due instant) -> a job name or None."""


@dataclass(frozen=True)
class Claim:
    schedule: str
    fire_at: datetime
    catch_up: bool


@dataclass(frozen=True)
class Fired:
    """One firing this scheduler made: the job it started, or why none."""

    schedule: str
    fire_at: datetime
    catch_up: bool
    job: str | None
    error: str | None = None


class Scheduler:
    """Fires the enabled schedules of one store."""

    def __init__(self, db: Database, jobs: JobSubmitter, *, clock: Clock = utc_now,
                 monitor_runner: MonitorRunner | None = None, poll_s: float = 15.0) -> None:
        self._db = db
        self._jobs = jobs
        self._clock = clock
        self.monitor_runner = monitor_runner
        self.poll_s = poll_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        """Complete claims left without a job, fire the catch-ups, then run in a thread."""
        self.recover()
        self._thread = threading.Thread(target=self._loop, name="mlyard-scheduler", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def wake(self) -> None:
        """A schedule changed: look again now."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_due()
                wait = self._seconds_to_next()
            except Exception:  # the store is unreachable for a while: keep the thread, try again later
                log.exception("the scheduler failed a pass; trying again in %.0f s", self.poll_s)
                wait = self.poll_s
            self._wake.wait(wait)

    def _seconds_to_next(self) -> float:
        with self._db.session() as s:
            nxt = s.scalar(select(func.min(ScheduleRow.next_fire_at)).where(ScheduleRow.enabled.is_(True)))
        if nxt is None:
            return self.poll_s
        delay = (nxt - to_ms(self._clock())) / 1000
        return min(self.poll_s, max(0.0, delay))

    # -- firing -------------------------------------------------------------------------------

    def recover(self) -> list[Fired]:
        """At start-up: finish claims left without a job, then fire what is due, missed ones as catch-ups."""
        done = [self._complete(c) for c in self._unfinished()]
        return done + self.run_due(catch_up=True)

    def run_due(self, *, catch_up: bool = False) -> list[Fired]:
        """Fire every enabled schedule that is due now, once each (the latest due instant).

        Args:
            catch_up: this pass is the one at start-up; what it fires was due while the server was down.
        """
        now = self._clock()
        with self._db.session() as s:
            due = list(s.scalars(select(ScheduleRow.name).where(
                ScheduleRow.enabled.is_(True), ScheduleRow.next_fire_at.is_not(None),
                ScheduleRow.next_fire_at <= to_ms(now)).order_by(ScheduleRow.next_fire_at)))
        fired = []
        for name in due:
            try:
                claim = self._claim(name, now, catch_up)
            except MlyardError as exc:  # this schedule's claim failed (the store refused): the others still fire
                log.warning("schedule %s: its firing could not be claimed: %s", name, exc.message)
                continue
            if claim is not None:
                fired.append(self._complete(claim))
        return fired

    def _claim(self, name: str, now: datetime, startup: bool) -> Claim | None:
        def claim(s: Session) -> Claim | None:
            row = s.scalars(select(ScheduleRow).where(ScheduleRow.name == name).with_for_update()).one_or_none()
            if row is None or not row.enabled or row.next_fire_at is None or row.next_fire_at > to_ms(now):
                return None  # another server (or pass) fired it, or it changed meanwhile
            times = firing_times(row)
            latest = times.latest_at_or_before(now)
            scheduled = from_ms(row.next_fire_at)
            at = latest if latest is not None and latest >= scheduled else scheduled
            nxt = times.next_after(max(at, now))
            row.next_fire_at = to_ms(nxt) if nxt is not None else None
            if s.get(ScheduleFiringRow, (name, to_ms(at))) is not None:
                return None  # claimed before (a schedule whose trigger was set back): never twice
            row.last_fired_at = to_ms(at)
            s.add(ScheduleFiringRow(schedule=name, fire_at=to_ms(at), catch_up=startup or at != scheduled,
                                    job=None, error=None, created_at=to_ms(now)))
            s.flush()  # a second server's insert of the same key fails here; the retry sees it claimed
            return Claim(name, at, startup or at != scheduled)

        return self._db.run_in_transaction(claim)

    def _unfinished(self) -> list[Claim]:
        """Claims without a job or a record: a job schedule's, and a monitor's when a monitor runner is set."""
        actions = ["create_job", *(["create_monitor"] if self.monitor_runner is not None else [])]
        with self._db.session() as s:
            rows = s.execute(select(ScheduleFiringRow.schedule, ScheduleFiringRow.fire_at, ScheduleFiringRow.catch_up)
                             .join(ScheduleRow, ScheduleRow.name == ScheduleFiringRow.schedule)
                             .where(ScheduleFiringRow.job.is_(None), ScheduleFiringRow.error.is_(None),
                                    ScheduleRow.action.in_(actions))
                             .order_by(ScheduleFiringRow.fire_at)).all()
        return [Claim(r.schedule, from_ms(r.fire_at), bool(r.catch_up)) for r in rows]

    def _complete(self, claim: Claim) -> Fired:
        """Start what a claimed firing starts, and record it."""
        with self._db.session() as s:
            row = s.get(ScheduleRow, claim.schedule)
            if row is None:
                return Fired(claim.schedule, claim.fire_at, claim.catch_up, None, "the schedule was deleted")
            spec, action, actor, role = dict(row.spec), row.action, row.created_by, row.actor_role
        if action == "create_monitor":
            return self._monitor(claim, spec, actor)
        name = job_name(claim.schedule, claim.fire_at)
        try:
            with self._db.session() as s:
                job_spec, experiment = job_for_firing(s, claim.schedule, spec.get("create_job"), claim.fire_at)
            self._jobs.submit(job_spec, actor=actor, role=role, name=name, experiment_name=experiment,
                              display_name=display_name(claim.schedule, claim.fire_at))
        except ServerUnavailableError:
            log.warning("schedule %s: the server is stopping; its firing due %s starts at the next start-up",
                        claim.schedule, claim.fire_at.isoformat())
            return Fired(claim.schedule, claim.fire_at, claim.catch_up, None, "server stopping")
        except AlreadyExistsError:
            if not self._made_by(name, claim.schedule):
                return self._record(claim, None, f"a job named {name} exists and was not started by this schedule",
                                    actor)
        except MlyardError as exc:
            log.warning("schedule %s: the job of its firing due %s was refused: %s", claim.schedule,
                        claim.fire_at.isoformat(), exc.message)
            return self._record(claim, None, exc.message, actor)
        except Exception as exc:  # a bug in submitting: record it, keep the scheduler alive
            log.exception("schedule %s: submitting its job failed", claim.schedule)
            return self._record(claim, None, f"internal error: {exc.__class__.__name__}: {exc}", actor)
        return self._record(claim, name, None, actor)

    def _made_by(self, job: str, schedule: str) -> bool:
        with self._db.session() as s:
            row = s.get(Job, job)
            return row is not None and (row.spec.get("tags") or {}).get("mlyard.schedule") == schedule

    def _monitor(self, claim: Claim, spec: dict[str, Any], actor: str) -> Fired:
        if self.monitor_runner is None:
            return self._record(claim, None, None, actor, note=MONITOR_NOTE)
        try:
            job = self.monitor_runner(claim.schedule, spec.get("create_monitor") or {}, claim.fire_at)
        except Exception as exc:
            log.exception("schedule %s: the monitor run failed", claim.schedule)
            return self._record(claim, None, f"the monitor run failed: {exc}", actor)
        return self._record(claim, job, None, actor)

    def _record(self, claim: Claim, job: str | None, error: str | None, actor: str, *,
                note: str | None = None) -> Fired:
        def write(s: Session) -> None:
            firing = s.get(ScheduleFiringRow, (claim.schedule, to_ms(claim.fire_at)))
            if firing is not None and (firing.job is not None or firing.error is not None):
                return  # another server completed this claim first (both found it at start-up): one record
            if firing is not None:
                firing.job, firing.error = job, error if error is not None else note
            if job is not None:
                row = s.get(Job, job)
                if row is not None:
                    row.notes = [*(row.notes or []), job_note(claim.schedule, claim.fire_at, catch_up=claim.catch_up)]
            if error is None:
                append_event(s, "schedule.fired", claim.schedule, actor, fire_at=claim.fire_at.isoformat(),
                             catch_up=claim.catch_up, job=job, **({"note": note} if note else {}))

        self._db.run_in_transaction(write)
        log.info("schedule %s fired for %s%s: %s", claim.schedule, claim.fire_at.isoformat(),
                 " (catch-up)" if claim.catch_up else "", job or error or note)
        return Fired(claim.schedule, claim.fire_at, claim.catch_up, job, error)

