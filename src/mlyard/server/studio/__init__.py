"""The studio: mlyard's web interface, served by the server at ``/`` and ``/studio/...`` on the same port.

Server-rendered pages (Jinja2, autoescaped) over the same services as the API, with htmx and uPlot
vendored under ``static/vendor/`` (no CDN, no Node build). Sign-in is a cookie session (``auth.py``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def install_studio(app: FastAPI) -> None:
    """Add the studio's pages, its JSON calls, its static files, and the API route that issues sign-in codes."""
    from mlyard.server.studio import (
        asset_pages,
        automation_pages,
        batch_pages,
        job_pages,
        monitor_pages,
        signin,
        tracking_pages,
        trigger_pages,
    )

    app.include_router(signin.api_router)
    for module in (signin, tracking_pages, asset_pages, job_pages, automation_pages, monitor_pages,
                   batch_pages, trigger_pages):
        app.include_router(module.router)
    app.mount("/studio/static", StaticFiles(directory=STATIC), name="studio-static")
