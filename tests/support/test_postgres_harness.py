"""The PostgreSQL test harness itself: a real server, isolated databases, nothing left behind."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import psutil  # type: ignore[import-untyped]
import psycopg
import pytest
import sqlalchemy as sa

from tests.support import postgres as pg
from tests.support.postgres import PostgresServer

_meta = sa.MetaData()
_items = sa.Table("items", _meta, sa.Column("id", sa.Integer, primary_key=True), sa.Column("name", sa.String(50)))


def _roundtrip(url: str, names: list[str]) -> list[str]:
    """Create ``items`` in ``url``, insert ``names`` and read them back."""
    engine = sa.create_engine(url)
    try:
        _meta.create_all(engine)
        with engine.begin() as conn:
            conn.execute(_items.insert(), [{"name": n} for n in names])
        with engine.connect() as conn:
            return list(conn.scalars(sa.select(_items.c.name).order_by(_items.c.id)))
    finally:
        engine.dispose()


def test_server_is_running_postgres_15_on_loopback(postgres_server: PostgresServer) -> None:
    with psycopg.connect(postgres_server.conninfo()) as conn:
        assert int(conn.execute("SHOW server_version_num").fetchone()[0]) >= 150000  # type: ignore[index]
        assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
        assert conn.execute("SHOW fsync").fetchone() == ("off",)
    assert postgres_server.startup_seconds < 30


def test_create_database_round_trips_rows(postgres_server: PostgresServer) -> None:
    url = postgres_server.create_database("harness_roundtrip")
    try:
        assert url == f"postgresql+psycopg://mlyard@127.0.0.1:{postgres_server.port}/harness_roundtrip"
        assert _roundtrip(url, ["a", "b", "c"]) == ["a", "b", "c"]
    finally:
        postgres_server.drop_database("harness_roundtrip")


def test_databases_are_isolated_and_drop_closes_connections(postgres_server: PostgresServer) -> None:
    url_a, url_b = postgres_server.create_database("harness_a"), postgres_server.create_database("harness_b")
    assert _roundtrip(url_a, ["only-in-a"]) == ["only-in-a"]
    engine_b = sa.create_engine(url_b)
    assert sa.inspect(engine_b).get_table_names() == []
    engine_b.dispose()
    assert _roundtrip(url_b, ["b1", "b2"]) == ["b1", "b2"]
    assert _roundtrip(url_a, ["a2"]) == ["only-in-a", "a2"]
    engine_a = sa.create_engine(url_a)
    left_open = engine_a.connect()  # a test that forgets to close must not block the drop
    postgres_server.drop_database("harness_a")
    postgres_server.drop_database("harness_b")
    with psycopg.connect(postgres_server.conninfo()) as conn:
        rows = conn.execute("SELECT datname FROM pg_database WHERE datname LIKE 'harness_%'").fetchall()
    assert rows == []
    left_open.invalidate()
    engine_a.dispose()


def test_invalid_database_name_is_refused(postgres_server: PostgresServer) -> None:
    with pytest.raises(ValueError):
        postgres_server.create_database('x"; DROP DATABASE postgres; --')


@pytest.fixture
def busy_port(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Make the harness's first port pick one that is already taken."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = int(sock.getsockname()[1])
        picks = iter([taken])
        real = pg.free_port
        monkeypatch.setattr(pg, "free_port", lambda: next(picks, None) or real())
        yield taken


def test_port_collision_retries_and_stop_leaves_nothing(postgres_server: PostgresServer, busy_port: int) -> None:
    """A second server (``postgres_server`` only brings the skip-when-missing logic)."""
    server = PostgresServer().start()
    assert server.port != busy_port and server.proc is not None and server.base is not None
    base, data_dir, postmaster = server.base, str(server.data_dir), psutil.Process(server.proc.pid)
    pids = [postmaster.pid] + [c.pid for c in postmaster.children(recursive=True)]
    assert len(pids) > 1  # the postmaster and its helpers
    server.stop()
    server.stop()  # idempotent
    assert not base.exists()
    assert not any(psutil.pid_exists(pid) for pid in pids)
    for proc in psutil.process_iter(["cmdline"]):
        assert data_dir not in " ".join(proc.info["cmdline"] or [])


def test_database_url_round_trips_a_row(database_url: str, request: pytest.FixtureRequest) -> None:
    expected = request.node.callspec.params["database_url"]
    assert sa.make_url(database_url).get_backend_name() == expected
    assert _roundtrip(database_url, ["hello"]) == ["hello"]
