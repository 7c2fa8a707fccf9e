"""Monitor definitions (``create_monitor``, reference §8.2): target, signals, thresholds, alerts.

Metric keys per signal and data type are Azure's exact names; an unknown key is an error naming the
allowed ones, since a misspelt threshold would otherwise silently never alert.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from mlyard.specs.base import SpecModel, Text, show, spec_error, typed_union
from mlyard.specs.io import DataInput

DRIFT_NUMERICAL = ("jensen_shannon_distance", "normalized_wasserstein_distance", "population_stability_index",
                   "two_sample_kolmogorov_smirnov_test")
DRIFT_CATEGORICAL = ("jensen_shannon_distance", "population_stability_index", "pearsons_chi_squared_test",
                     "chi_squared_test")
QUALITY = ("null_value_rate", "data_type_error_rate", "out_of_bounds_rate")
PERFORMANCE = {"classification": ("accuracy", "precision", "recall"), "regression": ("mae", "mse", "rmse")}
DATA_CONTEXTS = ("model_inputs", "model_outputs", "model_inputs_outputs", "training", "test", "validation",
                 "ground_truth")


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class DataWindow(SpecModel):
    """Rolling (``lookback_window_size``/``_offset``, ISO-8601 durations) or fixed (start/end)."""

    lookback_window_size: timedelta | None = None
    lookback_window_offset: timedelta | None = None
    window_start: Text | None = None
    window_end: Text | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> DataWindow:
        rolling = self.lookback_window_size is not None or self.lookback_window_offset is not None
        fixed = self.window_start is not None or self.window_end is not None
        if rolling and fixed:
            raise spec_error("a data window is rolling (lookback_window_size) or fixed (window_start/window_end), "
                             "not both", "window_start")
        return self


class MonitorData(SpecModel):
    input_data: DataInput
    data_context: Annotated[Literal["model_inputs", "model_outputs", "model_inputs_outputs", "training", "test",
                                    "validation", "ground_truth"], BeforeValidator(_lower)] | None = None
    pre_processing_component: Text | None = None
    data_window: DataWindow | None = None
    data_column_names: dict[str, Text] | None = None

    # A uri_folder of raw collected JSONL needs no pre_processing_component: mlyard's monitoring engine reads the
    # data collector's folders natively (a pre_processing_component is honoured when given).

    def column(self, *keys: str) -> str | None:
        """The first of ``keys`` named in ``data_column_names``."""
        names = self.data_column_names or {}
        return next((names[k] for k in keys if names.get(k)), None)


UNIT_INTERVAL = ("two_sample_kolmogorov_smirnov_test", "pearsons_chi_squared_test", "chi_squared_test",
                 "normalized_discounted_cumulative_gain", "accuracy", "precision", "recall")
"""Metrics whose threshold is a p-value, a score or a share: between 0 and 1."""


def _check_keys(value: dict[str, Any], allowed: tuple[str, ...], *where: str,
                elsewhere: tuple[tuple[str, tuple[str, ...]], ...] = ()) -> None:
    for key, threshold in value.items():
        if key not in allowed:
            other = next((kind for kind, keys in elsewhere if key in keys), None)
            if other is not None:
                raise spec_error(f"'{key}' is a {other} metric; {where[-1] if where else 'this'} features take one "
                                 f"of {', '.join(allowed)}", *where, key)
            raise spec_error(f"unknown metric '{key}'; expected one of {', '.join(allowed)}", *where, key)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise spec_error(f"a threshold is a number; got {show(threshold)}", *where, key)
        if threshold < 0:
            raise spec_error(f"a threshold is 0 or more; got {show(threshold)} (distances and rates alert above "
                             "it, p-values and scores below it)", *where, key)
        if key in UNIT_INTERVAL and threshold > 1:
            raise spec_error(f"'{key}' is a p-value or a score between 0 and 1; got {show(threshold)}", *where, key)


class DriftThresholds(SpecModel):
    numerical: dict[str, Any] | None = None
    categorical: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _known(self) -> DriftThresholds:
        _check_keys(self.numerical or {}, DRIFT_NUMERICAL, "numerical",
                    elsewhere=(("categorical", DRIFT_CATEGORICAL),))
        _check_keys(self.categorical or {}, DRIFT_CATEGORICAL, "categorical",
                    elsewhere=(("numerical", DRIFT_NUMERICAL),))
        return self


class QualityThresholds(SpecModel):
    numerical: dict[str, Any] | None = None
    categorical: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _known(self) -> QualityThresholds:
        _check_keys(self.numerical or {}, QUALITY, "numerical")
        _check_keys(self.categorical or {}, QUALITY, "categorical")
        return self


class PerformanceThresholds(SpecModel):
    classification: dict[str, Any] | None = None
    regression: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _known(self) -> PerformanceThresholds:
        _check_keys(self.classification or {}, PERFORMANCE["classification"], "classification",
                    elsewhere=(("regression", PERFORMANCE["regression"]),))
        _check_keys(self.regression or {}, PERFORMANCE["regression"], "regression",
                    elsewhere=(("classification", PERFORMANCE["classification"]),))
        return self


def _features(value: Any) -> Any:
    if value is None or value == "all_features" or isinstance(value, list):
        return value
    if isinstance(value, dict) and set(value) <= {"top_n_feature_importance"}:
        n = value.get("top_n_feature_importance", 10)
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise spec_error(f"top_n_feature_importance is a positive integer; got {show(n)}",
                             "top_n_feature_importance")
        return value
    raise spec_error(f"expected a list of feature names, all_features, or {{top_n_feature_importance: N}}; "
                     f"got {show(value)}")


Features = Annotated[Any, BeforeValidator(_features)]


def _top_n_target(features: Any, reference: MonitorData | None) -> None:
    if isinstance(features, dict) and reference is not None and not reference.column("target_column"):
        raise spec_error("top_n_feature_importance ranks features by importance for the label: name it in "
                         "reference_data.data_column_names.target_column, or list the features", "features",
                         "top_n_feature_importance")


class SignalBase(SpecModel):
    alert_enabled: bool = True
    properties: dict[str, Any] | None = None


class DataSegment(SpecModel):
    feature_name: Text
    feature_values: list[Text]


class DataDriftSignal(SignalBase):
    type: Literal["data_drift"]
    production_data: MonitorData | None = None
    reference_data: MonitorData | None = None
    features: Features = None
    feature_type_override: dict[str, Annotated[Literal["numerical", "categorical"], BeforeValidator(_lower)]] | None \
        = None
    metric_thresholds: DriftThresholds = Field(default_factory=DriftThresholds)
    data_segment: DataSegment | None = None

    @model_validator(mode="after")
    def _top_n_needs_target(self) -> DataDriftSignal:
        _top_n_target(self.features, self.reference_data)
        return self


class PredictionDriftSignal(SignalBase):
    type: Literal["prediction_drift"]
    production_data: MonitorData | None = None
    reference_data: MonitorData | None = None
    metric_thresholds: DriftThresholds = Field(default_factory=DriftThresholds)


class DataQualitySignal(SignalBase):
    type: Literal["data_quality"]
    production_data: MonitorData | None = None
    reference_data: MonitorData | None = None
    features: Features = None
    feature_type_override: dict[str, Annotated[Literal["numerical", "categorical"], BeforeValidator(_lower)]] | None \
        = None
    metric_thresholds: QualityThresholds = Field(default_factory=QualityThresholds)

    @model_validator(mode="after")
    def _top_n_needs_target(self) -> DataQualitySignal:
        _top_n_target(self.features, self.reference_data)
        return self


class FeatureAttributionSignal(SignalBase):
    type: Literal["feature_attribution_drift"]
    production_data: list[MonitorData] | None = None
    reference_data: MonitorData | None = None
    metric_thresholds: dict[str, float] = Field(default_factory=dict)

    @field_validator("metric_thresholds")
    @classmethod
    def _ndcg(cls, value: dict[str, float]) -> dict[str, float]:
        _check_keys(value, ("normalized_discounted_cumulative_gain",))
        return value

    @model_validator(mode="after")
    def _target(self) -> FeatureAttributionSignal:
        if self.reference_data is not None and not self.reference_data.column("target_column"):
            raise spec_error("feature attribution drift fits models on the reference data: name its label in "
                             "data_column_names.target_column", "reference_data", "data_column_names")
        return self


class ModelPerformanceSignal(SignalBase):
    type: Literal["model_performance"]
    production_data: MonitorData | None = None
    reference_data: MonitorData | None = None
    data_segment: DataSegment | None = None
    metric_thresholds: PerformanceThresholds = Field(default_factory=PerformanceThresholds)

    @model_validator(mode="after")
    def _columns(self) -> ModelPerformanceSignal:
        if self.reference_data is not None and not self.reference_data.column("actual", "target_column"):
            raise spec_error("model performance compares predictions with ground truth: name the label column of "
                             "reference_data in data_column_names.actual (or target_column)", "reference_data",
                             "data_column_names")
        if self.production_data is not None and not self.production_data.column("prediction"):
            raise spec_error("model performance needs the prediction column of production_data: set "
                             "data_column_names.prediction", "production_data", "data_column_names")
        return self


class CustomThreshold(SpecModel):
    metric_name: Text
    threshold: float | None = None


class CustomSignal(SignalBase):
    type: Literal["custom"]
    component_id: Text
    input_data: dict[str, MonitorData] | None = None
    inputs: dict[str, Any] | None = None
    metric_thresholds: list[CustomThreshold] = Field(default_factory=list)
    connection: dict[str, Any] | None = None


class GenerativeSignal(SignalBase):
    """LLM signals: accepted and kept as written (mlyard does not compute them)."""

    keep_unknown = True
    type: Literal["generation_safety_quality", "generation_token_statistics"]


Signal = typed_union(
    {"data_drift": DataDriftSignal, "prediction_drift": PredictionDriftSignal, "data_quality": DataQualitySignal,
     "feature_attribution_drift": FeatureAttributionSignal, "model_performance": ModelPerformanceSignal,
     "custom": CustomSignal, "generation_safety_quality": GenerativeSignal,
     "generation_token_statistics": GenerativeSignal},
    what="monitoring signal")


class MonitorCompute(SpecModel):
    instance_type: Text = "standard_e4s_v3"
    runtime_version: Text = "3.4"


class MonitoringTarget(SpecModel):
    ml_task: Annotated[Literal["classification", "regression", "question_answering"], BeforeValidator(_lower)] | None \
        = None
    endpoint_deployment_id: Text | None = None
    model_id: Text | None = None


class AlertNotification(SpecModel):
    emails: list[Text] = Field(default_factory=list)


def _alert(value: Any) -> Any:
    return {"emails": []} if isinstance(value, str) and value.lower() == "azmonitoring" else value


class MonitorDefinition(SpecModel):
    """The ``create_monitor`` mapping of a monitor schedule."""

    compute: MonitorCompute = Field(default_factory=MonitorCompute)
    monitoring_target: MonitoringTarget | None = None
    monitoring_signals: dict[str, Signal] | None = None  # type: ignore[valid-type]
    alert_notification: Annotated[AlertNotification, BeforeValidator(_alert)] | None = None
