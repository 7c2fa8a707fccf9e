"""Command components (reference §4.1) and component references inside pipelines.

A component's ``code`` and ``additional_includes`` resolve against the component file's own folder.
``load_component_ref`` turns ``component: ./train.yml`` (or ``file:train.yml``) into the loaded
component, so a pipeline carries its components inline and never depends on files the server cannot
read; ``azureml:`` references stay strings and resolve against the workspace later.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlyard.specs.base import Documented, Label, Name, Version, load_context, show, spec_error
from mlyard.specs.commands import CommandLimits, CommandSettings, check_command
from mlyard.specs.io import ComponentInputs, ComponentOutputs, check_io_names
from mlyard.specs.paths import LocalPath, check_exists, resolve_local_path
from mlyard.specs.references import classify_path

COMPONENT_NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,254}\Z")


def registered_name_problem(value: str) -> str | None:
    """Why ``value`` cannot name a registered component (Azure's rule), or None.

    Anonymous components (a pipeline step's ``component: ./x.yml``, a sweep's ``trial:``) may be named
    otherwise, as in Azure, which applies this rule only when a component is registered.
    """
    if COMPONENT_NAME_RE.match(value):
        return None
    return (f"{show(value)} is not a valid name for a registered component: use lowercase letters, digits and '_', "
            "starting with a letter (at most 255 characters)")


ComponentName = Name
"""A component's name; the registered-name rule is the loader's (``registered_name_problem``)."""


class CommandComponent(Documented, CommandSettings):
    """A reusable command step with declared inputs and outputs."""

    type: Literal["command"] = "command"
    name: ComponentName | None = None  # required when registered; anonymous inside a pipeline
    version: Version | None = None
    display_name: Label | None = None
    is_deterministic: bool = True
    inputs: ComponentInputs = Field(default_factory=dict)
    outputs: ComponentOutputs = Field(default_factory=dict)
    additional_includes: list[LocalPath] = Field(default_factory=list)
    limits: CommandLimits | None = None

    @field_validator("additional_includes")
    @classmethod
    def _includes_exist(cls, value: list[str], info: ValidationInfo) -> list[str]:
        for i, item in enumerate(value):
            check_exists(item, info, what="additional include", subpath=(i,))
        return value

    @model_validator(mode="after")
    def _bindings(self) -> CommandComponent:
        check_io_names(self.inputs, self.outputs)
        optional = {n for n, i in self.inputs.items() if i.optional}
        check_command(self.command, self.inputs, self.outputs, optional=optional)
        return self

    def required_inputs(self) -> set[str]:
        """Inputs a step must bind: not optional and without a default."""
        return {n for n, i in self.inputs.items() if not i.optional and i.default is None}


def is_file_reference(value: str) -> bool:
    """``file:x.yml``, ``./x.yml``, ``x.yaml``: a component file, not a workspace reference."""
    s = value.strip()
    if s.startswith("file:"):
        return True
    if classify_path(s) != "local":
        return False
    return "/" in s or s.endswith((".yml", ".yaml"))


def load_component_ref(value: Any, info: ValidationInfo, kind: str = "component") -> Any:
    """Load a local component file reference; anything else is returned unchanged.

    Without a base folder (a spec sent to the server) a file reference is refused: the client
    inlines components before it sends a pipeline.
    """
    if not isinstance(value, str) or not is_file_reference(value):
        return value
    ctx = load_context(info)
    if ctx.base_path is None:
        raise spec_error(f"'{value}' is a local component file; send the component inline (the mlyard CLI and "
                         "SDK do this) or reference a registered one as azureml:<name>:<version>")
    path = Path(resolve_local_path(value, ctx.base_path))
    if not path.is_file():
        raise spec_error(f"component file '{path}' does not exist (relative paths start from the YAML file's "
                         "folder)")
    return ctx.load_nested(path, kind)
