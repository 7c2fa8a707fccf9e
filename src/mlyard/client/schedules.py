"""Schedule operations of the SDK: create (uploading the job's local code and data), update, enable,
disable, delete, list, show."""

from __future__ import annotations

import builtins
from collections.abc import Callable
from typing import Any

from mlyard.client.http import Transport
from mlyard.client.jobs import _Uploader
from mlyard.client.uploads import Progress

BASE = "/api/v1/schedules"


class ScheduleOperations:
    """``client.schedules``."""

    def __init__(self, transport: Transport, default_datastore: Callable[[], str]) -> None:
        self._t = transport
        self._default_datastore = default_datastore

    def _prepare(self, spec: dict[str, Any], progress: Progress | None) -> dict[str, Any]:
        """The spec with an inline ``create_job``'s local code and data uploaded (as ``job create`` does)."""
        body = dict(spec)
        job = body.get("create_job")
        if isinstance(job, dict):  # inline, or azureml:<job> with overrides whose inputs may be local
            body["create_job"] = _Uploader(self._t, self._default_datastore, progress).prepare(job)
        return body

    def create(self, spec: dict[str, Any], *, progress: Progress | None = None) -> dict[str, Any]:
        """Create a schedule from a loaded spec (``load_spec(file, "schedule").to_dict()``)."""
        result: dict[str, Any] = self._t.json("POST", BASE, json={"spec": self._prepare(spec, progress)})
        return result

    def update(self, name: str, spec: dict[str, Any], *, progress: Progress | None = None) -> dict[str, Any]:
        """Replace a schedule's spec; the next firing is computed again."""
        result: dict[str, Any] = self._t.json("PATCH", f"{BASE}/{name}", json={"spec": self._prepare(spec, progress)})
        return result

    def get(self, name: str) -> dict[str, Any]:
        """The schedule with its next five firing instants, latest firings and catch-up rule."""
        result: dict[str, Any] = self._t.json("GET", f"{BASE}/{name}")
        return result

    def list(self) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self._t.json("GET", BASE)
        return result

    def enable(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("POST", f"{BASE}/{name}/enable")
        return result

    def disable(self, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self._t.json("POST", f"{BASE}/{name}/disable")
        return result

    def delete(self, name: str) -> None:
        """Delete a schedule; refused while it is enabled (disable it first)."""
        self._t.request("DELETE", f"{BASE}/{name}")
