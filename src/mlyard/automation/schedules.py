"""Schedules: create, change, enable, disable, delete, list and show them.

A schedule row holds the validated spec (``create_job`` inline, or naming an existing job) and the
next instant it fires; the scheduler (``scheduler.py``) fires it. Every change computes the next
instant from now and wakes the scheduler. Rules, as Azure has them: a new schedule is enabled unless
its ``is_enabled`` says otherwise; one must be disabled before it is deleted; ``import_data``
schedules are refused (data import is out of scope). Enabling a schedule again fires nothing for the
time it was disabled.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.automation.firing import FiringTimes
from mlyard.automation.schedule_jobs import check_job
from mlyard.core.errors import AlreadyExistsError, ConflictError, InvalidRequestError, NotFoundError
from mlyard.specs import load_spec_dict
from mlyard.specs.timezones import zone_of
from mlyard.store.automation_schema import ScheduleFiringRow, ScheduleRow
from mlyard.store.db import Database

Clock = Callable[[], datetime]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")  # room for the job's -YYYYMMDDThhmmssZ
CATCH_UP_RULE = ("firings missed while the server was down: at most one catch-up per schedule, for the latest "
                 "missed instant, when the server starts; the others are skipped")
MONITOR_NOTE = ("monitor runs arrive with the monitoring engine; until then a create_monitor schedule's firings "
                "are recorded only")


def utc_now() -> datetime:
    return datetime.now(UTC)


def to_ms(t: datetime) -> int:
    return int(t.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _missing(name: str) -> NotFoundError:
    return NotFoundError(f"schedule {name!r} not found; 'mlyard schedule list' shows them", details={"schedule": name})


def firing_times(row: ScheduleRow) -> FiringTimes:
    """The firing instants of a stored schedule (its creation time is the default start)."""
    return FiringTimes(row.spec["trigger"], from_ms(row.created_at))


def first_firing(times: FiringTimes, now: datetime) -> datetime | None:
    """The next instant at or after now, and never before the start (a start left out is now)."""
    return times.next_after(max(now.replace(microsecond=0), times.start), inclusive=True)


@dataclass
class ScheduleView:
    """A schedule with what ``show`` tells about it."""

    row: ScheduleRow
    next_firings: list[datetime]
    zone: str
    firings: list[ScheduleFiringRow]

    @property
    def next_firings_local(self) -> list[datetime]:
        """The next firings on the clock of the schedule's zone."""
        zone = zone_of(self.zone)
        return [t.astimezone(zone) for t in self.next_firings]


