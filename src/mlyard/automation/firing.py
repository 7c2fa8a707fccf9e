"""When a schedule fires: the instants of a cron or recurrence trigger, as UTC datetimes.

Pure: no clock, no store. :class:`FiringTimes` is built from a validated trigger (the ``trigger``
mapping of a schedule spec) and the schedule's creation time, the default ``start_time``.

Times of day are wall-clock times in the trigger's zone (``time_zone``, Windows or IANA name), so a
daily 03:00 stays 03:00 across a DST change. Two rules settle the hours a DST change makes odd:

- a wall-clock time that does not exist (the hour skipped in spring) fires at the same distance
  after the change (02:30 becomes 03:30 the day clocks jump from 02:00 to 03:00), at most once;
- a wall-clock time that happens twice (the hour repeated in autumn) fires once, the first time.

Minute and hour recurrences count elapsed time, not wall-clock time: every 2 hours is every 2 hours
across a DST change. Day, week and month recurrences count calendar days in the zone.

Rules where Azure's documentation is silent, chosen here: weeks start on Monday (a ``week``
recurrence with ``interval: 2`` fires in every other week counted from the week of ``start_time``);
``week_days`` also filters ``day`` recurrences; a ``month`` recurrence fires on ``month_days`` and on
every day named in ``week_days`` (either or both), else on the start's day of the month (the last day
of a shorter month); without ``schedule``, the instants are ``start_time + k * interval * frequency``
(a month's day clamped the same way), the first one being ``start_time`` itself.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter  # type: ignore[import-untyped]

from mlyard.specs.timezones import zone_of

WEEK_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_SLACK = timedelta(hours=3)  # more than any DST shift: how far around an instant wall-clock times are searched
_CRON_LIMIT = 10_000
_PERIOD_LIMIT = {"minute": 50_000, "hour": 20_000, "day": 5_000, "week": 2_000, "month": 2_000}


def parse_instant(text: str, zone: ZoneInfo) -> datetime:
    """An ISO-8601 time as a UTC instant; without an offset it is a wall-clock time in ``zone``."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def _utc(local: datetime, zone: ZoneInfo) -> datetime:
    """A wall-clock time in ``zone`` as UTC (fold 0: the first of a repeated time, a skipped one shifted)."""
    return local.replace(tzinfo=zone).astimezone(UTC)


def _floor_s(t: datetime) -> datetime:
    return t.replace(microsecond=0)


