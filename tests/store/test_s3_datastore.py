"""S3 datastores (s3fs, ``s3://``) against a real S3 server (moto's server mode on loopback, IAM authentication on):
verified multipart writes that are never visible half-written, reads, listings, a kill mid-upload, validation that
names the field, and credentials that never show."""

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
from mlyard.store.object_stores import S3_BLOCK_SIZE, object_store, open_datastore, redact, scrub
from tests.support.s3 import S3Server

pytestmark = pytest.mark.s3


def _chunks(data: bytes, size: int = 1 << 16) -> AsyncIterator[bytes]:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(0, len(data), size):
            yield data[i:i + size]
    return gen()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def bucket(s3_server: S3Server) -> str:
    return s3_server.create_bucket(f"b-{uuid.uuid4().hex[:12]}")


@pytest.fixture
def store(s3_server: S3Server, bucket: str) -> FsspecDatastore:
    return open_datastore("objects", "s3", "", s3_server.datastore_spec("objects", bucket))


def test_verified_multipart_writes_reads_listings_and_deletes(
        store: FsspecDatastore, s3_server: S3Server, bucket: str) -> None:
    data = os.urandom(2 * S3_BLOCK_SIZE + (3 << 20))  # three parts of a multipart upload
    written = asyncio.run(store.write_stream("a/b/big.bin", _chunks(data), _sha(data)))
    assert (written.sha256, written.size) == (_sha(data), len(data))
    head = s3_server.client().head_object(Bucket=bucket, Key="a/b/big.bin")
    assert head["ContentLength"] == len(data) and head["ETag"].strip('"').endswith("-3")  # completed from 3 parts
    with store.open_read("a/b/big.bin") as f:
        assert f.read() == data
    assert store.size("a/b/big.bin") == len(data) and store.size("a/none") is None
    small = store.put_file(__file__, "a/small.py")  # below one part: a single PUT at close
    files = list(store.list_files("a"))
    assert [(f.path, f.size) for f in files] == [("a/b/big.bin", len(data)), ("a/small.py", small.size)]
    assert all(f.mtime is not None for f in files)
    assert [(e.name, e.is_dir) for e in store.list_dir("a")] == [("b", True), ("small.py", False)]
    body = s3_server.client().get_object(Bucket=bucket, Key="a/small.py")["Body"].read()
    assert body == open(__file__, "rb").read()  # boto3 sees the same
    copied = store.copy_file("a/small.py", "c/copy.py")
    assert copied.sha256 == small.sha256

    with pytest.raises(ConflictError, match="is a file"):  # nothing below a file
        store.put_file(__file__, "a/small.py/below")
    with pytest.raises(NotFoundError, match="'a/none'"):
        store.open_read("a/none")
    store.delete("a")
    store.delete("c")
    assert list(store.list_files("a")) == [] and store.list_dir("") == [] and s3_server.keys(bucket) == []
    assert s3_server.uploads(bucket) == []


def test_a_write_that_fails_verification_leaves_nothing_and_never_replaces_old_content(
        store: FsspecDatastore, s3_server: S3Server, bucket: str) -> None:
    big = os.urandom(S3_BLOCK_SIZE + (1 << 20))  # one part sent before the hash is known
    with pytest.raises(InvalidRequestError, match="not the announced"):
        asyncio.run(store.write_stream("x/new.bin", _chunks(big), "0" * 64))
    assert store.size("x/new.bin") is None and s3_server.keys(bucket) == []
    assert s3_server.uploads(bucket) == []  # the multipart upload was aborted, its part dropped

    data = b"v1" * 1000
    asyncio.run(store.write_stream("x/kept.bin", _chunks(data), _sha(data)))
    with pytest.raises(InvalidRequestError):
        asyncio.run(store.write_stream("x/kept.bin", _chunks(big), "1" * 64))
    with store.open_read("x/kept.bin") as f:
        assert f.read() == data  # the old object stays whole: the upload was never completed
    assert s3_server.uploads(bucket) == []


