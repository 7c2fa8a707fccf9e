"""Running the server in the foreground with uvicorn (SIGTERM and Ctrl-C shut it down gracefully)."""

from __future__ import annotations

import logging

import uvicorn

from mlyard.core.settings import ServerSettings
from mlyard.server.app import create_app


def serve(settings: ServerSettings) -> None:
    """Serve until SIGTERM or SIGINT; in-flight requests get up to 10 s to finish."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=10,
        access_log=False,
    )
