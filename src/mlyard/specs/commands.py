"""What command jobs, components and sweep trials share: the command itself and its run settings.

``check_command`` holds the rules of §1.3 and §4.1: a command may use ``${{inputs.x}}`` for declared
inputs and ``${{outputs.y}}`` for declared outputs (plus ``${{search_space.h}}`` in sweep trials);
a ``$[[...]]`` segment may hold only optional inputs; in a plain job an undeclared input inside a
segment is allowed (the segment is dropped at run time).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, ValidationInfo, field_validator

from mlyard.core.errors import InvalidSpecError
from mlyard.specs.assets import InlineEnvironment
from mlyard.specs.base import SpecModel, StrMap, Text, spec_error, typed_union
from mlyard.specs.bindings import find_bindings
from mlyard.specs.paths import LocalPath, check_exists
from mlyard.specs.references import parse_asset_reference


def asset_ref(value: Any) -> Any:
    """Validate a reference string (``azureml:name:1``, ``name@latest``, registry URI); keep it as written."""
    if isinstance(value, str):
        try:
            parse_asset_reference(value)
        except InvalidSpecError as exc:
            raise spec_error(exc.issues[0].message) from None
    return value


AssetRef = Annotated[str, BeforeValidator(asset_ref)]

EnvironmentField = typed_union({None: InlineEnvironment}, key="__never__", what="inline environment",
                               scalar=AssetRef)
"""An environment: a reference string, or an inline environment mapping."""


class PyTorchDistribution(SpecModel):
    keep_unknown = True
    type: Literal["pytorch"]
    process_count_per_instance: int = Field(default=1, ge=1)


class MpiDistribution(SpecModel):
    keep_unknown = True
    type: Literal["mpi"]
    process_count_per_instance: int | None = Field(default=None, ge=1)


class TensorFlowDistribution(SpecModel):
    keep_unknown = True
    type: Literal["tensorflow"]
    worker_count: int | None = Field(default=None, ge=1)
    parameter_server_count: int = Field(default=0, ge=0)


class RayDistribution(SpecModel):
    keep_unknown = True
    type: Literal["ray"]
    address: Text | None = None
    port: int | None = None
    dashboard_port: int | None = None
    include_dashboard: bool | None = None
    head_node_additional_args: Text | None = None
    worker_node_additional_args: Text | None = None


Distribution = typed_union(
    {"pytorch": PyTorchDistribution, "mpi": MpiDistribution, "tensorflow": TensorFlowDistribution,
     "ray": RayDistribution}, what="distribution")


class Resources(SpecModel):
    keep_unknown = True
    instance_count: int = Field(default=1, ge=1)
    instance_type: Text | None = None
    shm_size: Text | None = None
    docker_args: Text | None = None
    locations: list[Text] | None = None
    max_instance_count: int | None = Field(default=None, ge=1)
    properties: dict[str, Any] | None = None


class CommandLimits(SpecModel):
    timeout: int | None = Field(default=None, ge=1, description="Seconds before the job is canceled.")


class CommandSettings(SpecModel):
    """Fields of everything that runs a command: code, environment, variables, resources."""

    command: Text
    code: LocalPath | None = None
    environment: EnvironmentField  # type: ignore[valid-type]
    environment_variables: StrMap = Field(default_factory=dict)
    distribution: Distribution | None = None  # type: ignore[valid-type]
    resources: Resources | None = None

    @field_validator("code")
    @classmethod
    def _code_exists(cls, value: str | None, info: ValidationInfo) -> str | None:
        check_exists(value, info, what="code")
        return value


def check_command(
    command: str,
    inputs: dict[str, Any],
    outputs: dict[str, Any],
    *,
    optional: set[str] | None = None,
    search_space: set[str] | None = None,
    field: str = "command",
) -> None:
    """Check the expressions of ``command`` against what is declared.

    Args:
        inputs: declared inputs (names are what matters).
        outputs: declared outputs.
        optional: for components, the optional inputs (only those may stand in ``$[[...]]``); None for
            plain jobs, where an undeclared input inside ``$[[...]]`` is allowed.
        search_space: hyperparameter names a sweep trial may use; None outside sweeps.
    """
    try:
        bindings = find_bindings(command)
    except InvalidSpecError as exc:
        raise spec_error(exc.issues[0].message, field) from None
    for b in bindings:
        if b.kind == "inputs":
            assert b.name is not None
            if b.name not in inputs:
                if b.optional and optional is None:
                    continue  # a plain job's optional segment: dropped at run time
                declared = ", ".join(sorted(inputs)) or "none"
                raise spec_error(f"{b.text} names an input that is not declared (declared: {declared}); "
                                 "add it under inputs:", field)
            if optional is not None and b.optional and b.name not in optional:
                raise spec_error(f"{b.text} is a required input inside an optional segment $[[...]]; only "
                                 "optional inputs may stand there: mark it optional: true or move it out", field)
        elif b.kind == "outputs":
            assert b.name is not None
            if b.name not in outputs:
                declared = ", ".join(sorted(outputs)) or "none"
                raise spec_error(f"{b.text} names an output that is not declared (declared: {declared}); "
                                 "add it under outputs:", field)
        elif b.kind == "search_space" and search_space is not None:
            if b.name not in search_space:
                raise spec_error(f"{b.text} is not in search_space (has: {', '.join(sorted(search_space))})",
                                 field)
        else:
            where = "a sweep trial's command" if search_space is not None else "a command"
            raise spec_error(f"{b.text} cannot be used in {where}: use ${{{{inputs.<name>}}}} or "
                             "${{outputs.<name>}}", field)

