"""Suite-wide fixtures: every store test runs against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlyard.store.db import Database
from mlyard.store.migrate import upgrade
from tests.support.azurite import MISSING as AZURITE_MISSING
from tests.support.azurite import Azurite, azurite_installed
from tests.support.postgres import PostgresServer, find_postgres_bin
from tests.support.s3 import MISSING as S3_MISSING
from tests.support.s3 import S3Server, s3_installed

PG_MISSING = ("PostgreSQL 15 is not installed: run 'make postgres' (scripts/install-postgres.sh); "
              "PostgreSQL store tests skipped")
_PG_SKIPPED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: end-to-end tests that take more than a few seconds; run in CI")
    config.addinivalue_line("markers", "postgres: tests that run against the session's real PostgreSQL server")
    config.addinivalue_line("markers", "azurite: tests against a real Azurite (Azure Storage emulator; make azurite)")
    config.addinivalue_line("markers", "s3: tests against a real S3 server (moto's server mode on loopback)")
    config.addinivalue_line("markers", "ray: tests that start a local Ray cluster (the ray extra)")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    if config.stash.get(_PG_SKIPPED, False):
        terminalreporter.write_sep("!", PG_MISSING, red=True, bold=True)


@pytest.fixture(scope="session")
def postgres_server(request: pytest.FixtureRequest) -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; skipped (loudly) only when PostgreSQL is not installed."""
    if find_postgres_bin() is None:
        request.config.stash[_PG_SKIPPED] = True
        pytest.skip(PG_MISSING)
    server = PostgresServer().start()  # a failure here is an error, not a skip
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL to an empty database: a SQLite file, or a fresh database on the session server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'mlyard.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        server.drop_database(name)


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """An empty, migrated store on each backend."""
    database = Database(database_url)
    upgrade(database.engine)
    yield database
    database.dispose()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """One Azurite blob service for the session (made-up account and key); skipped when not installed."""
    if not azurite_installed():
        pytest.skip(AZURITE_MISSING)
    pytest.importorskip("adlfs", reason="adlfs is not installed: pip install -e '.[dev]'")
    server = Azurite().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One S3 server (moto, IAM authentication on, a made-up key) for the session; skipped when not installed."""
    if not s3_installed():
        pytest.skip(S3_MISSING)
    server = S3Server().start()
    try:
        yield server
    finally:
        server.stop()
