"""Triggers: stored event rules (:class:`TriggerService`) and the thread that turns events into jobs
(:class:`TriggerEngine`).

Each trigger reads the event log from its own ``cursor`` (the last event id it has looked at). A new
trigger starts at the log's current end: it never replays the past; enabling a disabled one moves it
to the end as well. For an event that matches (``trigger_rules.matches``):

1. *claim*: one transaction locks the trigger row, checks the event is past its cursor, inserts the
   ``trigger_firings`` row (primary key trigger + event: one event starts one job at most, even with
   two servers on one PostgreSQL store) and moves ``cursor``; the outcome is ``cooling_down`` when the
   trigger started a job for an event less than ``cool_down`` earlier (event times, so a late server
   coalesces the same incidents), else ``started``, and then ``last_fired_at`` becomes the event's time;
2. *submit*: the job, named ``<trigger>-<event id>``, as the trigger's creator with their role;
3. *record*: the job on the firing, a note on the job, and a ``trigger.fired`` event, in one transaction.

A job that could not be submitted marks its firing ``failed`` with the reason (and gives back the
cool-down it took). A firing claimed but never recorded (the server stopped in between) is completed
at start-up: its job is found by name, or submitted then.
"""

from __future__ import annotations

import builtins
import logging
import threading
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from mlyard.automation.trigger_rules import (
    EventView,
    cause_note,
    caused_by,
    cool_down_ms,
    job_name,
    matches,
    triggered_job,
)
from mlyard.core.errors import (
    AlreadyExistsError,
    InvalidSpecError,
    MlyardError,
    NotFoundError,
    ServerUnavailableError,
    SpecIssue,
)
from mlyard.core.timeutil import now_ms
from mlyard.jobs.plan import refuse_local_paths
from mlyard.specs import load_spec_dict
from mlyard.specs.loader import _deep_merge
from mlyard.store.automation_schema import TriggerFiringRow, TriggerRow
from mlyard.store.db import Database
from mlyard.store.events import append_event, last_event_id, read_events, signal
from mlyard.store.jobs_schema import Job
from mlyard.store.tracking_schema import Event

log = logging.getLogger("mlyard.automation.triggers")


class JobSubmitter(Protocol):
    """What the engine needs of the job runner (``JobRunner.submit``)."""

    def submit(self, spec: dict[str, Any], *, actor: str, role: str = ..., name: str | None = ...,
               experiment_name: str | None = ..., display_name: str | None = ...,
               env_mode: str | None = ...) -> Any: ...


def _view(row: Event) -> EventView:
    return EventView(id=int(row.id), at=int(row.at), type=row.type, subject=row.subject, actor=row.actor,
                     payload=dict(row.payload or {}))


# -- the stored triggers -----------------------------------------------------------------------------


