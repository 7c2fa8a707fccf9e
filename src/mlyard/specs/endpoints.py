"""Online and batch endpoints and deployments (reference §6, §7, §8.3).

A batch deployment without ``type`` is the legacy layout with its run settings at the root
(mlops-project-template's ``batch-deployment.yml``); the loader moves them under ``settings`` so
both layouts come out the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from mlyard.specs.assets import InlineModel
from mlyard.specs.base import Documented, Name, SpecModel, StrMap, Text, load_context, spec_error, typed_union
from mlyard.specs.commands import AssetRef, EnvironmentField, Resources
from mlyard.specs.paths import LocalPath, check_exists, is_local
from mlyard.specs.pipelines import PipelineComponentField, PipelineSettings


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _truthy(value: Any) -> Any:
    """Azure examples write ``enabled: 'True'``: accept strings of booleans."""
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return value


Flag = Annotated[bool, BeforeValidator(_truthy)]
EndpointName = Annotated[Text, Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{1,31}$")]

ModelField = typed_union({None: InlineModel}, key="__never__", what="inline model", scalar=AssetRef)


class CodeConfiguration(SpecModel):
    code: LocalPath
    scoring_script: Text

    @model_validator(mode="after")
    def _exists(self, info: ValidationInfo) -> CodeConfiguration:
        check_exists(self.code, info, what="code", expect="dir", subpath=("code",))
        if load_context(info).check_paths and is_local(self.code) and Path(self.code).is_dir():
            if not (Path(self.code) / self.scoring_script).is_file():
                raise spec_error(f"scoring script '{self.scoring_script}' is not in '{self.code}'", "scoring_script")
        return self


# -- online -------------------------------------------------------------------------------------------


class OnlineEndpoint(Documented):
    name: EndpointName
    auth_mode: Annotated[Literal["key", "aml_token", "aad_token"], BeforeValidator(_lower)] = "key"
    traffic: dict[str, Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)
    mirror_traffic: dict[str, Annotated[int, Field(ge=0, le=50)]] = Field(default_factory=dict)
    public_network_access: Annotated[Literal["enabled", "disabled"], BeforeValidator(_lower)] = "enabled"
    identity: dict[str, Any] | None = None
    compute: Text | None = None

    @field_validator("traffic")
    @classmethod
    def _sums_to_100(cls, value: dict[str, int]) -> dict[str, int]:
        total = sum(value.values())
        if total not in (0, 100):
            raise spec_error(f"traffic percentages add up to {total}; they must add up to 100 (or 0)")
        return value

    @field_validator("mirror_traffic")
    @classmethod
    def _one_mirror(cls, value: dict[str, int]) -> dict[str, int]:
        if len(value) > 1:
            raise spec_error("mirror_traffic names at most one deployment")
        return value

    @model_validator(mode="after")
    def _mirror_not_live(self) -> OnlineEndpoint:
        for name in self.mirror_traffic:
            if self.traffic.get(name, 0) > 0 and self.mirror_traffic[name] > 0:
                raise spec_error(f"deployment '{name}' cannot get live traffic and mirror traffic at once",
                                 "mirror_traffic", name)
        return self


class RequestSettings(SpecModel):
    request_timeout_ms: int = Field(default=5000, ge=1, le=180000)
    max_concurrent_requests_per_instance: int = Field(default=1, ge=1)
    max_queue_wait_ms: int | None = Field(default=None, ge=0)


class Probe(SpecModel):
    initial_delay: int = Field(default=10, ge=0)
    period: int = Field(default=10, ge=1)
    timeout: int = Field(default=2, ge=1)
    success_threshold: int = Field(default=1, ge=1)
    failure_threshold: int = Field(default=30, ge=1)


class CollectionData(SpecModel):
    name: Name | None = None
    path: Text | None = None
    version: Annotated[Text, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v)] | None = None


class Collection(SpecModel):
    enabled: Flag = False
    data: CollectionData | None = None
    client_id: Text | None = None


class DataCollector(SpecModel):
    sampling_rate: float = Field(default=1.0, gt=0, le=1)
    rolling_rate: Annotated[Literal["minute", "hour", "day", "month", "year"], BeforeValidator(_lower)] = "hour"
    collections: dict[str, Collection] = Field(default_factory=dict)

    @field_validator("collections")
    @classmethod
    def _at_most_five_custom(cls, value: dict[str, Collection]) -> dict[str, Collection]:
        custom = [n for n in value if n not in ("request", "response")]
        if len(custom) > 5:
            raise spec_error(f"at most 5 custom collections are allowed; got {len(custom)}")
        return value


class OnlineDeployment(Documented):
    name: EndpointName
    endpoint_name: EndpointName
    model: ModelField | None = None  # type: ignore[valid-type]
    code_configuration: CodeConfiguration | None = None
    environment: EnvironmentField | None = None  # type: ignore[valid-type]
    environment_variables: StrMap = Field(default_factory=dict)
    instance_type: Text | None = None
    instance_count: int = Field(default=1, ge=1)
    app_insights_enabled: bool = False
    scale_settings: dict[str, Any] | None = None
    request_settings: RequestSettings = Field(default_factory=RequestSettings)
    liveness_probe: Probe | None = None
    readiness_probe: Probe | None = None
    egress_public_network_access: Annotated[Literal["enabled", "disabled"], BeforeValidator(_lower)] | None = None
    model_mount_path: Text | None = None
    data_collector: DataCollector | None = None
    private_network_connection: bool | None = None

    @model_validator(mode="after")
    def _runnable(self) -> OnlineDeployment:
        if self.model is None and self.environment is None:
            raise spec_error("a deployment needs a 'model' (an MLflow model deploys without code) or an "
                             "'environment' with code_configuration", "model")
        if self.code_configuration is not None and self.environment is None:
            raise spec_error("code_configuration needs an 'environment' to run the scoring script in",
                             "environment")
        return self


# -- batch --------------------------------------------------------------------------------------------


class BatchEndpointDefaults(SpecModel):
    deployment_name: Name | None = None


class BatchEndpoint(Documented):
    name: EndpointName
    auth_mode: Annotated[Literal["aad_token"], BeforeValidator(_lower)] = "aad_token"
    defaults: BatchEndpointDefaults = Field(default_factory=BatchEndpointDefaults)


class RetrySettings(SpecModel):
    max_retries: int = Field(default=3, ge=0)
    timeout: int = Field(default=30, ge=1)


class BatchSettings(SpecModel):
    """Run settings of a model batch deployment (under ``settings:``, or at the root in legacy files)."""

    mini_batch_size: int = Field(default=10, ge=1)
    max_concurrency_per_instance: int = Field(default=1, ge=1)
    output_action: Annotated[Literal["append_row", "summary_only"], BeforeValidator(_lower)] = "append_row"
    output_file_name: Text = "predictions.csv"
    retry_settings: RetrySettings = Field(default_factory=RetrySettings)
    error_threshold: int = Field(default=-1, ge=-1)
    logging_level: Annotated[Literal["warning", "info", "debug"], BeforeValidator(_lower)] = "info"
    environment_variables: StrMap = Field(default_factory=dict)
    instance_count: int | None = Field(default=None, ge=1)


LEGACY_SETTINGS = tuple(BatchSettings.model_fields)


class ModelBatchDeployment(Documented):
    """``type: model`` (or legacy, without ``type``)."""

    name: EndpointName
    endpoint_name: EndpointName
    type: Literal["model"] = "model"
    model: ModelField  # type: ignore[valid-type]
    code_configuration: CodeConfiguration | None = None
    environment: EnvironmentField | None = None  # type: ignore[valid-type]
    compute: Text | None = None
    resources: Resources | None = None
    settings: BatchSettings = Field(default_factory=BatchSettings)

    @model_validator(mode="before")
    @classmethod
    def _legacy_layout(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("type") is not None:
            return data
        moved = {k: data[k] for k in LEGACY_SETTINGS if k in data}
        if not moved:
            return data
        given = data.get("settings")
        settings: dict[str, Any] = given if isinstance(given, dict) else {}
        rest = {k: v for k, v in data.items() if k not in moved}
        return {**rest, "settings": {**moved, **settings}}

    @model_validator(mode="after")
    def _runnable(self) -> ModelBatchDeployment:
        if self.code_configuration is not None and self.environment is None:
            raise spec_error("code_configuration needs an 'environment' to run the scoring script in",
                             "environment")
        return self


class PipelineBatchDeployment(Documented):
    """``type: pipeline``: a pipeline component (or an earlier pipeline job) run per invocation."""

    name: EndpointName
    endpoint_name: EndpointName
    type: Literal["pipeline"]
    component: PipelineComponentField | None = None  # type: ignore[valid-type]
    job_definition: Text | None = None
    settings: PipelineSettings = Field(default_factory=PipelineSettings)

    @model_validator(mode="after")
    def _one_source(self) -> PipelineBatchDeployment:
        if (self.component is None) == (self.job_definition is None):
            raise spec_error("a pipeline batch deployment needs exactly one of 'component' and 'job_definition'",
                             "component")
        return self


BatchDeployment = typed_union({None: ModelBatchDeployment, "model": ModelBatchDeployment,
                               "pipeline": PipelineBatchDeployment}, what="batch deployment")
