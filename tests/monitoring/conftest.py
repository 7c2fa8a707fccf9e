"""Helpers: data files and resolved monitor definitions in a temporary folder, run through the real engine."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlyard.monitoring.definition import load_definition
from mlyard.monitoring.drift import DriftOptions
from mlyard.monitoring.engine import EngineOptions, run_monitor
from mlyard.monitoring.results import MonitorResult, SignalResult

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def write_parquet(path: Path, columns: dict[str, Any]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def write_collected(folder: Path, lines: list[tuple[datetime, str, list[dict[str, Any]]]]) -> Path:
    """Collector JSONL: one line per (time, correlation id, rows), in the hourly folder of its time."""
    for moment, correlation, rows in lines:
        hour = folder / f"{moment:%Y/%m/%d/%H}"
        hour.mkdir(parents=True, exist_ok=True)
        envelope = {"specversion": "1.0", "id": correlation, "type": "azureml.inference.model_inputs",
                    "time": moment.isoformat().replace("+00:00", "Z"), "data": rows, "correlationid": correlation,
                    "xrequestid": correlation}
        with (hour / "instance-0.jsonl").open("a") as out:
            out.write(json.dumps(envelope) + "\n")
    return folder


def data(path: Path, **extra: Any) -> dict[str, Any]:
    kind = "uri_folder" if path.is_dir() else "uri_file"
    return {"input_data": {"path": str(path), "type": kind}, **extra}


Runner = Callable[..., MonitorResult]


@pytest.fixture
def run_signals(tmp_path: Path) -> Runner:
    """Write ``{monitoring_signals: signals}`` as monitor.json, load it as the CLI does, and run it at NOW."""

    def run(signals: dict[str, Any], *, now: datetime = NOW, target: dict[str, Any] | None = None,
            **options: Any) -> MonitorResult:
        definition = {"monitoring_signals": signals, **({"monitoring_target": target} if target else {})}
        path = tmp_path / "monitor.json"
        path.write_text(json.dumps(definition))
        loaded = load_definition(path)
        return run_monitor(loaded.definition, now=now, options=EngineOptions(DriftOptions(**options)),
                           base_path=tmp_path)

    return run


def only(result: MonitorResult) -> SignalResult:
    assert len(result.signals) == 1
    return result.signals[0]


def metric(signal: SignalResult, feature: str, name: str) -> float | None:
    for f in signal.features:
        if f.name == feature:
            for m in f.metrics:
                if m.name == name:
                    return m.value
    raise AssertionError(f"no {name} for {feature} in {signal.to_dict()}")


HOUR = timedelta(hours=1)
