"""Uploads on a real store (SQLite and PostgreSQL): what may be replaced at a datastore path, and what never is."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from mlyard.assets.service import AssetService, FileEntry
from mlyard.core.errors import ConflictError
from mlyard.core.hashing import sha256_bytes
from mlyard.store.blobs import BlobService, DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.migrate import upgrade

DS = "workspaceblobstore"


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[tuple[AssetService, BlobService, Path]]:
    db = Database(database_url)
    upgrade(db.engine)
    registry = DatastoreRegistry(db)
    root = tmp_path / "artifacts"
    registry.ensure_default(DS, str(root))
    yield AssetService(db, registry), BlobService(db, registry), root
    db.dispose()


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _put(blobs: BlobService, path: str, data: bytes, *, overwrite: bool = False) -> bool:
    return anyio.run(lambda: blobs.upload(DS, path, _one(data), sha256_bytes(data), overwrite=overwrite))[1]


def test_other_content_at_a_path_is_replaced_only_when_asked(store: tuple[AssetService, BlobService, Path]) -> None:
    _, blobs, root = store
    assert _put(blobs, "data/rows.csv", b"a,b\n1,2\n")
    assert not _put(blobs, "data/rows.csv", b"a,b\n1,2\n")  # the same content: a no-op
    with pytest.raises(ConflictError, match="'data/rows.csv'.*--overwrite"):
        _put(blobs, "data/rows.csv", b"a,b\n3,4\n")
    assert _put(blobs, "data/rows.csv", b"a,b\n3,4\n", overwrite=True)
    assert blobs.stat(DS, "data/rows.csv").sha256 == sha256_bytes(b"a,b\n3,4\n")

    (root / "data" / "by-hand.csv").write_bytes(b"copied in by hand")  # a file mlyard never recorded
    with pytest.raises(ConflictError, match="by-hand.csv"):
        _put(blobs, "data/by-hand.csv", b"other bytes")
    assert (root / "data" / "by-hand.csv").read_bytes() == b"copied in by hand"


def test_a_registered_versions_files_are_never_replaced(store: tuple[AssetService, BlobService, Path]) -> None:
    assets, blobs, root = store
    _put(blobs, "outputs/run1/model/weights.bin", b"weights")
    entry = FileEntry("model/weights.bin", sha256_bytes(b"weights"), 7)
    assets.create("model", {"name": "m", "type": "custom_model",
                            "path": f"azureml://datastores/{DS}/paths/outputs/run1/model"}, [entry], "alice")
    with pytest.raises(ConflictError, match="model m:1"):
        _put(blobs, "outputs/run1/model/weights.bin", b"other weights", overwrite=True)
    assert (root / "outputs" / "run1" / "model" / "weights.bin").read_bytes() == b"weights"
    assert _put(blobs, "outputs/run1/model/notes.txt", b"a file of no version", overwrite=True)
