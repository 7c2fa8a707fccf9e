"""Parallel steps of pipeline jobs (Azure's parallel job: ``type: parallel`` under ``jobs``).

A parallel step splits one input (``input_data``) into mini-batches of files and runs the entry script's
``init()`` once per worker and ``run(mini_batch)`` per mini-batch, the contract of batch deployments (§7.3).
Defaults are Azure's parallel-job defaults, which differ from batch deployments': ``mini_batch_size`` 1,
``retry_settings`` 2 retries of 60 s, ``max_concurrency_per_instance`` the machine's cores.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from mlyard.specs.base import Label, Name, SpecModel, StrMap, Text, show, spec_error
from mlyard.specs.commands import EnvironmentField, Resources
from mlyard.specs.io import DataInput, JobInputs, JobOutputs
from mlyard.specs.paths import LocalPath, check_exists

_INPUT = re.compile(r"^\$\{\{\s*inputs\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}$")
_OUTPUT = re.compile(r"^\$\{\{\s*outputs\.([A-Za-z_][A-Za-z0-9_-]*)\s*\}\}$")
_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*[kmgt]?b\s*$", re.IGNORECASE)


class ParallelRetrySettings(SpecModel):
    max_retries: int = Field(default=2, ge=0)
    timeout: int = Field(default=60, ge=1, le=259200)


class ParallelTask(SpecModel):
    """``task:`` of a parallel step; ``run_function`` is the only type Azure has."""

    type: Literal["run_function"] = "run_function"
    code: LocalPath | None = None
    entry_script: Text
    environment: EnvironmentField  # type: ignore[valid-type]
    program_arguments: Text | None = None
    append_row_to: Text | None = None
    environment_variables: StrMap = Field(default_factory=dict)

    @model_validator(mode="after")
    def _code_exists(self, info: ValidationInfo) -> ParallelTask:
        check_exists(self.code, info, what="code", expect="dir", subpath=("code",))
        return self


class ParallelStep(SpecModel):
    """``type: parallel``: the entry script over one input's files, in mini-batches, on parallel workers."""

    type: Literal["parallel"]
    name: Name | None = None
    display_name: Label | None = None
    description: Text | None = None
    tags: dict[str, Any] | None = None
    compute: Text | None = None
    inputs: JobInputs = Field(default_factory=dict)
    outputs: JobOutputs = Field(default_factory=dict)
    input_data: Text
    mini_batch_size: int | str = 1
    mini_batch_error_threshold: int = Field(default=-1, ge=-1)
    logging_level: Literal["INFO", "WARNING", "DEBUG"] = "INFO"
    resources: Resources | None = None
    max_concurrency_per_instance: int | None = Field(default=None, ge=1)
    retry_settings: ParallelRetrySettings = Field(default_factory=ParallelRetrySettings)
    environment_variables: StrMap = Field(default_factory=dict)
    task: ParallelTask

    @field_validator("logging_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("mini_batch_size", mode="before")
    @classmethod
    def _count(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value.strip())
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise spec_error(f"mini_batch_size is {value}; it counts files per mini-batch, at least 1")
            return value
        if isinstance(value, str) and _SIZE.match(value):
            raise spec_error(f"mini_batch_size {value!r} splits tabular (MLTable) input by size, which mlyard does "
                             "not run yet; give a file count (mini_batch_size: 10) and a uri_folder input")
        raise spec_error(f"mini_batch_size must be a file count such as 10; got {show(value)}")

    @model_validator(mode="after")
    def _bindings(self) -> ParallelStep:
        found = _INPUT.match(self.input_data)
        if found is None or found.group(1) not in self.inputs:
            raise spec_error(f"input_data must name one of the step's inputs as ${{{{inputs.<name>}}}} (inputs: "
                             f"{', '.join(sorted(self.inputs)) or 'none'}); got {self.input_data!r}", "input_data")
        data = self.inputs[found.group(1)]
        if isinstance(data, DataInput) and data.type == "mltable":
            raise spec_error(f"input {found.group(1)!r} is an mltable: mlyard's parallel steps split uri_folder and "
                             "uri_file inputs by file count, not tabular data by size; give the folder of files as "
                             "type: uri_folder", "inputs", found.group(1), "type")
        if self.task.append_row_to is not None:
            out = _OUTPUT.match(self.task.append_row_to)
            if out is None or out.group(1) not in self.outputs:
                raise spec_error(f"append_row_to must name one of the step's outputs as ${{{{outputs.<name>}}}} "
                                 f"(outputs: {', '.join(sorted(self.outputs)) or 'none'}); got "
                                 f"{self.task.append_row_to!r}", "task", "append_row_to")
        return self

    def declared_outputs(self) -> set[str]:
        return set(self.outputs)

    def data_input(self) -> str:
        """The name of the input split into mini-batches."""
        found = _INPUT.match(self.input_data)
        assert found is not None
        return found.group(1)
