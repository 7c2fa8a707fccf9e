"""Data drift and prediction drift: per-feature metrics over column batches, spread over a thread pool.

numpy's sort, the merge and pyarrow's reads release the GIL, so threads keep both cores busy without copying
columns into worker processes (measured in ``docs/monitoring.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from mlyard.monitoring import kernels
from mlyard.monitoring.columns import BatchReader, Masks, NullPolicy, batches, category_counts, null_masks, to_float
from mlyard.monitoring.data import WindowTable
from mlyard.monitoring.features import Kind
from mlyard.monitoring.kernels import FloatArray, KsMode
from mlyard.monitoring.metrics import output_name
from mlyard.monitoring.results import FeatureResult, MetricResult, SignalResult

HISTOGRAM_CATEGORIES = 100


@dataclass(frozen=True)
class DriftOptions:
    """How drift is computed beyond what the YAML says.

    Attributes:
        null_policy: ``row`` (Azure: drop rows with a null in any selected column) or ``column`` (per column).
        ks_mode: ``asymptotic`` (KS at any size) or ``azure_strict`` (an error at 10,000 rows or more).
        batch_columns: columns read per batch.
        workers: threads computing batches.
        cache_bytes: first-pass batches kept for the second pass up to this size.
    """

    null_policy: NullPolicy = "row"
    ks_mode: KsMode = "asymptotic"
    batch_columns: int = 2
    workers: int = 2
    cache_bytes: int = 256 << 20


class _NanFound(Exception):
    """A float column holds NaN although the Parquet statistics promised no nulls: the rows need a mask."""


def compute_drift(result: SignalResult, baseline: WindowTable, production: WindowTable, kinds: Mapping[str, Kind],
                  thresholds: Mapping[str, Mapping[str, float]], options: DriftOptions) -> None:
    """Fill ``result`` with one FeatureResult per column of ``kinds``: its configured metrics and histogram.

    When the Parquet statistics show no null in any selected column, one pass reads each column batch once and
    computes it (a NaN met on the way falls back to the two passes); otherwise pass 1 builds the null masks and
    pass 2 computes.
    """
    names = list(kinds)
    reader = BatchReader(baseline, production, options.cache_bytes)
    result.baseline_count, result.target_count = baseline.num_rows, production.num_rows
    if options.null_policy == "column":
        _compute(result, reader, names, kinds, Masks(None, None, baseline.num_rows, production.num_rows), 0,
                 thresholds, options, strict=False)
        return
    if not (baseline.may_have_nulls(names) or production.may_have_nulls(names)):
        try:
            k = kernels.sturges_bins(baseline.num_rows, production.num_rows)
            _compute(result, reader, names, kinds, Masks(None, None, baseline.num_rows, production.num_rows), k,
                     thresholds, options, strict=True)
            return
        except _NanFound:
            result.features.clear()
    masks = null_masks(reader, names, options.null_policy, options.batch_columns)
    result.baseline_count, result.target_count = masks.n_baseline, masks.n_production
    for name, reason in masks.all_null.items():
        result.features.append(FeatureResult(name, _data_type(kinds[name]), status_override="all_null",
                                             message=reason))
    live = [n for n in names if n not in masks.all_null]
    if live and (masks.n_baseline == 0 or masks.n_production == 0):
        empty = "baseline" if masks.n_baseline == 0 else "production"
        result.error = (f"no {empty} row has a value in every selected feature (Azure drops rows with a null in "
                        "any of them); select fewer features or use null_policy 'column'")
        return
    k = kernels.sturges_bins(masks.n_baseline, masks.n_production) if live else 0
    _compute(result, reader, live, kinds, masks, k, thresholds, options, strict=False)
    order = {name: index for index, name in enumerate(names)}
    result.features.sort(key=lambda f: order[f.name])


def _compute(result: SignalResult, reader: BatchReader, names: list[str], kinds: Mapping[str, Kind], masks: Masks,
             k: int, thresholds: Mapping[str, Mapping[str, float]], options: DriftOptions, strict: bool) -> None:
    def run(batch: list[str]) -> list[FeatureResult]:
        columns = reader.read(batch)
        out = [_feature(name, kinds[name], *columns[name], masks, k, thresholds, options, strict) for name in batch]
        reader.forget(batch)
        return out

    groups = list(batches(names, options.batch_columns))
    if options.workers > 1 and len(groups) > 1:
        with ThreadPoolExecutor(max_workers=options.workers, thread_name_prefix="mlyard-drift") as pool:
            done = list(pool.map(run, groups))
    else:
        done = [run(group) for group in groups]
    result.features.extend(f for group in done for f in group)


def _data_type(kind: Kind) -> Any:
    return "Numerical" if kind == "numerical" else "Categorical"


def _feature(name: str, kind: Kind, left: pa.ChunkedArray, right: pa.ChunkedArray, masks: Masks, k: int,
             thresholds: Mapping[str, Mapping[str, float]], options: DriftOptions, strict: bool) -> FeatureResult:
    feature = FeatureResult(name, _data_type(kind))
    try:
        if kind == "numerical":
            base, prod = to_float(left, masks.baseline), to_float(right, masks.production)
            if strict and (len(base) != len(left) or len(prod) != len(right)):
                raise _NanFound(name)
            _numerical(feature, base, prod, k, thresholds.get("numerical", {}), options)
        else:
            _categorical(feature, category_counts(left, masks.baseline), category_counts(right, masks.production),
                         thresholds.get("categorical", {}))
    except (pa.ArrowInvalid, ValueError) as exc:
        feature.status_override, feature.message = "error", f"{name}: {exc}"
    return feature


def _numerical(feature: FeatureResult, base: FloatArray, prod: FloatArray, k: int, wanted: Mapping[str, float],
               options: DriftOptions) -> None:
    if len(base) == 0 or len(prod) == 0:
        feature.status_override = "all_null"
        feature.message = "no value left in a window after dropping nulls"
        return
    needs_sort = "normalized_wasserstein_distance" in wanted or "two_sample_kolmogorov_smirnov_test" in wanted
    if needs_sort:
        base, prod = np.sort(base), np.sort(prod)
        lo, hi = min(base[0], prod[0]), max(base[-1], prod[-1])
    else:
        lo, hi = min(base.min(), prod.min()), max(base.max(), prod.max())
    bins = k or kernels.sturges_bins(len(base), len(prod))
    edges = kernels.azure_edges(float(lo), float(hi), bins)
    histogram = kernels.pyspark_histogram_sorted if needs_sort else kernels.pyspark_histogram
    counts_b, counts_p = histogram(base, edges), histogram(prod, edges)
    compared = kernels.compare_sorted(base, prod) if needs_sort else None
    for key, threshold in wanted.items():
        if key == "jensen_shannon_distance":
            value = kernels.jensen_shannon(counts_b, counts_p)
        elif key == "population_stability_index":
            value = kernels.population_stability_index(counts_b, counts_p, len(base), len(prod))
        elif key == "normalized_wasserstein_distance":
            assert compared is not None
            value = kernels.normalized_wasserstein(compared.wasserstein, kernels.sample_std(base))
        elif key == "two_sample_kolmogorov_smirnov_test":
            assert compared is not None
            try:
                value = kernels.ks_pvalue(base, prod, compared.ks_statistic, options.ks_mode)
            except kernels.KsTooLargeError as exc:
                feature.status_override, feature.message = "error", str(exc)
                continue
        else:
            continue
        feature.metrics.append(MetricResult(output_name(key), value, threshold))
    feature.histogram = {"featureName": feature.name, "histogram": [
        {"lowerBound": round(float(edges[i]), 2), "upperBound": round(float(edges[i + 1]), 2),
         "baselineCount": int(counts_b[i]), "targetCount": int(counts_p[i])} for i in range(len(counts_b))]}


def _categorical(feature: FeatureResult, base: dict[str, int], prod: dict[str, int],
                 wanted: Mapping[str, float]) -> None:
    if not base or not prod:
        feature.status_override = "all_null"
        feature.message = "no value left in a window after dropping nulls"
        return
    keys = sorted(base.keys() | prod.keys())
    counts_b = np.array([base.get(key, 0) for key in keys], dtype=np.int64)
    counts_p = np.array([prod.get(key, 0) for key in keys], dtype=np.int64)
    n_b, n_p = int(counts_b.sum()), int(counts_p.sum())
    for key, threshold in wanted.items():
        if key == "jensen_shannon_distance":
            value = kernels.jensen_shannon(counts_b, counts_p)
        elif key == "population_stability_index":
            value = kernels.population_stability_index(counts_b, counts_p, n_b, n_p)
        elif key == "pearsons_chi_squared_test":
            value = kernels.chi_squared_pvalue(counts_b, counts_p)
        else:
            continue
        feature.metrics.append(MetricResult(output_name(key), value, threshold))
    feature.histogram = {"featureName": feature.name, "histogram": _top_categories(keys, counts_b, counts_p)}


def _top_categories(keys: Sequence[str], counts_b: np.ndarray, counts_p: np.ndarray) -> list[dict[str, Any]]:
    """The 100 categories with the most rows in both windows, then an "Other" bucket written with count 0."""
    order = sorted(range(len(keys)), key=lambda i: (-(counts_b[i] + counts_p[i]), keys[i]))
    top = [{"category": keys[i], "baselineCount": int(counts_b[i]), "targetCount": int(counts_p[i])}
           for i in order[:HISTOGRAM_CATEGORIES]]
    if len(order) > HISTOGRAM_CATEGORIES:
        top.append({"category": "Other", "baselineCount": 0, "targetCount": 0})
    return top
