"""Command jobs (reference §2) and the fields every job has (§1.1)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from mlyard.specs.base import Documented, Label, Name, Text
from mlyard.specs.commands import CommandLimits, CommandSettings, check_command
from mlyard.specs.io import JobInputs, JobOutputs, check_io_names


class JobFields(Documented):
    """Metadata and placement shared by command, pipeline and sweep jobs."""

    name: Name | None = None
    display_name: Label | None = None
    experiment_name: Name | None = None
    compute: Text | None = None
    inputs: JobInputs = Field(default_factory=dict)
    outputs: JobOutputs = Field(default_factory=dict)
    identity: dict[str, Any] | None = None
    services: dict[str, Any] | None = None
    queue_settings: dict[str, Any] | None = None


class CommandJob(JobFields, CommandSettings):
    """``type: command`` (the default when ``command`` is present)."""

    type: Literal["command"] = "command"
    limits: CommandLimits | None = None

    @model_validator(mode="after")
    def _bindings(self) -> CommandJob:
        check_io_names(self.inputs, self.outputs)
        check_command(self.command, self.inputs, self.outputs)
        return self
