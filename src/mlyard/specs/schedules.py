"""Schedules (reference §8.1): cron and recurrence triggers around a job or a monitor.

Both spellings of the conflicting keys are accepted (``time_zone``/``timezone``,
``schedule``/``pattern``); the SDK's names are kept. A ``create_job`` that names a local job file
is loaded and carried inline, with the object form's keys overriding the file's.

Cron expressions follow Azure's NCrontab rules: five fields (``MINUTE HOUR DAY MONTH WEEKDAY``; a
sixth, seconds field is refused), the day-of-month and month fields are treated as ``*`` (with a
warning when they say something else), and the weekday is 0-6 with 0 = Sunday, or a name.
``time_zone`` takes Windows zone names (mapped to IANA, ``specs/timezones.py``) or IANA names.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from croniter import croniter  # type: ignore[import-untyped]
from pydantic import AliasChoices, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from mlyard.core.errors import InvalidSpecError, SpecIssue
from mlyard.specs.base import Documented, Label, Name, SpecModel, Text, load_context, show, spec_error, typed_union
from mlyard.specs.components import is_file_reference
from mlyard.specs.monitors import MonitorDefinition
from mlyard.specs.paths import resolve_local_path
from mlyard.specs.source import read_yaml_file
from mlyard.specs.timezones import UnknownTimeZoneError, iana_name

WEEK_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _iso_time(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value.strip())
        except ValueError:
            raise spec_error(f"expected an ISO-8601 time such as 2024-01-01T10:00:00; got {show(value)}") from None
        return value.strip()
    return value


IsoTime = Annotated[str, BeforeValidator(_iso_time)]


class TriggerBase(SpecModel):
    start_time: IsoTime | None = None
    end_time: IsoTime | None = None
    time_zone: Text = Field(default="UTC", validation_alias=AliasChoices("time_zone", "timezone"))

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            iana_name(value)
        except UnknownTimeZoneError as exc:
            raise spec_error(str(exc)) from None
        return value.strip()

    @model_validator(mode="after")
    def _ordered(self) -> TriggerBase:
        if self.start_time and self.end_time:
            start, end = datetime.fromisoformat(self.start_time), datetime.fromisoformat(self.end_time)
            if (start.tzinfo is None) == (end.tzinfo is None) and end <= start:
                raise spec_error("end_time must be after start_time", "end_time")
        return self


CRON_FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")
_CRON_PLACES = ("{} * * * *", "* {} * * *", "* * {} * *", "* * * {} *", "* * * * {}")


def _weekday_numbers(field: str) -> list[int]:
    """The numbers of a weekday field, leaving out step sizes (``*/2``)."""
    return [int(n) for part in field.split(",") for n in re.findall(r"\d+", part.split("/")[0])]


def check_cron(value: str, warnings: list[str] | None = None, where: str = "trigger.expression") -> str:
    """Check a cron expression against Azure's NCrontab rules; returns it with single spaces.

    Raises:
        PydanticCustomError: (``spec_error``) naming the field of the expression that is wrong.
    """
    fields = value.split()
    if len(fields) != 5:
        extra = " (NCrontab has no seconds or years field)" if len(fields) > 5 else ""
        raise spec_error(f"{show(value)} has {len(fields)} field{'s' if len(fields) != 1 else ''}; a cron expression "
                         f"has 5: MINUTE HOUR DAY MONTH WEEKDAY{extra}, for example '0 3 * * *'")
    for i, (field, place) in enumerate(zip(fields, _CRON_PLACES, strict=True)):
        if not croniter.is_valid(place.format(field)):
            raise spec_error(f"the {CRON_FIELDS[i]} field {field!r} of cron expression {show(value)} is not valid "
                             "(numbers, ranges a-b, lists a,b, steps */n or *)")
    if any(n > 6 for n in _weekday_numbers(fields[4])):
        raise spec_error(f"the day-of-week field {fields[4]!r} of cron expression {show(value)} is out of range: "
                         "days are 0-6 with 0 = Sunday (or names: sun, mon, ... sat)")
    if not croniter.is_valid(value):
        raise spec_error(f"{show(value)} is not a valid cron expression (MINUTE HOUR DAY MONTH WEEKDAY)")
    ignored = [f"{CRON_FIELDS[i]} {fields[i]!r}" for i in (2, 3) if fields[i] != "*"]
    if ignored and warnings is not None:
        verb = "are" if len(ignored) > 1 else "is"
        warnings.append(f"{where}: the {' and '.join(ignored)} of cron expression {value!r} {verb} treated as '*' "
                        "(Azure's NCrontab schedules ignore day-of-month and month); use a recurrence trigger "
                        "with month_days, or the weekday field")
    return " ".join(fields)


class CronTrigger(TriggerBase):
    type: Literal["cron"]
    expression: Text

    @field_validator("expression")
    @classmethod
    def _ncrontab(cls, value: str, info: ValidationInfo) -> str:
        ctx = load_context(info)
        return check_cron(value, ctx.warnings, f"{ctx.source}: trigger.expression")


def _int_list(value: Any) -> Any:
    return [value] if isinstance(value, int) and not isinstance(value, bool) else value


class RecurrencePattern(SpecModel):
    hours: Annotated[list[Annotated[int, Field(ge=0, le=23)]], BeforeValidator(_int_list)]
    minutes: Annotated[list[Annotated[int, Field(ge=0, le=59)]], BeforeValidator(_int_list)]
    week_days: list[Annotated[Literal[WEEK_DAYS], BeforeValidator(lambda v: v.lower() if isinstance(v, str)  # type: ignore[valid-type]
                                                                  else v)]] | None = None
    month_days: Annotated[list[Annotated[int, Field(ge=1, le=31)]], BeforeValidator(_int_list)] | None = None


class RecurrenceTrigger(TriggerBase):
    type: Literal["recurrence"]
    frequency: Annotated[Literal["minute", "hour", "day", "week", "month"],
                         BeforeValidator(lambda v: v.lower() if isinstance(v, str) else v)]
    interval: int = Field(default=1, ge=1)
    schedule: RecurrencePattern | None = Field(default=None, validation_alias=AliasChoices("schedule", "pattern"))


Trigger = typed_union({"cron": CronTrigger, "recurrence": RecurrenceTrigger}, what="trigger")


def _create_job(value: Any, info: ValidationInfo) -> Any:
    """Load a local job file (string or ``job:`` of the object form), applying the object's overrides."""
    ctx = load_context(info)
    job_ref = value if isinstance(value, str) else value.get("job") if isinstance(value, dict) else None
    if not isinstance(job_ref, str) or job_ref.startswith("azureml:") or not is_file_reference(job_ref):
        return value
    if ctx.base_path is None:
        raise spec_error(f"'{job_ref}' is a local job file; send the job inline (the mlyard CLI does this)")
    path = Path(resolve_local_path(job_ref, ctx.base_path))
    if not path.is_file():
        where = () if isinstance(value, str) else ("job",)
        raise spec_error(f"job file '{path}' does not exist (relative paths start from the YAML file's folder)",
                         *where)
    overrides = {k: v for k, v in value.items() if k != "job"} if isinstance(value, dict) else {}
    return ctx.load_nested(path, "job", overrides, at=("create_job",))


