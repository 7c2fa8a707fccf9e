"""Request dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from mlyard.auth.tokens import Principal
from mlyard.server.services import Services


# async: FastAPI runs a sync dependency in a worker thread, a hop per request for an attribute read.
async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_principal(request: Request) -> Principal:
    principal: Principal = request.scope["state"]["principal"]
    return principal
