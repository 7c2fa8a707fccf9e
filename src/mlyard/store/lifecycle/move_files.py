"""``mlyard workspace migrate --datastore NAME``: move the workspace's local datastore into object storage.

Every file of ``workspaceblobstore`` (uploads, job outputs, run artifacts) is copied into the object-storage
datastore ``NAME`` (created beforehand with ``mlyard datastore create -f``, which holds its credentials), read
back and checked against its sha256; files already there with the same size and hash (an earlier, interrupted
run) are not copied again. Only when every file is there does ``workspaceblobstore`` take NAME's storage (type,
root, credentials) in one transaction, so every reference (``azureml://datastores/workspaceblobstore/...``,
``mlflow-artifacts:/``) keeps its meaning. The local folder is left as it was: the way back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from mlyard.core.errors import InvalidRequestError, NotFoundError, StorageError
from mlyard.core.hashing import sha256_stream
from mlyard.core.settings import DEFAULT_DATASTORE
from mlyard.store.datastores import FsspecDatastore
from mlyard.store.lifecycle.layout import OpenWorkspace
from mlyard.store.object_stores import OBJECT_TYPES
from mlyard.store.schema import Blob
from mlyard.store.schema import Datastore as DatastoreRow

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MoveReport:
    files: int
    copied: int
    bytes: int


def _ignore(_line: str) -> None:
    pass


def move_default_datastore(ws: OpenWorkspace, target: str, progress: Progress = _ignore) -> MoveReport:
    """Copy every file of the local ``workspaceblobstore`` into ``target``, verify it, then switch to it."""
    with ws.db.session() as s:
        source_row = s.get(DatastoreRow, DEFAULT_DATASTORE)
        target_row = s.get(DatastoreRow, target)
        if target_row is None:
            known = ", ".join(s.scalars(select(DatastoreRow.name))) or "none"
            raise NotFoundError(f"no datastore named {target!r} (known: {known}): create it first with 'mlyard "
                                "datastore create -f' (an azure_blob, azure_data_lake_gen2 or s3 YAML with its "
                                "credentials)", details={"datastore": target})
        if target_row.type not in OBJECT_TYPES:
            raise InvalidRequestError(f"datastore {target!r} is of type {target_row.type}: --datastore names an "
                                      f"object-storage datastore ({', '.join(OBJECT_TYPES)})")
        if source_row is None or source_row.type != "local":
            raise InvalidRequestError(f"{DEFAULT_DATASTORE} is not a local datastore here (type "
                                      f"{source_row.type if source_row else 'missing'}): there is nothing to move")
        recorded = {p: (sha, size) for p, sha, size in s.execute(
            select(Blob.path, Blob.sha256, Blob.size).where(Blob.datastore == DEFAULT_DATASTORE))}
        new_type, new_root, new_spec = target_row.type, target_row.root, dict(target_row.spec or {})
    stores = ws.datastores()
    src, dst = stores[DEFAULT_DATASTORE], stores[target]
    files = copied = total = 0
    every = (f for top in src.list_dir("") for f in src.list_files(top.name))
    for f in every:
        files += 1
        total += f.size
        want = recorded.get(f.path)
        if want is None:
            with src.open_read(f.path) as stream:
                want = sha256_stream(stream)
        if dst.size(f.path) == f.size and _sha(dst, f.path) == want[0]:
            continue  # copied by an earlier run
        local = src.local_path(f.path)
        assert local is not None
        written = dst.put_file(local, f.path)
        if (written.sha256, written.size) != want or _sha(dst, f.path) != want[0]:
            raise StorageError(f"{f.path} did not arrive intact in datastore {target!r} (sha256 differs): nothing "
                               "was switched; run migrate again")
        copied += 1
        if copied % 500 == 0:
            progress(f"{copied} file(s) copied to {target}")
    progress(f"{files} file(s) in {target}, {copied} copied now, every one verified by sha256")

    def switch(s: Session) -> None:
        row = s.get(DatastoreRow, DEFAULT_DATASTORE)
        assert row is not None
        row.type, row.root, row.spec = new_type, new_root, new_spec

    ws.db.run_in_transaction(switch)
    return MoveReport(files, copied, total)


def _sha(store: FsspecDatastore, path: str) -> str:
    with store.open_read(path) as stream:
        return sha256_stream(stream)[0]
