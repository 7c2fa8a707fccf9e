"""The services one server process holds, built from settings at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from mlyard.assets.service import AssetService
from mlyard.auth.tokens import TokenVerifier
from mlyard.core.settings import DEFAULT_DATASTORE, ServerSettings
from mlyard.store.blobs import BlobService, DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.migrate import upgrade


@dataclass
class Services:
    settings: ServerSettings
    db: Database
    datastores: DatastoreRegistry
    blobs: BlobService
    assets: AssetService
    tokens: TokenVerifier

    @classmethod
    def open(cls, settings: ServerSettings) -> Services:
        """Open the workspace's store, migrate it to the newest schema, and wire the services."""
        db = Database(settings.resolved_database_url)
        upgrade(db.engine)
        datastores = DatastoreRegistry(db)
        datastores.ensure_default(DEFAULT_DATASTORE, f"{settings.resolved_artifacts_root}/{DEFAULT_DATASTORE}")
        return cls(
            settings=settings,
            db=db,
            datastores=datastores,
            blobs=BlobService(db, datastores),
            assets=AssetService(db, datastores),
            tokens=TokenVerifier(db),
        )

    def close(self) -> None:
        self.db.dispose()
