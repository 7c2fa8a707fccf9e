"""Azure Blob datastores (adlfs, ``abfs://``) against a real Azurite: verified writes that are never visible
half-written, reads, listings, a kill mid-upload, and credentials that never show."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mlyard.core.errors import AlreadyExistsError, ConflictError, InvalidRequestError, NotFoundError, StorageError
from mlyard.store.blobs import DatastoreRegistry
from mlyard.store.datastores import FsspecDatastore
from mlyard.store.db import Database
from mlyard.store.object_stores import blob_endpoint, object_store, open_datastore, redact, scrub
from tests.support.azurite import Azurite

pytestmark = pytest.mark.azurite


def _chunks(data: bytes, size: int = 1 << 16) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(data), size):
            yield data[i:i + size]
    return gen()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def container(azurite: Azurite) -> str:
    return azurite.create_container(f"c{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(azurite: Azurite, container: str) -> FsspecDatastore:
    return open_datastore("blobs", "azure_blob", "", azurite.datastore_spec("blobs", container))


def test_verified_writes_reads_listings_and_deletes(store: FsspecDatastore, azurite: Azurite, container: str) -> None:
    data = os.urandom(9 << 20)  # more than two 4 MiB blocks
    written = asyncio.run(store.write_stream("a/b/big.bin", _chunks(data), _sha(data)))
    assert (written.sha256, written.size) == (_sha(data), len(data))
    with store.open_read("a/b/big.bin") as f:
        assert f.read() == data
    assert store.size("a/b/big.bin") == len(data) and store.size("a/none") is None
    small = store.put_file(__file__, "a/small.py")
    files = list(store.list_files("a"))
    assert [(f.path, f.size) for f in files] == [("a/b/big.bin", len(data)), ("a/small.py", small.size)]
    assert all(f.mtime is not None for f in files)
    assert [(e.name, e.is_dir) for e in store.list_dir("a")] == [("b", True), ("small.py", False)]
    assert azurite.filesystem().cat(f"{container}/a/small.py") == open(__file__, "rb").read()  # adlfs sees the same

    with pytest.raises(ConflictError, match="is a file"):  # nothing below a file
        store.put_file(__file__, "a/small.py/below")
    with pytest.raises(NotFoundError, match="'a/none'"):
        store.open_read("a/none")
    store.delete("a")
    assert list(store.list_files("a")) == [] and store.list_dir("") == []


def test_a_write_that_fails_verification_leaves_nothing_and_never_replaces_old_content(store: FsspecDatastore) -> None:
    data = b"v1" * 1000
    with pytest.raises(InvalidRequestError, match="not the announced"):
        asyncio.run(store.write_stream("x/new.bin", _chunks(os.urandom(5 << 20)), "0" * 64))
    assert store.size("x/new.bin") is None and list(store.list_files("x")) == []

    asyncio.run(store.write_stream("x/kept.bin", _chunks(data), _sha(data)))
    with pytest.raises(InvalidRequestError):
        asyncio.run(store.write_stream("x/kept.bin", _chunks(os.urandom(5 << 20)), "1" * 64))
    with store.open_read("x/kept.bin") as f:
        assert f.read() == data  # the old blob stays whole: the new blocks were never committed


def test_before_commit_can_abandon_a_write(store: FsspecDatastore) -> None:
    def refuse(sha: str) -> None:
        raise ConflictError("no")

    with pytest.raises(ConflictError):
        asyncio.run(store.write_stream("y/refused.bin", _chunks(b"abc"), None, before_commit=refuse))
    assert store.size("y/refused.bin") is None


WRITER = """
import json, os, sys
from mlyard.store.object_stores import open_datastore
spec = json.loads(os.environ["SPEC"])
store = open_datastore(spec["name"], spec["type"], "", spec)
with store._staged("killed/big.bin") as staging:
    for _ in range(3):
        staging.write(os.urandom(4 << 20))   # full blocks: each staged on the service, none committed
    print("STAGED" if staging.size == 12 << 20 else "?", flush=True)
    sys.stdin.read()                         # wait to be killed