def test_before_commit_can_abandon_a_write(store: FsspecDatastore, bucket: str, s3_server: S3Server) -> None:
    def refuse(sha: str) -> None:
        raise ConflictError("no")

    with pytest.raises(ConflictError):
        asyncio.run(store.write_stream("y/refused.bin", _chunks(b"abc"), None, before_commit=refuse))
    assert store.size("y/refused.bin") is None and s3_server.keys(bucket) == []


WRITER = """
import json, os, sys
from mlyard.store.object_stores import S3_BLOCK_SIZE, open_datastore
spec = json.loads(os.environ["SPEC"])
store = open_datastore(spec["name"], spec["type"], "", spec)
with store._staged("killed/big.bin") as staging:
    for _ in range(2 * S3_BLOCK_SIZE // (4 << 20) + 1):
        staging.write(os.urandom(4 << 20))   # two full parts sent to the service, the upload not completed
    print("SENT" if staging.size > 2 * S3_BLOCK_SIZE else "?", flush=True)
    sys.stdin.read()                         # wait to be killed
"""


def test_a_kill_during_an_upload_leaves_no_object_visible(
        store: FsspecDatastore, s3_server: S3Server, bucket: str) -> None:
    spec = s3_server.datastore_spec("objects", bucket)
    proc = subprocess.Popen([sys.executable, "-c", WRITER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "SPEC": json.dumps(spec)})
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == b"SENT", proc.stderr.read() if proc.stderr else b""
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert s3_server.uploads(bucket) == ["killed/big.bin"]  # its parts are on the server, in an open upload
    assert s3_server.keys(bucket) == []  # but no object at all: not under its name, not under a temporary one
    assert store.size("killed/big.bin") is None and list(store.list_files("killed")) == []


def test_a_prefix_roots_the_datastore_inside_the_bucket(s3_server: S3Server, bucket: str) -> None:
    spec = {**s3_server.datastore_spec("inside", bucket), "prefix": "/teams/ml/"}
    store = open_datastore("inside", "s3", "", spec)
    assert object_store(spec).root == f"s3://{bucket}/teams/ml"
    store.check_reachable()  # the prefix holds nothing yet: its bucket answers
    store.put_file(__file__, "code/t.py")
    assert s3_server.keys(bucket) == ["teams/ml/code/t.py"]
    assert [f.path for f in store.list_files("code")] == ["code/t.py"]
    store.check_reachable()


def test_credentials_never_show(s3_server: S3Server, bucket: str) -> None:
    spec = s3_server.datastore_spec("objects", bucket)
    spec["credentials"]["session_token"] = "TOKENVALUE"
    assert redact(spec)["credentials"] == {"access_key_id": "***", "secret_access_key": "***", "session_token": "***"}
    assert spec["credentials"]["secret_access_key"] == s3_server.secret_access_key
    assert object_store(spec).secrets == (s3_server.access_key_id, s3_server.secret_access_key, "TOKENVALUE")

    wrong = "W" * 40
    bad = open_datastore("bad", "s3", "", s3_server.datastore_spec(
        "bad", bucket, access_key_id=s3_server.access_key_id, secret_access_key=wrong))
    with pytest.raises(StorageError) as info:
        bad.check_reachable()
    assert "signature" in str(info.value) and wrong not in str(info.value)
    assert s3_server.secret_access_key not in str(info.value) and s3_server.access_key_id not in str(info.value)
    unknown = open_datastore("unknown", "s3", "", s3_server.datastore_spec(
        "unknown", bucket, access_key_id="AKIAUNKNOWNKEY000000", secret_access_key=wrong))
    with pytest.raises(StorageError, match="Access Key Id you provided does not exist"):
        unknown.check_reachable()

    url = ("GET http://s3/b/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20260101%2Fus-east-1"
           "&X-Amz-Signature=deadbeefcafe&X-Amz-Security-Token=FQoGZXIvYXdzE failed")
    scrubbed = scrub(url, ())
    assert not any(s in scrubbed for s in ("AKIAEXAMPLE", "deadbeefcafe", "FQoGZXIvYXdzE"))
    header = "Authorization: AWS4-HMAC-SHA256 Credential=AKIAEXAMPLE/20260101/us-east-1/s3/aws4_request, " \
             "SignedHeaders=host, Signature=0123abcd"
    assert not any(s in scrub(header, ()) for s in ("AKIAEXAMPLE", "0123abcd"))
    assert "s3cr3t" not in scrub("aws_secret_access_key = s3cr3t", ())


