"""The services one server process holds, built from settings at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from mlyard.assets.registry import Registry
from mlyard.assets.service import AssetService
from mlyard.auth.tokens import TokenVerifier
from mlyard.core.settings import DEFAULT_DATASTORE, ServerSettings
from mlyard.store.blobs import BlobService, DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.migrate import upgrade
from mlyard.tracking.artifacts import ArtifactStore
from mlyard.tracking.experiments import ExperimentService
from mlyard.tracking.logged_models import LoggedModels
from mlyard.tracking.records import RunLogger
from mlyard.tracking.runs import RunService
from mlyard.tracking.search import RunSearch


@dataclass
class Services:
    settings: ServerSettings
    db: Database
    datastores: DatastoreRegistry
    blobs: BlobService
    assets: AssetService
    tokens: TokenVerifier
    experiments: ExperimentService
    runs: RunService
    run_logger: RunLogger
    run_search: RunSearch
    artifacts: ArtifactStore
    registry: Registry
    logged_models: LoggedModels

    @classmethod
    def open(cls, settings: ServerSettings) -> Services:
        """Open the workspace's store, migrate it to the newest schema, and wire the services."""
        db = Database(settings.resolved_database_url)
        upgrade(db.engine)
        datastores = DatastoreRegistry(db)
        datastores.ensure_default(DEFAULT_DATASTORE, f"{settings.resolved_artifacts_root}/{DEFAULT_DATASTORE}")
        blobs = BlobService(db, datastores)
        assets = AssetService(db, datastores)
        return cls(
            settings=settings,
            db=db,
            datastores=datastores,
            blobs=blobs,
            assets=assets,
            tokens=TokenVerifier(db),
            experiments=ExperimentService(db),
            runs=RunService(db),
            run_logger=RunLogger(db),
            run_search=RunSearch(db),
            artifacts=ArtifactStore(datastores),
            registry=Registry(db, assets, blobs, datastores),
            logged_models=LoggedModels(db),
        )

    def close(self) -> None:
        self.db.dispose()