"""


def test_a_kill_during_an_upload_leaves_no_partial_blob_visible(
        store: FsspecDatastore, azurite: Azurite, container: str) -> None:
    spec = azurite.datastore_spec("blobs", container)
    proc = subprocess.Popen([sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "SPEC": json.dumps(spec)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == b"STAGED", proc.stderr.read() if proc.stderr else b""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    fs = azurite.filesystem()
    assert fs.find(container) == []  # no blob at all: not under its name, not under a temporary one
    assert store.size("killed/big.bin") is None and list(store.list_files("killed")) == []


def test_credentials_never_show(azurite: Azurite, container: str) -> None:
    spec = azurite.datastore_spec("blobs", container)
    assert redact(spec)["credentials"] == {"account_key": "***"} and spec["credentials"]["account_key"] == azurite.key
    wrong = azurite.key[:-8] + "AAAAAAA="
    bad = open_datastore("bad", "azure_blob", "", azurite.datastore_spec("bad", container, account_key=wrong))
    with pytest.raises(StorageError) as info:
        bad.check_reachable()
    assert "authenticate" in str(info.value) and wrong not in str(info.value) and azurite.key not in str(info.value)
    sas = "?sv=2024-01-01&se=2030-01-01&sp=rl&sig=SECRETSIGNATURE%3D"
    assert "SECRETSIGNATURE" not in scrub(f"GET https://a/b?{sas[1:]} failed", ())
    assert "AccountKey=***" in scrub(f"AccountKey={azurite.key};", ())
    found = object_store(azurite.datastore_spec("viasas", container, sas_token=sas))
    assert found.options["connection_string"].startswith(f"BlobEndpoint=http://{azurite.endpoint}/{azurite.account};")


@pytest.mark.parametrize(("creds", "message"), [
    ({}, "no credentials"),
    ({"account_key": "k", "sas_token": "s"}, "both"),
    ({"client_secret": "s"}, "credentials.client_secret is not supported"),
])
def test_credentials_must_be_a_key_or_a_sas(creds: dict[str, str], message: str) -> None:
    spec: dict[str, Any] = {"name": "x", "type": "azure_blob", "account_name": "acct", "container_name": "data",
                            "credentials": creds}
    with pytest.raises(InvalidRequestError, match=message) as info:
        object_store(spec)
    assert "'s'" not in str(info.value) and "'k'" not in str(info.value)


def test_blob_endpoints() -> None:
    spec = {"name": "x", "account_name": "acct"}
    assert blob_endpoint(spec) == "https://acct.blob.core.windows.net"
    assert blob_endpoint({**spec, "endpoint": "core.chinacloudapi.cn"}) == "https://acct.blob.core.chinacloudapi.cn"
    assert blob_endpoint({**spec, "endpoint": "127.0.0.1:10000", "protocol": "http"}) == "http://127.0.0.1:10000/acct"
    with pytest.raises(InvalidRequestError, match="endpoint"):
        blob_endpoint({**spec, "endpoint": "evil.com/x?y"})
    with pytest.raises(InvalidRequestError, match="protocol"):
        blob_endpoint({**spec, "protocol": "ftp"})


def test_the_registry_records_a_reachable_store_and_moves_the_default(
        db: Database, azurite: Azurite, container: str, tmp_path: Any) -> None:
    registry = DatastoreRegistry(db)
    registry.ensure_default("workspaceblobstore", str(tmp_path / "local"))
    with pytest.raises(NotFoundError, match="does not exist"):
        registry.create(azurite.datastore_spec("missing", "nosuchcontainer"))
    wrong = azurite.datastore_spec("wrongkey", container, account_key=azurite.key[:-8] + "AAAAAAA=")
    with pytest.raises(InvalidRequestError, match="authenticate"):
        registry.create(wrong)
    with pytest.raises(InvalidRequestError, match="type local is not created"):
        registry.create({"name": "mine", "type": "local", "path": "/etc"})
    assert [r.name for r in registry.list_rows()] == ["workspaceblobstore"]  # nothing half-created

    row = registry.create(azurite.datastore_spec("blobs", container), make_default=True)
    assert (row.root, row.is_default) == (f"abfs://{container}", True)
    assert registry.default_name() == "blobs"
    with pytest.raises(AlreadyExistsError):
        registry.create(azurite.datastore_spec("blobs", container))
    assert registry.get("blobs").commits_on_close
