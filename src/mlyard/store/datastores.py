"""Datastores: named roots on a filesystem, reached through fsspec.

One small interface (``Datastore``) with one implementation over any fsspec filesystem. Writes
are atomic: content streams into a temporary name beside its target while it is hashed, is
checked against the sha256 the caller announced, and only then renamed into place, so a crash
never leaves a half-written file visible under its real name. Paths are POSIX, relative to the
datastore root, and may not escape it.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO, Protocol

import anyio
import fsspec
from fsspec.implementations.local import LocalFileSystem

from mlyard.core.errors import ConflictError, InvalidRequestError, MlyardError, NotFoundError, StorageError
from mlyard.store.keyed_locks import KeyedLocks

TMP_PREFIX = ".mlyard-tmp-"


@dataclass(frozen=True)
class WrittenFile:
    path: str
    sha256: str
    size: int


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    mtime: float | None = None  # seconds since the epoch, where the filesystem reports it


@dataclass(frozen=True)
class DirEntry:
    name: str
    is_dir: bool
    size: int | None


MAX_NAME_BYTES = 255  # one path segment, as on common filesystems
MAX_PATH_CHARS = 1024  # the store's column width


def clean_relpath(path: str) -> str:
    """Normalise a datastore-relative path; reject absolute paths, ``..`` escapes and unstorable names."""
    raw = path.replace("\\", "/").strip()
    norm = posixpath.normpath(raw.lstrip("/")) if raw else ""
    parts = norm.split("/")
    if not raw or norm in (".", "") or ".." in parts or any(p.startswith(TMP_PREFIX) for p in parts):
        raise InvalidRequestError(
            f"invalid datastore path {path!r}: give a relative path inside the datastore, without '..'"
        )
    if any(ord(c) < 32 or c == "\x7f" for c in norm):
        raise InvalidRequestError(f"invalid datastore path {path!r}: control characters are not allowed in paths")
    try:
        norm.encode()
    except UnicodeEncodeError:
        raise InvalidRequestError(f"invalid datastore path {path!r}: it is not valid UTF-8 text") from None
    if len(norm) > MAX_PATH_CHARS or any(len(p.encode()) > MAX_NAME_BYTES for p in parts):
        raise InvalidRequestError(
            f"datastore path too long: at most {MAX_PATH_CHARS} characters, and {MAX_NAME_BYTES} bytes per name"
        )
    return norm


class Datastore(Protocol):
    """A named place that holds files."""

    name: str

    async def write_stream(
        self,
        path: str,
        chunks: AsyncIterator[bytes],
        expected_sha256: str | None,
        before_commit: Callable[[str], None] | None = None,
    ) -> WrittenFile:
        """Write ``chunks`` atomically to ``path``; verify the sha256 when one is given.

        ``before_commit`` sees the computed sha256 before the file becomes visible and may raise
        to abandon the write.
        """
        ...

    def open_read(self, path: str) -> BinaryIO: ...

    def size(self, path: str) -> int | None:
        """Size of the file at ``path``, or None when there is none."""
        ...

    def list_files(self, prefix: str) -> Iterator[FileInfo]: ...

    def local_path(self, path: str) -> str | None:
        """A local filesystem path for ``path``, where the datastore is local."""
        ...

    def list_dir(self, prefix: str) -> list[DirEntry]:
        """The immediate children of folder ``prefix`` ("" for the root); empty when there is none."""
        ...

    def delete(self, path: str) -> None:
        """Remove a file or a whole folder; removing nothing is not an error."""
        ...


class _Staging:
    """The file being written by ``FsspecDatastore._staged``, with its running hash and size."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._digest = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self._digest.update(chunk)
        self.size += len(chunk)
        self._out.write(chunk)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class FsspecDatastore:
    """A datastore over an fsspec filesystem rooted at ``root`` (a local folder or a URL)."""

    def __init__(self, name: str, root: str, options: dict[str, Any] | None = None,
                 secrets: tuple[str, ...] = ()) -> None:
        self.name = name
        self.fs, self.root = fsspec.core.url_to_fs(root, **(options or {}))
        self.root = self.root.rstrip("/")
        self.is_local = isinstance(self.fs, LocalFileSystem)
        # object stores whose writes become visible only when the file is closed (Azure block blobs: blocks are
        # staged, and the block list committed at close; S3: a multipart upload completed, or one PUT, at close):
        # written in place, abandoned on failure
        self.commits_on_close = bool({"abfs", "az", "s3", "s3a"} & set(_protocols(self.fs)))
        self._secrets = secrets
        self._writing = KeyedLocks()
        if self.is_local:
            os.makedirs(self.root, exist_ok=True)

    def _full(self, path: str) -> str:
        return f"{self.root}/{clean_relpath(path)}"

    @contextmanager
    def _staged(self, rel: str) -> Iterator[_Staging]:
        """A temporary file beside ``rel``, hashed as written; fsync'd and renamed into place on a clean exit.

        Whatever goes wrong (an exception in the block included), the temporary file is removed and
        nothing appears under ``rel``.
        """
        target = self._full(rel)
        if self.commits_on_close:
            with self._committed_on_close(rel, target) as staging:
                yield staging
            return
        parent = posixpath.dirname(target)
        tmp = f"{parent}/{TMP_PREFIX}{uuid.uuid4().hex}"
        try:
            self._check_room(rel)
            self.fs.makedirs(parent, exist_ok=True)
            with self.fs.open(tmp, "wb") as out:
                staging = _Staging(out)
                yield staging
                if self.is_local:
                    out.flush()
                    os.fsync(out.fileno())
            if self.is_local:
                os.replace(tmp, target)
                _fsync_dir(parent)
            else:
                self.fs.mv(tmp, target)
        except OSError as exc:
            self._discard(tmp)
            if isinstance(exc, ConnectionError):  # the sender went away: not a storage fault
                raise
            reason = exc.strerror or exc.__class__.__name__  # never the server's absolute paths
            raise StorageError(f"could not write {rel!r} to datastore {self.name!r}: {reason}") from exc
        except BaseException:
            self._discard(tmp)
            raise

    @contextmanager
    def _committed_on_close(self, rel: str, target: str) -> Iterator[_Staging]:
        """Write ``target`` in place on a store that shows it only once closed; on any failure, never close it.

        Azure stages each block under the blob's name but the blob exists (or keeps its old content)
        until the block list is committed at close; uncommitted blocks are dropped by the service.
        """
        with self.guard(f"could not write {rel!r}"):
            self._check_room(rel)
            out = self.fs.open(target, "wb")
        try:
            staging = _Staging(out)
            yield staging
        except BaseException:
            _abandon(out)
            raise
        with self.guard(f"could not write {rel!r}"):
            try:
                out.close()
            except BaseException:  # the commit itself failed: S3's multipart upload is aborted, not left behind
                _abandon(out)
                raise

    @contextmanager
    def guard(self, what: str) -> Iterator[None]:
        """Turn a remote store's failure into a ``StorageError`` that names no secret."""
        try:
            yield
        except (MlyardError, FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise
        except Exception as exc:
            if self.is_local:
                raise
            from mlyard.store.object_stores import scrub

            reason = scrub(str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__, self._secrets)
            raise StorageError(f"{what} in datastore {self.name!r}: {reason[:300]}") from None

    async def write_stream(
        self,
        path: str,
        chunks: AsyncIterator[bytes],
        expected_sha256: str | None,
        before_commit: Callable[[str], None] | None = None,
    ) -> WrittenFile:
        rel = clean_relpath(path)
        # one write per path at a time: on Azure, a blob's commit drops the blocks another writer staged for it
        async with self._writing.hold(rel):
            return await self._write_stream(rel, chunks, expected_sha256, before_commit)

    async def _write_stream(self, rel: str, chunks: AsyncIterator[bytes], expected_sha256: str | None,
                            before_commit: Callable[[str], None] | None) -> WrittenFile:
        if self.is_local:
            with self._staged(rel) as staging:
                async for chunk in chunks:
                    staging.write(chunk)
                sha = self._verified(rel, staging, expected_sha256, before_commit)
            return WrittenFile(rel, sha, staging.size)
        # a remote store waits on the network at every step (the checks and the open, each block, the commit):
        # all of it runs in worker threads, so that the writes of several uploads go on at once
        staged = self._staged(rel)
        staging = await anyio.to_thread.run_sync(staged.__enter__)
        try:
            async for chunk in chunks:
                await anyio.to_thread.run_sync(staging.write, chunk)
            sha = self._verified(rel, staging, expected_sha256, before_commit)
        except BaseException as exc:
            if not await anyio.to_thread.run_sync(staged.__exit__, type(exc), exc, exc.__traceback__):
                raise
            raise AssertionError("unreachable: a failed write is never swallowed") from exc
        await anyio.to_thread.run_sync(staged.__exit__, None, None, None)
        return WrittenFile(rel, sha, staging.size)

    @staticmethod
    def _verified(rel: str, staging: _Staging, expected_sha256: str | None,
                  before_commit: Callable[[str], None] | None) -> str:
        """The sha256 of what was written, once it matches ``expected_sha256`` and ``before_commit`` agrees."""
        sha = staging.sha256
        if expected_sha256 and sha != expected_sha256.lower():
            raise InvalidRequestError(
                f"upload of {rel!r} arrived with sha256 {sha}, not the announced {expected_sha256}: "
                "the content changed or was cut off in transit; upload it again",
                details={"path": rel, "sha256": sha, "expected": expected_sha256},
            )
        if before_commit is not None:
            before_commit(sha)
        return sha

    def copy_file(self, src: str, dst: str) -> WrittenFile:
        """Copy ``src`` to ``dst`` in this datastore, hashed while copied, atomically; ``dst`` is replaced."""
        dst_rel = clean_relpath(dst)
        with self.open_read(src) as source, self._staged(dst_rel) as staging:
            while chunk := source.read(1 << 20):
                staging.write(chunk)
        return WrittenFile(dst_rel, staging.sha256, staging.size)

    def put_file(self, local: str | os.PathLike[str], dst: str) -> WrittenFile:
        """Copy a local file to ``dst`` in this datastore, hashed while copied, atomically."""
        dst_rel = clean_relpath(dst)
        with open(local, "rb") as source, self._staged(dst_rel) as staging:
            while chunk := source.read(1 << 20):
                staging.write(chunk)
        return WrittenFile(dst_rel, staging.sha256, staging.size)

    def _check_room(self, rel: str) -> None:
        """A file cannot replace a folder, nor live below a file: say so as a conflict."""
        if self.fs.isdir(self._full(rel)):
            raise ConflictError(f"{rel!r} in datastore {self.name!r} is a folder; write the file to another path",
                                details={"path": rel})
        parts = rel.split("/")
        for i in range(1, len(parts)):
            above = "/".join(parts[:i])
            if self.fs.isfile(self._full(above)):
                raise ConflictError(f"{above!r} in datastore {self.name!r} is a file, so {rel!r} cannot be "
                                    "written below it; choose another path", details={"path": rel})

    def check_reachable(self) -> None:
        """List the root once: a wrong key, SAS, account, container or bucket fails here, naming no secret."""
        top = self.root.split("/", 1)[0]
        try:
            with self.guard("could not reach the storage with the credentials given"):
                try:
                    self.fs.ls(self.root, detail=False)
                except FileNotFoundError:
                    if self.is_local or top == self.root:
                        raise
                    self.fs.ls(top, detail=False)  # a prefix that holds nothing yet is not missing: its bucket is there
        except FileNotFoundError:
            if "s3" in _protocols(self.fs):
                raise NotFoundError(f"datastore {self.name!r}: bucket {top!r} does not exist; create it first "
                                    f"(aws s3 mb s3://{top})") from None
            if not self.is_local:
                raise NotFoundError(f"datastore {self.name!r}: container {self.root!r} does not exist in the storage "
                                    "account; create it first (az storage container create)") from None

    def _discard(self, tmp: str) -> None:
        try:
            self.fs.rm(tmp)
        except (OSError, FileNotFoundError):
            pass

    def open_read(self, path: str) -> BinaryIO:
        rel = clean_relpath(path)
        try:
            with self.guard(f"could not read {rel!r}"):
                return self.fs.open(self._full(rel), "rb")  # type: ignore[no-any-return]
        except FileNotFoundError as exc:
            raise NotFoundError(f"no file {rel!r} in datastore {self.name!r}") from exc
        except IsADirectoryError as exc:
            raise InvalidRequestError(f"{rel!r} in datastore {self.name!r} is a folder, not a file") from exc

    def size(self, path: str) -> int | None:
        full = self._full(path)
        try:
            with self.guard(f"could not look at {clean_relpath(path)!r}"):
                info = self.fs.info(full)
        except FileNotFoundError:
            return None
        return int(info["size"]) if info.get("type") == "file" else None

    def list_files(self, prefix: str) -> Iterator[FileInfo]:
        with self.guard(f"could not list {clean_relpath(prefix)!r}"):
            yield from self._list_files(prefix)

    def _list_files(self, prefix: str) -> Iterator[FileInfo]:
        base = self._full(prefix)
        if not self.fs.exists(base):
            return
        if self.fs.isfile(base):
            info = self.fs.info(base)
            yield FileInfo(clean_relpath(prefix), int(info["size"]), _mtime(info))
            return
        for full, info in sorted(self.fs.find(base, detail=True).items()):
            if posixpath.basename(full).startswith(TMP_PREFIX):
                continue
            yield FileInfo(full[len(self.root) + 1 :], int(info["size"]), _mtime(info))

    def local_path(self, path: str) -> str | None:
        return self._full(path) if self.is_local else None

    def list_dir(self, prefix: str) -> list[DirEntry]:
        base = self._full(prefix) if prefix.strip("/") else self.root
        try:
            with self.guard(f"could not list {prefix!r}"):
                children = self.fs.ls(base, detail=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        entries = []
        for info in children:
            name = posixpath.basename(str(info["name"]).rstrip("/"))
            if name.startswith(TMP_PREFIX) or str(info["name"]).rstrip("/") == base.rstrip("/"):
                continue
            is_dir = info.get("type") == "directory"
            entries.append(DirEntry(name, is_dir, None if is_dir else int(info.get("size") or 0)))
        return sorted(entries, key=lambda e: e.name)

    def delete(self, path: str) -> None:
        full = self._full(path)
        try:
            with self.guard(f"could not delete {clean_relpath(path)!r}"):
                self.fs.rm(full, recursive=True)
        except FileNotFoundError:
            pass


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return (proto,) if isinstance(proto, str) else tuple(proto)


def _abandon(out: Any) -> None:
    """Close a file being written without committing it (fsspec's buffered files commit on their final flush)."""
    try:
        out.discard()  # s3fs aborts its multipart upload, so the parts sent are not kept (nor billed)
    except Exception:  # noqa: BLE001, S110 - the store drops them on its own (a bucket lifecycle rule on S3)
        pass
    try:
        out.forced = True  # the final flush (the commit) is skipped
        out.close()
    except Exception:  # noqa: BLE001 - abandoning must not hide the error that caused it
        out.closed = True


def _mtime(info: dict[str, Any]) -> float | None:
    value = info.get("mtime", info.get("last_modified", info.get("LastModified")))  # adlfs, s3fs: a datetime
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value) if isinstance(value, int | float) else None


def _fsync_dir(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def datastore_uri(datastore: str, path: str) -> str:
    return f"azureml://datastores/{datastore}/paths/{path}"
