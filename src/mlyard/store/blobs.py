"""Uploads into datastores, recorded with their verified sha256.

The ``blobs`` table is the server's memory of what it wrote and verified: asset creation only
accepts files found there with the announced hash and size. A file written through mlyard never
changes: writing different content to the same path is a conflict.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import AsyncIterator
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.core.errors import AlreadyExistsError, ConflictError, InvalidRequestError, NotFoundError, StorageError
from mlyard.core.hashing import sha256_stream, tree_hash
from mlyard.core.timeutil import utcnow
from mlyard.store.datastores import Datastore, FsspecDatastore, WrittenFile, clean_relpath
from mlyard.store.db import Database
from mlyard.store.keyed_locks import KeyedLocks
from mlyard.store.object_stores import object_store, open_datastore, refuse_local
from mlyard.store.schema import Asset, AssetFile, Blob
from mlyard.store.schema import Datastore as DatastoreRow

UPLOAD_FOLDER = "LocalUpload/"


class DatastoreRegistry:
    """Named datastores of a workspace, opened on first use."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._open: dict[str, FsspecDatastore] = {}

    def ensure_default(self, name: str, root: str) -> None:
        """Record the default datastore at ``root`` if the workspace has none yet."""
        with self._db.session() as s:
            if s.get(DatastoreRow, name) is None:
                s.add(DatastoreRow(name=name, type="local", root=root, is_default=True, spec={}))

    def default_name(self) -> str:
        with self._db.session() as s:
            name = s.scalar(select(DatastoreRow.name).where(DatastoreRow.is_default.is_(True)))
        if name is None:
            raise NotFoundError("the workspace has no default datastore: run 'mlyard workspace init'")
        return name

    def get(self, name: str) -> FsspecDatastore:
        if name in self._open:
            return self._open[name]
        with self._db.session() as s:
            row = s.get(DatastoreRow, name)
            if row is None:
                known = ", ".join(s.scalars(select(DatastoreRow.name)).all()) or "none"
                raise NotFoundError(
                    f"no datastore named {name!r} (known: {known})", details={"datastore": name}
                )
            store = open_datastore(row.name, row.type, row.root, row.spec or {})
        self._open[name] = store
        return store

    def create(self, spec: dict[str, Any], *, make_default: bool = False) -> DatastoreRow:
        """Record a datastore from its validated spec, once it answers with the credentials given.

        Nothing is recorded when the store cannot be reached; ``make_default`` moves the workspace's
        default to it (refused while the current default holds files written through mlyard).
        """
        name = spec["name"]
        if spec["type"] == "local":
            refuse_local(spec)
        root = object_store(spec).root  # refuses the types it cannot open
        store = open_datastore(name, spec["type"], root, spec)
        try:
            store.check_reachable()
        except StorageError as exc:  # the user's account, endpoint or credentials: a bad request, not a fault here
            fields = ("bucket, endpoint_url, region and credentials" if spec["type"] == "s3"
                      else "account_name, endpoint, protocol and credentials")
            raise InvalidRequestError(f"{exc.message}; check {fields}", details={"datastore": name}) from None
        if make_default:
            current = self.default_name()
            if self.get(current).list_dir("mlflow"):
                raise ConflictError(
                    f"the default datastore {current!r} already holds MLflow artifacts, whose mlflow-artifacts:/ URIs "
                    f"name the default; make {name!r} the default of a new workspace, or create it without "
                    "--set-default", details={"datastore": current})

        def write(s: Session) -> DatastoreRow:
            if s.get(DatastoreRow, name) is not None:
                raise AlreadyExistsError(f"datastore {name!r} already exists; choose another name",
                                         details={"datastore": name})
            if make_default:
                self._move_default(s, name)
            row = DatastoreRow(name=name, type=spec["type"], root=root, is_default=make_default, spec=spec)
            s.add(row)
            s.flush()
            s.expunge(row)
            return row

        return self._db.run_in_transaction(write)

    @staticmethod
    def _move_default(s: Session, name: str) -> None:
        old = s.scalar(select(DatastoreRow).where(DatastoreRow.is_default.is_(True)))
        if old is None:
            return
        holds = s.scalar(select(Blob.path).where(Blob.datastore == old.name).limit(1))
        if holds is not None:
            raise ConflictError(
                f"the default datastore {old.name!r} already holds files written through mlyard (e.g. {holds!r}), "
                f"and their azureml:// and mlflow-artifacts:/ URIs name it; make {name!r} the default of a new "
                "workspace, or create it without --set-default and name it in your YAML",
                details={"datastore": old.name})
        old.is_default = False

    def list_rows(self) -> list[DatastoreRow]:
        with self._db.session() as s:
            return list(s.scalars(select(DatastoreRow).order_by(DatastoreRow.name)).all())


