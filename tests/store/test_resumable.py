"""Partial uploads on a real store (SQLite and PostgreSQL) and a local datastore: what a sender may and may not do
when it goes on with a file, and what is left when the whole content turns out wrong."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from mlyard.core.errors import ConflictError, InvalidRequestError, NotFoundError
from mlyard.core.hashing import sha256_bytes
from mlyard.store.blobs import BlobService, DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.migrate import upgrade
from mlyard.store.resumable import Received, ResumableUploads

DS = "workspaceblobstore"
DATA = os.urandom(300_000)


@pytest.fixture
def uploads(database_url: str, tmp_path: Path) -> Iterator[tuple[ResumableUploads, Path]]:
    db = Database(database_url)
    upgrade(db.engine)
    registry = DatastoreRegistry(db)
    registry.ensure_default(DS, str(tmp_path / "artifacts"))
    yield ResumableUploads(tmp_path / "uploads", registry, BlobService(db, registry)), tmp_path
    db.dispose()


async def _body(data: bytes) -> AsyncIterator[bytes]:
    for i in range(0, len(data), 65536):
        yield data[i:i + 65536]


def _send(up: ResumableUploads, key: str, offset: int, data: bytes) -> Received:
    return anyio.run(lambda: up.receive(DS, key, offset, _body(data)))


def test_parts_add_up_and_the_file_is_written_once_whole(uploads: tuple[ResumableUploads, Path]) -> None:
    up, root = uploads
    first = up.begin(DS, "big/file.bin", sha256_bytes(DATA), len(DATA))
    assert first.held == 0
    with pytest.raises(InvalidRequestError, match="ended at byte 100000 of 300000"):
        _send(up, first.key, 0, DATA[:100_000])  # a body that ends early: kept, and said so
    again = up.begin(DS, "big/file.bin", sha256_bytes(DATA), len(DATA))
    assert (again.key, again.held) == (first.key, 100_000)
    with pytest.raises(ConflictError, match="holds 100000 bytes"):
        _send(up, again.key, 150_000, DATA[150_000:])
    with pytest.raises(InvalidRequestError, match="longer than its announced"):
        _send(up, again.key, 100_000, DATA[100_000:] + b"more")
    got = _send(up, again.key, 100_000, DATA[100_000:])
    assert (got.offset, got.received, got.created, got.written.sha256) == (100_000, 200_000, True,
                                                                            sha256_bytes(DATA))
    assert (root / "artifacts" / "big" / "file.bin").read_bytes() == DATA
    assert not list((root / "uploads").iterdir())
    with pytest.raises(NotFoundError, match="no partial upload"):
        _send(up, again.key, 0, DATA)


def test_a_whole_content_that_does_not_match_is_dropped(uploads: tuple[ResumableUploads, Path]) -> None:
    up, root = uploads
    started = up.begin(DS, "big/wrong.bin", sha256_bytes(DATA), len(DATA))
    with pytest.raises(InvalidRequestError, match="sha256"):
        _send(up, started.key, 0, DATA[:-1] + b"\0")
    assert not (root / "artifacts" / "big" / "wrong.bin").exists()
    assert not list((root / "uploads").iterdir())  # nothing to go on from: the next try starts at byte 0
    assert up.begin(DS, "big/wrong.bin", sha256_bytes(DATA), len(DATA)).held == 0


def test_refusals_name_what_is_wrong(uploads: tuple[ResumableUploads, Path]) -> None:
    up, _ = uploads
    with pytest.raises(NotFoundError, match="nosuchstore"):
        up.begin("nosuchstore", "a.bin", sha256_bytes(DATA), len(DATA))
    with pytest.raises(InvalidRequestError, match="invalid datastore path"):
        up.begin(DS, "../a.bin", sha256_bytes(DATA), len(DATA))
    started = up.begin(DS, "a.bin", sha256_bytes(DATA), len(DATA))
    with pytest.raises(NotFoundError, match="other"):
        anyio.run(lambda: up.receive("other", started.key, 0, _body(DATA)))
