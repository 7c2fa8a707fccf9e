"""The online data collector's folders, read natively (reference §8.3): ``<path>/{yyyy}/{MM}/{dd}/{HH}/*.jsonl``.

Each line is a CloudEvents-style envelope whose ``data`` is a list of row dicts; ``time`` (ISO UTC) and
``correlationid`` are copied onto every row of the line as the columns ``time`` and ``correlationid``. Folders
whose hour lies outside the window are never opened; rows are kept when their ``time`` is inside it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mlyard.core.errors import InvalidRequestError
from mlyard.monitoring.windows import TimeWindow

CORRELATION_COLUMN = "correlationid"
TIME_COLUMN = "time"
ENVELOPE_KEYS = ("specversion", "correlationid", "xrequestid")
ROWS_PER_PART = 200_000


def is_envelope(line: dict[str, Any]) -> bool:
    """Whether a parsed JSONL line is a collector envelope rather than a plain row."""
    return isinstance(line.get("data"), list) and any(key in line for key in ENVELOPE_KEYS)


def looks_like_collector(folder: Path) -> bool:
    """A folder with ``.jsonl`` files under a four-digit year folder."""
    return any(child.is_dir() and child.name.isdigit() and len(child.name) == 4 and any(child.rglob("*.jsonl"))
               for child in folder.iterdir())


def _folder_span(parts: tuple[str, ...]) -> tuple[datetime, datetime] | None:
    """The time a partition folder covers: ``yyyy[/MM[/dd[/HH[/mm]]]]``; None for a folder of another shape."""
    numbers = []
    for part in parts:
        if not part.isdigit():
            return None
        numbers.append(int(part))
    if not numbers or len(numbers) > 5:
        return None
    year, month, day, hour, minute = numbers + [1, 1, 0, 0][len(numbers) - 1:]  # missing parts: their start
    try:
        start = datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError:
        return None
    if len(numbers) == 1:
        return start, start.replace(year=year + 1)
    if len(numbers) == 2:
        return start, (start.replace(year=year + 1, month=1) if month == 12 else start.replace(month=month + 1))
    step = {3: timedelta(days=1), 4: timedelta(hours=1), 5: timedelta(minutes=1)}[len(numbers)]
    return start, start + step


def window_files(folder: Path, window: TimeWindow) -> list[Path]:
    """The ``.jsonl`` files of partition folders that overlap ``window``, in time order."""
    found = []
    for path in sorted(folder.rglob("*.jsonl")):
        span = _folder_span(path.relative_to(folder).parts[:-1])
        if span is not None and window.overlaps(*span):
            found.append(path)
    return found


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def envelope_rows(path: Path, window: TimeWindow) -> Iterator[dict[str, Any]]:
    """The rows of one collector file whose line ``time`` is in ``window``."""
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            try:
                line = json.loads(raw)
            except ValueError as exc:
                raise InvalidRequestError(f"{path}:{number}: not a JSON line ({exc}); the data collector writes one "
                                          "JSON object per line", details={"file": str(path), "line": number}) \
                    from exc
            if not isinstance(line, dict) or not is_envelope(line):
                raise InvalidRequestError(f"{path}:{number}: not a data collector line (expected an object with a "
                                          "'data' list of rows and a 'correlationid')",
                                          details={"file": str(path), "line": number})
            moment = _time(line.get("time"))
            if window.start is not None or window.end is not None:
                if moment is None or not window.contains(moment):
                    continue
            extra = {TIME_COLUMN: line.get("time"), CORRELATION_COLUMN: line.get("correlationid")}
            for row in line["data"]:
                if isinstance(row, dict):
                    yield {**row, **extra}
