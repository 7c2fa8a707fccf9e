"""The metric kernels against scipy and against a line-by-line reference of Azure's component code."""

from __future__ import annotations

import bisect
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon
from scipy.stats import chisquare, ks_2samp, wasserstein_distance

from mlyard.monitoring import kernels

TOL = 1e-9


def spark_histogram(values: list[float], buckets: list[float]) -> list[int]:
    """pyspark.RDD.histogram(buckets), transcribed: even buckets by arithmetic, others by bisect; last bin merged."""
    minv, maxv = buckets[0], buckets[-1]
    steps = [buckets[i + 1] - buckets[i] for i in range(len(buckets) - 1)]
    even = max(steps) - min(steps) < 1e-10
    inc = (maxv - minv) / (len(buckets) - 1) if even else None
    counters = [0] * len(buckets)
    for x in values:
        if x is None or (isinstance(x, float) and math.isnan(x)) or x > maxv or x < minv:
            continue
        t = int((x - minv) / inc) if inc is not None else bisect.bisect_right(buckets, x) - 1
        counters[t] += 1
    last = counters.pop()
    counters[-1] += last
    return counters


def azure_bins(base: np.ndarray, prod: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = kernels.sturges_bins(len(base), len(prod))
    edges = kernels.azure_edges(min(base.min(), prod.min()), max(base.max(), prod.max()), k)
    return edges, kernels.pyspark_histogram(base, edges), kernels.pyspark_histogram(prod, edges)


def test_sturges_uses_the_smaller_window() -> None:
    assert kernels.sturges_bins(1000, 10) == math.ceil(math.log2(10) + 1) == 5
    assert kernels.sturges_bins(1, 1) == 1
    with pytest.raises(ValueError):
        kernels.sturges_bins(0, 5)


def test_edges_are_lo_plus_i_times_w() -> None:
    edges = kernels.azure_edges(0.1, 0.7, 3)
    w = (0.7 - 0.1) / 3
    assert edges.tolist() == [0.1 + i * w for i in range(4)]


@pytest.mark.parametrize(("value", "delta"), [(0.0, 0.005), (4.0, 0.02), (-2.0, 0.01)])
def test_a_constant_column_has_one_delta_bin_and_zero_drift(value: float, delta: float) -> None:
    edges = kernels.azure_edges(value, value, 7)
    assert edges.tolist() == [value - delta, value + delta]
    base, prod = np.full(10, value), np.full(3, value)
    counts_b, counts_p = kernels.pyspark_histogram(base, edges), kernels.pyspark_histogram(prod, edges)
    assert counts_b.tolist() == [10] and counts_p.tolist() == [3]
    assert kernels.jensen_shannon(counts_b, counts_p) == 0.0
    assert kernels.population_stability_index(counts_b, counts_p, 10, 3) == 0.0


def _quirk_case() -> tuple[float, float, int]:
    """A (lo, hi, k) where lo + k*w lands below hi, found as the reference says 1 in 5 cases do."""
    rng = np.random.default_rng(11)
    while True:
        lo, hi = sorted(rng.uniform(-1000, 1000, 2))
        k = int(rng.integers(2, 30))
        w = (hi - lo) / k
        if lo + k * w < hi:
            return float(lo), float(hi), k


def test_pyspark_quirk_skips_the_maximum_when_the_last_edge_falls_short() -> None:
    lo, hi, k = _quirk_case()
    edges = kernels.azure_edges(lo, hi, k)
    assert edges[-1] < hi
    values = np.array([lo, (lo + hi) / 2, hi])
    counts = kernels.pyspark_histogram(values, edges)
    assert counts.sum() == 2  # the maximum is outside [e0, e_last]: skipped, as PySpark does
    assert counts.tolist() == spark_histogram(values.tolist(), edges.tolist())


def test_pyspark_counting_matches_the_transcription_on_edges_and_uneven_buckets() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        lo, hi = sorted(rng.uniform(-50, 50, 2))
        k = int(rng.integers(1, 20))
        edges = kernels.azure_edges(float(lo), float(hi), k)
        values = np.concatenate([rng.uniform(lo - 1, hi + 1, 50), edges])  # values on every edge too
        assert kernels.pyspark_histogram(values, edges).tolist() == spark_histogram(values.tolist(), edges.tolist())
    uneven = np.array([1e12, 1e12 + 0.3, 1e12 + 0.6000001, 1e12 + 0.9])  # steps differ by > 1e-10: bisect
    values = np.array([1e12, 1e12 + 0.3, 1e12 + 0.61, 1e12 + 0.9])
    assert kernels.pyspark_histogram(values, uneven).tolist() == spark_histogram(values.tolist(), uneven.tolist())


def test_counting_sorted_values_by_binary_search_gives_the_same_counts() -> None:
    rng = np.random.default_rng(12)
    for case in range(1500):
        n = int(rng.integers(1, 300))
        values = np.sort([rng.normal(size=n), rng.integers(0, 6, n).astype(float),
                          rng.uniform(-1e6, 1e6, n)][case % 3])
        lo = float(values[0]) - float(rng.random() < 0.3) * float(rng.random())
        edges = kernels.azure_edges(lo, float(values[-1]), int(rng.integers(1, 25)))
        assert kernels.pyspark_histogram_sorted(values, edges).tolist() == \
            kernels.pyspark_histogram(values, edges).tolist()
    lo, hi, k = _quirk_case()
    edges = kernels.azure_edges(lo, hi, k)
    on_edges = np.sort(np.concatenate([edges, edges, [hi]]))
    assert kernels.pyspark_histogram_sorted(on_edges, edges).tolist() == spark_histogram(on_edges.tolist(),
                                                                                         edges.tolist())
    uneven = np.array([1e12, 1e12 + 0.3, 1e12 + 0.6000001, 1e12 + 0.9])
    values = np.array([1e12, 1e12 + 0.3, 1e12 + 0.61, 1e12 + 0.9])
    assert kernels.pyspark_histogram_sorted(values, uneven).tolist() == spark_histogram(values.tolist(),
                                                                                        uneven.tolist())


def test_jensen_shannon_is_scipy_base_2_with_empty_bins() -> None:
    counts_b = np.array([5, 0, 3, 0, 12])
    counts_p = np.array([0, 4, 3, 0, 1])
    expected = jensenshannon(counts_b / 20, counts_p / 8, base=2)
    assert kernels.jensen_shannon(counts_b, counts_p) == pytest.approx(expected, abs=TOL)
    assert kernels.jensen_shannon(np.array([1, 0]), np.array([0, 1])) == pytest.approx(1.0, abs=TOL)


def test_psi_uses_laplace_smoothing_and_natural_log() -> None:
    counts_b, counts_p = np.array([5, 0, 3]), np.array([0, 4, 3])
    p = [(5 + 1) / (8 + 3), (0 + 1) / (8 + 3), (3 + 1) / (8 + 3)]
    q = [(0 + 1) / (7 + 3), (4 + 1) / (7 + 3), (3 + 1) / (7 + 3)]
    expected = sum((qi - pi) * math.log(qi / pi) for pi, qi in zip(p, q, strict=True))
    assert kernels.population_stability_index(counts_b, counts_p, 8, 7) == pytest.approx(expected, abs=TOL)


def test_chi_square_is_the_goodness_of_fit_p_value() -> None:
    counts_b, counts_p = np.array([30, 50, 20]), np.array([25, 40, 35])
    expected = chisquare(f_obs=counts_p, f_exp=counts_b / 100 * 100).pvalue
    assert kernels.chi_squared_pvalue(counts_b, counts_p) == pytest.approx(expected, abs=TOL)


def test_a_category_unseen_in_the_reference_gives_p_zero() -> None:
    assert kernels.chi_squared_pvalue(np.array([10, 10, 0]), np.array([5, 5, 1])) == 0.0


def test_wasserstein_and_ks_statistic_from_the_sorted_merge_equal_scipy() -> None:
    rng = np.random.default_rng(3)
    cases = [(rng.normal(size=3000), rng.normal(0.2, 1.3, 1700)),
             (rng.integers(0, 5, 400).astype(float), rng.integers(0, 8, 900).astype(float)),  # heavy ties
             (np.array([1.5]), np.array([-2.0])), (np.array([3.0]), rng.normal(size=7))]
    for base, prod in cases:
        compared = kernels.compare_sorted(np.sort(base), np.sort(prod))
        assert compared.wasserstein == pytest.approx(wasserstein_distance(base, prod), abs=TOL)
        assert compared.ks_statistic == pytest.approx(ks_2samp(base, prod).statistic, abs=TOL)


def test_normalized_wasserstein_divides_by_the_sample_std_with_a_floor() -> None:
    base = np.array([1.0, 2.0, 4.0])
    assert kernels.sample_std(base) == pytest.approx(np.std(base, ddof=1), abs=TOL)
    assert kernels.normalized_wasserstein(0.5, kernels.sample_std(base)) == pytest.approx(
        0.5 / np.std(base, ddof=1), abs=TOL)
    assert kernels.sample_std(np.array([7.0])) is None  # Spark's stddev of one value is null
    assert kernels.normalized_wasserstein(0.5, None) == pytest.approx(500.0)
    assert kernels.normalized_wasserstein(0.5, 0.0) == pytest.approx(500.0)


def test_ks_below_10k_rows_is_scipy_auto() -> None:
    rng = np.random.default_rng(8)
    base, prod = np.sort(rng.normal(size=300)), np.sort(rng.normal(0.3, 1, 200))
    d = kernels.compare_sorted(base, prod).ks_statistic
    assert kernels.ks_pvalue(base, prod, d) == pytest.approx(ks_2samp(base, prod).pvalue, abs=TOL)


def test_ks_at_10k_rows_or_more_is_asymptotic_by_default_and_an_error_when_strict() -> None:
    rng = np.random.default_rng(9)
    base, prod = np.sort(rng.normal(size=12_000)), np.sort(rng.normal(0.02, 1, 9_000))
    d = kernels.compare_sorted(base, prod).ks_statistic
    expected = ks_2samp(base, prod, method="asymp").pvalue
    assert kernels.ks_pvalue(base, prod, d) == pytest.approx(expected, abs=TOL)
    with pytest.raises(kernels.KsTooLargeError, match="more than 10000 entries"):
        kernels.ks_pvalue(base, prod, d, "azure_strict")


samples = st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(samples, samples)
def test_properties_of_the_merge(left: list[float], right: list[float]) -> None:
    base, prod = np.sort(np.array(left)), np.sort(np.array(right))
    forward, backward = kernels.compare_sorted(base, prod), kernels.compare_sorted(prod, base)
    assert forward.wasserstein == pytest.approx(wasserstein_distance(base, prod), rel=1e-9, abs=1e-6)
    assert forward.ks_statistic == pytest.approx(ks_2samp(base, prod).statistic, abs=TOL)
    assert forward.ks_statistic == pytest.approx(backward.ks_statistic, abs=TOL)  # symmetric
    assert kernels.compare_sorted(base, base).ks_statistic == 0.0


@settings(max_examples=150, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=2, max_size=12))
def test_jensen_shannon_is_a_bounded_symmetric_distance(counts: list[int]) -> None:
    half = len(counts) // 2
    a, b = np.array(counts[:half] + [1]), np.array(counts[half:half * 2] + [1])
    value = kernels.jensen_shannon(a, b)
    assert 0.0 <= value <= 1.0
    assert value == pytest.approx(kernels.jensen_shannon(b, a), abs=TOL)
    assert value == pytest.approx(jensenshannon(a / a.sum(), b / b.sum(), base=2), abs=TOL)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False), min_size=2, max_size=40), st.floats(-5, 5))
def test_a_shift_by_delta_moves_w1_by_delta(values: list[float], delta: float) -> None:
    base = np.sort(np.array(values))
    assert kernels.compare_sorted(base, base + delta).wasserstein == pytest.approx(abs(delta), rel=1e-6, abs=1e-6)
