"""The SQLite to PostgreSQL copy behind ``workspace migrate``: resumable, verified, and safe to run again after the
source changed between two runs."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import delete, func, select

from mlyard.core.errors import ConflictError, InvalidRequestError
from mlyard.store.db import Database
from mlyard.store.lifecycle.copy import migrate_to_postgres
from mlyard.store.lifecycle.layout import open_workspace
from mlyard.store.schema import ApiToken
from mlyard.store.tracking_schema import Metric, Run
from tests.store.lifecycle_helpers import add_run, make_workspace

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer

pytestmark = pytest.mark.postgres


class Cut(Exception):
    pass


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


def _fill(ws_path: Path) -> None:
    with open_workspace(ws_path) as ws:
        for r in range(3):
            add_run(ws, f"run{r}", artifact=b"x")
        with ws.db.session() as s:
            s.add_all(Metric(run_id=f"run{r}", key="loss", value=1 / (i + 1), timestamp=i, step=i)
                      for r in range(3) for i in range(3000))


def test_an_interrupted_copy_resumes_and_follows_what_the_source_lost_meanwhile(tmp_path: Path, pg_url: str) -> None:
    ws_path = make_workspace(tmp_path)
    _fill(ws_path)
    with open_workspace(ws_path) as ws:
        lines: list[str] = []

        def cut(line: str) -> None:
            lines.append(line)
            if line.startswith("metrics:"):
                raise Cut(line)

        with pytest.raises(Cut):
            migrate_to_postgres(ws, pg_url, cut)
        with ws.db.session() as s:  # the source changes before the second run: a run goes
            s.execute(delete(Run).where(Run.id == "run2"))
        report = migrate_to_postgres(ws, pg_url)
    assert report.tables["metrics"]["rows"] == 6000 and report.tables["runs"]["rows"] == 2
    assert report.tables["metrics"]["copied"] == 0  # copied before the cut, not again
    target = Database(pg_url)
    try:
        with target.session() as s:
            assert sorted(s.scalars(select(Run.id))) == ["run0", "run1"]
            assert s.scalar(select(func.count()).select_from(Metric)) == 6000
            s.add(Metric(run_id="run0", key="loss", value=0.0, timestamp=1, step=99_999))  # the sequence moved on
    finally:
        target.dispose()


def test_a_database_holding_another_workspace_or_a_non_postgres_url_is_refused(tmp_path: Path, pg_url: str) -> None:
    other = Database(pg_url)
    try:
        from mlyard.store.migrate import upgrade

        upgrade(other.engine)
        with other.session() as s:
            s.add(ApiToken(name="admin", token_hash="f" * 64, role="admin"))
    finally:
        other.dispose()
    with open_workspace(make_workspace(tmp_path)) as ws:
        with pytest.raises(ConflictError, match="another workspace's data"):
            migrate_to_postgres(ws, pg_url)
        with pytest.raises(InvalidRequestError, match="must be a postgresql:// URL"):
            migrate_to_postgres(ws, f"sqlite:///{tmp_path / 'x.db'}")
