"""The services one server process holds, built from settings at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from mlyard.assets.registry import Registry
from mlyard.assets.service import AssetService
from mlyard.auth.tokens import TokenVerifier, issue_token
from mlyard.core.settings import DEFAULT_DATASTORE, ServerSettings
from mlyard.jobs.runner import RUNNER_TOKEN, JobRunner, server_url
from mlyard.store.blobs import BlobService, DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.migrate import upgrade
from mlyard.store.schema import ApiToken
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
    jobs: JobRunner

    @classmethod
    def open(cls, settings: ServerSettings) -> Services:
        """Open the workspace's store, migrate it to the newest schema, and wire the services."""
        db = Database(settings.resolved_database_url)
        upgrade(db.engine)
        datastores = DatastoreRegistry(db)
        datastores.ensure_default(DEFAULT_DATASTORE, f"{settings.resolved_artifacts_root}/{DEFAULT_DATASTORE}")
        blobs = BlobService(db, datastores)
        assets = AssetService(db, datastores)
        runs = RunService(db)
        run_logger = RunLogger(db)
        experiments = ExperimentService(db)
        jobs = JobRunner(db, datastores, assets, runs, run_logger, experiments, state_dir=settings.state_dir,
                         server_url=server_url(settings.host, settings.port),
                         default_env_mode=settings.job_env_mode)
        return cls(
            settings=settings,
            db=db,
            datastores=datastores,
            blobs=blobs,
            assets=assets,
            tokens=TokenVerifier(db),
            experiments=experiments,
            runs=runs,
            run_logger=run_logger,
            run_search=RunSearch(db),
            artifacts=ArtifactStore(datastores),
            registry=Registry(db, assets, blobs, datastores),
            logged_models=LoggedModels(db),
            jobs=jobs,
        )

    def start_jobs(self) -> None:
        """Start the job runner with a fresh token for job processes (the previous server's is revoked)."""

        def fresh_token(s: Session) -> str:
            s.execute(delete(ApiToken).where(ApiToken.name == RUNNER_TOKEN))
            return issue_token(s, name=RUNNER_TOKEN, role="admin")

        self.jobs.start(self.db.run_in_transaction(fresh_token))

    def close(self) -> None:
        self.jobs.stop()
        self.db.dispose()
