"""Data and prediction drift through the engine, checked against scipy on the rows Azure would keep."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare, ks_2samp, wasserstein_distance

from mlyard.monitoring import kernels
from mlyard.monitoring.metrics import breaches
from mlyard.monitoring.results import MetricResult
from tests.monitoring.conftest import Runner, data, metric, only, write_parquet

TOL = 1e-9
ALL_NUMERICAL = {"jensen_shannon_distance": 0.1, "normalized_wasserstein_distance": 0.1,
                 "population_stability_index": 0.1, "two_sample_kolmogorov_smirnov_test": 0.05}
ALL_CATEGORICAL = {"jensen_shannon_distance": 0.1, "population_stability_index": 0.1,
                   "pearsons_chi_squared_test": 0.05}


def drift(reference: Path, production: Path, **extra: object) -> dict[str, object]:
    return {"drift": {"type": "data_drift", "production_data": data(production), "reference_data": data(reference),
                      "features": "all_features", "metric_thresholds": {"numerical": ALL_NUMERICAL,
                                                                        "categorical": ALL_CATEGORICAL}, **extra}}


def expected_numerical(base: np.ndarray, prod: np.ndarray, k: int) -> dict[str, float]:
    edges = kernels.azure_edges(min(base.min(), prod.min()), max(base.max(), prod.max()), k)
    cb, cp = kernels.pyspark_histogram(base, edges), kernels.pyspark_histogram(prod, edges)
    bins = len(cb)
    p, q = (cb + 1) / (len(base) + bins), (cp + 1) / (len(prod) + bins)
    std = np.std(base, ddof=1) if len(base) > 1 else 0.001
    return {"JensenShannonDistance": float(jensenshannon(cb / cb.sum(), cp / cp.sum(), base=2)),
            "PopulationStabilityIndex": float(np.sum((q - p) * np.log(q / p))),
            "NormalizedWassersteinDistance": float(wasserstein_distance(base, prod) / max(std, 0.001)),
            "TwoSampleKolmogorovSmirnovTest": float(ks_2samp(base, prod).pvalue)}


def test_rows_with_a_null_in_any_feature_are_dropped_before_every_metric(tmp_path: Path, run_signals: Runner) -> None:
    rng = np.random.default_rng(1)
    a_ref, a_prod = rng.normal(size=200), rng.normal(0.4, 1.2, 150)
    b_ref = [None if i % 7 == 0 else f"v{i % 3}" for i in range(200)]
    a_prod[::11] = np.nan
    ref = write_parquet(tmp_path / "ref.parquet", {"a": a_ref, "b": pa.array(b_ref)})
    prod = write_parquet(tmp_path / "prod.parquet", {"a": a_prod, "b": [f"v{i % 4}" for i in range(150)]})
    signal = only(run_signals(drift(ref, prod)))
    keep_b = np.array([v is not None for v in b_ref])
    keep_p = ~np.isnan(a_prod)
    base, current = a_ref[keep_b], a_prod[keep_p]
    assert (signal.baseline_count, signal.target_count) == (int(keep_b.sum()), int(keep_p.sum()))
    k = kernels.sturges_bins(len(base), len(current))
    for name, value in expected_numerical(base, current, k).items():
        assert metric(signal, "a", name) == pytest.approx(value, abs=TOL), name
    cats_b = [v for v, keep in zip(b_ref, keep_b, strict=True) if keep]
    cats_p = [f"v{i % 4}" for i in range(150) if keep_p[i]]
    keys = sorted(set(cats_b) | set(cats_p))
    cb = np.array([cats_b.count(key) for key in keys])
    cp = np.array([cats_p.count(key) for key in keys])
    assert metric(signal, "b", "JensenShannonDistance") == pytest.approx(
        jensenshannon(cb / cb.sum(), cp / cp.sum(), base=2), abs=TOL)
    assert metric(signal, "b", "PearsonsChiSquaredTest") == 0.0  # v3 never seen in the reference
    assert signal.status == "alerted"


def test_empty_bins_constant_columns_and_a_single_production_row(tmp_path: Path, run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {"gap": [0.0, 0.1, 0.2, 9.8, 9.9, 10.0], "flat": [3.0] * 6})
    prod = write_parquet(tmp_path / "prod.parquet", {"gap": [5.0], "flat": [3.0]})
    signal = only(run_signals(drift(ref, prod)))
    assert kernels.sturges_bins(6, 1) == 1
    for name, value in expected_numerical(np.array([0.0, 0.1, 0.2, 9.8, 9.9, 10.0]), np.array([5.0]), 1).items():
        assert metric(signal, "gap", name) == pytest.approx(value, abs=TOL), name
    assert metric(signal, "flat", "JensenShannonDistance") == 0.0
    assert metric(signal, "flat", "PopulationStabilityIndex") == 0.0
    assert metric(signal, "flat", "NormalizedWassersteinDistance") == 0.0


def test_empty_inner_bins_follow_pyspark_counts(tmp_path: Path, run_signals: Runner) -> None:
    base = np.array([0.0] * 40 + [100.0] * 40)
    prod = np.array([0.0, 50.0, 50.0, 100.0] * 10)
    ref = write_parquet(tmp_path / "ref.parquet", {"x": base})
    cur = write_parquet(tmp_path / "prod.parquet", {"x": prod})
    signal = only(run_signals(drift(ref, cur)))
    for name, value in expected_numerical(base, prod, kernels.sturges_bins(80, 40)).items():
        assert metric(signal, "x", name) == pytest.approx(value, abs=TOL), name


def test_integer_columns_are_categorical_below_a_distinct_ratio_of_5_percent(tmp_path: Path,
                                                                            run_signals: Runner) -> None:
    n = 400
    few = [i % 19 for i in range(n)]  # 19 / 400 = 0.0475
    many = [i % 20 for i in range(n)]  # 20 / 400 = 0.05: numerical
    ref = write_parquet(tmp_path / "ref.parquet", {"few": few, "many": many})
    prod = write_parquet(tmp_path / "prod.parquet", {"few": few[:100], "many": many[:100]})
    signal = only(run_signals(drift(ref, prod)))
    types = {f.name: f.data_type for f in signal.features}
    assert types == {"few": "Categorical", "many": "Numerical"}
    keys = sorted({str(v) for v in few})
    cb = np.array([few.count(int(k)) for k in keys])
    cp = np.array([few[:100].count(int(k)) for k in keys])
    assert metric(signal, "few", "PearsonsChiSquaredTest") == pytest.approx(
        chisquare(cp, cb / cb.sum() * cp.sum()).pvalue, abs=TOL)


def test_type_overrides_win_over_inference(tmp_path: Path, run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {"code": [1, 2] * 50, "score": [0.5, 1.5] * 50})
    prod = write_parquet(tmp_path / "prod.parquet", {"code": [1, 2, 2] * 10, "score": [0.5, 1.5, 1.5] * 10})
    signals = drift(ref, prod, feature_type_override={"code": "numerical", "score": "categorical"})
    types = {f.name: f.data_type for f in only(run_signals(signals)).features}
    assert types == {"code": "Numerical", "score": "Categorical"}


def test_an_all_null_column_gets_a_clear_status_and_spares_the_others(tmp_path: Path, run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {"x": [1.0, 2.0, 3.0, 4.0], "empty": pa.nulls(4, pa.float64())})
    prod = write_parquet(tmp_path / "prod.parquet", {"x": [1.0, 2.5, 3.0], "empty": pa.nulls(3, pa.float64())})
    signal = only(run_signals(drift(ref, prod)))
    features = {f.name: f for f in signal.features}
    assert features["empty"].status == "all_null" and "no value" in (features["empty"].message or "")
    assert features["x"].status in ("ok", "alerted") and features["x"].metrics
    assert signal.to_dict()["metrics"]["features"]["empty"]["metrics"] == []
    assert (signal.baseline_count, signal.target_count) == (4, 3)


def test_types_are_harmonised_and_mismatches_dropped(tmp_path: Path, run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {
        "f": pa.array([1.0, 2.0, 3.0] * 30, pa.float32()), "i": pa.array([1, 2, 3] * 30, pa.int32()),
        "mixed": [1, 2, 3] * 30})
    prod = write_parquet(tmp_path / "prod.parquet", {
        "f": pa.array([1.0, 2.0, 4.0] * 30, pa.float64()), "i": pa.array([1, 2, 2] * 30, pa.int64()),
        "mixed": ["1", "2", "x"] * 30})
    signal = only(run_signals(drift(ref, prod)))
    assert {f.name for f in signal.features} == {"f", "i"}
    assert "mixed" in signal.skipped and "long" in signal.skipped["mixed"]


def test_column_null_policy_drops_nulls_per_feature(tmp_path: Path, run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {"a": [1.0, 2.0, None, 4.0], "b": [None, 1.0, 2.0, 3.0]})
    prod = write_parquet(tmp_path / "prod.parquet", {"a": [1.0, 5.0, 6.0], "b": [1.0, 2.0, 2.0]})
    signal = only(run_signals(drift(ref, prod), null_policy="column"))
    base = np.array([1.0, 2.0, 4.0])
    expected = wasserstein_distance(base, [1.0, 5.0, 6.0]) / np.std(base, ddof=1)
    assert metric(signal, "a", "NormalizedWassersteinDistance") == pytest.approx(expected, abs=TOL)


def test_defaults_are_nwd_for_numerical_and_jsd_for_categorical(tmp_path: Path, run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {"n": [1.0, 2.0, 3.0], "c": ["a", "b", "c"]})
    prod = write_parquet(tmp_path / "prod.parquet", {"n": [1.0, 2.0, 3.0], "c": ["a", "b", "c"]})
    signals = {"d": {"type": "data_drift", "production_data": data(prod), "reference_data": data(ref)}}
    signal = only(run_signals(signals))
    found = {(f.name, m.name, m.threshold) for f in signal.features for m in f.metrics}
    assert found == {("n", "NormalizedWassersteinDistance", 0.1), ("c", "JensenShannonDistance", 0.1)}
    assert signal.status == "passed"


def test_threshold_directions_are_strict() -> None:
    assert not breaches("JensenShannonDistance", 0.1, 0.1) and breaches("JensenShannonDistance", 0.1000001, 0.1)
    assert not breaches("TwoSampleKolmogorovSmirnovTest", 0.05, 0.05)
    assert breaches("TwoSampleKolmogorovSmirnovTest", 0.049, 0.05)
    assert breaches("PearsonsChiSquaredTest", 0.0, 0.02)
    assert breaches("NormalizedDiscountedCumulativeGain", 0.8, 0.9)
    assert breaches("Accuracy", 0.85, 0.9) and not breaches("Accuracy", 0.95, 0.9)  # higher is better
    assert breaches("MeanAbsoluteError", 2.0, 1.0)
    assert not breaches("JensenShannonDistance", math.nan, 0.1) and not breaches("JensenShannonDistance", 0.5, None)
    assert MetricResult("PopulationStabilityIndex", math.inf, 0.1).to_dict()["metricValue"] is None


def test_prediction_drift_compares_the_output_columns(tmp_path: Path, run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {"age": [30, 40] * 50, "label": ["yes", "no"] * 50})
    prod = write_parquet(tmp_path / "prod.parquet", {"label": ["yes"] * 30 + ["no"] * 10})
    signals = {"p": {"type": "prediction_drift", "production_data": data(prod, data_context="model_outputs"),
                     "reference_data": data(ref, data_context="training",
                                            data_column_names={"target_column": "label"}),
                     "metric_thresholds": {"categorical": {"pearsons_chi_squared_test": 0.05}}}}
    signal = only(run_signals(signals))
    assert [f.name for f in signal.features] == ["label"]
    assert metric(signal, "label", "PearsonsChiSquaredTest") == pytest.approx(
        chisquare([10, 30], [20.0, 20.0]).pvalue, abs=TOL)
    assert signal.status == "alerted"


def test_ks_strict_mode_marks_the_feature_not_the_run(tmp_path: Path, run_signals: Runner) -> None:
    rng = np.random.default_rng(2)
    ref = write_parquet(tmp_path / "ref.parquet", {"x": rng.normal(size=10_000)})
    prod = write_parquet(tmp_path / "prod.parquet", {"x": rng.normal(size=500)})
    signals = drift(ref, prod)
    signals["drift"]["metric_thresholds"] = {"numerical": {"two_sample_kolmogorov_smirnov_test": 0.05}}
    strict = only(run_signals(signals, ks_mode="azure_strict")).features[0]
    assert strict.status == "error" and "more than 10000 entries" in (strict.message or "")
    default = only(run_signals(signals)).features[0]
    assert default.status in ("ok", "alerted") and default.metrics[0].value is not None


def test_a_data_segment_compares_only_its_rows(tmp_path: Path, run_signals: Runner) -> None:
    ref = write_parquet(tmp_path / "ref.parquet", {"x": [1.0, 2.0, 3.0, 50.0, 60.0, 70.0],
                                                   "region": ["eu", "eu", "eu", "us", "us", "us"]})
    prod = write_parquet(tmp_path / "prod.parquet", {"x": [1.5, 2.5, 99.0, 98.0], "region": ["eu", "eu", "us", "us"]})
    signals = drift(ref, prod, data_segment={"feature_name": "region", "feature_values": ["eu"]})
    signal = only(run_signals(signals))
    assert (signal.baseline_count, signal.target_count) == (3, 2)
    expected = expected_numerical(np.array([1.0, 2.0, 3.0]), np.array([1.5, 2.5]), kernels.sturges_bins(3, 2))
    assert metric(signal, "x", "NormalizedWassersteinDistance") == pytest.approx(
        expected["NormalizedWassersteinDistance"], abs=TOL)
    assert any("region is one of eu" in note for note in signal.notes)
    missing = drift(ref, prod, data_segment={"feature_name": "country", "feature_values": ["eu"]})
    failed = only(run_signals(missing))
    assert failed.status == "error" and "data_segment.feature_name 'country'" in (failed.error or "")
