"""Data quality: null, data type error and out-of-bounds rates, target against baseline (reference §1.6).

Per window and column, in Azure's order: count nulls on the raw column; impute (numerical: the window's median,
string categorical: its mode); count values that fail the cast to the baseline's type; count out-of-bounds values
(numerical: outside the baseline's [min, max]; string categorical: not in the baseline's set of values). Rates are
``round(count / rows, 5)``; the threshold is the baseline's own rate plus the configured ``t`` and the target alerts
when its rate is strictly above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlyard.monitoring.columns import batches, to_numpy
from mlyard.monitoring.data import WindowTable
from mlyard.monitoring.features import Kind, spark_type
from mlyard.monitoring.metrics import QUALITY_PRECISION, output_name
from mlyard.monitoring.results import FeatureResult, MetricResult, SignalResult


@dataclass(frozen=True)
class Rates:
    null: float
    type_error: float
    out_of_bounds: float

    def get(self, key: str) -> float:
        return {"null_value_rate": self.null, "data_type_error_rate": self.type_error,
                "out_of_bounds_rate": self.out_of_bounds}[key]


def compute_quality(result: SignalResult, baseline: WindowTable, production: WindowTable, kinds: Mapping[str, Kind],
                    thresholds: Mapping[str, Mapping[str, float]], batch_columns: int = 8) -> None:
    """Fill ``result`` with the three rates of each column of ``kinds``."""
    result.baseline_count, result.target_count = baseline.num_rows, production.num_rows
    for batch in batches(list(kinds), batch_columns):
        left, right = baseline.read(batch), production.read(batch)
        for name in batch:
            kind = kinds[name]
            feature = FeatureResult(name, "Numerical" if kind == "numerical" else "Categorical")
            base_column, prod_column = left[name], right[name]
            base_type = spark_type(base_column.type)
            if base_type == "null":
                feature.status_override = "all_null"
                feature.message = "no value in the baseline window: no type, bounds or categories to check against"
                result.features.append(feature)
                continue
            reference = _Reference.of(base_column, kind)
            base_rates = reference.rates(base_column)
            prod_rates = reference.rates(prod_column)
            for key, t in thresholds.get(kind, {}).items():
                feature.metrics.append(MetricResult(output_name(key), prod_rates.get(key), base_rates.get(key) + t))
            result.features.append(feature)


def _rate(count: int, rows: int) -> float:
    return round(count / rows, QUALITY_PRECISION) if rows else 0.0


@dataclass
class _Reference:
    """What the baseline says a value must be: its type, numeric bounds, or set of string values."""

    spark: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    values: pa.Array | None = None

    @classmethod
    def of(cls, column: pa.ChunkedArray, kind: Kind) -> _Reference:
        column = _decoded(column)
        spark = spark_type(column.type)
        ref = cls(spark, kind)
        if spark in ("double", "long"):
            numbers = _numbers(column)
            numbers = numbers[~np.isnan(numbers)]
            if len(numbers):
                ref.low, ref.high = float(numbers.min()), float(numbers.max())
        elif spark == "string" and kind == "categorical":
            ref.values = pc.unique(column.drop_null())
        return ref

    def rates(self, column: pa.ChunkedArray) -> Rates:
        column = _decoded(column)
        rows = len(column)
        nulls = column.null_count
        if self.spark in ("double", "long"):
            numbers, errors = self._as_numbers(column)
            present = ~np.isnan(numbers)
            if present.any():
                numbers = np.where(present, numbers, np.median(numbers[present]))  # Spark Imputer: the median
            outside = 0 if self.low is None or self.high is None or not present.any() \
                else int((numbers > self.high).sum() + (numbers < self.low).sum())
            return Rates(_rate(nulls, rows), _rate(errors, rows), _rate(outside, rows))
        if self.values is not None:
            text = column if spark_type(column.type) == "string" else pc.cast(column, pa.string())
            present = text.drop_null()
            if len(present):
                counted = pc.value_counts(present)
                mode = counted.field("values")[pc.index(counted.field("counts"),
                                                        pc.max(counted.field("counts"))).as_py()]
                text = pc.fill_null(text, mode)  # mode imputation
            outside = len(text) - pc.sum(pc.is_in(text, value_set=self.values)).as_py() if len(text) else 0
            return Rates(_rate(nulls, rows), 0.0, _rate(int(outside or 0), rows))
        return Rates(_rate(nulls, rows), 0.0, 0.0)

    def _as_numbers(self, column: pa.ChunkedArray) -> tuple[np.ndarray, int]:
        """The column as floats, and how many present values would not cast to the baseline's numeric type."""
        if spark_type(column.type) in ("double", "long", "boolean", "null"):
            return _numbers(column), 0
        values = column.to_pylist()
        numbers = np.full(len(values), np.nan)
        errors = 0
        for index, value in enumerate(values):
            if value is None:
                continue
            try:
                numbers[index] = float(value)
            except (TypeError, ValueError):
                errors += 1  # Spark's cast returns null here: a type error, then imputed like a null
        return numbers, errors


def _decoded(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A dictionary-encoded column as plain values."""
    return pc.cast(column, column.type.value_type) if pa.types.is_dictionary(column.type) else column


def _numbers(column: pa.ChunkedArray) -> np.ndarray:
    if not pa.types.is_floating(column.type):
        column = pc.cast(column, pa.float64())
    return to_numpy(column).astype(np.float64, copy=False)
