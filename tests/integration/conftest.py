"""Fixtures that start real mlyard servers on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess, free_port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server shared by the tests of one module (each test uses its own asset names)."""
    ws = tmp_path_factory.mktemp("ws") / "workspace"
    proc = ServerProcess(ws, free_port()).init().start()
    yield proc
    proc.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server of its own for a test that needs an empty workspace."""
    proc = ServerProcess(tmp_path / "workspace", free_port()).init().start()
    yield proc
    proc.stop()