def _import_data(value: Any, info: ValidationInfo) -> Any:
    """A data-import schedule's ``import_data: ./import.yml`` is read and carried inline, as a mapping."""
    if not isinstance(value, str) or not is_file_reference(value):
        return value
    ctx = load_context(info)
    if ctx.base_path is None:
        raise spec_error(f"'{value}' is a local data import file; send its content inline (the mlyard CLI does this)")
    path = Path(resolve_local_path(value, ctx.base_path))
    if not path.is_file():
        raise spec_error(f"data import file '{path}' does not exist (relative paths start from the YAML file's folder)")
    content, positions = read_yaml_file(path)
    if not isinstance(content, dict):
        message = f"expected a mapping of data import fields; got {show(content)}"
        raise InvalidSpecError(issues=[SpecIssue(message=message, file=str(path), line=positions.line_of(()) or 1)])
    return content


class Schedule(Documented):
    """A schedule that creates a job (``create_job``) or runs a monitor (``create_monitor``)."""

    name: Name
    display_name: Label | None = None
    trigger: Trigger  # type: ignore[valid-type]
    create_job: Annotated[Any, BeforeValidator(_create_job)] = None
    create_monitor: MonitorDefinition | None = None
    import_data: Annotated[dict[str, Any] | None, BeforeValidator(_import_data)] = None
    is_enabled: bool = True

    @model_validator(mode="after")
    def _one_action(self) -> Schedule:
        given = [k for k in ("create_job", "create_monitor", "import_data") if getattr(self, k) is not None]
        if len(given) != 1:
            raise spec_error("a schedule needs exactly one of create_job (a job file or azureml:<job>), "
                             "create_monitor and import_data" + (f"; got {', '.join(given)}" if given else ""),
                             given[1] if len(given) > 1 else "create_job")
        if isinstance(self.create_job, str) and not self.create_job.startswith("azureml:"):
            raise spec_error(f"create_job {show(self.create_job)} is neither a job file nor azureml:<job name>",
                             "create_job")
        return self