class FiringTimes:
    """The firing instants of one trigger.

    Args:
        trigger: a validated trigger (``type: cron`` or ``type: recurrence`` and their fields).
        created_at: when the schedule was created; the start when the trigger names no ``start_time``.
    """

    def __init__(self, trigger: dict[str, Any], created_at: datetime) -> None:
        self.trigger = trigger
        self.zone_name = str(trigger.get("time_zone") or "UTC")
        self.zone = zone_of(self.zone_name)
        start, end = trigger.get("start_time"), trigger.get("end_time")
        try:
            self.start = parse_instant(start, self.zone) if start else _floor_s(created_at.astimezone(UTC))
            self.end = parse_instant(end, self.zone) if end else None
        except OverflowError:
            raise ValueError(f"start_time {start!r} or end_time {end!r} is out of the range of dates") from None
        self.kind = trigger.get("type")
        if self.kind == "cron":
            fields = str(trigger["expression"]).split()
            fields[2] = fields[3] = "*"  # NCrontab: day-of-month and month are not supported
            self.expression = " ".join(fields)
        else:
            try:
                self._recurrence = _Recurrence(trigger, self.start, self.zone)
            except OverflowError:
                raise ValueError(f"interval {trigger.get('interval')!r} is too large") from None

    def _local(self, t: datetime) -> datetime:
        return t.astimezone(self.zone).replace(tzinfo=None)

    # -- the public questions -------------------------------------------------------------------

    def next_after(self, t: datetime, *, inclusive: bool = False) -> datetime | None:
        """The first instant after ``t`` (or at it, with ``inclusive``); None when none is left before the end
        (or the next would be past the year 9999)."""
        try:
            return self._next_after(t.astimezone(UTC), inclusive)
        except (OverflowError, ValueError):  # an interval or start so large that dates run out
            return None

    def _next_after(self, t: datetime, inclusive: bool) -> datetime | None:
        floor = max(t, self.start)
        include = inclusive or floor > t

        def wanted(c: datetime) -> bool:
            return c >= self.start and (c > floor or (include and c == floor))

        found = self._cron_next(floor, wanted) if self.kind == "cron" else self._recurrence.next(floor, wanted)
        if found is None or (self.end is not None and found > self.end):
            return None
        return found

    def latest_at_or_before(self, t: datetime) -> datetime | None:
        """The last instant at or before ``t`` (and within start and end), or None."""
        try:
            return self._latest(t.astimezone(UTC))
        except (OverflowError, ValueError):
            return None

    def _latest(self, t: datetime) -> datetime | None:
        if self.end is not None:
            t = min(t, self.end)
        if t < self.start:
            return None

        def wanted(c: datetime) -> bool:
            return self.start <= c <= t

        return self._cron_prev(t, wanted) if self.kind == "cron" else self._recurrence.prev(t, wanted)

    def upcoming(self, t: datetime, count: int) -> list[datetime]:
        """The next ``count`` instants after ``t`` (fewer when the end comes first)."""
        out: list[datetime] = []
        at: datetime | None = t
        while at is not None and len(out) < count:
            at = self.next_after(at)
            if at is not None:
                out.append(at)
        return out

    # -- cron -----------------------------------------------------------------------------------

    def _cron_next(self, t: datetime, wanted: Callable[[datetime], bool]) -> datetime | None:
        it = croniter(self.expression, self._local(t - _SLACK))
        best: tuple[datetime, datetime] | None = None  # (instant, its wall-clock time)
        for _ in range(_CRON_LIMIT):
            local: datetime = it.get_next(datetime)
            if best is not None and local > best[1] + _SLACK:
                break  # a skipped wall-clock time maps later than the times after it: look a little further
            instant = _utc(local, self.zone)
            if wanted(instant) and (best is None or instant < best[0]):
                best = (instant, local)
        return best[0] if best else None

    def _cron_prev(self, t: datetime, wanted: Callable[[datetime], bool]) -> datetime | None:
        it = croniter(self.expression, self._local(t + _SLACK))
        best: tuple[datetime, datetime] | None = None
        for _ in range(_CRON_LIMIT):
            local: datetime = it.get_prev(datetime)
            if best is not None and local < best[1] - _SLACK:
                break
            instant = _utc(local, self.zone)
            if instant < self.start - _SLACK:
                break
            if wanted(instant) and (best is None or instant > best[0]):
                best = (instant, local)
        return best[0] if best else None


