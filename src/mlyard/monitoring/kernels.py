"""Metric kernels: Azure ML's drift metrics on clean (null-free) numpy arrays, exactly as its components compute them.

Every kernel follows ``docs/monitoring.md`` (and the component code it cites): Sturges bins on the smaller window,
equal-width edges ``lo + i*w`` over the union range, PySpark's ``RDD.histogram`` counting, Jensen-Shannon distance in
base 2, PSI with +1 Laplace smoothing, Wasserstein from a sorted merge divided by the baseline's sample standard
deviation, and the p-values of scipy's two-sample Kolmogorov-Smirnov and Pearson chi-square goodness-of-fit tests.
Counts are int64; probabilities are formed at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

KS_EXACT_LIMIT = 10_000
"""Azure computes KS only when both windows have fewer rows than this; scipy's ``auto`` method is exact below it."""
KsMode = Literal["asymptotic", "azure_strict"]
STD_FLOOR = 0.001
PYSPARK_EVEN_TOLERANCE = 1e-10


class KsTooLargeError(ValueError):
    """``azure_strict`` KS on a window of 10,000 rows or more (Azure's component raises the same)."""


def sturges_bins(n_baseline: int, n_production: int) -> int:
    """Azure's bin count: ``ceil(log2(min(n_b, n_p)) + 1)``, the same for every numerical column."""
    smaller = min(n_baseline, n_production)
    if smaller < 1:
        raise ValueError("a window without rows has no bins")
    return math.ceil(math.log2(smaller) + 1)


def azure_edges(lo: float, hi: float, k: int) -> FloatArray:
    """Equal-width edges ``lo + i*w`` (i = 0..k) over [lo, hi]; one ±δ bin around a constant column."""
    if lo == hi:
        delta = 0.005 if lo == 0 else abs(lo) * 0.005
        return np.array([lo - delta, lo + delta], dtype=np.float64)
    width = (hi - lo) / k
    return lo + width * np.arange(k + 1, dtype=np.float64)


def pyspark_histogram(values: FloatArray, edges: FloatArray) -> IntArray:
    """Counts per bin as PySpark's ``RDD.histogram(edges)`` finds them.

    Bins include their left edge; the last also its right edge. Values outside [edges[0], edges[-1]] are skipped,
    so when ``lo + k*w`` lands below the maximum, the maximum is not counted. With evenly spaced edges (steps within
    1e-10 of each other) PySpark computes ``int((x - e0) / inc)``; otherwise it bisects the edges.
    """
    k = len(edges) - 1
    first, last = float(edges[0]), float(edges[-1])
    kept = values[(values >= first) & (values <= last)]
    steps = np.diff(edges)
    if float(steps.max() - steps.min()) < PYSPARK_EVEN_TOLERANCE:
        increment = (last - first) / k
        index = ((kept - first) / increment).astype(np.int64)
    else:
        index = np.searchsorted(edges, kept, side="right").astype(np.int64) - 1
    index[index >= k] = k - 1  # PySpark adds its overflow slot (x == last edge) into the last bin
    return np.bincount(index, minlength=k).astype(np.int64)


def pyspark_histogram_sorted(values: FloatArray, edges: FloatArray) -> IntArray:
    """``pyspark_histogram`` of **sorted** values, by binary search instead of a pass over every value.

    PySpark's bin index (``int((x - e0) / inc)``, or the bisection of the edges) never decreases as x grows, so the
    first value of each bin can be found with the same arithmetic on O(log n) values per edge; the counts are the
    same as ``pyspark_histogram``'s, values outside [e0, e_last] skipped alike.
    """
    k = len(edges) - 1
    first, last = float(edges[0]), float(edges[-1])
    low = int(np.searchsorted(values, first, side="left"))
    high = int(np.searchsorted(values, last, side="right"))
    bounds = [low]
    steps = np.diff(edges)
    if float(steps.max() - steps.min()) < PYSPARK_EVEN_TOLERANCE:
        increment = (last - first) / k
        start = low
        for j in range(1, k):
            a, b = start, high
            while a < b:  # the first position whose bin is j or more
                middle = (a + b) // 2
                if int((float(values[middle]) - first) / increment) >= j:
                    b = middle
                else:
                    a = middle + 1
            bounds.append(a)
            start = a
    else:
        bounds += [min(max(int(np.searchsorted(values, edges[j], side="left")), low), high) for j in range(1, k)]
    bounds.append(high)
    positions = np.array(bounds, dtype=np.int64)
    counts: IntArray = positions[1:] - positions[:-1]
    return counts


