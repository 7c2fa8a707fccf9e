"""Monitor operations of the SDK: run a monitor now (uploading its local data), its runs and results."""

from __future__ import annotations

import builtins
import copy
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from mlyard.client.http import Transport
from mlyard.client.uploads import Progress, plan_upload, upload_plan
from mlyard.core.errors import InvalidRequestError
from mlyard.specs.references import classify_path

BASE = "/api/v1/monitors"
ENDED = ("Completed", "Failed", "Canceled")


def _q(name: str) -> str:
    return quote(name, safe="")


class MonitorOperations:
    """``client.monitors``."""

    def __init__(self, transport: Transport, default_datastore: Callable[[], str]) -> None:
        self._t = transport
        self._default_datastore = default_datastore

    def run(self, spec: dict[str, Any], *, progress: Progress | None = None) -> dict[str, Any]:
        """Run a monitor schedule's spec now (``load_spec(file, "schedule").to_dict()``): every local
        ``input_data.path`` of its signals is uploaded first, as ``jobs.create`` does for a job's inputs."""
        body = copy.deepcopy(spec)
        done: dict[str, str] = {}
        for signal in ((body.get("create_monitor") or {}).get("monitoring_signals") or {}).values():
            for key in ("production_data", "reference_data"):
                items = signal.get(key)
                for data in items if isinstance(items, list) else [items] if isinstance(items, dict) else []:
                    source = data.get("input_data") or {}
                    path = source.get("path")
                    if isinstance(path, str) and classify_path(path) == "local":
                        if path not in done:
                            done[path] = upload_plan(self._t, self._default_datastore(), plan_upload(path),
                                                     progress)
                        source["path"] = done[path]
        result: dict[str, Any] = self._t.json("POST", f"{BASE}/run", json={"spec": body})
        return result

    def run_stored(self, name: str) -> dict[str, Any]:
        """Run the stored monitor schedule ``name`` now."""
        result: dict[str, Any] = self._t.json("POST", f"{BASE}/{_q(name)}/runs")
        return result

    def list(self) -> builtins.list[dict[str, Any]]:
        result: builtins.list[dict[str, Any]] = self._t.json("GET", BASE)
        return result

    def get(self, name: str, max_runs: int = 20) -> dict[str, Any]:
        """The monitor with its latest runs (newest first) and their alerts."""
        result: dict[str, Any] = self._t.json("GET", f"{BASE}/{_q(name)}", params={"max_runs": max_runs})
        return result

    def get_run(self, name: str, job: str) -> dict[str, Any]:
        """One run; ``result`` holds its signals.json once it has ended."""
        result: dict[str, Any] = self._t.json("GET", f"{BASE}/{_q(name)}/runs/{_q(job)}")
        return result

    def wait(self, name: str, job: str, *, timeout_s: float = 3600, poll_s: float = 1.0) -> dict[str, Any]:
        """Wait for a run to end; returns it with its result."""
        deadline = time.monotonic() + timeout_s
        while True:
            run = self.get_run(name, job)
            if run["status"] in ENDED:
                return run
            if time.monotonic() > deadline:
                raise InvalidRequestError(f"monitor run {job} has not ended after {timeout_s:.0f} s "
                                          f"(status {run['status']}); follow it with 'mlyard job stream -n {job}'")
            time.sleep(poll_s)
