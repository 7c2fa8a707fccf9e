"""Trigger operations of the SDK: create (uploading the local code and data of the job), list, show,
enable, disable, delete."""

from __future__ import annotations

import builtins
import copy
from collections.abc import Callable
from typing import Any

from mlyard.client.http import Transport
from mlyard.client.jobs import _Uploader
from mlyard.client.uploads import Progress

BASE = "/api/v1/triggers"


class TriggerOperations:
    """``client.triggers``."""

    def __init__(self, transport: Transport, default_datastore: Callable[[], str]) -> None:
        self._t = transport
        self._default_datastore = default_datastore

    def create(self, spec: dict[str, Any], *, progress: Progress | None = None) -> dict[str, Any]:
        """Create a trigger from a loaded spec (``load_spec(file, "trigger").to_dict()``): the job in
        ``create_job`` is inline there, and its local code and data are uploaded first, as ``jobs.create`` does."""
        body = copy.deepcopy(spec)
        job = body.get("create_job")
        if isinstance(job, dict) and "job" not in job:
            body["create_job"] = _Uploader(self._t, self._default_datastore, progress).prepare(job)
        result: dict[str, Any] = self._t.json("POST", BASE, json={"spec": body})
        return result

    def get(self, name: str, max_firings: int = 20) -> dict[str, Any]:
        """The trigger, with its latest firings (newest first)."""
        result: dict[str, Any] = self._t.json("GET", f"{BASE}/{name}", params={"max_firings": max_firings})
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
        self._t.request("DELETE", f"{BASE}/{name}")