def _rel_entr(x: FloatArray, y: FloatArray) -> FloatArray:
    """scipy.special.rel_entr for x >= 0, y > 0 where x > 0: ``x log(x / y)``, and 0 where x == 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = x * np.log(x / y)
    return np.where(x > 0, terms, 0.0)


def jensen_shannon(counts_baseline: IntArray, counts_production: IntArray) -> float:
    """Jensen-Shannon **distance**, base 2, of two count vectors over the same bins.

    scipy's ``jensenshannon(p, q, base=2)`` step by step (normalise, mean, relative entropies, divide by ln 2,
    square root of half), in numpy so a drift run does not pay scipy's import.
    """
    p = counts_baseline / np.sum(counts_baseline)
    q = counts_production / np.sum(counts_production)
    m = (p + q) / 2.0
    js = np.sum(_rel_entr(p, m)) + np.sum(_rel_entr(q, m))
    js /= np.log(2.0)
    return float(np.sqrt(js / 2.0))


def population_stability_index(counts_baseline: IntArray, counts_production: IntArray, n_baseline: int,
                               n_production: int) -> float:
    """PSI with +1 Laplace smoothing per bin: ``Σ (q - p) ln(q / p)``, p = (c_b + 1)/(n_b + K)."""
    k = len(counts_baseline)
    p = (counts_baseline + 1) / (n_baseline + k)
    q = (counts_production + 1) / (n_production + k)
    return float(np.sum((q - p) * np.log(q / p)))


def chi_squared_pvalue(counts_baseline: IntArray, counts_production: IntArray) -> float:
    """Pearson goodness-of-fit p-value: observed production counts against baseline shares times n_p.

    A category seen only in production has an expected count of 0, which scipy turns into p = 0 (an alert), as in
    Azure's component.
    """
    from scipy.stats import chisquare

    n_b = counts_baseline.sum()
    expected = counts_baseline / n_b * counts_production.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        result = chisquare(f_obs=counts_production, f_exp=expected)
    return float(result.pvalue)


def sample_std(values: FloatArray) -> float | None:
    """Spark's ``stddev`` (ddof = 1); None below two values, as Spark returns null there."""
    if len(values) < 2:
        return None
    return float(np.std(values, ddof=1))


@dataclass(frozen=True)
class SortedComparison:
    """The exact 1-Wasserstein distance and the KS statistic D of two sorted samples."""

    wasserstein: float
    ks_statistic: float


def compare_sorted(baseline: FloatArray, production: FloatArray) -> SortedComparison:
    """W1 and D of two sorted samples from one stable merge, without a search per value.

    The merge order says which window each value came from; running counts give ``F`` and ``G`` at every value.
    W1 = Σ |F - G| · gap to the next value (a tie has a zero gap, so it adds nothing); D = max |F - G| at the last
    value of each tied block. This is scipy's arithmetic (``wasserstein_distance``, ``ks_2samp``'s statistic).
    """
    n, m = len(baseline), len(production)
    values = np.concatenate([baseline, production])
    order = np.argsort(values, kind="stable")  # two sorted runs: timsort merges them in linear time
    merged = values[order]
    del values
    counts = np.cumsum(order < n, dtype=np.int64)  # baseline values up to each position
    del order
    # in place where possible: at 1e6 rows each temporary is 8-16 MB, and two threads run this at once
    cdf_p = np.arange(1, n + m + 1, dtype=np.float64)
    cdf_p -= counts
    cdf_p /= m
    gaps = counts / n
    del counts
    gaps -= cdf_p
    del cdf_p
    np.abs(gaps, out=gaps)
    steps = np.diff(merged)
    ks = float(max(gaps[:-1][steps != 0].max(initial=0.0), gaps[-1]))  # |F - G| after each tied block
    steps *= gaps[:-1]
    return SortedComparison(wasserstein=float(np.sum(steps)), ks_statistic=ks)


def normalized_wasserstein(w1: float, baseline_std: float | None) -> float:
    """W1 divided by ``max(std_b, 0.001)``; a missing std (fewer than two baseline values) counts as 0.001."""
    return w1 / max(baseline_std if baseline_std is not None else STD_FLOOR, STD_FLOOR)


def ks_pvalue(baseline: FloatArray, production: FloatArray, statistic: float, mode: KsMode = "asymptotic") -> float:
    """The two-sample KS p-value.

    Below 10,000 rows on both sides: ``scipy.stats.ks_2samp`` with its default (exact) method, as Azure calls it.
    At 10,000 or more on either side: ``asymptotic`` (the default) gives ``kstwo.sf(D, round(n*m/(n+m)))``, the
    value ``ks_2samp(method='asymp')`` returns; ``azure_strict`` raises ``KsTooLargeError`` as Azure's component does.
    """
    n, m = len(baseline), len(production)
    if n < KS_EXACT_LIMIT and m < KS_EXACT_LIMIT:
        from scipy.stats import ks_2samp

        return float(ks_2samp(baseline, production).pvalue)
    if mode == "azure_strict":
        raise KsTooLargeError(f"Cannot calculate two-sample Kolmogorov-Smirnov test on dataset with more than "
                              f"{KS_EXACT_LIMIT} entries (baseline {n}, production {m} rows); use the default "
                              "ks_mode 'asymptotic' to compute it at any size")
    from scipy.stats import kstwo

    return float(np.clip(kstwo.sf(statistic, np.round(n * m / (n + m))), 0.0, 1.0))
