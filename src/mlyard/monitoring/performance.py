"""Model performance: production predictions joined with ground truth on the correlation id (reference §1.8).

The data collector writes one ``correlationid`` per request, and a request may carry several rows; rows are
therefore matched on (correlation id, position among the rows with that id), so the i-th prediction of a request
meets the i-th label recorded under the same id. Classification reports accuracy and macro precision and recall
(sklearn, ``zero_division=0``); regression the mean absolute, mean squared and root mean squared errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlyard.monitoring.metrics import output_name
from mlyard.monitoring.results import MetricResult, SignalResult

Task = Literal["classification", "regression"]
SEQUENCE = "__mlyard_sequence"
CLASSIFICATION = ("accuracy", "precision", "recall")
REGRESSION = ("mae", "mse", "rmse")


PREDICTION, ACTUAL, KEY = "__mlyard_prediction", "__mlyard_actual", "__mlyard_correlation"


def with_sequence(table: pa.Table, key: str) -> pa.Table:
    """``table`` plus the position of each row among the rows sharing its ``key`` (0, 1, ...), in row order."""
    n = table.num_rows
    ids = np.array([str(i) for i in table[key].to_pylist()], dtype=object)
    _, inverse = np.unique(ids, return_inverse=True) if n else (None, np.array([], dtype=np.int64))
    order = np.argsort(inverse, kind="stable")
    grouped = inverse[order]
    first = np.r_[True, grouped[1:] != grouped[:-1]] if n else np.array([], dtype=bool)
    group_start = np.maximum.accumulate(np.where(first, np.arange(n), 0)) if n else np.array([], dtype=np.int64)
    sequence = np.empty(n, dtype=np.int64)
    sequence[order] = np.arange(n) - group_start
    return table.append_column(SEQUENCE, pa.array(sequence))


def join_on_correlation(predictions: pa.Table, truth: pa.Table, prediction: str, actual: str, key_p: str,
                        key_t: str) -> pa.Table:
    """Predictions and labels side by side (columns PREDICTION, ACTUAL), inner-joined on (id, position)."""
    left = pa.table({KEY: pc.cast(predictions[key_p], pa.string()), PREDICTION: predictions[prediction]})
    right = pa.table({KEY: pc.cast(truth[key_t], pa.string()), ACTUAL: truth[actual]})
    joined = with_sequence(left, KEY).join(with_sequence(right, KEY), keys=[KEY, SEQUENCE], join_type="inner")
    return joined.sort_by([(KEY, "ascending"), (SEQUENCE, "ascending")])  # the join's row order is not stable


def infer_task(actual: pa.ChunkedArray) -> Task:
    """classification for text, booleans and integers with few values; regression otherwise."""
    if pa.types.is_floating(actual.type):
        return "regression"
    if pa.types.is_integer(actual.type):
        distinct = len(pc.unique(actual))
        return "classification" if distinct <= max(20, len(actual) // 20) else "regression"
    return "classification"


def performance_metrics(y_true: list[object], y_pred: list[object], task: Task) -> dict[str, float]:
    """The metric values of ``task`` by YAML key."""
    from sklearn import metrics

    if task == "classification":
        if {type(v) for v in y_true} != {type(v) for v in y_pred}:
            y_true, y_pred = [str(v) for v in y_true], [str(v) for v in y_pred]
        return {"accuracy": float(metrics.accuracy_score(y_true, y_pred)),
                "precision": float(metrics.precision_score(y_true, y_pred, average="macro", zero_division=0)),
                "recall": float(metrics.recall_score(y_true, y_pred, average="macro", zero_division=0))}
    truth = np.asarray(y_true, dtype=np.float64)
    predicted = np.asarray(y_pred, dtype=np.float64)
    mse = float(metrics.mean_squared_error(truth, predicted))
    return {"mae": float(metrics.mean_absolute_error(truth, predicted)), "mse": mse, "rmse": float(np.sqrt(mse))}


def compute_performance(result: SignalResult, joined: pa.Table, task: Task, thresholds: Mapping[str, float]) -> None:
    """Fill ``result``'s signal metrics from ``join_on_correlation``'s rows (rows missing a value are dropped)."""
    pairs = joined.select([PREDICTION, ACTUAL]).drop_null()
    result.notes.append(f"{joined.num_rows} predictions matched ground truth on the correlation id; "
                        f"{pairs.num_rows} with both a prediction and a label")
    if pairs.num_rows == 0:
        result.error = ("no production prediction matched a ground-truth row on the correlation id; check "
                        "data_column_names.correlation_id on both sides and the windows")
        return
    values = performance_metrics(pairs[ACTUAL].to_pylist(), pairs[PREDICTION].to_pylist(), task)
    for key in CLASSIFICATION if task == "classification" else REGRESSION:
        result.signal_metrics.append(MetricResult(output_name(key), values[key], thresholds.get(key)))
