"""The metadata store's engine and sessions (SQLite embedded default, PostgreSQL for teams)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from sqlalchemy import Engine, Executable, Table, create_engine, event
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from mlyard.core.errors import InvalidRequestError, StorageError
from mlyard.store.audit import pending_audit, write_entry

T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across process crashes
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


def make_engine(url: str) -> Engine:
    """An engine for ``url`` with mlyard's connection settings applied."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


class Database:
    """Owns the engine and hands out sessions; one per server process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time; taking turns in-process avoids busy errors and retries.
        self._write_lock = threading.Lock() if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in one transaction: committed on success, rolled back on error."""
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def run_in_transaction(self, fn: Callable[[Session], T], *, retries: int = 5) -> T:
        """Run ``fn`` in a fresh transaction, retrying on unique-key races and lock timeouts."""
        for attempt in range(retries):
            try:
                if self._write_lock is None:
                    return self._transaction(fn)
                with self._write_lock:
                    return self._transaction(fn)
            except (IntegrityError, OperationalError) as exc:
                if attempt == retries - 1:
                    raise StorageError(f"the metadata store kept refusing the write: {exc.orig}") from exc
                time.sleep(0.01 * 2**attempt)
            except DataError as exc:  # SQLSTATE class 22: a value the column cannot hold (PostgreSQL checks lengths)
                raise InvalidRequestError(f"a value in this request does not fit the metadata store: "
                                          f"{str(exc.orig).strip()}") from exc
            except DBAPIError as exc:
                raise StorageError(f"the metadata store failed: {exc.orig}") from exc
        raise AssertionError("unreachable")

    def _transaction(self, fn: Callable[[Session], T]) -> T:
        audit = pending_audit.get()
        if audit is None or not audit.claim():
            with self.session() as s:
                return fn(s)
        entry_id = None
        try:  # the request's audit entry commits with its change (see store/audit.py)
            with self.session() as s:
                out = fn(s)
                written = write_entry(s.connection(), audit.actor, audit.action, audit.resource,
                                      audit.expected_status)
            entry_id = written
            return out
        finally:
            audit.release(entry_id)

    def upsert_statement(self, table: Table, keys: Sequence[str], update: Sequence[str],
                         where: Callable[[Any], Any] | None = None) -> Executable:
        """``INSERT ... ON CONFLICT (keys) DO UPDATE SET update [WHERE where(excluded)]`` in this store's dialect.

        Build it once and run it with :meth:`upsert`: building one costs more than running it (SQLAlchemy
        makes a column proxy per column for ``excluded``), and the compiled SQL is cached by statement.
        """
        if self.is_sqlite:
            from sqlalchemy.dialects.sqlite import insert
        else:
            from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
        stmt = insert(table)
        return stmt.on_conflict_do_update(index_elements=list(keys), set_={c: stmt.excluded[c] for c in update},
                                          where=where(stmt.excluded) if where is not None else None)

    @staticmethod
    def upsert(session: Session, statement: Executable, rows: Sequence[dict[str, Any]]) -> None:
        """Run an :meth:`upsert_statement` for ``rows`` (one executemany) in the session's transaction."""
        if rows:
            session.connection().execute(statement, list(rows))

    def dispose(self) -> None:
        self.engine.dispose()
