"""Data collection (Azure's data collector): a deployment's inputs and outputs as JSONL, off the request path.

The supervisor turns the deployment's ``data_collector`` into ``MLYARD_DATA_COLLECTOR``, a JSON object::

    {"sampling_rate": 1.0, "rolling_rate": "hour", "source": "<endpoint>/<deployment>", "model_version": "m:1",
     "collections": {"model_inputs": "/abs/folder", "model_outputs": "/abs/folder", "request": "/abs/folder"}}

(only enabled collections, each with the local folder its ``data.path`` resolves to). A no-code deployment's host
collects what Azure's no-code script collects; a scoring script's ``azureml.ai.monitoring.Collector`` posts to the
worker, which stands in for Azure's collector sidecar (:func:`serve_azureml_collector`). The request path only puts
events on a bounded queue (a full queue drops and counts); one thread writes them, several to a line-append at a
time, to ``<folder>/<yyyy>/<MM>/<dd>/<HH>/<instance_id>.jsonl`` (the partition stops at ``rolling_rate``), one
CloudEvents-shaped object per line with Azure's fields. ``close()`` writes what is queued before the worker exits.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import socket
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger("mlyard.serving.worker")

ENV = "MLYARD_DATA_COLLECTOR"
MDC_PATH = "/modeldata/log"  # where azureml-ai-monitoring's Collector posts its events
QUEUE_SIZE = 10_000
_PARTITIONS = {"year": 1, "month": 2, "day": 3, "hour": 4, "minute": 5}
_FORMATS = ("%Y", "%m", "%d", "%H", "%M")
_STOP = object()


class CollectorError(ValueError):
    """``MLYARD_DATA_COLLECTOR`` cannot be read; the message says which part."""


class DataCollector:
    """Queues collected events and writes them as JSONL from one thread.

    Args:
        collections: collection name -> the folder its files go to.
        instance_id: the worker's instance id, the files' name.
        sampling_rate: the fraction of requests collected.
        rolling_rate: how deep the time partition goes (``minute`` .. ``year``).
        source: the deployment, written as each event's ``source``.
        model_version: written as each event's ``modelversion``.
    """

    def __init__(self, collections: dict[str, Path], instance_id: str, sampling_rate: float = 1.0,
                 rolling_rate: str = "hour", source: str = "", model_version: str = "") -> None:
        self.collections = collections
        self.instance_id = instance_id
        self.sampling_rate = sampling_rate
        self.depth = _PARTITIONS[rolling_rate]
        self.source = source
        self.model_version = model_version
        self.dropped = 0
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_SIZE)
        self._writer = threading.Thread(target=self._write_loop, name="data-collector", daemon=True)
        self._writer.start()

    @classmethod
    def from_env(cls, instance_id: str) -> DataCollector | None:
        """The collector ``MLYARD_DATA_COLLECTOR`` describes, or None when it is unset or collects nothing."""
        raw = os.environ.get(ENV)
        if not raw:
            return None
        try:
            config = json.loads(raw)
            collections = {str(name): Path(folder) for name, folder in config.get("collections", {}).items()}
            rate = float(config.get("sampling_rate", 1.0))
            rolling = str(config.get("rolling_rate", "hour")).lower()
        except (ValueError, TypeError, AttributeError) as exc:
            raise CollectorError(f"{ENV} is not a JSON object of sampling_rate, rolling_rate and collections: {exc}") \
                from None
        if not 0 < rate <= 1 or rolling not in _PARTITIONS:
            raise CollectorError(f"{ENV}: sampling_rate must be in (0, 1] and rolling_rate one of "
                                 f"{', '.join(_PARTITIONS)}; got {rate} and {rolling!r}")
        if not collections:
            return None
        return cls(collections, instance_id, rate, rolling, str(config.get("source", "")),
                   str(config.get("model_version", "")))

    def sampled(self) -> bool:
        """Whether this request is collected (decided once per request, for all its collections)."""
        return self.sampling_rate >= 1 or random.random() < self.sampling_rate

    def wants(self, name: str) -> bool:
        return name in self.collections

    def collect(self, name: str, data: Any, correlation_id: str, extra: dict[str, Any] | None = None) -> None:
        """Queue one event (a DataFrame's rows, or a request's JSON); never blocks, never raises."""
        if name not in self.collections:
            return
        try:
            self._queue.put_nowait((name, data, correlation_id, datetime.now(UTC), extra))
        except queue.Full:
            self.dropped += 1

    def close(self) -> None:
        """Write what is queued and stop the writer."""
        self._queue.put(_STOP)
        self._writer.join(timeout=10)
        if self.dropped:
            log.warning("data collection dropped %d events: the writer fell behind", self.dropped)

    def _write_loop(self) -> None:
        while True:
            items = [self._queue.get()]
            while len(items) < 1000:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in items)
            try:
                self._write([item for item in items if item is not _STOP])
            except Exception:  # a full disk must not take the worker down; the log says why data is missing
                log.exception("data collection could not write %d events", len(items))
            if stop:
                return

    def _write(self, items: list[tuple[str, Any, str, datetime, dict[str, Any] | None]]) -> None:
        files: dict[Path, list[str]] = {}
        for name, data, correlation_id, when, extra in items:
            folder = self.collections[name].joinpath(*(when.strftime(f) for f in _FORMATS[:self.depth]))
            files.setdefault(folder / f"{self.instance_id}.jsonl", []).append(
                json.dumps(self._event(name, data, correlation_id, when, extra), default=_jsonable))
        for path, lines in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as out:
                out.write("\n".join(lines) + "\n")

    def _event(self, name: str, data: Any, correlation_id: str, when: datetime,
               extra: dict[str, Any] | None) -> dict[str, Any]:
        rows = hasattr(data, "to_json") and hasattr(data, "columns")
        if isinstance(data, bytes):  # a request or response body: its JSON, or its text when it is not JSON
            try:
                data = json.loads(data)
            except ValueError:
                data = data.decode("utf-8", "replace")
        event = {
            "specversion": "1.0",
            "id": str(uuid.uuid4()),
            "source": self.source,
            "type": f"azureml.inference.{name}",
            "datacontenttype": "application/json",
            "time": when.isoformat().replace("+00:00", "Z"),
            # pandas writes NaN as null and timestamps as ISO text, as JSON needs
            "data": json.loads(data.to_json(orient="records", date_format="iso")) if rows else data,
            "correlationid": correlation_id,
            "xrequestid": correlation_id,
            "modelversion": self.model_version,
            "collectdatatype": "pandas.core.frame.DataFrame" if rows else "json",
            "agent": "mlyard",
        }
        if extra:
            event.update(extra)
        return event


def serve_azureml_collector(collector: DataCollector, config_dir: Path) -> socket.socket:
    """Stand in for Azure's data-collector sidecar, to which a scoring script's ``azureml.ai.monitoring.Collector``
    posts its frames: a loopback TCP socket for the worker's server to listen on, the SDK's config file (the enabled
    collections and their sampling), and the ``AZUREML_MDC_*`` variables pointing the SDK at both. Call before the
    script is imported.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    sampling = {"enabled": True, "sampleRatePercentage": collector.sampling_rate * 100}
    config = {"runMode": "cloud", "collections": {name: sampling for name in collector.collections}}
    path = config_dir / f"mdc-{os.getpid()}.json"
    path.write_text(json.dumps(config))
    os.environ.update(AZUREML_MDC_CONFIG_PATH=str(path), AZUREML_MDC_HOST="127.0.0.1", AZUREML_MDC_PORT=str(port))
    return listener


def accept_azureml_event(collector: DataCollector, headers: list[tuple[bytes, bytes]], body: bytes) -> int:
    """Queue one event the Collector SDK posted (its frame's rows as JSON, its attributes in ``ce-*`` headers).

    Returns:
        the HTTP status for the SDK: 200, or 400 when the event names no collection.
    """
    fields = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in headers}
    kind = fields.get("ce-type", "")
    prefix = "azureml.inference."
    if not kind.startswith(prefix) or len(kind) == len(prefix):
        return 400
    extra = {"collectdatatype": fields.get("ce-collect-data-type", "pandas.core.frame.DataFrame"),
             "agent": fields.get("ce-agent", "azureml-ai-monitoring")}
    if "ce-model-version" in fields and not collector.model_version:
        extra["modelversion"] = fields["ce-model-version"]
    collector.collect(kind[len(prefix):], body, fields.get("ce-x-request-id") or str(uuid.uuid4()), extra)
    return 200


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)
