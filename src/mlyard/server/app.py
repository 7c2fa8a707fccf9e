"""``create_app(settings)``: the mlyard server as an ASGI application.

Nothing is read or opened at import: the store is opened in the lifespan, so tests and tools can
build as many apps as they like.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from mlyard import __version__
from mlyard.core.settings import ServerSettings
from mlyard.server.errors import install_error_handlers
from mlyard.server.lock import WorkspaceLock
from mlyard.server.middleware import AuthMiddleware, MetricsMiddleware, MlflowUiPrefixMiddleware, StrictInputMiddleware
from mlyard.server.mlflow import artifacts as mlflow_artifacts
from mlyard.server.mlflow import logged_models as mlflow_logged_models
from mlyard.server.mlflow import registry as mlflow_registry
from mlyard.server.mlflow import tracking as mlflow_tracking
from mlyard.server.mlflow import webhooks as mlflow_webhooks
from mlyard.server.models import ErrorResponse
from mlyard.server.routers import (
    batch_endpoints,
    datastores,
    endpoints,
    events,
    jobs,
    monitors,
    schedules,
    system,
    triggers,
    webhooks,
)
from mlyard.server.routers.assets import SEGMENTS, asset_router
from mlyard.server.services import Services
from mlyard.server.studio import install_studio
from mlyard.serving.metrics import ServingMetrics
from mlyard.serving.router import ScoringRouter

log = logging.getLogger("mlyard.server")

_ERRORS = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in ((400, "Invalid request"), (401, "Missing or invalid token"), (404, "Not found"),
                       (409, "Conflict"), (422, "Invalid spec"))
}


def create_app(settings: ServerSettings | None = None, workspace_lock: WorkspaceLock | None = None) -> FastAPI:
    """Build the server for the workspace ``settings`` describes.

    Args:
        workspace_lock: the workspace's lock, when the caller took it already (``serve`` does, to refuse a
            second server before binding); otherwise the app takes it at start-up and lets go at shutdown.
    """
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # One server per workspace: the lock comes before the store is opened and the job runner starts.
        lock = workspace_lock or WorkspaceLock.acquire(settings.workspace_path,
                                                       f"http://{settings.host}:{settings.port}")
        try:
            app.state.services = Services.open(settings)
            app.state.services.jobs.start()
            app.state.services.scheduler.start()  # after the runner: catch-ups submit jobs
            app.state.services.webhook_dispatcher.start()
            app.state.services.trigger_engine.start()
            app.state.services.endpoints.supervisor.on_restart = serving_metrics.restarted
            # every stored deployment comes back, in the background: the API answers meanwhile
            threading.Thread(target=app.state.services.endpoints.restore, name="mlyard-serving-restore",
                             daemon=True).start()
            log.info("serving workspace %s (%s)", settings.workspace_path,
                     app.state.services.db.engine.url.drivername)
            try:
                yield
            finally:
                app.state.services.close()
        finally:
            if workspace_lock is None:
                lock.release()

    app = FastAPI(
        title="mlyard",
        version=__version__,
        description="Azure ML CLI v2 workspace API: assets, datastores, and (later) jobs, endpoints and MLflow.",
        lifespan=lifespan,
        responses=_ERRORS,  # type: ignore[arg-type]
    )
    app.state.metrics_registry = CollectorRegistry()
    # set when a signal asks the server to stop (run.py), before open connections are drained: long-lived
    # responses (the event stream) end then, instead of holding the shutdown up
    app.state.stopping = threading.Event()
    serving_metrics = ServingMetrics(app.state.metrics_registry)
    install_error_handlers(app)
    # The MLflow client calls /api/2.0/mlflow (its UI's /ajax-api/2.0/mlflow is rewritten to it). Routes are
    # matched in order, one by one, and a training script's calls are the most frequent: they go first.
    for mlflow_router in (mlflow_tracking.router, mlflow_registry.router, mlflow_logged_models.router):
        app.include_router(mlflow_router)
    app.include_router(mlflow_artifacts.router)
    app.include_router(mlflow_webhooks.router)
    app.include_router(system.router)
    app.include_router(datastores.router)
    app.include_router(jobs.router)
    app.include_router(endpoints.router)
    app.include_router(batch_endpoints.router)
    app.include_router(events.router)
    app.include_router(webhooks.router)
    app.include_router(triggers.router)
    app.include_router(monitors.router)
    app.include_router(schedules.router)
    for kind in SEGMENTS:
        app.include_router(asset_router(kind))
    install_studio(app)  # the web pages at / and /studio/..., signed in with a cookie session
    app.add_middleware(StrictInputMiddleware)  # inside authentication: nothing is read for a refused client
    app.add_middleware(AuthMiddleware, services=lambda: app.state.services)
    app.add_middleware(MetricsMiddleware, registry=app.state.metrics_registry)
    app.add_middleware(MlflowUiPrefixMiddleware)
    # outermost: scoring requests skip the workspace's token check and FastAPI (they carry endpoint keys)
    app.add_middleware(ScoringRouter, service=lambda: app.state.services.endpoints,
                       tokens=lambda: app.state.services.tokens, metrics=serving_metrics)
    return app