class _Recurrence:
    """A recurrence as numbered periods (the k-th minute, hour, day, week or month it fires in), each with
    its candidate instants; periods are in time order, so a search looks at a few around an instant."""

    def __init__(self, trigger: dict[str, Any], start: datetime, zone: ZoneInfo) -> None:
        self.unit = str(trigger["frequency"])
        self.n = int(trigger.get("interval") or 1)
        self.zone = zone
        self.start = start
        self.local_start = start.astimezone(zone).replace(tzinfo=None)
        pattern = trigger.get("schedule") or None
        self.pattern = pattern
        if pattern:
            self.hours = sorted(set(pattern.get("hours") or []))
            self.minutes = sorted(set(pattern.get("minutes") or []))
            self.week_days = {WEEK_DAYS.index(d) for d in pattern.get("week_days") or []}
            self.month_days = set(pattern.get("month_days") or [])
        d0 = self.local_start.date()
        self.monday0 = d0 - timedelta(days=d0.weekday())
        self.month0 = d0.year * 12 + d0.month - 1
        if self.unit in ("minute", "hour"):
            self.step = timedelta(minutes=self.n) if self.unit == "minute" else timedelta(hours=self.n)
            if pattern:  # periods begin on the zone's minute or hour
                cut = self.local_start.replace(second=0, microsecond=0)
                self.anchor = _utc(cut.replace(minute=0) if self.unit == "hour" else cut, zone)
            else:
                self.anchor = start
        self.limit = _PERIOD_LIMIT[self.unit]

    def _times(self) -> list[time]:
        if not self.pattern:
            return [self.local_start.time()]
        return [time(h, m) for h in self.hours for m in self.minutes]

    def _on_dates(self, dates: list[date]) -> list[datetime]:
        times = self._times()
        return sorted(_utc(datetime.combine(d, tm), self.zone) for d in dates for tm in times)

    def _day_ok(self, d: date) -> bool:
        return not (self.pattern and self.week_days) or d.weekday() in self.week_days

    def candidates(self, k: int) -> list[datetime]:
        """The instants of period ``k`` (before start and end are applied)."""
        if self.unit in ("minute", "hour"):
            begin = self.anchor + k * self.step
            if not self.pattern:
                return [begin]
            offsets = [timedelta()] if self.unit == "minute" else [timedelta(minutes=m) for m in self.minutes]
            out = []
            for off in offsets:
                at = begin + off
                local = at.astimezone(self.zone)
                if local.hour in self.hours and (self.unit == "hour" or local.minute in self.minutes) \
                        and self._day_ok(local.date()):
                    out.append(at)
            return out
        if self.unit == "day":
            d = self.local_start.date() + timedelta(days=k * self.n)
            return self._on_dates([d] if self._day_ok(d) else [])
        if self.unit == "week":
            monday = self.monday0 + timedelta(days=7 * k * self.n)
            days = self.week_days if self.pattern and self.week_days else {self.local_start.weekday()}
            return self._on_dates([monday + timedelta(days=i) for i in range(7) if i in days])
        year, month0 = divmod(self.month0 + k * self.n, 12)
        last = calendar.monthrange(year, month0 + 1)[1]
        if self.pattern and (self.month_days or self.week_days):
            dates = [date(year, month0 + 1, day) for day in range(1, last + 1)
                     if day in self.month_days or date(year, month0 + 1, day).weekday() in self.week_days]
        else:
            dates = [date(year, month0 + 1, min(self.local_start.day, last))]
        return self._on_dates(dates)

    def index_near(self, t: datetime) -> int:
        """A period index at or before the period holding ``t``."""
        if self.unit in ("minute", "hour"):
            return max(0, int((t - self.anchor) / self.step) - 1)
        d = t.astimezone(self.zone).date()
        if self.unit == "day":
            k = (d - self.local_start.date()).days // self.n
        elif self.unit == "week":
            k = (d - self.monday0).days // (7 * self.n)
        else:
            k = (d.year * 12 + d.month - 1 - self.month0) // self.n
        return max(0, k - 1)

    def next(self, t: datetime, wanted: Callable[[datetime], bool]) -> datetime | None:
        return self._search(self.index_near(t), 1, wanted, min)

    def prev(self, t: datetime, wanted: Callable[[datetime], bool]) -> datetime | None:
        return self._search(self.index_near(t) + 3, -1, wanted, max)

    def _search(self, k: int, step: int, wanted: Callable[[datetime], bool],
                pick: Callable[[list[datetime]], datetime]) -> datetime | None:
        """Walk periods from ``k`` by ``step``; the pick of the first period with a wanted instant and the one
        after it (a DST shift can move an instant past its neighbour period's)."""
        found: list[datetime] = []
        first: int | None = None
        for i in range(self.limit):
            if k + i * step < 0 or (first is not None and i > first + 1):
                break
            hits = [c for c in self.candidates(k + i * step) if wanted(c)]
            if hits and first is None:
                first = i
            found += hits
        return pick(found) if found else None
