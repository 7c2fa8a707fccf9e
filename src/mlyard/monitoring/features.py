"""Which columns a signal compares, and whether each is numerical or categorical (reference §1.3, §1.9).

Columns are kept when both windows have them under the same name with the same Spark-like type, float kinds
merged as ``double`` and integer kinds as ``long``; any other mismatch drops the column (Azure drops it silently,
mlyard lists it in the result). Type inference runs on the baseline: overrides first, then string/boolean/
timestamp/date/binary -> categorical, double -> numerical, long -> categorical when distinct values / rows < 0.05
(null counting as one value, every row counting), else numerical.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa

Kind = Literal["numerical", "categorical"]
CATEGORICAL_TYPES = ("string", "boolean", "timestamp", "date", "binary")
DISTINCT_RATIO = 0.05
TOP_N_DEFAULT = 10


def spark_type(arrow: pa.DataType) -> str:
    """The Spark type class of an Arrow type, after Azure's float/int merging."""
    if pa.types.is_dictionary(arrow):
        return spark_type(arrow.value_type)
    if pa.types.is_string(arrow) or pa.types.is_large_string(arrow):
        return "string"
    if pa.types.is_boolean(arrow):
        return "boolean"
    if pa.types.is_timestamp(arrow):
        return "timestamp"
    if pa.types.is_date(arrow):
        return "date"
    if pa.types.is_binary(arrow) or pa.types.is_large_binary(arrow):
        return "binary"
    if pa.types.is_floating(arrow) or pa.types.is_decimal(arrow):
        return "double"
    if pa.types.is_integer(arrow):
        return "long"
    if pa.types.is_null(arrow):
        return "null"
    return "other"


@dataclass
class Columns:
    """The outcome of matching two schemas: kept columns with their type, and why others were left out."""

    types: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


def common_columns(baseline: pa.Schema, production: pa.Schema, exclude: Collection[str] = ()) -> Columns:
    """Columns in both schemas with the same Spark type; an all-null column (Arrow type null) takes the other's."""
    out = Columns()
    production_types = {name: spark_type(production.field(name).type) for name in production.names}
    for name in baseline.names:
        if name in exclude or name not in production_types:
            continue
        left, right = spark_type(baseline.field(name).type), production_types[name]
        if "null" in (left, right):  # a column with no value at all in one window: kept, reported all-null
            out.types[name] = right if left == "null" else left
        elif left != right:
            out.skipped[name] = f"type {left} in the baseline, {right} in production (Azure drops such a column)"
        elif left == "other":
            out.skipped[name] = f"unsupported type {baseline.field(name).type}"
        else:
            out.types[name] = left
    return out


def infer_kinds(types: Mapping[str, str], distinct_ratio: Callable[[str], float],
                overrides: Mapping[str, str] | None = None) -> dict[str, Kind]:
    """numerical/categorical per column, by Azure's ``is_categorical`` order (overrides win)."""
    kinds: dict[str, Kind] = {}
    for name, spark in types.items():
        override = (overrides or {}).get(name)
        if override in ("numerical", "categorical"):
            kinds[name] = override  # type: ignore[assignment]
        elif spark in CATEGORICAL_TYPES:
            kinds[name] = "categorical"
        elif spark == "double":
            kinds[name] = "numerical"
        elif spark in ("long", "null"):
            kinds[name] = "categorical" if distinct_ratio(name) < DISTINCT_RATIO else "numerical"
    return kinds


def select_features(spec: Any, common: Sequence[str], importance: Callable[[], Mapping[str, float]] | None,
                    default_top_n: bool) -> tuple[list[str], dict[str, str]]:
    """The features a signal looks at, and the named ones left out with the reason.

    ``spec`` is the signal's ``features``: None (``top_n_feature_importance: 10`` when ``default_top_n``, else all),
    ``"all_features"``, a list of names, or ``{top_n_feature_importance: N}``. ``importance`` gives the baseline
    importances for top-N.
    """
    if spec is None:
        spec = {"top_n_feature_importance": TOP_N_DEFAULT} if default_top_n and importance is not None \
            else "all_features"
    if spec == "all_features":
        return list(common), {}
    if isinstance(spec, list):
        missing = {str(name): "not a column of both windows (or dropped for its type)"
                   for name in spec if name not in common}
        return [name for name in common if name in spec], missing
    n = int(spec.get("top_n_feature_importance", TOP_N_DEFAULT))
    if importance is None:
        raise ValueError("top_n_feature_importance needs reference data with a target column")
    scores = importance()
    ranked = sorted((name for name in common if name in scores), key=lambda name: (-scores[name], name))
    return ranked[:n], {}
