"""The metric catalogue: YAML keys, Azure's output names, default thresholds and alert directions (reference §1.4-1.6).

Alerts are strict comparisons. Test p-values, NDCG and the higher-is-better model performance metrics (accuracy,
precision, recall: Azure's shipped evaluator compares them the other way round, against its own docs; mlyard
follows the docs) alert when the value is **below** the threshold; every other metric when it is **above** it. A
metric with no threshold (or no value) is informational and never alerts.
"""

from __future__ import annotations

import math

NAMES = {
    "jensen_shannon_distance": "JensenShannonDistance",
    "normalized_wasserstein_distance": "NormalizedWassersteinDistance",
    "population_stability_index": "PopulationStabilityIndex",
    "two_sample_kolmogorov_smirnov_test": "TwoSampleKolmogorovSmirnovTest",
    "pearsons_chi_squared_test": "PearsonsChiSquaredTest",
    "chi_squared_test": "PearsonsChiSquaredTest",
    "null_value_rate": "NullValueRate",
    "data_type_error_rate": "DataTypeErrorRate",
    "out_of_bounds_rate": "OutOfBoundsRate",
    "normalized_discounted_cumulative_gain": "NormalizedDiscountedCumulativeGain",
    "accuracy": "Accuracy",
    "precision": "Precision",
    "recall": "Recall",
    "mae": "MeanAbsoluteError",
    "mse": "MeanSquaredError",
    "rmse": "RootMeanSquaredError",
}
BELOW_ALERTS = frozenset({"TwoSampleKolmogorovSmirnovTest", "PearsonsChiSquaredTest",
                          "NormalizedDiscountedCumulativeGain", "Accuracy", "Precision", "Recall"})

DRIFT_DEFAULTS = {"numerical": {"normalized_wasserstein_distance": 0.1},
                  "categorical": {"jensen_shannon_distance": 0.1}}
QUALITY_DEFAULTS = {"null_value_rate": 0.0, "data_type_error_rate": 0.0, "out_of_bounds_rate": 0.0}
PERFORMANCE_DEFAULTS = {"classification": {"accuracy": 0.9}, "regression": {}}
QUALITY_PRECISION = 5  # Azure rounds rates to 1e-5


def output_name(key: str) -> str:
    """Azure's PascalCase output name of a snake_case YAML metric key."""
    return NAMES[key]


def breaches(metric: str, value: float | None, threshold: float | None) -> bool:
    """Whether ``value`` crosses ``threshold`` in ``metric``'s alert direction (strictly)."""
    if value is None or threshold is None or math.isnan(value) or math.isnan(threshold):
        return False
    return value < threshold if metric in BELOW_ALERTS else value > threshold


def configured(given: dict[str, float] | None, defaults: dict[str, float]) -> dict[str, float]:
    """The metrics a data type computes: the given ones (aliases folded), or the defaults when none are given."""
    chosen = dict(given) if given else dict(defaults)
    if "chi_squared_test" in chosen:
        alias = chosen.pop("chi_squared_test")
        chosen.setdefault("pearsons_chi_squared_test", alias)
    return chosen
