"""The services one server process holds, built from settings at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update

from mlyard.assets.registry import Registry
from mlyard.assets.service import AssetService
from mlyard.auth.tokens import TokenVerifier, hash_token, issue_token
from mlyard.automation.delivery import Sender
from mlyard.automation.dispatcher import RegistryReader, WebhookDispatcher
from mlyard.automation.events import EventService
from mlyard.automation.monitor_alerts import AlertRecorder, SmtpConfig
from mlyard.automation.monitors import MonitorService
from mlyard.automation.scheduler import Scheduler
from mlyard.automation.schedules import ScheduleService
from mlyard.automation.triggers import TriggerEngine, TriggerService
from mlyard.automation.webhooks import WebhookService
from mlyard.core.settings import DEFAULT_DATASTORE, ServerSettings
from mlyard.jobs.runner import JobRunner, server_url
from mlyard.serving.endpoints import EndpointService
from mlyard.serving.supervisor import Supervisor
from mlyard.store.blobs import BlobService, DatastoreRegistry
from mlyard.store.db import Database
from mlyard.store.migrate import upgrade
from mlyard.store.resumable import UPLOADS_FOLDER, ResumableUploads
from mlyard.store.schema import ApiToken
from mlyard.tracking.artifacts import ArtifactStore
from mlyard.tracking.experiments import ExperimentService
from mlyard.tracking.logged_models import LoggedModels
from mlyard.tracking.records import RunLogger
from mlyard.tracking.runs import RunService
from mlyard.tracking.search import RunSearch


class StepTokens:
    """API tokens for running job steps: issued as the submitting user, revoked when the step ends."""

    def __init__(self, db: Database, verifier: TokenVerifier) -> None:
        self._db = db
        self._verifier = verifier

    def issue(self, actor: str, role: str) -> tuple[str, str]:
        secret = self._db.run_in_transaction(lambda s: issue_token(s, name=actor, role=role))
        return secret, hash_token(secret)

    def revoke(self, token_hash: str) -> None:
        self._db.run_in_transaction(lambda s: s.execute(
            update(ApiToken).where(ApiToken.token_hash == token_hash).values(revoked=True)))
        self._verifier.forget(token_hash)


@dataclass
class Services:
    settings: ServerSettings
    db: Database
    datastores: DatastoreRegistry
    blobs: BlobService
    resumable: ResumableUploads
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
    endpoints: EndpointService
    events: EventService
    webhooks: WebhookService
    webhook_dispatcher: WebhookDispatcher
    triggers: TriggerService
    trigger_engine: TriggerEngine
    schedules: ScheduleService
    scheduler: Scheduler
    monitors: MonitorService
    monitor_alerts: AlertRecorder

    @classmethod
    def open(cls, settings: ServerSettings) -> Services:
        """Open the workspace's store, migrate it to the newest schema, and wire the services."""
        db = Database(settings.resolved_database_url)
        upgrade(db.engine)
        datastores = DatastoreRegistry(db)
        datastores.ensure_default(DEFAULT_DATASTORE, f"{settings.resolved_artifacts_root}/{DEFAULT_DATASTORE}")
        blobs = BlobService(db, datastores)
        resumable = ResumableUploads(settings.state_dir / UPLOADS_FOLDER, datastores, blobs)
        assets = AssetService(db, datastores)
        runs = RunService(db)
        run_logger = RunLogger(db)
        experiments = ExperimentService(db)
        verifier = TokenVerifier(db)
        jobs = JobRunner(db, datastores, assets, runs, run_logger, experiments, StepTokens(db, verifier),
                         state_dir=settings.state_dir,
                         server_url=server_url(settings.host, settings.port),
                         default_env_mode=settings.job_env_mode)
        sender = Sender(timeout_s=settings.webhook_timeout_s, backoff_s=settings.webhook_backoff_s,
                        max_attempts=settings.webhook_max_attempts)
        scheduler = Scheduler(db, jobs)
        monitors = MonitorService(db, assets, jobs, datastores)
        scheduler.monitor_runner = monitors.scheduled  # create_monitor schedules run as monitor jobs
        smtp = SmtpConfig(settings.smtp_host, settings.smtp_port, settings.smtp_user, settings.smtp_password,
                          settings.smtp_from, settings.smtp_starttls) if settings.smtp_host else None
        return cls(
            settings=settings,
            db=db,
            datastores=datastores,
            blobs=blobs,
            resumable=resumable,
            assets=assets,
            tokens=verifier,
            experiments=experiments,
            runs=runs,
            run_logger=run_logger,
            run_search=RunSearch(db),
            artifacts=ArtifactStore(datastores),
            registry=Registry(db, assets, blobs, datastores),
            logged_models=LoggedModels(db),
            jobs=jobs,
            endpoints=EndpointService(db, assets, datastores, Supervisor(settings.state_dir), envs=jobs.envs,
                                      env_mode=settings.job_env_mode),
            events=EventService(db),
            webhooks=WebhookService(db, sender),
            webhook_dispatcher=WebhookDispatcher(db, sender, RegistryReader(Registry(db, assets, blobs, datastores))),
            triggers=TriggerService(db),
            trigger_engine=TriggerEngine(db, jobs),
            schedules=ScheduleService(db, on_change=scheduler.wake),
            scheduler=scheduler,
            monitors=monitors,
            monitor_alerts=AlertRecorder(db, monitors, smtp),
        )

    def close(self) -> None:
        self.webhook_dispatcher.stop()
        self.webhooks.close()
        self.trigger_engine.stop()  # first: no job is handed to a runner that is stopping
        self.scheduler.stop()
        self.events.close()
        self.endpoints.supervisor.close()
        self.jobs.stop()
        self.db.dispose()
