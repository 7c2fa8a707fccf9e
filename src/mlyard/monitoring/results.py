"""Results in Azure's signal output shape, JSON-ready (NaN and infinities become null).

One signal::

    {"signalName", "signalType", "version": "1.0.0", "status": "passed"|"alerted"|"error", "message",
     "metrics": {"rowCount": {"baselineCount", "targetCount"},
                 "features": {<name>: {"dataType": "Numerical"|"Categorical", "status", "message",
                                       "histogram": "signals/<signal>/<name>.histogram.json" | null,
                                       "metrics": [{"metricName", "metricValue", "threshold", "alert"}]}},
                 "signal": [{"metricName", "metricValue", "threshold", "alert"}]},
     "skippedFeatures": {<name>: reason}, "notes": [...], "windows": {"baseline": {...}, "production": {...}}}

``signal`` holds the metrics of the whole signal (NDCG, model performance). A feature's status is ``ok``,
``alerted``, ``all_null`` (no value in a window: nothing to compare) or ``error`` (with ``message``).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from mlyard.monitoring.metrics import breaches

VERSION = "1.0.0"
FeatureStatus = Literal["ok", "alerted", "all_null", "error"]
SignalStatus = Literal["passed", "alerted", "error"]


def _path_part(name: str) -> str:
    """A column or signal name as one harmless file name: no separators, no leading dot."""
    return re.sub(r"[^A-Za-z0-9_.=+-]", "_", name).lstrip(".") or "_"


def number(value: float | None) -> float | None:
    """A JSON-safe float: NaN and ±inf become None."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class MetricResult:
    name: str
    value: float | None
    threshold: float | None

    @property
    def alert(self) -> bool:
        return breaches(self.name, self.value, self.threshold)

    def to_dict(self) -> dict[str, Any]:
        # An infinite chi-square statistic gives p = 0; a NaN value is reported as null and never alerts.
        return {"metricName": self.name, "metricValue": number(self.value), "threshold": number(self.threshold),
                "alert": self.alert}


@dataclass
class FeatureResult:
    name: str
    data_type: Literal["Numerical", "Categorical"]
    metrics: list[MetricResult] = field(default_factory=list)
    status_override: FeatureStatus | None = None
    message: str | None = None
    histogram: dict[str, Any] | None = None

    @property
    def status(self) -> FeatureStatus:
        if self.status_override is not None:
            return self.status_override
        return "alerted" if any(m.alert for m in self.metrics) else "ok"

    def to_dict(self, histogram_path: str | None) -> dict[str, Any]:
        return {"dataType": self.data_type, "status": self.status, "message": self.message,
                "histogram": histogram_path, "metrics": [m.to_dict() for m in self.metrics]}


@dataclass
class SignalResult:
    name: str
    type: str
    baseline_count: int = 0
    target_count: int = 0
    features: list[FeatureResult] = field(default_factory=list)
    signal_metrics: list[MetricResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    windows: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> SignalStatus:
        if self.error is not None:
            return "error"
        alerted = any(f.status == "alerted" for f in self.features) or any(m.alert for m in self.signal_metrics)
        return "alerted" if alerted else "passed"

    @property
    def breaches(self) -> list[dict[str, Any]]:
        """Azure's alert rows: ``(metric_value, metric_name, threshold_value, group)`` of each breach."""
        rows = [{"metric_value": number(m.value), "metric_name": m.name, "threshold_value": number(m.threshold),
                 "group": f.name} for f in self.features for m in f.metrics if m.alert]
        rows += [{"metric_value": number(m.value), "metric_name": m.name, "threshold_value": number(m.threshold),
                  "group": ""} for m in self.signal_metrics if m.alert]
        return rows

    @property
    def message(self) -> str | None:
        if self.error is not None:
            return self.error
        if self.status == "alerted":
            return (f"The signal '{self.name}' has failed due to one or more features violating metric "
                    "thresholds.")
        return None

    def histogram_path(self, feature: FeatureResult) -> str | None:
        """Azure's ``signals/<signal>/<feature>.histogram.json``; names are made safe as path parts."""
        if feature.histogram is None:
            return None
        return f"signals/{_path_part(self.name)}/{_path_part(feature.name)}.histogram.json"

    def to_dict(self) -> dict[str, Any]:
        return {
            "signalName": self.name, "signalType": self.type, "version": VERSION, "status": self.status,
            "message": self.message, "breaches": self.breaches,
            "metrics": {
                "rowCount": {"baselineCount": self.baseline_count, "targetCount": self.target_count},
                "features": {f.name: f.to_dict(self.histogram_path(f)) for f in self.features},
                "signal": [m.to_dict() for m in self.signal_metrics],
            },
            "skippedFeatures": dict(self.skipped), "notes": list(self.notes), "windows": self.windows,
        }


@dataclass
class MonitorResult:
    """Every signal of one monitor run."""

    run_at: str
    signals: list[SignalResult] = field(default_factory=list)

    @property
    def status(self) -> SignalStatus:
        statuses = {s.status for s in self.signals}
        return "error" if "error" in statuses else "alerted" if "alerted" in statuses else "passed"

    def to_dict(self) -> dict[str, Any]:
        return {"version": VERSION, "runAt": self.run_at, "status": self.status,
                "signals": [s.to_dict() for s in self.signals]}
