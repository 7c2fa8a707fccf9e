"""Resumable uploads of large files: what arrived is kept, and the same upload run again sends only the rest.

A partial upload is named by what it will become: the datastore, the path, the announced sha256 and the
size. Its bytes go to ``<workspace>/.mlyard/uploads/<key>.part`` on the server's disk (beside a small
``<key>.json`` saying what it is for), appended as they arrive and flushed to disk even when the sender
goes away, so a client killed, a connection dropped or a server restarted leaves the part that arrived.
The client asks how much the server holds (``begin``) and sends the rest from there (``receive``).
Once the whole size is held, the part is written to the datastore through ``BlobService.upload``:
hashed while written, committed only when the sha256 matches, with the same conflict checks and the
same record as any upload; then the part is removed. A part whose whole content does not match is
removed too (it cannot be resumed into anything right). ``mlyard workspace gc`` removes parts left
alone longer than the upload grace period (``gc_orphan_uploads_days``).

The parts live on the server's own disk whatever the datastore, so one design serves local folders
and object stores alike; the cost, on an object store, is that a large file is written to the
server's disk once before it is sent on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

import anyio

from mlyard.core.errors import ConflictError, InvalidRequestError, NotFoundError
from mlyard.store.blobs import BlobService, DatastoreRegistry
from mlyard.store.datastores import WrittenFile, clean_relpath
from mlyard.store.keyed_locks import KeyedLocks

UPLOADS_FOLDER = "uploads"  # under the workspace's state folder
READ_CHUNK = 1 << 20
LOCK_WAIT_S = 30  # how long a resumed upload waits for the one before it (its sender just went away) to let go
_KEY_RE = re.compile(r"^[0-9a-f]{40}$")

log = logging.getLogger("mlyard.server.uploads")


@dataclass(frozen=True)
class PartialUpload:
    """A file being uploaded in parts: what it will become and how many bytes the server holds."""

    key: str
    datastore: str
    path: str
    sha256: str
    size: int
    held: int


@dataclass(frozen=True)
class Received:
    """The end of a resumed upload: the file written, whether it is new, and what this request brought."""

    written: WrittenFile
    created: bool
    offset: int
    received: int


def upload_key(datastore: str, path: str, sha256: str, size: int) -> str:
    return hashlib.sha256(f"{datastore}\0{path}\0{sha256}\0{size}".encode()).hexdigest()[:40]


class ResumableUploads:
    """Partial uploads of one workspace, in ``folder``; finished ones written through ``blobs``."""

    def __init__(self, folder: Path, datastores: DatastoreRegistry, blobs: BlobService) -> None:
        self._folder = folder
        self._datastores = datastores
        self._blobs = blobs
        self._locks = KeyedLocks()

    def begin(self, datastore: str, path: str, sha256: str, size: int) -> PartialUpload:
        """The partial upload of this file, started if new; ``held`` is where the sender goes on from.

        Refuses at once an unknown datastore, a bad path, sha256 or size. What the finished upload may still be
        refused for (other content already recorded at the path, a path mlyard never overwrites) is found when
        the whole file is written.
        """
        rel = clean_relpath(path)
        sha = sha256.lower()
        if not re.fullmatch(r"[0-9a-f]{64}", sha):
            raise InvalidRequestError(f"sha256 of {rel!r} must be 64 hex digits", details={"field": "sha256"})
        if size < 0:
            raise InvalidRequestError(f"size of {rel!r} must not be negative", details={"field": "size"})
        self._datastores.get(datastore)  # an unknown datastore is a NotFoundError naming the known ones
        key = upload_key(datastore, rel, sha, size)
        meta = self._folder / f"{key}.json"
        if not meta.is_file():
            self._folder.mkdir(parents=True, exist_ok=True)
            tmp = meta.with_name(f".{key}.json.tmp")
            tmp.write_text(json.dumps({"datastore": datastore, "path": rel, "sha256": sha, "size": size}))
            os.replace(tmp, meta)
        return PartialUpload(key, datastore, rel, sha, size, self._held(key))

    async def receive(self, datastore: str, key: str, offset: int, chunks: AsyncIterator[bytes], *,
                      overwrite: bool = False) -> Received:
        """Append ``chunks`` to the partial upload ``key`` from ``offset``; write the file once it is whole.

        What arrives is kept even when the sender goes away half-way. Bytes beyond the announced size,
        an ``offset`` past what the server holds, or a body that ends early are refused, naming the file.
        """
        upload = self._load(datastore, key)
        async with AsyncExitStack() as stack:
            try:
                with anyio.fail_after(LOCK_WAIT_S):
                    await stack.enter_async_context(self._locks.hold(key))
            except TimeoutError:
                raise ConflictError(
                    f"{upload.path!r} in datastore {upload.datastore!r} is being uploaded by another request; run "
                    "the upload again once it ends", details={"path": upload.path}) from None
            held = await self._append(upload, offset, chunks)
            if held < upload.size:
                raise InvalidRequestError(
                    f"upload of {upload.path!r} ended at byte {held} of {upload.size}; run the same upload again "
                    "to send the rest", details={"path": upload.path, "held": held, "size": upload.size})
            return await self._finish(upload, offset, overwrite)
        raise AssertionError("unreachable")

    async def _append(self, upload: PartialUpload, offset: int, chunks: AsyncIterator[bytes]) -> int:
        part = self._folder / f"{upload.key}.part"
        held = self._held(upload.key)
        if offset > held or offset < 0:
            raise ConflictError(f"the server holds {held} bytes of {upload.path!r}, not {offset}; ask again where "
                                "to go on from", details={"path": upload.path, "held": held})
        received = 0
        with open(part, "r+b" if part.exists() else "wb") as out:
            out.truncate(offset)  # a sender that goes on from less than was held is believed
            out.seek(offset)
            try:
                async for chunk in chunks:
                    if offset + received + len(chunk) > upload.size:
                        raise InvalidRequestError(
                            f"upload of {upload.path!r} is longer than its announced {upload.size} bytes",
                            details={"path": upload.path, "size": upload.size})
                    out.write(chunk)  # the local disk, as a local datastore writes it
                    received += len(chunk)
            finally:  # the sender may have gone away: keep what arrived, on disk
                out.flush()
                os.fsync(out.fileno())
                log.info("upload of %s:%s: %d bytes received from byte %d; %d of %d held", upload.datastore,
                         upload.path, received, offset, offset + received, upload.size)
        return offset + received

    async def _finish(self, upload: PartialUpload, offset: int, overwrite: bool) -> Received:
        part = self._folder / f"{upload.key}.part"
        try:
            written, created = await self._blobs.upload(upload.datastore, upload.path, _read(part), upload.sha256,
                                                        overwrite=overwrite)
        except InvalidRequestError:  # the whole content does not match its sha256: it cannot be resumed
            self.discard(upload.key)
            raise
        self.discard(upload.key)
        return Received(written, created, offset, upload.size - offset)

    def discard(self, key: str) -> None:
        """Forget partial upload ``key`` (the part first: a part without its description is never resumed)."""
        (self._folder / f"{key}.part").unlink(missing_ok=True)
        (self._folder / f"{key}.json").unlink(missing_ok=True)

    def _held(self, key: str) -> int:
        try:
            return (self._folder / f"{key}.part").stat().st_size
        except FileNotFoundError:
            return 0

    def _load(self, datastore: str, key: str) -> PartialUpload:
        meta = self._folder / f"{key}.json"
        d = json.loads(meta.read_text()) if _KEY_RE.fullmatch(key) and meta.is_file() else {}
        if d.get("datastore") != datastore:
            raise NotFoundError(f"no partial upload {key!r} in datastore {datastore!r}: start it again with the "
                                "same upload", details={"upload": key})
        return PartialUpload(key, d["datastore"], d["path"], d["sha256"], int(d["size"]), self._held(key))


async def _read(part: Path) -> AsyncIterator[bytes]:
    with open(part, "rb") as source:
        while chunk := await anyio.to_thread.run_sync(source.read, READ_CHUNK):
            yield chunk

