"""``create_app(settings)``: the mlyard server as an ASGI application.

Nothing is read or opened at import: the store is opened in the lifespan, so tests and tools can
build as many apps as they like.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from mlyard import __version__
from mlyard.core.settings import ServerSettings
from mlyard.server.errors import install_error_handlers
from mlyard.server.middleware import AuthMiddleware, MetricsMiddleware
from mlyard.server.models import ErrorResponse
from mlyard.server.routers import datastores, system
from mlyard.server.routers.assets import SEGMENTS, asset_router
from mlyard.server.services import Services

log = logging.getLogger("mlyard.server")

_ERRORS = {
    code: {"model": ErrorResponse, "description": text}
    for code, text in ((400, "Invalid request"), (401, "Missing or invalid token"), (404, "Not found"),
                       (409, "Conflict"), (422, "Invalid spec"))
}


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the server for the workspace ``settings`` describes."""
    settings = settings or ServerSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.services = Services.open(settings)
        log.info("serving workspace %s (%s)", settings.workspace_path, app.state.services.db.engine.url.drivername)
        try:
            yield
        finally:
            app.state.services.close()

    app = FastAPI(
        title="mlyard",
        version=__version__,
        description="Azure ML CLI v2 workspace API: assets, datastores, and (later) jobs, endpoints and MLflow.",
        lifespan=lifespan,
        responses=_ERRORS,  # type: ignore[arg-type]
    )
    app.state.metrics_registry = CollectorRegistry()
    install_error_handlers(app)
    app.include_router(system.router)
    app.include_router(datastores.router)
    for kind in SEGMENTS:
        app.include_router(asset_router(kind))
    app.add_middleware(AuthMiddleware, services=lambda: app.state.services)
    app.add_middleware(MetricsMiddleware, registry=app.state.metrics_registry)
    return app
