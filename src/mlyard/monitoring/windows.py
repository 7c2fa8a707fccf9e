"""Time windows of a monitor run: Azure's rolling lookback windows and their defaults (reference §8.2, §1.10).

A rolling window is ``[now - offset - size, now - offset)``: the end is exclusive, as in the data collector's
hourly folder listing. The production size defaults to what the schedule's recurrence implies (minute or hour ->
P1D, every n days -> P{n}D, weeks -> P{7n}D, months -> P{30n}D, cron or anything else -> P7D); the offset to P0D.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mlyard.core.errors import InvalidRequestError

DEFAULT_PRODUCTION_SIZE = timedelta(days=7)


@dataclass(frozen=True)
class TimeWindow:
    """A half-open interval ``[start, end)`` in UTC; either side None means unbounded."""

    start: datetime | None
    end: datetime | None

    def contains(self, moment: datetime) -> bool:
        return (self.start is None or moment >= self.start) and (self.end is None or moment < self.end)

    def overlaps(self, start: datetime, end: datetime) -> bool:
        """Whether ``[start, end)`` meets this window (an hourly folder, say)."""
        return (self.end is None or start < self.end) and (self.start is None or end > self.start)

    def to_dict(self) -> dict[str, str | None]:
        return {"start": iso(self.start), "end": iso(self.end)}


WHOLE = TimeWindow(None, None)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str, field: str) -> datetime:
    """An ISO-8601 date-time; a naive one is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise InvalidRequestError(f"{field}: {text!r} is not an ISO-8601 date-time (e.g. 2024-01-31T15:15:00Z)",
                                  details={"field": field}) from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def production_size_for(trigger: Any) -> timedelta:
    """The default production lookback size for a schedule trigger (None: a run now, sized like a cron one)."""
    frequency = getattr(trigger, "frequency", None)
    interval = int(getattr(trigger, "interval", 1) or 1)
    if frequency in ("minute", "hour"):
        return timedelta(days=1)
    if frequency == "day":
        return timedelta(days=interval)
    if frequency == "week":
        return timedelta(days=7 * interval)
    if frequency == "month":
        return timedelta(days=30 * interval)
    return DEFAULT_PRODUCTION_SIZE


def rolling(now: datetime, size: timedelta, offset: timedelta) -> TimeWindow:
    """``[now - offset - size, now - offset)``."""
    end = now - offset
    return TimeWindow(end - size, end)


def production_window(data_window: Any, now: datetime, default_size: timedelta) -> TimeWindow:
    """The production window of a signal; production data takes rolling windows only."""
    if data_window is not None and (data_window.window_start or data_window.window_end):
        raise InvalidRequestError("production_data.data_window: production data takes a rolling window "
                                  "(lookback_window_size, lookback_window_offset), not window_start/window_end",
                                  details={"field": "production_data.data_window"})
    size = getattr(data_window, "lookback_window_size", None) or default_size
    offset = getattr(data_window, "lookback_window_offset", None) or timedelta(0)
    return rolling(now, size, offset)


def reference_window(data_window: Any, now: datetime) -> TimeWindow:
    """The reference window: the whole asset without ``data_window``; rolling or fixed (start/end) otherwise."""
    if data_window is None:
        return WHOLE
    if data_window.window_start or data_window.window_end:
        start = parse_time(data_window.window_start, "reference_data.data_window.window_start") \
            if data_window.window_start else None
        end = parse_time(data_window.window_end, "reference_data.data_window.window_end") \
            if data_window.window_end else None
        return TimeWindow(start, end)
    if data_window.lookback_window_size is None:
        return WHOLE
    return rolling(now, data_window.lookback_window_size, data_window.lookback_window_offset or timedelta(0))