GOOD: dict[str, Any] = {"name": "x", "type": "s3", "bucket": "data",
                        "credentials": {"access_key_id": "AKIAKEYID", "secret_access_key": "SECRETVALUE"}}


@pytest.mark.parametrize(("change", "field", "message"), [
    ({"credentials": None}, "credentials", "no credentials are given"),
    ({"credentials": {"access_key_id": "AKIAKEYID"}}, "credentials", "credentials.secret_access_key is missing"),
    ({"credentials": {"account_key": "SECRETVALUE"}}, "credentials", "credentials.account_key is not supported"),
    ({"bucket": "Bad_Bucket"}, "bucket", "not an S3 bucket name"),
    ({"prefix": "a/../../b"}, "prefix", "not a folder inside the bucket"),
    ({"endpoint_url": "http://user:pw@127.0.0.1:9000"}, "endpoint_url", "scheme, host and port only"),
    ({"endpoint_url": "ftp://127.0.0.1"}, "endpoint_url", "not the http"),
    ({"endpoint_url": "http://127.0.0.1:99999"}, "endpoint_url", "invalid port"),
    ({"region": "eu west 1"}, "region", "not an AWS region"),
])
def test_a_bad_s3_spec_is_refused_naming_the_field(change: dict[str, Any], field: str, message: str) -> None:
    with pytest.raises(InvalidRequestError, match=message) as info:
        object_store({**GOOD, **change})
    assert info.value.details["field"] == field
    assert "SECRETVALUE" not in str(info.value) and "AKIAKEYID" not in str(info.value)


def test_good_specs_open_aws_and_s3_compatible_stores() -> None:
    aws = object_store({**GOOD, "region": "eu-west-1"})
    assert aws.root == "s3://data" and aws.options["endpoint_url"] is None
    assert aws.options["client_kwargs"] == {"region_name": "eu-west-1"} and "s3" not in aws.options["config_kwargs"]
    assert aws.options["use_listings_cache"] is False
    minio = object_store({**GOOD, "endpoint_url": "https://minio.internal:9000/"})
    assert minio.options["endpoint_url"] == "https://minio.internal:9000"
    assert minio.options["config_kwargs"]["s3"] == {"addressing_style": "path"}


def test_the_registry_records_a_reachable_bucket_only(
        db: Database, s3_server: S3Server, bucket: str, tmp_path: Any) -> None:
    registry = DatastoreRegistry(db)
    registry.ensure_default("workspaceblobstore", str(tmp_path / "local"))
    with pytest.raises(NotFoundError, match="bucket 'no-such-bucket' does not exist"):
        registry.create(s3_server.datastore_spec("missing", "no-such-bucket"))
    wrong = s3_server.datastore_spec("wrongkey", bucket, access_key_id=s3_server.access_key_id,
                                     secret_access_key="W" * 40)
    with pytest.raises(InvalidRequestError, match="wrongkey.*check bucket, endpoint_url, region and credentials"):
        registry.create(wrong)
    assert [r.name for r in registry.list_rows()] == ["workspaceblobstore"]  # nothing half-created

    row = registry.create(s3_server.datastore_spec("objects", bucket))
    assert (row.type, row.root, row.is_default) == ("s3", f"s3://{bucket}", False)
    with pytest.raises(AlreadyExistsError):
        registry.create(s3_server.datastore_spec("objects", bucket))
    assert registry.get("objects").commits_on_close
