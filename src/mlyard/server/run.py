"""Running the server in the foreground with uvicorn (SIGTERM and Ctrl-C shut it down gracefully)."""

from __future__ import annotations

import logging
import socket
import sys
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE

from mlyard.core.errors import InvalidRequestError
from mlyard.core.settings import ServerSettings
from mlyard.server.app import create_app
from mlyard.server.lifecycle import BackgroundGc
from mlyard.server.lock import WorkspaceLock


def check_port_free(host: str, port: int) -> None:
    """Refuse at once, with what to do, when the address is taken (uvicorn would only log it)."""
    with socket.socket() as s:
        # uvicorn binds with SO_REUSEADDR; without it here, connections of a server that just
        # stopped (TIME_WAIT) would make the port look taken.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise InvalidRequestError(
                f"cannot bind {host}:{port} ({exc.strerror}): another server uses it; pass --port "
                "or change 'port' in mlyard.yaml"
            ) from exc


class _Server(uvicorn.Server):
    """uvicorn, telling the app when a signal asks it to stop: it then drains open connections, and a live
    event stream would otherwise keep its connection open for the whole grace period."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        app = self.config.app
        if isinstance(app, FastAPI):
            app.state.stopping.set()


def refuse_unknown_schema(database_url: str) -> None:
    """Raise StorageError when the store's schema is newer than this mlyard knows (nothing is changed)."""
    from mlyard.store.db import make_engine
    from mlyard.store.migrate import check_known

    engine = make_engine(database_url)
    try:
        check_known(engine)
    finally:
        engine.dispose()


def serve(settings: ServerSettings) -> None:
    """Serve until SIGTERM or SIGINT; in-flight requests get up to 10 s to finish.

    Raises:
        ConflictError: another server holds the workspace (nothing was opened or bound).
        InvalidRequestError: the address is taken.
        StorageError: the store's schema is newer than this mlyard knows.
    """
    lock = WorkspaceLock.acquire(settings.workspace_path, f"http://{settings.host}:{settings.port}")
    try:
        check_port_free(settings.host, settings.port)
        logging.basicConfig(level=settings.log_level.upper(),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        # httpx logs every request at INFO: each scoring request forwarded to a worker would be a line
        logging.getLogger("httpx").setLevel(logging.WARNING)
        logging.getLogger("mlyard.server").info("workspace lock held: %s", lock.info.describe())
        refuse_unknown_schema(settings.resolved_database_url)  # one clear line, before uvicorn's start-up
        server = _Server(uvicorn.Config(
            create_app(settings, workspace_lock=lock),
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level.lower(),
            timeout_graceful_shutdown=10,
            access_log=False,
        ))
        background_gc = BackgroundGc(settings)  # gc_interval_hours > 0 only
        background_gc.start()
        try:
            server.run()
        except KeyboardInterrupt:
            pass
        finally:
            background_gc.stop()
        if not server.started:  # what uvicorn.run does: a failed start-up is exit status 3
            sys.exit(STARTUP_FAILURE)
    finally:
        lock.release()
