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

    @model_validator(mode="after")
    def _preprocessed(self) -> MonitorData:
        if self.input_data.type == "uri_folder" and not self.pre_processing_component:
            raise spec_error("a uri_folder input (raw collected JSONL) needs pre_processing_component, a component "
                             "that turns it into an mltable; or give an mltable input", "pre_processing_component")
        return self


def _check_keys(value: dict[str, Any], allowed: tuple[str, ...], *where: str) -> None:
    for key, threshold in value.items():
        if key not in allowed:
            raise spec_error(f"unknown metric '{key}'; expected one of {', '.join(allowed)}", *where, key)
        if isinstance(threshold, bool) or not isinstance(threshold, int | float):
            raise spec_error(f"a threshold is a number; got {show(threshold)}", *where, key)


class DriftThresholds(SpecModel):
    numerical: dict[str, Any] | None = None
    categorical: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _known(self) -> DriftThresholds:
        _check_keys(self.numerical or {}, DRIFT_NUMERICAL, "numerical")
        _check_keys(self.categorical or {}, DRIFT_CATEGORICAL, "categorical")
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
        _check_keys(self.classification or {}, PERFORMANCE["classification"], "classification")
        _check_keys(self.regression or {}, PERFORMANCE["regression"], "regression")
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


class ModelPerformanceSignal(SignalBase):
    type: Literal["model_performance"]
    production_data: MonitorData | None = None
    reference_data: MonitorData | None = None
    data_segment: DataSegment | None = None
    metric_thresholds: PerformanceThresholds = Field(default_factory=PerformanceThresholds)


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