class TriggerService:
    """Create, read, enable, disable and delete triggers."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(self, spec: dict[str, Any], *, actor: str, role: str) -> TriggerRow:
        """Validate a trigger (its job inline, local content uploaded) and store it at the log's end."""
        data = load_spec_dict(spec, "trigger", source="trigger").to_dict()
        name = str(data["name"])
        data["create_job"] = self._job_of(data["create_job"])
        declared = data["create_job"].get("inputs") or {}
        unknown = [k for k in data.get("inputs") or {} if k not in declared]
        if unknown:
            have = ", ".join(sorted(declared)) or "none"
            raise InvalidSpecError(issues=[SpecIssue(
                message=f"the job declares no input {unknown[0]!r} (its inputs: {have}); add it to the job's inputs "
                "or remove it here", field=f"inputs.{unknown[0]}", file="trigger")])

        def write(s: Session) -> TriggerRow:
            if s.get(TriggerRow, name) is not None:
                raise AlreadyExistsError(f"a trigger named {name!r} already exists; delete it first "
                                         f"('mlyard trigger delete -n {name}') or pick another name")
            now = now_ms()
            row = TriggerRow(name=name, spec=data, enabled=bool(data.get("is_enabled", True)),
                             cursor=last_event_id(s), last_fired_at=None, created_at=now, updated_at=now,
                             created_by=actor, actor_role=role)
            s.add(row)
            return row

        return self._db.run_in_transaction(write)

    def _job_of(self, create_job: Any) -> dict[str, Any]:
        """The job a trigger creates, as a checked spec: inline, or copied from ``azureml:<job>``."""
        overrides: dict[str, Any] = {}
        if isinstance(create_job, dict) and isinstance(create_job.get("job"), str):
            overrides = {k: v for k, v in create_job.items() if k != "job"}
            create_job = create_job["job"]
        if isinstance(create_job, str):
            create_job = _deep_merge(self._existing_job(create_job.removeprefix("azureml:")), overrides)
        try:
            job = load_spec_dict(create_job, "job", source="trigger").to_dict()
        except InvalidSpecError as exc:
            raise InvalidSpecError(issues=[SpecIssue(message=i.message, file=i.file,
                                                     field=f"create_job.{i.field}" if i.field else "create_job")
                                           for i in exc.issues]) from None
        refuse_local_paths(job)
        return job

    def _existing_job(self, name: str) -> dict[str, Any]:
        if not name.strip():
            raise InvalidSpecError(issues=[SpecIssue(message="'azureml:' names no job; write azureml:<job name>",
                                                     field="create_job", file="trigger")])
        with self._db.session() as s:
            row = s.get(Job, name)
            if row is None or row.parent is not None:
                raise NotFoundError(f"create_job: no job named {name!r} to copy; give a job file, or the name of a "
                                    "job listed by 'mlyard job list'", details={"field": "create_job"})
            spec = dict(row.spec or {})
        spec.pop("step", None)  # the runner keeps a command job's planned step beside its spec
        spec.pop("name", None)
        return spec

    def get(self, name: str) -> TriggerRow:
        with self._db.session() as s:
            row = s.get(TriggerRow, name)
            if row is None:
                raise NotFoundError(f"no trigger named {name!r}; 'mlyard trigger list' shows them",
                                    details={"resource": "trigger", "name": name})
            return row

    def list(self) -> builtins.list[TriggerRow]:
        with self._db.session() as s:
            return builtins.list(s.scalars(select(TriggerRow).order_by(TriggerRow.name)))

    def firings(self, name: str, limit: int = 20) -> builtins.list[TriggerFiringRow]:
        """The trigger's latest firings, newest first."""
        with self._db.session() as s:
            return builtins.list(s.scalars(select(TriggerFiringRow).where(TriggerFiringRow.trigger == name)
                                           .order_by(TriggerFiringRow.event.desc()).limit(limit)))

    def set_enabled(self, name: str, enabled: bool) -> TriggerRow:
        """Enable or disable; an enabled trigger starts at the log's end (what happened while off is skipped)."""
        def write(s: Session) -> TriggerRow:
            row = s.get(TriggerRow, name)
            if row is None:
                raise NotFoundError(f"no trigger named {name!r}; 'mlyard trigger list' shows them",
                                    details={"resource": "trigger", "name": name})
            if enabled and not row.enabled:
                row.cursor = max(row.cursor, last_event_id(s))
            row.enabled = enabled
            row.updated_at = now_ms()
            return row

        return self._db.run_in_transaction(write)

    def delete(self, name: str) -> None:
        """Delete a trigger and its firings; the jobs it started stay, tagged with their cause."""
        def write(s: Session) -> None:
            row = s.get(TriggerRow, name)
            if row is None:
                raise NotFoundError(f"no trigger named {name!r}; 'mlyard trigger list' shows them",
                                    details={"resource": "trigger", "name": name})
            for firing in s.scalars(select(TriggerFiringRow).where(TriggerFiringRow.trigger == name)):
                s.delete(firing)
            s.delete(row)

        self._db.run_in_transaction(write)


# -- the engine ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Claim:
    trigger: str
    spec: dict[str, Any]
    actor: str
    role: str
    previous_fired_at: int | None


