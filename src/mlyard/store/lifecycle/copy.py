"""``mlyard workspace migrate``: copy a workspace's store from SQLite to PostgreSQL, resumably, then verify it.

Tables are copied parents first, each in batches committed one at a time; rows the target already
holds (from an earlier, interrupted run) are skipped, so running it again resumes. Then every table is
compared: the row count and the sum of every row's sha256, values normalised (timestamps as
UTC, JSON canonical). A table that differs (the default experiment the target's schema creates, a row
changed in the source since an interrupted run) is copied again with upserts and compared again.
Files stay where they are: the datastores' roots do not change (moving them to object storage is
issue 15's part).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, Table, inspect, select, text, tuple_
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from mlyard.core.errors import ConflictError, InvalidRequestError, StorageError
from mlyard.store.db import Database
from mlyard.store.lifecycle.layout import OpenWorkspace, all_tables
from mlyard.store.migrate import upgrade
from mlyard.store.schema import ApiToken

BATCH = 2000
Progress = Callable[[str], None]


@dataclass
class CopyReport:
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> rows, copied, sha256

    @property
    def rows(self) -> int:
        return sum(int(t["rows"]) for t in self.tables.values())

    @property
    def copied(self) -> int:
        return sum(int(t["copied"]) for t in self.tables.values())


def _ignore(_line: str) -> None:
    pass


def migrate_to_postgres(ws: OpenWorkspace, target_url: str, progress: Progress = _ignore) -> CopyReport:
    """Copy the store of ``ws`` (SQLite) into the PostgreSQL database at ``target_url`` and verify the copy."""
    if not ws.db.is_sqlite:
        raise InvalidRequestError("this workspace's store is already PostgreSQL: 'mlyard workspace migrate' copies a "
                                  "SQLite store; use 'mlyard workspace backup' and 'restore' to move it")
    if not target_url.startswith(("postgresql://", "postgresql+psycopg://")):
        raise InvalidRequestError(f"--database-url must be a postgresql:// URL, not {target_url.split('@')[-1]!r}")
    tables = all_tables()
    known = {t.name for t in tables} | {"alembic_version"}
    unknown = sorted(set(inspect(ws.db.engine).get_table_names()) - known)
    if unknown:
        raise StorageError(f"the store holds table(s) this mlyard does not know: {', '.join(unknown)}; upgrade mlyard "
                           "before migrating, so nothing is left behind")
    target = Database(target_url)
    try:
        try:
            upgrade(target.engine)  # the same schema, at the same revision as the source's (both at head)
        except OperationalError as exc:
            where = target.engine.url.render_as_string(hide_password=True)
            raise StorageError(f"could not open the PostgreSQL database at {where}: {str(exc.orig).strip()}; check "
                               "the URL, that the server runs and that the database exists (createdb)") from exc
        _check_target_is_ours(ws.db, target)
        report = CopyReport()
        with ws.db.engine.connect() as src, target.engine.connect() as dst:
            for table in tables:
                copied = _copy_missing(src, dst, table)
                report.tables[table.name] = {"rows": 0, "copied": copied}
                progress(f"{table.name}: {copied} row(s) copied")
            _fix_sequences(dst, tables)
            for table in tables:
                rows, digest = table_digest(src, table)
                got_rows, got = table_digest(dst, table)
                if (rows, digest) != (got_rows, got):
                    progress(f"{table.name}: differs from the source ({got_rows} rows, not {rows}): copying it again")
                    _upsert_all(src, dst, table, target)
                    got_rows, got = table_digest(dst, table)
                    if (rows, digest) != (got_rows, got):
                        raise StorageError(f"table {table.name} differs after the copy ({got_rows} rows in PostgreSQL, "
                                           f"{rows} in SQLite): was the source written meanwhile? Stop its server "
                                           "and run migrate again")
                report.tables[table.name].update(rows=rows, sha256=digest)
        return report
    finally:
        target.dispose()


def _check_target_is_ours(source: Database, target: Database) -> None:
    with source.session() as s, target.session() as t:
        mine = set(s.scalars(select(ApiToken.token_hash)))
        theirs = set(t.scalars(select(ApiToken.token_hash)))
    if theirs - mine:
        raise ConflictError(f"the database at {target.engine.url.render_as_string(hide_password=True)} already holds "
                            "another workspace's data (API tokens this one never issued): give an empty database")


def _pk(table: Table) -> list[Any]:
    return list(table.primary_key.columns)


def _copy_missing(src: Connection, dst: Connection, table: Table) -> int:
    pk = _pk(table)
    have = {tuple(r) for r in dst.execute(select(*pk))}
    copied = 0
    batch: list[dict[str, Any]] = []
    for row in src.execute(select(table).order_by(*pk).execution_options(yield_per=BATCH)).mappings():
        if tuple(row[c.name] for c in pk) in have:
            continue
        batch.append(_for_insert(row))
        if len(batch) >= BATCH:
            copied += _insert(dst, table, batch)
            batch = []
    if batch:
        copied += _insert(dst, table, batch)
    return copied


def _for_insert(row: Any) -> dict[str, Any]:
    # SQLite hands back naive datetimes of what was stored as UTC; PostgreSQL would read them in its own zone
    return {k: (v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v) for k, v in row.items()}


def _insert(dst: Connection, table: Table, rows: list[dict[str, Any]]) -> int:
    dst.execute(table.insert(), rows)
    dst.commit()  # one batch at a time: an interrupted copy resumes after the last committed batch
    return len(rows)


def _upsert_all(src: Connection, dst: Connection, table: Table, target: Database) -> None:
    pk = [c.name for c in _pk(table)]
    rest = [c.name for c in table.columns if c.name not in pk]
    src_keys = {tuple(r) for r in src.execute(select(*_pk(table)))}
    extra = [k for k in (tuple(r) for r in dst.execute(select(*_pk(table)))) if k not in src_keys]
    # The target holds only this workspace's tokens (checked first): rows the source no longer has were copied
    # by an interrupted run and removed from the source since (a gc, a deleted run); they go.
    for i in range(0, len(extra), BATCH):
        dst.execute(table.delete().where(tuple_(*_pk(table)).in_(extra[i:i + BATCH])))
    dst.commit()
    statement = target.upsert_statement(table, pk, rest) if rest else None
    batch: list[dict[str, Any]] = []
    for row in src.execute(select(table).order_by(*_pk(table)).execution_options(yield_per=BATCH)).mappings():
        batch.append(_for_insert(row))
        if len(batch) >= BATCH:
            _upsert_batch(dst, table, statement, batch)
            batch = []
    if batch:
        _upsert_batch(dst, table, statement, batch)


def _upsert_batch(dst: Connection, table: Table, statement: Any, rows: list[dict[str, Any]]) -> None:
    if statement is None:  # every column is the key: a present row is already equal
        keys = [c for c in _pk(table)]
        present = {tuple(r) for r in dst.execute(select(*keys).where(
            tuple_(*keys).in_([tuple(r[c.name] for c in keys) for r in rows])))}
        rows = [r for r in rows if tuple(r[c.name] for c in keys) not in present]
        if rows:
            dst.execute(table.insert(), rows)
    else:
        dst.execute(statement, rows)
    dst.commit()


def _fix_sequences(dst: Connection, tables: list[Table]) -> None:
    """Move each serial key's sequence past the copied ids, so the next insert does not collide."""
    for table in tables:
        pk = _pk(table)
        if len(pk) == 1 and isinstance(pk[0].type, Integer) and pk[0].autoincrement in (True, "auto"):
            seq = dst.execute(text("SELECT pg_get_serial_sequence(:t, :c)"),
                              {"t": table.name, "c": pk[0].name}).scalar()
            if seq:
                top = f'(SELECT MAX("{pk[0].name}") FROM "{table.name}")'
                dst.execute(text(f"SELECT setval(:s, COALESCE({top}, 0) + 1, false)"), {"s": seq})
    dst.commit()


def _normal(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, bool):
        return int(value)
    return value


def table_digest(conn: Connection, table: Table) -> tuple[int, str]:
    """(rows, digest) of ``table``: the sum of each row's sha256, values normalised.

    A sum, so the order rows come in does not matter: SQLite and PostgreSQL sort text keys differently.
    """
    total = 0
    count = 0
    for row in conn.execute(select(table).execution_options(yield_per=BATCH)):
        line = json.dumps([_normal(v) for v in row], sort_keys=True, default=str).encode()
        total = (total + int.from_bytes(hashlib.sha256(line).digest(), "big")) % (1 << 256)
        count += 1
    return count, f"{total:064x}"
