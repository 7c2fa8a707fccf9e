"""Inputs and outputs of jobs and components (reference §2.2, §2.3, §4.1).

A job input is a literal (``0.01``, ``'false'``, ``${{parent.inputs.x}}``), a ``{value: ...}``
wrapper, or a data spec (``{type, path, mode}``). A job output is null (a uri_folder at a generated
path), a data spec, or a binding string. A component declares parameter inputs (``string``,
``number``, ``integer``, ``boolean``) and port inputs (data types); legacy port type ``path`` is
read as ``uri_folder``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Tag, ValidationInfo, field_validator, model_validator

from mlyard.specs.base import LowerText, Name, SpecModel, Text, Version, show, spec_error
from mlyard.specs.paths import LocalPath, UriPath, check_exists

DATA_TYPES = ("uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model")
DataType = Literal["uri_file", "uri_folder", "mltable", "mlflow_model", "custom_model", "triton_model"]
InputMode = Literal["ro_mount", "download", "direct", "eval_mount", "eval_download", "link", "rw_mount", "mount"]
OutputMode = Literal["rw_mount", "upload", "direct", "mount"]
PARAMETER_TYPES = ("string", "number", "integer", "boolean")
RESERVED_NAMES = frozenset({"path", "ld_library_path", "user", "logname", "home", "pwd", "shell"})


def _legacy_path_type(value: Any) -> Any:
    """The legacy port type ``path`` (mlops-project-template cv) means ``uri_folder``."""
    value = value.lower() if isinstance(value, str) else value
    return "uri_folder" if value == "path" else value


PortType = Annotated[DataType, BeforeValidator(_legacy_path_type)]


class DataInput(SpecModel):
    """A data input of a job: ``{type, path, mode}``."""

    type: PortType = "uri_folder"
    path: LocalPath
    mode: Annotated[InputMode, BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)] | None = None
    path_on_compute: Text | None = None
    datastore: Text | None = None
    description: Text | None = None
    optional: bool | None = None

    @field_validator("path")
    @classmethod
    def _exists(cls, value: str, info: ValidationInfo) -> str:
        check_exists(value, info, what="input path")
        return value

    @model_validator(mode="after")
    def _mode_fits_type(self) -> DataInput:
        if self.mode in ("eval_mount", "eval_download") and self.type != "mltable":
            raise spec_error(f"mode {self.mode} evaluates an MLTable and needs type: mltable; a {self.type} input "
                             "takes ro_mount, download or direct", "mode")
        if self.mode in ("rw_mount", "mount"):
            raise spec_error(f"mode {self.mode} is for outputs; an input takes ro_mount, download or direct", "mode")
        return self


class LiteralInput(SpecModel):
    """A ``{value: ...}`` wrapper around a literal (mlops-project-template nlp)."""

    value: Any = None
    type: LowerText | None = None
    description: Text | None = None


Literal_ = bool | int | float | str


def _pick_input(value: Any) -> str:
    if isinstance(value, SpecModel):
        return type(value).__name__
    if isinstance(value, dict):
        return "LiteralInput" if "value" in value and "path" not in value else "DataInput"
    if isinstance(value, bool | int | float | str):
        return "literal"
    return "invalid"


def _invalid_input(value: Any) -> Any:
    raise spec_error(f"expected a literal, a {{value: ...}} mapping or a data input {{type, path}}; got {show(value)}")


JobInput = Annotated[
    Annotated[DataInput, Tag("DataInput")]
    | Annotated[LiteralInput, Tag("LiteralInput")]
    | Annotated[Literal_, Tag("literal")]
    | Annotated[Any, BeforeValidator(_invalid_input), Tag("invalid")],
    Discriminator(_pick_input),
]


class DataOutput(SpecModel):
    """A job output; registered as a data or model asset after the job when ``name`` is set.

    ``type`` has no default here: unset, a step output takes the type its component declares or the
    pipeline output it is bound to has (uri_folder when neither says).
    """

    type: PortType | None = None
    mode: Annotated[OutputMode, BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)] | None = None
    path: UriPath | None = None
    name: Name | None = None
    version: Version | None = None
    description: Text | None = None
    datastore: Text | None = None


def _null_output(value: Any) -> Any:
    return {} if value is None else value


def _pick_output(value: Any) -> str:
    if isinstance(value, DataOutput) or isinstance(value, dict):
        return "DataOutput"
    if isinstance(value, str):
        return "binding"
    return "invalid"


def _invalid_output(value: Any) -> Any:
    raise spec_error(f"expected null, a binding such as '${{{{parent.outputs.x}}}}', or an output "
                     f"{{type, mode, path}}; got {show(value)}")


JobOutput = Annotated[
    Annotated[DataOutput, Tag("DataOutput")]
    | Annotated[str, Tag("binding")]
    | Annotated[Any, BeforeValidator(_invalid_output), Tag("invalid")],
    Discriminator(_pick_output),
    BeforeValidator(_null_output),
]


def _none_to_empty(value: Any) -> Any:
    return {} if value is None else value


JobInputs = Annotated[dict[str, JobInput | None], BeforeValidator(_none_to_empty)]
JobOutputs = Annotated[dict[str, JobOutput], BeforeValidator(_none_to_empty)]


# -- component declarations ---------------------------------------------------------------------


def _as_number(value: Any, kind: str) -> Any:
    """PyYAML reads ``1e-3`` as a string; the SDK accepts numeric strings as defaults, so do we."""
    if isinstance(value, str) and kind in ("number", "integer"):
        try:
            return int(value) if kind == "integer" else float(value)
        except ValueError:
            return value
    return value


def _as_string(value: Any) -> Any:
    return str(value) if isinstance(value, bool | int | float) else value


class ComponentInput(SpecModel):
    """A declared component input: a parameter (string/number/integer/boolean) or a data port."""

    type: Annotated[str, BeforeValidator(_legacy_path_type)]
    optional: bool = False
    default: Any = None
    description: Text | None = None
    min: float | None = None
    max: float | None = None
    enum: list[Any] | None = None
    mode: LowerText | None = None

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in PARAMETER_TYPES and value not in DATA_TYPES:
            raise spec_error(f"expected one of {', '.join(PARAMETER_TYPES + DATA_TYPES)}; got {show(value)}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ComponentInput:
        if self.type == "string":
            # YAML reads an unquoted True or 0.5 as a bool or number; Azure keeps its str() for a string input
            self.default = _as_string(self.default)
            self.enum = [_as_string(v) for v in self.enum] if self.enum is not None else None
        if self.type not in ("number", "integer") and (self.min is not None or self.max is not None):
            raise spec_error(f"min and max apply to number and integer inputs, not {self.type}", "min")
        if self.enum is not None and self.type != "string":
            raise spec_error("enum applies to string inputs only", "enum")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise spec_error(f"min ({self.min}) is greater than max ({self.max})", "min")
        if self.default is not None:
            self._check_default()
        return self

    def _check_default(self) -> None:
        d = _as_number(self.default, self.type)
        if self.type == "integer" and (isinstance(d, bool) or not isinstance(d, int)):
            raise spec_error(f"default of an integer input must be an integer; got {show(d)}", "default")
        if self.type == "number" and (isinstance(d, bool) or not isinstance(d, int | float)):
            raise spec_error(f"default of a number input must be a number; got {show(d)}", "default")
        if self.type == "boolean" and not (isinstance(d, bool) or str(d).lower() in ("true", "false")):
            raise spec_error(f"default of a boolean input must be true or false; got {show(d)}", "default")
        if isinstance(d, int | float) and not isinstance(d, bool):
            if self.min is not None and d < self.min:
                raise spec_error(f"default {d} is below min {self.min}", "default")
            if self.max is not None and d > self.max:
                raise spec_error(f"default {d} is above max {self.max}", "default")
        if self.enum is not None and d not in self.enum:
            raise spec_error(f"default {show(d)} is not one of the enum values", "default")

    @property
    def is_data(self) -> bool:
        return self.type in DATA_TYPES


class ComponentOutput(SpecModel):
    type: PortType = "uri_folder"
    mode: LowerText | None = None
    description: Text | None = None


ComponentInputs = Annotated[dict[str, ComponentInput], BeforeValidator(_none_to_empty)]
ComponentOutputs = Annotated[dict[str, ComponentOutput], BeforeValidator(lambda v: {} if v is None else {
    k: ({} if o is None else o) for k, o in v.items()} if isinstance(v, dict) else v)]


def check_io_names(inputs: dict[str, Any], outputs: dict[str, Any]) -> None:
    """Reserved names and names used for both an input and an output are refused (reference §2.2)."""
    for where, names in (("inputs", inputs), ("outputs", outputs)):
        for name in names:
            if name.lower() in RESERVED_NAMES:
                raise spec_error(f"'{name}' is a reserved name ({', '.join(sorted(RESERVED_NAMES))}); rename it",
                                 where, name)
    for name in inputs:
        if name in outputs:
            raise spec_error(f"'{name}' names both an input and an output; give them different names",
                             "outputs", name)
