"""What a data input *is* for step reuse, on both stores: the files at its path now, by content.

A datastore path and an asset registered by that path are fingerprinted by the files there when the
job resolves them: unchanged files give the same identity, a file rewritten by hand (even at its old
size, behind the blob record mlyard kept) gives another, and a path that holds nothing is refused.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest

from mlyard.assets.service import AssetService
from mlyard.core.errors import NotFoundError
from mlyard.core.hashing import sha256_bytes
from mlyard.jobs.data import JobData
from mlyard.store.blobs import BlobService, DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.migrate import upgrade

DS = "workspaceblobstore"
URI = f"azureml://datastores/{DS}/paths"


@pytest.fixture
def parts(database_url: str, tmp_path: Path) -> Iterator[tuple[JobData, AssetService, BlobService, Path]]:
    db = Database(database_url)
    upgrade(db.engine)
    registry = DatastoreRegistry(db)
    root = tmp_path / "artifacts"
    registry.ensure_default(DS, str(root))
    assets = AssetService(db, registry)
    yield JobData(db, registry, assets), assets, BlobService(db, registry), root
    db.dispose()


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _put(blobs: BlobService, path: str, data: bytes) -> None:
    anyio.run(lambda: blobs.upload(DS, path, _one(data), sha256_bytes(data)))


def _rewrite(file: Path, text: str) -> None:
    """Change a file by hand, its modification time moving on as a real edit's would."""
    before = file.stat().st_mtime_ns
    file.write_text(text)
    os.utime(file, ns=(before, max(before + 1_000_000, file.stat().st_mtime_ns)))


def test_identity_follows_the_files_at_the_path(parts: tuple[JobData, AssetService, BlobService, Path]) -> None:
    data, assets, blobs, root = parts
    _put(blobs, "shared/train/rows.csv", b"a,b\n1,2\n")
    _put(blobs, "shared/train/more/extra.csv", b"a,b\n5,6\n")
    assets.create("data", {"name": "train", "type": "uri_folder", "path": f"{URI}/shared/train/"}, [], "alice")

    direct = data.resolve(f"{URI}/shared/train/", "uri_folder")
    by_asset = data.resolve("azureml:train:1", "uri_folder")
    assert direct.identity.startswith("tree:") and by_asset.identity == direct.identity
    assert by_asset.asset == "train:1"
    assert data.resolve("azureml:train@latest", "uri_folder").identity == direct.identity  # nothing changed

    _rewrite(root / "shared" / "train" / "rows.csv", "a,b\n1,3\n")  # same size as the recorded bytes
    edited = data.resolve("azureml:train:1", "uri_folder").identity
    assert edited != direct.identity
    assert data.resolve(f"{URI}/shared/train", "uri_folder").identity == edited

    (root / "shared" / "train" / "new.csv").write_text("a,b\n7,8\n")  # a file mlyard never recorded
    assert data.resolve("azureml:train:1", "uri_folder").identity not in (edited, direct.identity)


def test_a_path_that_holds_nothing_is_refused_naming_the_asset(
        parts: tuple[JobData, AssetService, BlobService, Path]) -> None:
    data, assets, _, root = parts
    with pytest.raises(NotFoundError, match=f"{URI}/empty/here"):
        data.resolve(f"{URI}/empty/here", "uri_folder")
    warnings: list[str] = []
    assets.create("data", {"name": "later", "type": "uri_folder", "path": f"{URI}/later/"}, [], "alice",
                  allow_missing_path=True, warnings=warnings)
    assert len(warnings) == 1 and f"{URI}/later/" in warnings[0]
    (root / "later").mkdir(parents=True)  # a folder, but no file in it
    with pytest.raises(NotFoundError, match=r"data asset later:1 holds no files.*later/"):
        data.resolve("azureml:later:1", "uri_folder")