class ScheduleService:
    """Stored schedules; ``on_change`` (the scheduler's ``wake``) runs after every change."""

    def __init__(self, db: Database, *, clock: Clock = utc_now, on_change: Callable[[], None] | None = None) -> None:
        self._db = db
        self._clock = clock
        self.on_change = on_change

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    @staticmethod
    def _clean(spec: dict[str, Any]) -> tuple[dict[str, Any], str]:
        clean = load_spec_dict(spec, "schedule").to_dict()
        if not NAME.match(clean["name"]):
            raise InvalidRequestError(f"schedule name {clean['name']!r} is not valid: use letters, digits, '_', '-' "
                                      "and '.', starting with a letter or digit (at most 200 characters)",
                                      details={"field": "name"})
        action = next(k for k in ("create_job", "create_monitor", "import_data") if clean.get(k) is not None)
        if action == "import_data":
            raise InvalidRequestError("import_data schedules are not supported: mlyard does not import data from "
                                      "external sources; schedule a job that reads the source instead",
                                      details={"field": "import_data"})
        return clean, action

    def _next(self, clean: dict[str, Any], created_at: int, now: datetime) -> int:
        try:
            times = FiringTimes(clean["trigger"], from_ms(created_at))
        except ValueError as exc:
            raise InvalidRequestError(f"trigger: {exc}", details={"field": "trigger"}) from None
        first = first_firing(times, now)
        if first is None:
            field = "trigger.end_time" if times.end is not None else "trigger"
            raise InvalidRequestError(f"schedule {clean['name']!r} would never fire: no firing instant is left "
                                      + ("before its end_time" if times.end is not None else "in its pattern"),
                                      details={"field": field})
        return to_ms(first)

    def create(self, spec: dict[str, Any], actor: str, role: str = "admin") -> ScheduleRow:
        """Store a schedule from its spec (``create_job`` inline with local files already uploaded)."""
        clean, action = self._clean(spec)
        name = clean["name"]
        now = self._clock()
        created = to_ms(now)
        next_at = self._next(clean, created, now)

        def write(s: Session) -> ScheduleRow:
            if s.get(ScheduleRow, name) is not None:
                raise AlreadyExistsError(f"schedule {name!r} already exists; change it with 'mlyard schedule update "
                                         f"-n {name}'", details={"schedule": name})
            if action == "create_job":
                check_job(s, clean["create_job"])
            row = ScheduleRow(name=name, spec=clean, action=action, enabled=bool(clean.get("is_enabled", True)),
                              next_fire_at=next_at, last_fired_at=None, created_at=created, updated_at=created,
                              created_by=actor, actor_role=role)
            s.add(row)
            return row

        row = self._db.run_in_transaction(write)
        self._changed()
        return row

    def get(self, name: str) -> ScheduleRow:
        with self._db.session() as s:
            row = s.get(ScheduleRow, name)
        if row is None:
            raise _missing(name)
        return row

    def list(self) -> builtins.list[ScheduleRow]:
        with self._db.session() as s:
            return builtins.list(s.scalars(select(ScheduleRow).order_by(ScheduleRow.name)))

    def show(self, name: str, *, count: int = 5, firings: int = 5) -> ScheduleView:
        """The schedule, its next ``count`` firing instants (none while disabled) and its latest firings."""
        row = self.get(name)
        times = firing_times(row)
        upcoming: builtins.list[datetime] = []
        if row.enabled and row.next_fire_at is not None:
            first = from_ms(row.next_fire_at)
            upcoming = [first, *times.upcoming(first, count - 1)]
        with self._db.session() as s:
            recent = builtins.list(s.scalars(
                select(ScheduleFiringRow).where(ScheduleFiringRow.schedule == name)
                .order_by(ScheduleFiringRow.fire_at.desc()).limit(firings)))
        return ScheduleView(row=row, next_firings=upcoming, zone=times.zone_name, firings=recent)

    def update(self, name: str, spec: dict[str, Any]) -> ScheduleRow:
        """Replace a schedule's spec (description, tags, display_name, trigger, its job); ``is_enabled`` is
        changed by enable and disable only. A changed trigger's next firing is computed again from now."""
        spec = {**spec, "name": spec.get("name") or name}
        clean, action = self._clean(spec)
        if clean["name"] != name:
            raise InvalidRequestError(f"the spec names schedule {clean['name']!r}, not {name!r}",
                                      details={"field": "name"})
        now = self._clock()

        def write(s: Session) -> ScheduleRow:
            row = s.get(ScheduleRow, name)
            if row is None:
                raise _missing(name)
            if action == "create_job":
                check_job(s, clean["create_job"])
            clean["is_enabled"] = row.enabled
            if clean["trigger"] != row.spec.get("trigger"):  # else the instant due next stays, even if due now
                row.next_fire_at = self._next(clean, row.created_at, now)
            row.spec, row.action, row.updated_at = clean, action, to_ms(now)
            return row

        row = self._db.run_in_transaction(write)
        self._changed()
        return row

    def set_enabled(self, name: str, enabled: bool) -> ScheduleRow:
        """Enable (the next firing counts from now: nothing fires for the time it was off) or disable."""
        now = self._clock()

        def write(s: Session) -> ScheduleRow:
            row = s.get(ScheduleRow, name)
            if row is None:
                raise _missing(name)
            if enabled and not row.enabled:
                first = first_firing(firing_times(row), now)
                row.next_fire_at = to_ms(first) if first is not None else None
            row.enabled = enabled
            row.spec = {**row.spec, "is_enabled": enabled}
            row.updated_at = to_ms(now)
            return row

        row = self._db.run_in_transaction(write)
        self._changed()
        return row

    def delete(self, name: str) -> None:
        """Delete a disabled schedule and its firing records (the jobs it started stay)."""

        def write(s: Session) -> None:
            row = s.get(ScheduleRow, name)
            if row is None:
                raise _missing(name)
            if row.enabled:
                raise ConflictError(f"schedule {name!r} is enabled; disable it first: 'mlyard schedule disable -n "
                                    f"{name}'", details={"schedule": name})
            for firing in s.scalars(select(ScheduleFiringRow).where(ScheduleFiringRow.schedule == name)):
                s.delete(firing)
            s.flush()
            s.delete(row)

        self._db.run_in_transaction(write)
        self._changed()
