"""Run and logged-model artifacts, served as MLflow's proxied artifact store (``mlflow-artifacts:/``).

``mlflow-artifacts:/<path>`` names ``<path>`` in the workspace's default datastore. Runs write
under ``mlflow/<experiment>/<run>/artifacts/``; that area is the only one MLflow clients may write
to, and files there may be replaced (MLflow allows logging an artifact again). Registered model
versions are copied out of it into immutable, content-addressed folders (``LocalUpload/...``), which
clients can read through the same API but never change.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO

from mlyard.core.errors import InvalidRequestError, PermissionDeniedError
from mlyard.store.blobs import DatastoreRegistry
from mlyard.store.datastores import DirEntry, FsspecDatastore, WrittenFile, clean_relpath

URI_PREFIX = "mlflow-artifacts:/"
WRITABLE_PREFIX = "mlflow/"


def artifact_path(uri: str) -> str:
    """``mlflow-artifacts:/mlflow/0/x/artifacts`` -> ``mlflow/0/x/artifacts``."""
    if not uri.startswith(URI_PREFIX):
        raise InvalidRequestError(f"{uri!r} is not an mlflow-artifacts:/ URI")
    return uri[len(URI_PREFIX):].lstrip("/")


class ArtifactStore:
    def __init__(self, datastores: DatastoreRegistry) -> None:
        self._datastores = datastores

    def store(self) -> FsspecDatastore:
        return self._datastores.get(self._datastores.default_name())

    async def upload(self, path: str, chunks: AsyncIterator[bytes]) -> WrittenFile:
        rel = clean_relpath(path)
        if not rel.startswith(WRITABLE_PREFIX):
            raise PermissionDeniedError(f"artifacts can only be written under {URI_PREFIX}{WRITABLE_PREFIX}...; "
                                        f"{rel!r} belongs to a registered asset and never changes")
        return await self.store().write_stream(rel, chunks, None)

    def open(self, path: str) -> BinaryIO:
        return self.store().open_read(clean_relpath(path))

    def local_path(self, path: str) -> str | None:
        return self.store().local_path(clean_relpath(path))

    def list(self, path: str | None) -> list[DirEntry]:
        rel = clean_relpath(path) if path and path.strip("/") else ""
        return self.store().list_dir(rel)

    def delete(self, path: str) -> None:
        rel = clean_relpath(path)
        if not rel.startswith(WRITABLE_PREFIX):
            raise PermissionDeniedError(f"{rel!r} belongs to a registered asset and cannot be deleted")
        self.store().delete(rel)
