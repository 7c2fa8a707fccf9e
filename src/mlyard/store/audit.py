"""The audit trail: one entry per mutating request (who, what, which resource, how it ended).

An entry is committed before its response leaves, so a client that saw the response finds it. The
cheap way to do that is to commit it with the change itself: the server opens a :class:`PendingAudit`
for a request (the ``pending_audit`` context variable; worker threads see it, since anyio copies the
context) and the first transaction that commits through ``Database.run_in_transaction`` carries the
entry along, with the status the request is expected to end with. The server then settles it when
the response is ready: nothing to do when it ends as expected; the status is corrected when it does
not (an error after the change); and when no transaction carried the entry (a read sent as POST, a
request refused before any write) the server writes it on its own.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal, cast

from sqlalchemy import Connection, Table, insert, update
from sqlalchemy.orm import Session

from mlyard.store.schema import AuditEntry

_TABLE = cast(Table, AuditEntry.__table__)
_INSERT = insert(_TABLE)
_SET_STATUS = update(_TABLE)

State = Literal["open", "claimed", "written", "closed"]
# ``Database.run_in_transaction``: this module is below ``db.py``, which imports it
Transact = Callable[[Callable[[Session], Any]], Any]


def write_entry(conn: Connection, actor: str, action: str, resource: str, status: int) -> int:
    """Insert one entry in ``conn``'s transaction; returns its id."""
    resource = resource[:2000].replace("\x00", "\\x00")  # a refused path may hold NUL, which PostgreSQL refuses
    result = conn.execute(_INSERT, {"actor": actor, "action": action, "resource": resource, "status": status})
    return int(cast(Any, result.inserted_primary_key)[0])


class PendingAudit:
    """The entry of one request, until a transaction or the server writes it.

    States: *open* (nobody wrote it yet), *claimed* (a transaction holds it and has not ended),
    *written* (committed, with ``expected_status``), *closed* (settled: the log says how the request ended).
    """

    def __init__(self, actor: str, action: str, resource: str, expected_status: int = 200) -> None:
        self.actor, self.action, self.resource, self.expected_status = actor, action, resource, expected_status
        self.entry_id: int | None = None
        self._state: State = "open"
        self._changed = threading.Condition()

    def claim(self) -> bool:
        """Take the entry into the calling transaction; False when it is not open."""
        with self._changed:
            if self._state != "open":
                return False
            self._state = "claimed"
            return True

    def release(self, entry_id: int | None) -> None:
        """The claiming transaction ended: committed with the entry ``entry_id``, or rolled back (None)."""
        with self._changed:
            self.entry_id = entry_id
            self._state = "written" if entry_id is not None else "open"
            self._changed.notify_all()

    def settled(self, status: int) -> bool:
        """True, without waiting or touching the store, when the entry was committed with ``status``."""
        with self._changed:
            if self._state == "written" and status == self.expected_status:
                self._state = "closed"
                return True
            return False

    def settle(self, transact: Transact, status: int) -> None:
        """Make the log say how the request ended, once its response is ready (it may block; later calls do nothing)."""
        with self._changed:
            while self._state == "claimed":  # a transaction carrying it is still committing
                self._changed.wait()
            state, self._state = self._state, "closed"
        if state == "closed" or (state == "written" and status == self.expected_status):
            return
        if state == "written":
            statement = _SET_STATUS.where(_TABLE.c.id == self.entry_id).values(status=status)
            transact(lambda s: s.connection().execute(statement))
        else:
            transact(lambda s: write_entry(s.connection(), self.actor, self.action, self.resource, status))


pending_audit: ContextVar[PendingAudit | None] = ContextVar("mlyard_pending_audit", default=None)
