"""MLflow's webhook events read from mlyard's event log: their names, payloads and examples.

mlyard's log names what happened in its own words (``model.version_created``, subject ``name:3``);
a webhook made through MLflow's API subscribes to MLflow's names (``model_version.created``) and
receives MLflow's payloads (``mlflow/webhooks/types.py``). :func:`translate` turns one logged event
into the MLflow events it stands for (none, one, or one per tag when several tags changed at once).

Most payload fields come from the event itself. What an event lacks (a model's tags, or the value of
a tag that an older event only names) is read from the registry when the event is translated, so it
is the value at that moment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

# MLflow's entities and the actions valid for each (mlflow/entities/webhook.py, VALID_ENTITY_ACTIONS)
ENTITY_ACTIONS: dict[str, tuple[str, ...]] = {
    "registered_model": ("created",),
    "model_version": ("created",),
    "model_version_tag": ("set", "deleted"),
    "model_version_alias": ("created", "deleted"),
    "prompt": ("created",),
    "prompt_version": ("created",),
    "prompt_tag": ("set", "deleted"),
    "prompt_version_tag": ("set", "deleted"),
    "prompt_alias": ("created", "deleted"),
    "budget_policy": ("exceeded",),
}
MLFLOW_EVENTS = tuple(f"{entity}.{action}" for entity, actions in ENTITY_ACTIONS.items() for action in actions)
# What mlyard emits; prompts and budget policies are accepted (MLflow's client may subscribe) but never fire.
EMITTED = ("registered_model.created", "model_version.created", "model_version_tag.set", "model_version_tag.deleted",
           "model_version_alias.created", "model_version_alias.deleted")
# mlyard's event types that become MLflow events
SOURCES = ("model.created", "model.version_created", "model.version_updated", "model.alias_moved")

_MODEL = {"name": "example_model", "tags": {"example_key": "example_value"}}
_PROMPT = {"name": "example_prompt", "tags": {"example_key": "example_value"}}
# MLflow's example payload of each event (``<Payload>.example()``): what test_webhook sends
EXAMPLES: dict[str, dict[str, Any]] = {
    "registered_model.created": {**_MODEL, "description": "An example registered model"},
    "model_version.created": {"name": "example_model", "version": "1", "source": "models:/123",
                              "run_id": "abcd1234abcd5678", "tags": {"example_key": "example_value"},
                              "description": "An example model version"},
    "model_version_tag.set": {"name": "example_model", "version": "1", "key": "example_key",
                              "value": "example_value"},
    "model_version_tag.deleted": {"name": "example_model", "version": "1", "key": "example_key"},
    "model_version_alias.created": {"name": "example_model", "alias": "example_alias", "version": "1"},
    "model_version_alias.deleted": {"name": "example_model", "alias": "example_alias"},
    "prompt.created": {**_PROMPT, "description": "An example prompt"},
    "prompt_version.created": {"name": "example_prompt", "version": "1", "template": "Hello {{name}}!",
                               "tags": {"example_key": "example_value"}, "description": "An example prompt version"},
    "prompt_tag.set": {"name": "example_prompt", "key": "example_key", "value": "example_value"},
    "prompt_tag.deleted": {"name": "example_prompt", "key": "example_key"},
    "prompt_version_tag.set": {"name": "example_prompt", "version": "1", "key": "example_key",
                               "value": "example_value"},
    "prompt_version_tag.deleted": {"name": "example_prompt", "version": "1", "key": "example_key"},
    "prompt_alias.created": {"name": "example_prompt", "alias": "example_alias", "version": "1"},
    "prompt_alias.deleted": {"name": "example_prompt", "alias": "example_alias"},
    "budget_policy.exceeded": {"budget_policy_id": "bp-abc123", "budget_unit": "USD", "budget_amount": 100.0,
                               "current_spend": 105.50, "duration_unit": "MONTHS", "duration_value": 1,
                               "target_scope": "WORKSPACE", "workspace": "default", "window_start": 1704067200000},
}


class RegistryLookup(Protocol):
    """What translation may read from the registry (None when the model or version is gone)."""

    def model(self, name: str) -> tuple[dict[str, str], str | None] | None: ...

    def version(self, name: str, version: str) -> tuple[dict[str, str], str | None] | None: ...


class EventLike(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def payload(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class MlflowEvent:
    name: str  # entity.action
    data: dict[str, Any]

    @property
    def entity(self) -> str:
        return self.name.partition(".")[0]

    @property
    def action(self) -> str:
        return self.name.partition(".")[2]


def _version_subject(subject: str) -> tuple[str, str]:
    name, _, version = subject.rpartition(":")
    return name, version


def translate(event: EventLike, registry: RegistryLookup) -> list[MlflowEvent]:
    """The MLflow events ``event`` stands for, in order (an empty list for events MLflow has no name for)."""
    p = event.payload or {}
    if event.type == "model.created":
        name = event.subject
        tags, description = (p.get("tags") or {}, p.get("description")) if "tags" in p \
            else (registry.model(name) or ({}, None))
        return [MlflowEvent("registered_model.created", {"name": name, "tags": tags, "description": description})]
    if event.type == "model.version_created":
        name, version = _version_subject(event.subject)
        tags, description = (p.get("tags") or {}, p.get("description")) if "tags" in p \
            else (registry.version(name, version) or ({}, None))
        source = p.get("source") or p.get("path")  # MLflow's client gives a source; 'mlyard model create' a path
        return [MlflowEvent("model_version.created", {"name": name, "version": version, "source": source,
                                                      "run_id": p.get("run_id"), "tags": tags,
                                                      "description": description})]
    if event.type == "model.version_updated":
        return _tag_events(event.subject, p, registry)
    if event.type == "model.alias_moved":
        alias = str(p.get("alias") or event.subject.rpartition("@")[2])
        name = event.subject[:-(len(alias) + 1)] if event.subject.endswith("@" + alias) else event.subject
        if p.get("version") is None:
            return [MlflowEvent("model_version_alias.deleted", {"name": name, "alias": alias})]
        return [MlflowEvent("model_version_alias.created", {"name": name, "alias": alias,
                                                            "version": str(p["version"])})]
    return []


def _tag_events(subject: str, p: dict[str, Any], registry: RegistryLookup) -> list[MlflowEvent]:
    """``model_version_tag.set``/``deleted`` for each tag a ``model.version_updated`` event changed."""
    name, version = _version_subject(subject)
    tags = p.get("tags")
    given: dict[str, Any] = tags if isinstance(tags, dict) else {}  # key -> value (None: removed)
    if isinstance(p.get("key"), str):  # one tag set or removed (MLflow's set-tag and delete-tag)
        given = {**given, p["key"]: p.get("value")}
    keys = {f[len("tags."):] for f in p.get("fields") or [] if isinstance(f, str) and f.startswith("tags.")}
    keys |= set(given)
    current: dict[str, str] | None = None
    out = []
    for key in sorted(keys):
        if key in given:
            value = given[key]
        else:
            if current is None:
                current = (registry.version(name, version) or ({}, None))[0]
            value = current.get(key)
        if value is None:
            out.append(MlflowEvent("model_version_tag.deleted", {"name": name, "version": version, "key": key}))
        else:
            out.append(MlflowEvent("model_version_tag.set", {"name": name, "version": version, "key": key,
                                                             "value": str(value)}))
    return out