def find_blob(session: Session, datastore: str, path: str) -> Blob | None:
    return session.get(Blob, (datastore, path))


def find_blob_path(db: Database, datastore: str, path: str) -> Blob | None:
    with db.session() as s:
        return find_blob(s, datastore, path)


class BlobService:
    """Writes uploads atomically and records them, refusing to change what exists."""

    def __init__(self, db: Database, datastores: DatastoreRegistry) -> None:
        self._db = db
        self._datastores = datastores
        self._writing = KeyedLocks()

    def stat(self, datastore: str, path: str) -> Blob:
        rel = clean_relpath(path)
        store = self._datastores.get(datastore)
        with self._db.session() as s:
            blob = find_blob(s, datastore, rel)
        if blob is None or store.size(rel) != blob.size:
            raise NotFoundError(f"no file {rel!r} in datastore {datastore!r}")
        return blob

    async def upload(
        self, datastore: str, path: str, chunks: AsyncIterator[bytes], sha256: str | None, *, overwrite: bool = False
    ) -> tuple[WrittenFile, bool]:
        """Store ``chunks`` at ``path``; returns the file and whether it was new.

        Other content at ``path`` is a conflict, unless ``overwrite``: then it is replaced, except
        under ``LocalUpload/`` (content-addressed) and where the file belongs to a registered asset.
        """
        rel = clean_relpath(path)
        async with self._writing.hold((datastore, rel)):  # one write per path: check, commit, record never interleave
            return await self._upload(datastore, rel, chunks, sha256, overwrite=overwrite)

    async def _upload(
        self, datastore: str, rel: str, chunks: AsyncIterator[bytes], sha256: str | None, *, overwrite: bool
    ) -> tuple[WrittenFile, bool]:
        store: Datastore = self._datastores.get(datastore)
        if overwrite:
            self._check_replaceable(datastore, rel)
        with self._db.session() as s:
            existing = find_blob(s, datastore, rel)
        if not overwrite and existing is not None and sha256 and existing.sha256 != sha256.lower():
            raise self._conflict(datastore, rel, existing.sha256, sha256)

        def check(sha: str) -> None:
            if overwrite:
                return
            with self._db.session() as s:
                row = find_blob(s, datastore, rel)
            have = row.sha256 if row is not None else self._unrecorded_sha256(datastore, rel)
            if have is not None and have != sha:
                raise self._conflict(datastore, rel, have, sha)

        written = await store.write_stream(rel, chunks, sha256, before_commit=check)

        def record(s: Session) -> bool:
            row = find_blob(s, datastore, rel)
            if row is None:
                s.add(Blob(datastore=datastore, path=rel, sha256=written.sha256, size=written.size))
                return True
            if row.sha256 != written.sha256:
                if not overwrite:
                    raise self._conflict(datastore, rel, row.sha256, written.sha256)
                row.sha256, row.size, row.created_at = written.sha256, written.size, utcnow()
                return True
            return False

        created = self._db.run_in_transaction(record)
        return written, created

    def _unrecorded_sha256(self, datastore: str, rel: str) -> str | None:
        """The sha256 of a file put at ``rel`` outside mlyard (None when there is none)."""
        store = self._datastores.get(datastore)
        if store.size(rel) is None:
            return None
        with store.open_read(rel) as stream:
            return sha256_stream(stream)[0]

    def _check_replaceable(self, datastore: str, rel: str) -> None:
        if rel.startswith(UPLOAD_FOLDER):
            raise ConflictError(f"{rel!r} in datastore {datastore!r} is content-addressed (under {UPLOAD_FOLDER}) "
                                "and never changes; upload to another path", details={"path": rel})
        parts = rel.split("/")
        # an asset's files are stored relative to the folder holding its path: try each folder above rel
        candidates = {"/".join(parts[i:]): "/".join(parts[:i]) for i in range(len(parts))}
        with self._db.session() as s:
            rows = s.execute(select(Asset.kind, Asset.name, Asset.version, Asset.path, AssetFile.path)
                             .join(AssetFile, AssetFile.asset_id == Asset.id)
                             .where(AssetFile.path.in_(list(candidates)))).all()
        prefix = f"azureml://datastores/{datastore}/paths/"
        for kind, name, version, asset_path, file_path in rows:
            if asset_path and asset_path.startswith(prefix):
                folder = posixpath.dirname(asset_path[len(prefix):].strip("/"))
                if folder == candidates[file_path]:
                    raise ConflictError(
                        f"{rel!r} in datastore {datastore!r} is a file of {kind} {name}:{version}, and a registered "
                        "version never changes; upload to another path and register a new version",
                        details={"path": rel, "asset": f"{name}:{version}"})

    def freeze_tree(self, datastore: str, prefix: str, basename: str) -> tuple[str, list[WrittenFile]]:
        """Copy every file under ``prefix`` to ``LocalUpload/<tree hash>/<basename>/...``, recorded as blobs.

        Returns the frozen folder (``LocalUpload/<tree hash>``) and the files, their paths relative to it.
        The copy is content-addressed: the same content always lands in the same folder, and a
        folder written once is never written again.
        """
        store = self._datastores.get(datastore)
        src = clean_relpath(prefix)
        sources = [f for f in store.list_files(src) if f.path != src or store.size(src) is not None]
        if not sources:
            raise NotFoundError(f"no files under {src!r} in datastore {datastore!r}")
        staging = f"LocalUpload/.staging-{uuid.uuid4().hex}"
        written: list[WrittenFile] = []
        try:
            for f in sources:
                rel = posixpath.basename(f.path) if f.path == src else posixpath.relpath(f.path, src)
                copy = store.copy_file(f.path, f"{staging}/{basename}/{rel}")
                written.append(WrittenFile(f"{basename}/{rel}", copy.sha256, copy.size))
            folder = f"LocalUpload/{tree_hash((w.path, w.sha256, w.size) for w in written)}"
            for w in written:
                if find_blob_path(self._db, datastore, f"{folder}/{w.path}") is None:
                    store.copy_file(f"{staging}/{w.path}", f"{folder}/{w.path}")
            self._db.run_in_transaction(lambda s: self._record(s, datastore, folder, written))
        finally:
            store.delete(staging)
        return folder, written

    @staticmethod
    def _record(s: Session, datastore: str, folder: str, files: list[WrittenFile]) -> None:
        for w in files:
            path = f"{folder}/{w.path}"
            row = find_blob(s, datastore, path)
            if row is None:
                s.add(Blob(datastore=datastore, path=path, sha256=w.sha256, size=w.size))
            elif row.sha256 != w.sha256:
                raise BlobService._conflict(datastore, path, row.sha256, w.sha256)

    @staticmethod
    def _conflict(datastore: str, rel: str, have: str, got: str) -> ConflictError:
        what = ("files written through mlyard never change; write to a new path" if rel.startswith(UPLOAD_FOLDER)
                else "files written through mlyard never change unless replaced on purpose: write to a new path, "
                "or replace it with 'mlyard datastore upload --overwrite'")
        return ConflictError(
            f"{rel!r} in datastore {datastore!r} already holds other content (sha256 {have[:12]}..., "
            f"not {got[:12]}...): {what}",
            details={"datastore": datastore, "path": rel},
        )
