"""Requests refused for want of a valid token, in the audit trail at a bounded rate.

Anyone who can reach the server can send requests without a token, as fast as they like; writing
each one down would let them fill the disk. So a client address gets its first
:data:`PER_CLIENT` refusals of a minute written one by one (as any audit entry: ``anonymous``,
method, path cut to :data:`MAX_PATH` characters, 401), the server as a whole at most
:data:`PER_MINUTE` such entries a minute, and the rest of a client's refusals in that minute are
counted and written as one summary entry (action ``REFUSED``) once the minute is over. Past
:data:`CLIENTS` addresses in a minute, further addresses share one count. A minute thus adds at most
``PER_MINUTE + CLIENTS + 1`` entries of a few hundred bytes, however many requests arrive.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

PER_CLIENT = 10
PER_MINUTE = 100
CLIENTS = 50
MAX_PATH = 200
OTHER_CLIENTS = "other addresses"


class Entry(NamedTuple):
    """One audit entry to write: who, what, which resource, how it ended."""

    actor: str
    action: str
    resource: str
    status: int


@dataclass
class _Window:
    listed: int = 0  # refusals written one by one
    counted: int = 0  # refusals only counted, for the minute's summary


class RefusalLog:
    """Decides which refused requests are written one by one and which only counted (thread-safe)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._minute = -1
        self._listed = 0  # this minute's refusals written one by one, all clients together
        self._windows: dict[str, _Window] = {}

    def refuse(self, client: str | None, method: str, path: str) -> list[Entry]:
        """The entries to write for one refused request: its own while allowances last, and ended minutes' summaries."""
        with self._lock:
            out = self._roll(int(self._clock() // 60))
            client = client or "unknown address"
            window = self._windows.get(client)
            if window is None:
                if len(self._windows) >= CLIENTS:
                    client = OTHER_CLIENTS
                window = self._windows.setdefault(client, _Window())
            if window.listed < PER_CLIENT and self._listed < PER_MINUTE:
                window.listed += 1
                self._listed += 1
                out.append(Entry("anonymous", method[:16], path[:MAX_PATH], 401))
            else:
                window.counted += 1
            return out

    def due(self) -> bool:
        """True when a minute with counted refusals has ended and its summaries wait to be written."""
        with self._lock:
            return int(self._clock() // 60) != self._minute and any(w.counted for w in self._windows.values())

    def sweep(self) -> list[Entry]:
        """The summaries of the minutes that have ended (see :meth:`due`)."""
        with self._lock:
            return self._roll(int(self._clock() // 60))

    def flush(self) -> list[Entry]:
        """The summaries of every count so far, the current minute's included (at shutdown)."""
        with self._lock:
            return self._roll(self._minute + 1)

    def _roll(self, minute: int) -> list[Entry]:
        if minute == self._minute:
            return []
        start = datetime.fromtimestamp(max(self._minute, 0) * 60, UTC).strftime("%Y-%m-%d %H:%M")
        summaries = [Entry("anonymous", "REFUSED", f"{w.counted} more requests without a valid token from {client} "
                           f"in the minute from {start} UTC (after the {w.listed} listed one by one)", 401)
                     for client, w in self._windows.items() if w.counted]
        self._minute, self._listed, self._windows = minute, 0, {}
        return summaries
