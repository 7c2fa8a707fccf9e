"""The mlyard Python SDK: the same operations as the CLI, over HTTP.

    from mlyard.client import MlyardClient
    client = MlyardClient.from_env()
    client.data.create(load_spec("data.yml", "data"))
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from mlyard.client.assets import AssetOperations
from mlyard.client.batch_endpoints import BatchDeploymentOperations, BatchEndpointOperations
from mlyard.client.datastores import DatastoreOperations
from mlyard.client.endpoints import OnlineDeploymentOperations, OnlineEndpointOperations
from mlyard.client.events import EventOperations
from mlyard.client.http import Transport
from mlyard.client.jobs import JobOperations
from mlyard.client.monitors import MonitorOperations
from mlyard.client.schedules import ScheduleOperations
from mlyard.client.transfers import DEFAULT_TRANSFERS
from mlyard.client.triggers import TriggerOperations
from mlyard.client.webhooks import WebhookOperations
from mlyard.core.errors import InvalidRequestError
from mlyard.core.settings import ClientSettings, client_file, find_workspace, read_yaml_mapping


class MlyardClient:
    """A connection to one mlyard server."""

    def __init__(self, url: str, token: str | None = None, *, transfers: int = DEFAULT_TRANSFERS) -> None:
        self.transport = Transport(url, token, transfers=transfers)
        self.url = self.transport.url
        default_datastore = cache(lambda: str(self.workspace()["default_datastore"]))
        self.data = AssetOperations(self.transport, "data", default_datastore)
        self.environments = AssetOperations(self.transport, "environment", default_datastore)
        self.models = AssetOperations(self.transport, "model", default_datastore)
        self.components = AssetOperations(self.transport, "component", default_datastore)
        self.jobs = JobOperations(self.transport, default_datastore)
        self.datastores = DatastoreOperations(self.transport, default_datastore)
        self.online_endpoints = OnlineEndpointOperations(self.transport)
        self.online_deployments = OnlineDeploymentOperations(self.transport, default_datastore)
        self.batch_endpoints = BatchEndpointOperations(self.transport, default_datastore)
        self.schedules = ScheduleOperations(self.transport, default_datastore)
        self.batch_deployments = BatchDeploymentOperations(self.transport, default_datastore)
        self.events = EventOperations(self.transport)
        self.webhooks = WebhookOperations(self.transport)
        self.triggers = TriggerOperations(self.transport, default_datastore)
        self.monitors = MonitorOperations(self.transport, default_datastore)

    @classmethod
    def from_env(cls, url: str | None = None, token: str | None = None, workspace: Path | None = None) -> MlyardClient:
        """Find the server: arguments, then ``MLYARD_URL``/``MLYARD_TOKEN``, then the workspace's client file."""
        try:
            env = ClientSettings()
        except ValidationError as exc:
            bad = exc.errors()[0]
            raise InvalidRequestError(f"MLYARD_{str(bad['loc'][0]).upper()}={bad.get('input')!r}: {bad['msg']}; "
                                      "fix or unset it") from None
        url, token = url or env.url, token or env.token
        if not (url and token):
            ws = workspace or env.workspace or find_workspace()
            if ws is not None:
                saved = read_yaml_mapping(client_file(Path(ws)))
                url, token = url or saved.get("url"), token or saved.get("token")
        if not url:
            raise InvalidRequestError(
                "no mlyard server configured: set MLYARD_URL and MLYARD_TOKEN, run inside a workspace "
                "folder, or create one with 'mlyard workspace init'"
            )
        return cls(url, token, transfers=env.transfers)

    def operations(self, kind: str) -> AssetOperations:
        return {"data": self.data, "environment": self.environments, "model": self.models,
                "component": self.components}[kind]

    def workspace(self) -> dict[str, Any]:
        result: dict[str, Any] = self.transport.json("GET", "/api/v1/workspace")
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self.transport.json("GET", "/healthz")
        return result

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> MlyardClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["MlyardClient"]
