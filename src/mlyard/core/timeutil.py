"""Time in one place: timezone-aware UTC everywhere."""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    return datetime.now(UTC)


def isoformat(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.isoformat()


def now_ms() -> int:
    """Milliseconds since the epoch, the unit of the MLflow protocol."""
    return int(datetime.now(UTC).timestamp() * 1000)
