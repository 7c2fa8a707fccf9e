"""Many writes into one datastore at once, as parallel uploads make them, on a local folder and on Azurite: each is
atomic and verified on its own, the same file written twice at once ends whole, and a write that fails
verification among them leaves nothing while the others land."""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mlyard.core.errors import InvalidRequestError
from mlyard.store.datastores import FsspecDatastore, WrittenFile
from mlyard.store.object_stores import open_datastore


@pytest.fixture(params=["local", pytest.param("azurite", marks=pytest.mark.azurite)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> FsspecDatastore:
    if request.param == "local":
        return FsspecDatastore("workspaceblobstore", str(tmp_path / "store"))
    azurite = request.getfixturevalue("azurite")
    container = azurite.create_container(f"c{uuid.uuid4().hex[:12]}")
    return open_datastore("blobs", "azure_blob", "", azurite.datastore_spec("blobs", container))


async def _chunks(data: bytes, size: int = 1 << 16) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        await asyncio.sleep(0)  # let the other writes interleave, as requests arriving together do
        yield data[i:i + size]


def test_writes_at_once_are_each_atomic_and_verified(store: FsspecDatastore) -> None:
    files = {f"set/part{i % 3}/f{i:02d}.bin": os.urandom((5 << 20) if i == 4 else 3000 + i) for i in range(16)}
    shared = os.urandom(200_000)
    good = os.urandom(70_000)

    async def write_all() -> list[WrittenFile | BaseException]:
        writes = [store.write_stream(p, _chunks(d), hashlib.sha256(d).hexdigest()) for p, d in files.items()]
        writes += [store.write_stream("set/shared.bin", _chunks(shared), hashlib.sha256(shared).hexdigest())
                   for _ in range(2)]
        writes.append(store.write_stream("set/bad.bin", _chunks(good[:-1] + b"x"), hashlib.sha256(good).hexdigest()))
        return await asyncio.gather(*writes, return_exceptions=True)

    results = asyncio.run(write_all())
    assert isinstance(results[-1], InvalidRequestError) and "set/bad.bin" in results[-1].message
    assert not [r for r in results[:-1] if isinstance(r, BaseException)]
    for path, data in {**files, "set/shared.bin": shared}.items():
        with store.open_read(path) as f:
            assert f.read() == data, path
    listed = {f.path for f in store.list_files("set")}
    assert listed == {*files, "set/shared.bin"}  # no bad.bin, no temporary names
    if store.is_local:
        assert not [p for p in Path(store.root).rglob("*") if p.name.startswith(".mlyard-tmp-")]
