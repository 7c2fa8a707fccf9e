"""Where a workspace keeps what the lifecycle commands look at, and opening it."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select

from mlyard.core.settings import ServerSettings
from mlyard.store.datastores import FsspecDatastore
from mlyard.store.db import Database
from mlyard.store.object_stores import open_datastore
from mlyard.store.schema import Base
from mlyard.store.schema import Datastore as DatastoreRow

UPLOAD_FOLDER = "LocalUpload"
RUN_ARTIFACTS_FOLDER = "mlflow"
ARTIFACT_URI_PREFIX = "mlflow-artifacts:/"
DATASTORE_URI_PREFIX = "azureml://datastores/"


def all_tables() -> list[Table]:
    """Every table of the store, parents before children (the order to copy them in)."""
    import mlyard.store

    # every module that declares tables: store/schema.py and store/*_schema.py, present and future
    for info in pkgutil.iter_modules(mlyard.store.__path__):
        if info.name == "schema" or info.name.endswith("_schema"):
            importlib.import_module(f"mlyard.store.{info.name}")
    return list(Base.metadata.sorted_tables)


@dataclass
class OpenWorkspace:
    """A workspace folder and its store, opened by a lifecycle command."""

    settings: ServerSettings
    db: Database

    @property
    def path(self) -> Path:
        return self.settings.workspace_path

    @property
    def jobs_dir(self) -> Path:
        return self.settings.state_dir / "jobs"

    @property
    def envs_dir(self) -> Path:
        return self.settings.state_dir / "envs"

    @property
    def serving_dir(self) -> Path:
        return self.settings.state_dir / "serving"

    def datastores(self) -> dict[str, FsspecDatastore]:
        """Every datastore of the workspace, object stores opened with their credentials, as the server opens them."""
        with self.db.session() as s:
            rows = s.execute(select(DatastoreRow.name, DatastoreRow.type, DatastoreRow.root, DatastoreRow.spec)).all()
        return {name: open_datastore(name, kind, root, spec or {}) for name, kind, root, spec in rows}

    def default_datastore(self) -> FsspecDatastore:
        with self.db.session() as s:
            name = s.scalar(select(DatastoreRow.name).where(DatastoreRow.is_default.is_(True)))
        stores = self.datastores()
        if name is None or name not in stores:
            from mlyard.core.errors import NotFoundError

            raise NotFoundError(f"the workspace at {self.path} has no default datastore: its store is damaged; "
                                "restore a backup ('mlyard workspace restore')")
        return stores[name]


@contextmanager
def open_workspace(path: Path, database_url: str | None = None) -> Iterator[OpenWorkspace]:
    """Open the workspace at ``path`` (its settings, its store at the current schema)."""
    extra: dict[str, Any] = {"database_url": database_url} if database_url else {}
    settings = ServerSettings(workspace=path, **extra)
    db = Database(settings.resolved_database_url)
    try:
        yield OpenWorkspace(settings, db)
    finally:
        db.dispose()
