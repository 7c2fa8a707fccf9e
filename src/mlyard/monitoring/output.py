"""Writing a run's results: ``signals.json``, Azure-style histogram files, and a terminal table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlyard.monitoring.results import MonitorResult, number


def write_results(result: MonitorResult, folder: Path) -> Path:
    """``folder/signals.json`` and ``folder/signals/<signal>/<feature>.histogram.json``; returns the JSON's path."""
    folder.mkdir(parents=True, exist_ok=True)
    for signal in result.signals:
        for feature in signal.features:
            relative = signal.histogram_path(feature)
            if relative is not None and feature.histogram is not None:
                target = folder / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(json.dumps(feature.histogram, indent=1) + "\n", encoding="utf-8")
    path = folder / "signals.json"
    path.write_text(json.dumps(result.to_dict(), indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def _show(value: Any) -> str:
    value = number(value)
    if value is None:
        return "-"
    return f"{value:.4g}" if abs(value) >= 1e-3 or value == 0 else f"{value:.3e}"


def table_rows(result: MonitorResult) -> list[tuple[str, ...]]:
    """One row per metric: signal, status, feature, type, metric, value, threshold, alert."""
    rows: list[tuple[str, ...]] = []
    for signal in result.signals:
        if signal.error is not None:
            rows.append((signal.name, "error", "", "", "", "", "", signal.error))
        for feature in signal.features:
            if not feature.metrics:
                rows.append((signal.name, signal.status, feature.name, feature.data_type, "", "", "",
                             f"{feature.status}: {feature.message or ''}"))
            for metric in feature.metrics:
                rows.append((signal.name, signal.status, feature.name, feature.data_type, metric.name,
                             _show(metric.value), _show(metric.threshold), "ALERT" if metric.alert else ""))
        for metric in signal.signal_metrics:
            rows.append((signal.name, signal.status, "(signal)", "", metric.name, _show(metric.value),
                         _show(metric.threshold), "ALERT" if metric.alert else ""))
    return rows


def print_table(result: MonitorResult) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"monitor run at {result.run_at}: {result.status}")
    for column in ("Signal", "Status", "Feature", "Type", "Metric", "Value", "Threshold", "Alert"):
        table.add_column(column, overflow="fold")
    for row in table_rows(result):
        table.add_row(*row)
    Console(width=160).print(table)
