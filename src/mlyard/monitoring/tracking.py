"""A monitor run's results in its MLflow run, and the history of each metric over the monitor's past runs.

Inside a monitor job the runner sets ``MLFLOW_TRACKING_URI``, ``MLFLOW_RUN_ID`` and ``MLFLOW_EXPERIMENT_ID`` (the
experiment is the monitor's name), so any MLflow client can query a monitor's runs::

    mlflow.search_runs(experiment_names=["attrition-monitor"], filter_string="tags.`mlyard.monitor.status` = 'alerted'")

Metric keys are ``<signal>.<feature>.<MetricName>`` (``data-drift-signal.MonthlyIncome.NormalizedWassersteinDistance``),
``<signal>.<MetricName>`` for a whole signal's metrics (model performance, NDCG), ``<signal>.alerted`` (0 or 1) and
``<signal>.BaselineRowCount``/``TargetRowCount``; characters MLflow does not allow in a key become ``_``. Tags:
``mlyard.monitor``, ``mlyard.monitor.status`` and ``mlyard.signal.<signal>.status`` (passed, alerted, error).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

_KEY = re.compile(r"[^A-Za-z0-9_\-. /:]")
BATCH = 900  # MLflow takes at most 1000 metrics per log_batch


def clean_key(text: str) -> str:
    """A string MLflow accepts as a metric or tag key (at most 250 characters)."""
    return _KEY.sub("_", text)[:250]


def metric_key(signal: str, feature: str | None, metric: str) -> str:
    return clean_key(f"{signal}.{feature}.{metric}" if feature else f"{signal}.{metric}")


def metrics_of(result: dict[str, Any]) -> Iterator[tuple[str, float]]:
    """Every (key, value) a run logs, from ``signals.json``'s shape; null values are left out."""
    for signal in result.get("signals") or []:
        name = signal["signalName"]
        yield metric_key(name, None, "alerted"), 1.0 if signal.get("status") == "alerted" else 0.0
        counts = (signal.get("metrics") or {}).get("rowCount") or {}
        for key, label in (("baselineCount", "BaselineRowCount"), ("targetCount", "TargetRowCount")):
            if isinstance(counts.get(key), int | float):
                yield metric_key(name, None, label), float(counts[key])
        for feature, values in ((signal.get("metrics") or {}).get("features") or {}).items():
            for m in values.get("metrics") or []:
                if m.get("metricValue") is not None:
                    yield metric_key(name, feature, m["metricName"]), float(m["metricValue"])
        for m in (signal.get("metrics") or {}).get("signal") or []:
            if m.get("metricValue") is not None:
                yield metric_key(name, None, m["metricName"]), float(m["metricValue"])


def tags_of(monitor: str, result: dict[str, Any]) -> dict[str, str]:
    tags = {"mlyard.monitor": monitor, "mlyard.monitor.status": str(result.get("status"))}
    for signal in result.get("signals") or []:
        tags[clean_key(f"mlyard.signal.{signal['signalName']}.status")] = str(signal.get("status"))
    return tags


@dataclass(frozen=True)
class Point:
    """One past value of a metric: when its run started (ms), the value, the run."""

    at: int
    value: float
    run_id: str


def _client() -> Any:
    try:
        from mlflow import MlflowClient
    except ImportError:
        return None
    return MlflowClient()


def log_results(monitor: str, result: dict[str, Any]) -> str:
    """Log ``result`` into the job's MLflow run; returns what was done, for the job's log."""
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not run_id or not os.environ.get("MLFLOW_TRACKING_URI"):
        return "not logged to MLflow: MLFLOW_RUN_ID/MLFLOW_TRACKING_URI are not set (not running as a job)"
    client = _client()
    if client is None:
        return "not logged to MLflow: the mlflow package is not installed in this environment"
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    metrics = [Metric(k, v, now, 0) for k, v in dict(metrics_of(result)).items()]
    tags = [RunTag(k, v) for k, v in tags_of(monitor, result).items()]
    for start in range(0, max(len(metrics), 1), BATCH):
        client.log_batch(run_id, metrics=metrics[start:start + BATCH], tags=tags if start == 0 else [])
    return f"logged {len(metrics)} metrics and {len(tags)} tags to MLflow run {run_id}"


def history(limit: int = 30) -> dict[str, list[Point]]:
    """Every metric of the monitor's earlier runs (the job's experiment), oldest first; empty outside a job."""
    run_id, experiment = os.environ.get("MLFLOW_RUN_ID"), os.environ.get("MLFLOW_EXPERIMENT_ID")
    client = _client() if run_id and experiment and os.environ.get("MLFLOW_TRACKING_URI") else None
    if client is None:
        return {}
    try:
        runs = client.search_runs([experiment], max_results=limit + 1, order_by=["attributes.start_time DESC"])
    except Exception:  # noqa: BLE001 - the history is a nicety: a report without it beats no report
        return {}
    out: dict[str, list[Point]] = {}
    for run in reversed(runs):
        if run.info.run_id == run_id:
            continue
        for key, value in run.data.metrics.items():
            out.setdefault(key, []).append(Point(int(run.info.start_time or 0), float(value), run.info.run_id))
    return out
