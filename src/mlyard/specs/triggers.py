"""Triggers: a rule that creates a job when an event of the log matches (mlyard's own kind).

Azure ML reacts to events through Event Grid and has no YAML for it; a trigger file is shaped like
Azure's schedule YAML, with ``event`` where a schedule has ``trigger``::

    $schema: https://mlyard.dev/schemas/trigger.schema.json
    name: retrain-on-drift
    event: {type: monitor.signal_alerted, subject: attrition-monitor, filter: {signal: data-drift}}
    cool_down: PT6H
    create_job: ./pipeline.yml
    inputs:
      model_version: ${{event.payload.version}}

``create_job`` is read as a schedule's is (a local file loaded inline, ``azureml:<job>``, or the
object form with overrides). ``inputs`` bind the job's inputs to fields of the event:
``${{event.id}}``, ``${{event.type}}``, ``${{event.subject}}``, ``${{event.actor}}``, ``${{event.at}}``
and ``${{event.payload.<field>[.<field>...]}}``.
"""

from __future__ import annotations

import difflib
import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from mlyard.core.event_types import EVENT_TYPES, event_entities
from mlyard.specs.base import Documented, Label, Name, SpecModel, Text, show, spec_error
from mlyard.specs.schedules import _create_job

EVENT_FIELDS = ("id", "type", "subject", "actor", "at")
"""Top-level fields of an event an expression may name (besides ``payload.<field>``)."""

EXPRESSION = re.compile(r"\$\{\{\s*(?P<path>[^}]*?)\s*\}\}")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,199}$")


def _one_or_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def event_type_problem(value: str) -> str | None:
    """Why ``value`` is not an event type or an entity's prefix (``model.*``), or None when it is one."""
    entities = event_entities()
    if value.endswith(".*"):
        if value[:-2] in entities:
            return None
        return f"{show(value)} names no entity of the event log; prefixes are {', '.join(e + '.*' for e in entities)}"
    if value in EVENT_TYPES:
        return None
    close = difflib.get_close_matches(value, list(EVENT_TYPES), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return (f"unknown event type {show(value)}{hint}; expected one of {', '.join(EVENT_TYPES)}, or an entity's "
            "prefix such as model.*")


class EventRule(SpecModel):
    """Which events start the job: their type(s), optionally a subject and payload fields."""

    type: Annotated[list[Text], BeforeValidator(_one_or_list), Field(min_length=1)]
    subject: Name | None = None
    filter: dict[str, Any] = Field(default_factory=dict)

    @field_validator("type")
    @classmethod
    def _known_types(cls, value: list[str]) -> list[str]:
        for i, item in enumerate(value):
            problem = event_type_problem(item)
            if problem is not None:
                raise spec_error(problem, i)  # a single string: the loader points at the key's line
        return value

    @field_validator("filter")
    @classmethod
    def _scalar_filter(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            if isinstance(item, dict | list):
                raise spec_error(f"filter values are compared with the event's payload field; expected a string, "
                                 f"number or boolean, got {show(item)}", key)
        return value


def _cool_down(value: Any) -> Any:
    if isinstance(value, bool):
        raise spec_error(f"expected an ISO-8601 duration such as PT6H or P1D; got {show(value)}")
    if isinstance(value, str) and not value.strip().upper().startswith("P"):
        raise spec_error(f"expected an ISO-8601 duration such as PT6H or P1D; got {show(value)}")
    return value


def expressions(value: Any) -> list[str]:
    """The paths of every ``${{...}}`` expression in ``value`` (strings in mappings and lists too)."""
    if isinstance(value, str):
        return [m["path"] for m in EXPRESSION.finditer(value)]
    if isinstance(value, dict):
        return [p for v in value.values() for p in expressions(v)]
    if isinstance(value, list):
        return [p for v in value for p in expressions(v)]
    return []


def unclosed_expression(value: Any) -> str | None:
    """A string in ``value`` with a ``${{`` that does not close, or None."""
    if isinstance(value, str):
        return value if "${{" in EXPRESSION.sub("", value) else None
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    return next((found for v in items if (found := unclosed_expression(v)) is not None), None)


def expression_problem(path: str) -> str | None:
    """Why ``path`` (the inside of ``${{...}}``) is not an event field, or None when it is one."""
    parts = path.split(".")
    if parts[0] != "event":
        return (f"${{{{{path}}}}} is not an event field; a trigger's inputs take ${{{{event.<field>}}}} "
                f"({', '.join(EVENT_FIELDS)}, payload.<field>)")
    if len(parts) == 2 and parts[1] in EVENT_FIELDS:
        return None
    if len(parts) >= 3 and parts[1] == "payload" and all(parts[2:]):
        return None
    return (f"${{{{{path}}}}} names no field of an event; use event.{', event.'.join(EVENT_FIELDS)} "
            "or event.payload.<field>")


class EventTrigger(Documented):
    """A trigger: when an event matches ``event``, create the job of ``create_job``."""

    name: Name
    display_name: Label | None = None
    event: EventRule
    cool_down: Annotated[timedelta, BeforeValidator(_cool_down)] = timedelta(0)
    create_job: Annotated[Any, BeforeValidator(_create_job)]
    inputs: dict[str, Any] = Field(default_factory=dict)
    is_enabled: bool = True

    @field_validator("name")
    @classmethod
    def _job_name_safe(cls, value: str) -> str:
        if not NAME_PATTERN.match(value):
            raise spec_error(f"{show(value)} is not a valid trigger name: use letters, digits, '_' and '-', "
                             "starting with a letter or digit (at most 200 characters); its jobs are named "
                             "<trigger>-<event id>")
        return value

    @field_validator("cool_down")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise spec_error(f"a cool-down cannot be negative; got {value}")
        return value

    @field_validator("inputs")
    @classmethod
    def _event_expressions(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, item in value.items():
            unclosed = unclosed_expression(item)
            if unclosed is not None:
                raise spec_error(f"{show(unclosed)} opens an expression with ${{{{ and does not close it with }}}}",
                                 key)
            for path in expressions(item):
                problem = expression_problem(path)
                if problem is not None:
                    raise spec_error(problem, key)
        return value

    @model_validator(mode="after")
    def _job(self) -> EventTrigger:
        job = self.create_job
        if job is None:
            raise spec_error("required field 'create_job' is missing: a job file, azureml:<job> or "
                             "{job: ./file.yml, ...}", "create_job")
        if isinstance(job, str) and not job.startswith("azureml:"):
            raise spec_error(f"create_job {show(job)} is neither a job file nor azureml:<job name>", "create_job")
        if isinstance(job, dict) and "job" in job and not isinstance(job["job"], str):
            raise spec_error("create_job's object form needs job: a job file or azureml:<job name>", "create_job",
                             "job")
        # a loaded job file, or a job sent inline (a mapping without job:, checked as a job by the server)
        declared = job.get("inputs") if isinstance(job, dict) and "job" not in job else getattr(job, "inputs", None)
        if isinstance(declared, dict):
            for key in self.inputs:
                if key not in declared:
                    have = ", ".join(sorted(declared)) or "none"
                    raise spec_error(f"the job declares no input {key!r} (its inputs: {have}); add it to the job's "
                                     "inputs or remove it here", "inputs", key)
        return self
