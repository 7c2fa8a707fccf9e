"""Running a monitor definition: every signal over its windows, into a ``MonitorResult``.

The definition is resolved: its data inputs are local paths (the server resolves ``azureml:`` assets and an
endpoint's collected data before it starts the job that calls this). A signal that cannot be computed (missing
data, no complete row, an unsupported signal type) gets status ``error`` with a message; the other signals still run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from mlyard.core.errors import InvalidRequestError, MlyardError
from mlyard.monitoring import attribution, performance
from mlyard.monitoring.collector import CORRELATION_COLUMN
from mlyard.monitoring.data import WindowTable, decoded, open_window
from mlyard.monitoring.drift import DriftOptions, compute_drift
from mlyard.monitoring.features import Kind, common_columns, infer_kinds, select_features, spark_type
from mlyard.monitoring.metrics import DRIFT_DEFAULTS, PERFORMANCE_DEFAULTS, QUALITY_DEFAULTS, configured
from mlyard.monitoring.quality import compute_quality
from mlyard.monitoring.results import FeatureResult, MetricResult, MonitorResult, SignalResult
from mlyard.monitoring.windows import TimeWindow, iso, production_size_for, production_window, reference_window

COMPUTED = ("data_drift", "prediction_drift", "data_quality", "model_performance", "feature_attribution_drift")


@dataclass(frozen=True)
class EngineOptions:
    drift: DriftOptions = field(default_factory=DriftOptions)


@dataclass
class _Run:
    now: datetime
    production_size: timedelta
    scratch: Path
    base_path: Path | None
    options: EngineOptions
    ml_task: str | None
    opened: int = 0

    def open(self, data: Any, label: str, window: TimeWindow) -> WindowTable:
        path = str(data.input_data.path)
        if path.startswith("azureml:") or "://" in path:
            raise InvalidRequestError(f"{label}: input path {path} is not local; the engine reads resolved "
                                      "definitions whose data inputs are local files or folders")
        local = Path(path)
        if not local.is_absolute() and self.base_path is not None:
            local = self.base_path / local
        self.opened += 1
        names = data.data_column_names or {}
        timestamp = names.get("timestamp") or names.get("timestamp_column")
        return open_window(local, label=label, window=window, scratch=self.scratch / f"window-{self.opened:03d}",
                           timestamp_column=timestamp)


def run_monitor(definition: Any, *, now: datetime, trigger: Any = None, options: EngineOptions | None = None,
                base_path: Path | None = None) -> MonitorResult:
    """Compute every signal of ``definition`` (a ``MonitorDefinition``) as of ``now``.

    ``trigger`` (the schedule's) sets the default production window size; none means P7D.
    """
    if not definition.monitoring_signals:
        raise InvalidRequestError("the definition has no monitoring_signals; the engine computes resolved signals "
                                  "(the server fills Azure's default signals from the endpoint's collected data)",
                                  details={"field": "monitoring_signals"})
    result = MonitorResult(run_at=iso(now) or "")
    ml_task = definition.monitoring_target.ml_task if definition.monitoring_target else None
    with tempfile.TemporaryDirectory(prefix="mlyard-monitor-") as scratch:
        run = _Run(now, production_size_for(trigger), Path(scratch), base_path, options or EngineOptions(), ml_task)
        for name, signal in definition.monitoring_signals.items():
            result.signals.append(_signal(run, name, signal))
    return result


def _signal(run: _Run, name: str, signal: Any) -> SignalResult:
    result = SignalResult(name=name, type=signal.type)
    compute = _COMPUTE.get(signal.type)
    if compute is None:
        result.error = f"mlyard does not compute {signal.type} signals; remove it or run it as a job of its own"
        return result
    try:
        compute(run, signal, result)
    except (MlyardError, ValueError, pa.ArrowException) as exc:  # bad data: this signal fails, the others run
        result.error = exc.message if isinstance(exc, MlyardError) else f"{type(exc).__name__}: {exc}"
    return result


def _windows(run: _Run, signal: Any, result: SignalResult) -> tuple[WindowTable, WindowTable]:
    if signal.production_data is None or signal.reference_data is None:
        missing = "production_data" if signal.production_data is None else "reference_data"
        raise InvalidRequestError(f"signal {result.name}: {missing} is not set; the engine needs both windows "
                                  "resolved to local data")
    production_span = production_window(signal.production_data.data_window, run.now, run.production_size)
    reference_span = reference_window(signal.reference_data.data_window, run.now)
    result.windows = {"production": production_span.to_dict(), "baseline": reference_span.to_dict()}
    production = run.open(signal.production_data, f"{result.name}.production_data", production_span)
    baseline = run.open(signal.reference_data, f"{result.name}.reference_data", reference_span)
    segment = getattr(signal, "data_segment", None)
    if segment is not None:
        production = production.segment(segment.feature_name, segment.feature_values)
        baseline = baseline.segment(segment.feature_name, segment.feature_values)
    result.notes += baseline.notes + production.notes
    if production.num_rows == 0:
        raise InvalidRequestError(f"no production rows in the window {production_span.to_dict()}")
    if baseline.num_rows == 0:
        raise InvalidRequestError(f"no reference rows in the window {reference_span.to_dict()}")
    return baseline, production


def _target(data: Any) -> str | None:
    names = data.data_column_names or {} if data is not None else {}
    return names.get("target_column") or names.get("actual")


def _excluded(signal: Any, *, drop_target: bool) -> set[str]:
    out = {CORRELATION_COLUMN, "time"}
    for data in (signal.production_data, signal.reference_data):
        names = (data.data_column_names or {}) if data is not None and not isinstance(data, list) else {}
        out.update(v for k, v in names.items() if k in ("correlation_id", "timestamp", "timestamp_column"))
    target = _target(signal.reference_data)
    if drop_target and target:
        out.add(target)
    return out


def _distinct_ratio(table: WindowTable) -> Callable[[str], float]:
    def ratio(name: str) -> float:
        column = table.read([name])[name]
        distinct = 1 if column.null_count == len(column) else pc.count_distinct(column, mode="all").as_py()
        return float(distinct) / max(table.num_rows, 1)  # null counts as one value, every row counts
    return ratio


def _kinds(baseline: WindowTable, types: Mapping[str, str], overrides: Mapping[str, str] | None) -> dict[str, Kind]:
    return infer_kinds(types, _distinct_ratio(baseline), overrides)


def _features(run: _Run, signal: Any, baseline: WindowTable, kinds: Mapping[str, Kind],
              result: SignalResult) -> list[str]:
    target = _target(signal.reference_data)
    importance = None
    if target and target in baseline.columns:
        target_kind = _kinds(baseline, {target: spark_type(baseline.schema.field(target).type)}, None)[target]

        def importance() -> Mapping[str, float]:
            table = baseline.read([*kinds, target])
            return attribution.surrogate_importance(table, list(kinds), kinds, target,
                                                    classification=target_kind == "categorical")
    default_top_n = getattr(signal.reference_data, "data_context", None) == "training"
    chosen, missing = select_features(getattr(signal, "features", None), list(kinds), importance, default_top_n)
    result.skipped.update(missing)
    return chosen


def _drift(run: _Run, signal: Any, result: SignalResult) -> None:
    baseline, production = _windows(run, signal, result)
    columns = common_columns(baseline.schema, production.schema,
                             exclude=_excluded(signal, drop_target=signal.type == "data_drift"))
    result.skipped.update(columns.skipped)
    kinds = _kinds(baseline, columns.types, getattr(signal, "feature_type_override", None))
    chosen = _features(run, signal, baseline, kinds, result) if signal.type == "data_drift" else list(kinds)
    if not chosen:
        raise InvalidRequestError("no feature to compare: the windows share no column of a supported type "
                                  f"(skipped: {result.skipped or 'none'})")
    thresholds = signal.metric_thresholds
    wanted = {"numerical": configured(thresholds.numerical, DRIFT_DEFAULTS["numerical"]),
              "categorical": configured(thresholds.categorical, DRIFT_DEFAULTS["categorical"])}
    compute_drift(result, baseline, production, {n: kinds[n] for n in chosen}, wanted, run.options.drift)


def _quality(run: _Run, signal: Any, result: SignalResult) -> None:
    baseline, production = _windows(run, signal, result)
    excluded = _excluded(signal, drop_target=False)
    shared = [n for n in baseline.columns if n in production.schema.names and n not in excluded]
    types = {n: spark_type(baseline.schema.field(n).type) for n in shared}
    kinds = _kinds(baseline, types, signal.feature_type_override)
    chosen = _features(run, signal, baseline, kinds, result)
    thresholds = signal.metric_thresholds
    wanted = {"numerical": configured(thresholds.numerical, QUALITY_DEFAULTS),
              "categorical": configured(thresholds.categorical, QUALITY_DEFAULTS)}
    compute_quality(result, baseline, production, {n: kinds[n] for n in chosen}, wanted)


def _column_name(data: Any, key: str, default: str | None, label: str) -> str:
    value = (data.data_column_names or {}).get(key) or default
    if not value:
        raise InvalidRequestError(f"{label}.data_column_names.{key} is not set: name the column",
                                  details={"field": f"{label}.data_column_names.{key}"})
    return str(value)


def _require(table: WindowTable, column: str, label: str) -> None:
    if column not in table.columns:
        raise InvalidRequestError(f"{label}: column '{column}' is not in the data; columns: "
                                  f"{', '.join(table.columns)}")


def _performance(run: _Run, signal: Any, result: SignalResult) -> None:
    truth, predictions = _windows(run, signal, result)
    prediction = _column_name(signal.production_data, "prediction", None, "production_data")
    actual = _target(signal.reference_data) or _column_name(signal.reference_data, "actual", None,
                                                             "reference_data")
    key_p = _column_name(signal.production_data, "correlation_id", CORRELATION_COLUMN, "production_data")
    key_t = _column_name(signal.reference_data, "correlation_id", CORRELATION_COLUMN, "reference_data")
    for table, column, label in ((predictions, prediction, "production_data"), (predictions, key_p, "production_data"),
                                 (truth, actual, "reference_data"), (truth, key_t, "reference_data")):
        _require(table, column, label)
    actual_column = truth.read([actual])[actual]
    task = run.ml_task if run.ml_task in ("classification", "regression") else performance.infer_task(actual_column)
    joined = performance.join_on_correlation(decoded(predictions.read([key_p, prediction])),
                                             decoded(truth.read([key_t, actual])),
                                             prediction, actual, key_p, key_t)
    given = getattr(signal.metric_thresholds, task) or PERFORMANCE_DEFAULTS[task]
    performance.compute_performance(result, joined, task, given)  # type: ignore[arg-type]


def _attribution(run: _Run, signal: Any, result: SignalResult) -> None:
    reference = signal.reference_data
    target = _target(reference)
    if reference is None or not target:
        raise InvalidRequestError("feature_attribution_drift needs reference_data (training data) with "
                                  "data_column_names.target_column")
    items = list(signal.production_data or [])
    inputs = next((d for d in items if d.data_context in ("model_inputs", "model_inputs_outputs")), None)
    outputs = next((d for d in items if d.data_context in ("model_outputs", "model_inputs_outputs")), None)
    if inputs is None or outputs is None:
        raise InvalidRequestError("feature_attribution_drift: production_data lists the model_inputs and the "
                                  "model_outputs data (or one model_inputs_outputs item)")
    span = production_window(inputs.data_window, run.now, run.production_size)
    result.windows = {"production": span.to_dict(), "baseline": reference_window(reference.data_window,
                                                                                   run.now).to_dict()}
    baseline = run.open(reference, f"{result.name}.reference_data", reference_window(reference.data_window, run.now))
    table_in = run.open(inputs, f"{result.name}.production_data[model_inputs]", span)
    table_out = table_in if outputs is inputs else run.open(outputs, f"{result.name}.production_data[model_outputs]",
                                                            span)
    _require(baseline, target, "reference_data")
    prediction = _column_name(outputs, "prediction", target, "production_data")
    _require(table_out, prediction, "production_data[model_outputs]")
    columns = common_columns(baseline.schema, table_in.schema, exclude=_excluded(signal, drop_target=True) |
                             {prediction})
    result.skipped.update(columns.skipped)
    kinds = _kinds(baseline, columns.types, None)
    features = list(kinds)
    target_kind = _kinds(baseline, {target: spark_type(baseline.schema.field(target).type)}, None)[target]
    classification = (run.ml_task == "classification") if run.ml_task in ("classification", "regression") \
        else target_kind == "categorical"
    if outputs is inputs:
        production = table_in.read([*features, prediction])
    else:
        key_in = _column_name(inputs, "correlation_id", CORRELATION_COLUMN, "production_data[model_inputs]")
        key_out = _column_name(outputs, "correlation_id", CORRELATION_COLUMN, "production_data[model_outputs]")
        _require(table_in, key_in, "production_data[model_inputs]")
        _require(table_out, key_out, "production_data[model_outputs]")
        production = _join_outputs(table_in.read([key_in, *features]), table_out.read([key_out, prediction]),
                                   key_in, key_out, prediction)
    result.baseline_count, result.target_count = baseline.num_rows, production.num_rows
    base_scores = attribution.surrogate_importance(baseline.read([*features, target]), features, kinds, target,
                                                   classification)
    prod_scores = attribution.surrogate_importance(production, features, kinds, prediction, classification)
    for name in features:
        result.features.append(FeatureResult(name, "Numerical" if kinds[name] == "numerical" else "Categorical", [
            MetricResult("BaselineFeatureImportance", base_scores[name], None),
            MetricResult("ProductionFeatureImportance", prod_scores[name], None)]))
    threshold = (signal.metric_thresholds or {}).get("normalized_discounted_cumulative_gain")
    result.signal_metrics.append(MetricResult("NormalizedDiscountedCumulativeGain",
                                              attribution.ndcg(base_scores, prod_scores), threshold))


def _join_outputs(inputs: Any, outputs: Any, key_in: str, key_out: str, prediction: str) -> Any:
    inputs, outputs = decoded(inputs), decoded(outputs)
    left = performance.with_sequence(inputs.set_column(inputs.schema.get_field_index(key_in), key_in,
                                                       pc.cast(inputs[key_in], pa.string())), key_in)
    right = performance.with_sequence(pa.table({key_in: pc.cast(outputs[key_out], pa.string()),
                                                prediction: outputs[prediction]}), key_in)
    joined = left.join(right, keys=[key_in, performance.SEQUENCE], join_type="inner")
    return joined.sort_by([(key_in, "ascending"), (performance.SEQUENCE, "ascending")])  # the join order varies


_COMPUTE: dict[str, Callable[[_Run, Any, SignalResult], None]] = {
    "data_drift": _drift, "prediction_drift": _drift, "data_quality": _quality,
    "model_performance": _performance, "feature_attribution_drift": _attribution,
}
