"""The asset service on a real store (SQLite and PostgreSQL): versions are immutable."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import anyio
import pytest

from mlyard.assets.service import AssetService, FileEntry
from mlyard.core.errors import ConflictError, InvalidRequestError, InvalidSpecError, NotFoundError
from mlyard.core.hashing import sha256_bytes, tree_hash
from mlyard.store.blobs import BlobService, DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.migrate import current_revision, head_revision, upgrade


@pytest.fixture
def store(database_url: str, tmp_path: Path) -> Iterator[tuple[AssetService, BlobService]]:
    db = Database(database_url)
    upgrade(db.engine)
    registry = DatastoreRegistry(db)
    registry.ensure_default("workspaceblobstore", str(tmp_path / "artifacts"))
    yield AssetService(db, registry), BlobService(db, registry)
    db.dispose()


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _upload(blobs: BlobService, name: str, content: bytes) -> tuple[str, list[FileEntry]]:
    """Upload one file the way the client does; returns the asset path and its manifest."""
    entry = FileEntry(name, sha256_bytes(content), len(content))
    folder = f"LocalUpload/{tree_hash([(entry.path, entry.sha256, entry.size)])}"
    anyio.run(blobs.upload, "workspaceblobstore", f"{folder}/{name}", _one(content), entry.sha256)
    return f"azureml://datastores/workspaceblobstore/paths/{folder}/{name}", [entry]


def test_migrations_reach_head(database_url: str) -> None:
    db = Database(database_url)
    upgrade(db.engine)
    upgrade(db.engine)  # idempotent
    assert current_revision(db.engine) == head_revision()
    db.dispose()


def test_create_show_and_latest(store: tuple[AssetService, BlobService]) -> None:
    assets, blobs = store
    path, files = _upload(blobs, "a.csv", b"x,y\n1,2\n")
    row, created = assets.create("data", {"name": "d", "type": "uri_file", "path": path}, files, "alice")
    assert created and row.version == "1" and row.created_by == "alice"
    assert [(f.path, f.size) for f in row.files] == [("a.csv", 8)]
    assert assets.get("data", "d", label="latest").version == "1"
    assert assets.resolve("data", "azureml:d:1").id == row.id
    assert assets.resolve("data", "d@latest").id == row.id


def test_identical_create_is_a_noop_and_different_content_conflicts(store: tuple[AssetService, BlobService]) -> None:
    assets, blobs = store
    path, files = _upload(blobs, "a.csv", b"1")
    spec = {"name": "d", "version": "3", "type": "uri_file", "path": path}
    first, created = assets.create("data", spec, files, "u")
    again, created_again = assets.create("data", spec, files, "u")
    assert created and not created_again and again.id == first.id
    with pytest.raises(ConflictError, match="d:3 already exists with different content.*description"):
        assets.create("data", {**spec, "description": "changed"}, files, "u")


def test_auto_version_increments_and_skips_identical(store: tuple[AssetService, BlobService]) -> None:
    assets, blobs = store
    p1, f1 = _upload(blobs, "a.csv", b"1")
    p2, f2 = _upload(blobs, "a.csv", b"2")
    assert assets.create("data", {"name": "d", "path": p1, "type": "uri_file"}, f1, "u")[0].version == "1"
    assert assets.create("data", {"name": "d", "path": p1, "type": "uri_file"}, f1, "u") [1] is False
    assert assets.create("data", {"name": "d", "path": p2, "type": "uri_file"}, f2, "u")[0].version == "2"
    assert assets.create("data", {"name": "d", "version": "10", "path": p1, "type": "uri_file"}, f1, "u")[1]
    assert assets.create("data", {"name": "d", "path": p2, "type": "uri_folder"}, f2, "u")[0].version == "11"


def test_files_must_have_been_uploaded(store: tuple[AssetService, BlobService]) -> None:
    assets, _ = store
    fake = FileEntry("a.csv", "0" * 64, 3)
    folder = tree_hash([(fake.path, fake.sha256, fake.size)])
    path = f"azureml://datastores/workspaceblobstore/paths/LocalUpload/{folder}/a.csv"
    with pytest.raises(InvalidRequestError, match="was not uploaded"):
        assets.create("data", {"name": "d", "path": path, "type": "uri_file"}, [fake], "u")
    assert assets.list("data") == []


def test_local_paths_are_refused_by_the_server(store: tuple[AssetService, BlobService]) -> None:
    assets, _ = store
    with pytest.raises(InvalidSpecError, match="local path"):
        assets.create("data", {"name": "d", "path": "/etc/passwd", "type": "uri_file"}, [], "u")
    assert assets.list("data") == []


def test_mlflow_model_needs_an_mlmodel_file(store: tuple[AssetService, BlobService]) -> None:
    assets, blobs = store
    path, files = _upload(blobs, "model.pkl", b"pickle")
    with pytest.raises(InvalidRequestError, match="MLmodel"):
        assets.create("model", {"name": "m", "type": "mlflow_model", "path": path}, files, "u")


def test_archive_hides_from_latest_and_restore_brings_back(store: tuple[AssetService, BlobService]) -> None:
    assets, blobs = store
    p1, f1 = _upload(blobs, "a", b"1")
    p2, f2 = _upload(blobs, "a", b"2")
    assets.create("data", {"name": "d", "path": p1, "type": "uri_file"}, f1, "u")
    assets.create("data", {"name": "d", "path": p2, "type": "uri_file"}, f2, "u")
    assets.set_archived("data", "d", "2", True)
    assert assets.get("data", "d").version == "1"
    assert [r.version for r in assets.list("data", "d")] == ["1"]
    assert [r.version for r in assets.list("data", "d", include_archived=True)] == ["2", "1"]
    assets.set_archived("data", "d", None, True)
    with pytest.raises(NotFoundError):
        assets.get("data", "d")
    assets.set_archived("data", "d", None, False)
    assert assets.get("data", "d").version == "2"


def test_concurrent_auto_versions_are_distinct(store: tuple[AssetService, BlobService]) -> None:
    assets, blobs = store
    uploads = [_upload(blobs, "a", str(i).encode()) for i in range(8)]

    def create(i: int) -> str:
        path, files = uploads[i]
        return assets.create("data", {"name": "race", "path": path, "type": "uri_file"}, files, "u")[0].version

    with ThreadPoolExecutor(8) as pool:
        versions = sorted(pool.map(create, range(8)), key=int)
    assert versions == [str(i) for i in range(1, 9)]


def test_unknown_asset_names_what_to_do(store: tuple[AssetService, BlobService]) -> None:
    assets, _ = store
    with pytest.raises(NotFoundError, match=r"data nope@latest not found: list what exists"):
        assets.get("data", "nope")
