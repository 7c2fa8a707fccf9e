"""Webhook operations of the SDK: subscriptions, test deliveries and the delivery log."""

from __future__ import annotations

import builtins
from typing import Any
from urllib.parse import quote

from mlyard.client.http import Transport

BASE = "/api/v1/webhooks"


def _path(ref: str) -> str:
    return f"{BASE}/{quote(ref, safe='')}"


class WebhookOperations:
    """``client.webhooks``: a webhook is named by its id or its name."""

    def __init__(self, transport: Transport) -> None:
        self._t = transport

    def create(self, *, name: str, url: str, events: builtins.list[str], filters: dict[str, str] | None = None,
               description: str | None = None, secret: str | None = None, status: str = "ACTIVE") -> dict[str, Any]:
        """Subscribe ``url`` to ``events`` from now on; ``secret`` signs the deliveries and is never shown again."""
        body = {"name": name, "url": url, "events": events, "filters": filters or {}, "description": description,
                "secret": secret, "status": status}
        result: dict[str, Any] = self._t.json("POST", BASE, json=body)
        return result

    def get(self, ref: str) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("GET", _path(ref))
        return result

    def list(self) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self._t.json("GET", BASE)
        return result

    def update(self, ref: str, **changes: Any) -> dict[str, Any]:
        """Change name, url, events, filters, description, secret ('' removes it) or status."""
        result: dict[str, Any] = self._t.json("PATCH", _path(ref), json=changes)
        return result

    def delete(self, ref: str) -> None:
        self._t.request("DELETE", _path(ref))

    def test(self, ref: str, event: str | None = None) -> dict[str, Any]:
        """Send one test delivery now; returns its result (success, status code, error, duration)."""
        result: dict[str, Any] = self._t.json("POST", f"{_path(ref)}/test", json={"event": event})
        return result

    def deliveries(self, ref: str, limit: int = 100) -> builtins.list[dict[str, Any]]:
        """The newest ``limit`` delivery attempts, newest first."""
        result: builtins.list[dict[str, Any]] = self._t.json("GET", f"{_path(ref)}/deliveries",
                                                                params={"limit": limit})
        return result
