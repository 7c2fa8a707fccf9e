"""What a trigger does with one event, without a store: match it, bind the job's inputs, name the job.

Pure functions over a stored trigger spec (``specs/triggers.py``, dumped as JSON with the job inline)
and an :class:`EventView`, so the rules are tested without a server.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from pydantic import TypeAdapter

from mlyard.core.errors import InvalidRequestError
from mlyard.specs.triggers import EXPRESSION

_DURATION = TypeAdapter(timedelta)
SUBJECT_SEPARATORS = ":@/"
"""A rule's subject matches itself and what lies below it: ``model:3``, ``model@prod``, ``endpoint/blue``."""


@dataclass(frozen=True)
class EventView:
    """One event of the log, read out of its session."""

    id: int
    at: int
    type: str
    subject: str
    actor: str
    payload: dict[str, Any]

    def fields(self) -> dict[str, Any]:
        """What ``${{event.<field>}}`` expressions can name."""
        return {"id": self.id, "at": self.at, "type": self.type, "subject": self.subject, "actor": self.actor,
                "payload": self.payload}


class BindingError(InvalidRequestError):
    """An input names an event field the event does not have."""


def job_name(trigger: str, event_id: int) -> str:
    """The job a trigger starts for an event: ``<trigger>-<event id>``, one name per event, so never two jobs."""
    return f"{trigger}-{event_id}"


def cool_down_ms(spec: dict[str, Any]) -> int:
    value = spec.get("cool_down") or 0
    return int(_DURATION.validate_python(value).total_seconds() * 1000)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _lookup(data: Any, parts: list[str]) -> tuple[bool, Any]:
    for part in parts:
        if not isinstance(data, dict) or part not in data:
            return False, None
        data = data[part]
    return True, data


def subject_matches(rule: str | None, subject: str) -> bool:
    if not rule:
        return True
    return subject == rule or any(subject.startswith(rule + sep) for sep in SUBJECT_SEPARATORS)


def type_matches(types: list[str], event_type: str) -> bool:
    return any(t == event_type or (t.endswith(".*") and event_type.startswith(t[:-1])) for t in types)


def matches(spec: dict[str, Any], event: EventView) -> bool:
    """Whether ``event`` is one the trigger's ``event`` rule asks for.

    Filter values are compared as text (``version: 3`` matches a payload's ``"3"``); a dotted key
    (``a.b``) reads a nested payload field; a missing field never matches.
    """
    rule = spec.get("event") or {}
    if not type_matches(list(rule.get("type") or []), event.type):
        return False
    if not subject_matches(rule.get("subject"), event.subject):
        return False
    for key, want in (rule.get("filter") or {}).items():
        found, have = _lookup(event.payload, str(key).split("."))
        if not found or isinstance(have, dict | list) or _text(have) != _text(want):
            return False
    return True


def caused_by(trigger: str, event: EventView) -> bool:
    """Whether ``event`` comes from this trigger itself (its ``trigger.fired``, or its own jobs' and steps'
    status changes): never matched, so a trigger on ``job.*`` cannot start itself over and over."""
    if event.type == "trigger.fired":
        return event.subject == trigger
    own = re.compile(rf"^{re.escape(trigger)}-\d+(_.*)?$")
    parent = event.payload.get("parent") if event.type.startswith(("job.", "run.")) else None
    return event.type.startswith(("job.", "run.")) and (
        bool(own.match(event.subject)) or (isinstance(parent, str) and bool(own.match(parent))))


def _resolve(path: str, event: EventView) -> Any:
    parts = path.split(".")
    found, value = _lookup({"event": event.fields()}, parts)
    if not found:
        keys = ", ".join(sorted(event.payload)) or "none"
        raise BindingError(f"event {event.id} ({event.type} {event.subject}) has no field {path} "
                           f"(its payload fields: {keys})")
    return value


def bind(value: Any, event: EventView) -> Any:
    """``value`` with its ``${{event...}}`` expressions replaced; a string that is one expression takes the
    field's value as it is (a number stays a number), an expression inside text becomes text."""
    if isinstance(value, str):
        whole = EXPRESSION.fullmatch(value.strip())
        if whole is not None:
            return _resolve(whole["path"], event)
        return EXPRESSION.sub(lambda m: _text(_resolve(m["path"], event)), value)
    if isinstance(value, dict):
        return {k: bind(v, event) for k, v in value.items()}
    if isinstance(value, list):
        return [bind(v, event) for v in value]
    return value


def triggered_job(spec: dict[str, Any], trigger: str, event: EventView) -> dict[str, Any]:
    """The job spec to submit for ``event``: the stored job, its inputs bound from the event, and tags that
    name the cause (``mlyard.trigger``, ``mlyard.event``, ``mlyard.eventType``, ``mlyard.eventSubject``)."""
    job: dict[str, Any] = copy.deepcopy(spec["create_job"])
    inputs = job.get("inputs") or {}
    for key, raw in (spec.get("inputs") or {}).items():
        value = bind(raw, event)
        current = inputs.get(key)
        if isinstance(current, dict) and "path" in current and not isinstance(value, dict):
            inputs[key] = {**current, "path": value}  # a data input: the event names its path
        else:
            inputs[key] = value
    if inputs:
        job["inputs"] = inputs
    job["tags"] = {**(job.get("tags") or {}), "mlyard.trigger": trigger, "mlyard.event": str(event.id),
                   "mlyard.eventType": event.type, "mlyard.eventSubject": event.subject}
    return job


def cause_note(trigger: str, event: EventView) -> str:
    """The note a triggered job carries (``mlyard job show`` prints it)."""
    return f"started by trigger {trigger} for event {event.id} ({event.type} {event.subject})"
