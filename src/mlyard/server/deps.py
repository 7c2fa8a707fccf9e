"""Request dependencies shared by the routers."""

from __future__ import annotations

from fastapi import Request

from mlyard.auth.tokens import Principal
from mlyard.server.services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def get_principal(request: Request) -> Principal:
    principal: Principal = request.scope["state"]["principal"]
    return principal
