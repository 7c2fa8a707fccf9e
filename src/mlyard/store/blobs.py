"""Uploads into datastores, recorded with their verified sha256.

The ``blobs`` table is the server's memory of what it wrote and verified: asset creation only
accepts files found there with the announced hash and size. A file written through mlyard never
changes: writing different content to the same path is a conflict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.core.errors import ConflictError, NotFoundError
from mlyard.store.datastores import Datastore, FsspecDatastore, WrittenFile, clean_relpath
from mlyard.store.db import Database
from mlyard.store.schema import Blob
from mlyard.store.schema import Datastore as DatastoreRow


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
            store = FsspecDatastore(row.name, row.root)
        self._open[name] = store
        return store

    def list_rows(self) -> list[DatastoreRow]:
        with self._db.session() as s:
            return list(s.scalars(select(DatastoreRow).order_by(DatastoreRow.name)).all())


def find_blob(session: Session, datastore: str, path: str) -> Blob | None:
    return session.get(Blob, (datastore, path))


class BlobService:
    """Writes uploads atomically and records them, refusing to change what exists."""

    def __init__(self, db: Database, datastores: DatastoreRegistry) -> None:
        self._db = db
        self._datastores = datastores

    def stat(self, datastore: str, path: str) -> Blob:
        rel = clean_relpath(path)
        store = self._datastores.get(datastore)
        with self._db.session() as s:
            blob = find_blob(s, datastore, rel)
        if blob is None or store.size(rel) != blob.size:
            raise NotFoundError(f"no file {rel!r} in datastore {datastore!r}")
        return blob

    async def upload(
        self, datastore: str, path: str, chunks: AsyncIterator[bytes], sha256: str | None
    ) -> tuple[WrittenFile, bool]:
        """Store ``chunks`` at ``path``; returns the file and whether it was new."""
        rel = clean_relpath(path)
        store: Datastore = self._datastores.get(datastore)
        with self._db.session() as s:
            existing = find_blob(s, datastore, rel)
        if existing is not None and sha256 and existing.sha256 != sha256.lower():
            raise self._conflict(datastore, rel, existing.sha256, sha256)

        def check(sha: str) -> None:
            with self._db.session() as s:
                row = find_blob(s, datastore, rel)
            if row is not None and row.sha256 != sha:
                raise self._conflict(datastore, rel, row.sha256, sha)

        written = await store.write_stream(rel, chunks, sha256, before_commit=check)

        def record(s: Session) -> bool:
            row = find_blob(s, datastore, rel)
            if row is None:
                s.add(Blob(datastore=datastore, path=rel, sha256=written.sha256, size=written.size))
                return True
            if row.sha256 != written.sha256:
                raise self._conflict(datastore, rel, row.sha256, written.sha256)
            return False

        created = self._db.run_in_transaction(record)
        return written, created

    @staticmethod
    def _conflict(datastore: str, rel: str, have: str, got: str) -> ConflictError:
        return ConflictError(
            f"{rel!r} in datastore {datastore!r} already holds other content (sha256 {have[:12]}..., "
            f"not {got[:12]}...): files written through mlyard never change; write to a new path",
            details={"datastore": datastore, "path": rel},
        )