class TriggerEngine:
    """Reads new events for every enabled trigger and starts their jobs (see the module docstring)."""

    def __init__(self, db: Database, jobs: JobSubmitter, *, poll_s: float = 1.0, batch: int = 500) -> None:
        self._db = db
        self._jobs = jobs
        self.poll_s = poll_s
        self.batch = batch
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Complete firings a stopped server left half-done, then follow the log in a thread."""
        self.recover()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="mlyard-triggers", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        signal.notify()  # wake the thread now rather than at its next poll
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            seen = signal.generation
            try:
                self.run_once()
            except Exception:  # a bug or a store outage: logged, and tried again at the next wake-up
                log.exception("triggers: reading the event log failed")
            # woken at once by this process's commits; the timeout catches other servers' events
            signal.wait(seen, self.poll_s)

    def run_once(self) -> int:
        """Match every event past the enabled triggers' cursors; returns how many jobs were started."""
        started = 0
        while not self._stop.is_set():
            with self._db.session() as s:
                triggers = [(r.name, r.cursor, r.spec) for r in s.scalars(select(TriggerRow).where(TriggerRow.enabled))]
                if not triggers:
                    return started
                events = [_view(e) for e in read_events(s, after=min(t[1] for t in triggers), limit=self.batch)]
            if not events:
                return started
            for name, cursor, spec in triggers:
                for event in events:
                    if event.id > cursor and matches(spec, event) and not caused_by(name, event):
                        started += self._fire(name, event)
                self._advance(name, events[-1].id)
            if len(events) < self.batch:
                return started
        return started

    def _advance(self, name: str, to: int) -> None:
        self._db.run_in_transaction(lambda s: s.execute(
            update(TriggerRow).where(TriggerRow.name == name, TriggerRow.cursor < to).values(cursor=to)))

    def _fire(self, name: str, event: EventView) -> int:
        claim = self._db.run_in_transaction(lambda s: self._claim(s, name, event))
        if claim is None:
            return 0
        return 1 if self._start(claim, event) else 0

    def _claim(self, s: Session, name: str, event: EventView) -> _Claim | None:
        row = s.get(TriggerRow, name, with_for_update=True)
        if row is None or not row.enabled or row.cursor >= event.id:
            return None  # deleted, disabled, or another server took this event
        row.cursor = event.id
        if s.get(TriggerFiringRow, (name, event.id)) is not None:
            return None
        previous = row.last_fired_at
        cooling = previous is not None and event.at - previous < cool_down_ms(row.spec)
        s.add(TriggerFiringRow(trigger=name, event=event.id, outcome="cooling_down" if cooling else "started",
                               job=None, error=None, created_at=now_ms()))
        if cooling:
            return None
        row.last_fired_at = event.at
        return _Claim(name, dict(row.spec), row.created_by, row.actor_role, previous)

    def _start(self, claim: _Claim, event: EventView) -> bool:
        """Submit the claimed job and record it; False when it failed (recorded on the firing)."""
        name = job_name(claim.trigger, event.id)
        try:
            spec = triggered_job(claim.spec, claim.trigger, event)
            self._jobs.submit(spec, actor=claim.actor, role=claim.role, name=name, display_name=name)
        except AlreadyExistsError:
            pass  # submitted already, by another server or before a restart: record it
        except ServerUnavailableError:
            return False  # the server is stopping: the claim stays, and start-up completes it
        except MlyardError as exc:
            self._fail(claim, event, exc.message)
            return False
        except Exception as exc:  # a bug: logged, and the firing says so rather than staying half-done
            log.exception("triggers: %s could not submit its job for event %d", claim.trigger, event.id)
            self._fail(claim, event, f"internal error: {exc.__class__.__name__}: {exc}")
            return False
        self._db.run_in_transaction(lambda s: self._record(s, claim.trigger, event, name, claim.actor))
        return True

    @staticmethod
    def _record(s: Session, trigger: str, event: EventView, name: str, actor: str) -> None:
        firing = s.get(TriggerFiringRow, (trigger, event.id))
        if firing is None or firing.job is not None:
            return  # the trigger was deleted meanwhile, or another server recorded it
        firing.job = name
        firing.outcome = "started"
        job = s.get(Job, name, with_for_update=True)
        if job is not None:
            note = cause_note(trigger, event)
            if note not in (job.notes or []):
                job.notes = [*(job.notes or []), note]
        append_event(s, "trigger.fired", trigger, actor, trigger=trigger, job=name, event=event.id,
                     event_type=event.type, event_subject=event.subject)

    def _fail(self, claim: _Claim, event: EventView, message: str) -> None:
        log.warning("triggers: %s did not start a job for event %d: %s", claim.trigger, event.id, message)

        def write(s: Session) -> None:
            firing = s.get(TriggerFiringRow, (claim.trigger, event.id))
            if firing is not None and firing.job is None:
                firing.outcome = "failed"
                firing.error = message[:4000]
            row = s.get(TriggerRow, claim.trigger)
            if row is not None and row.last_fired_at == event.at:
                row.last_fired_at = claim.previous_fired_at  # no job started: the cool-down is not taken

        self._db.run_in_transaction(write)

    def recover(self) -> int:
        """Complete the firings claimed but not recorded when the server stopped; returns how many."""
        with self._db.session() as s:
            pending = [(f.trigger, f.event) for f in s.scalars(select(TriggerFiringRow).where(
                TriggerFiringRow.outcome == "started", TriggerFiringRow.job.is_(None)))]
            found = []
            for trigger, event_id in pending:
                row, event = s.get(TriggerRow, trigger), s.get(Event, event_id)
                if row is not None:
                    found.append((_Claim(trigger, dict(row.spec), row.created_by, row.actor_role, None),
                                  _view(event) if event is not None else EventView(event_id, -1, "", "", "", {})))
        for claim, view in found:
            if view.at < 0:  # the event is gone from the log: nothing to bind the job's inputs to
                self._fail(claim, view, "the event is no longer in the log")
                continue
            log.warning("triggers: completing %s's firing for event %d, left half-done by a stopped server",
                        claim.trigger, view.id)
            self._start(claim, view)
        return len(found)
