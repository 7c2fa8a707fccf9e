"""Trigger files and rules without a store: what a trigger file may say, which events match, how inputs bind."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlyard.automation.trigger_rules import (
    BindingError,
    EventView,
    caused_by,
    cool_down_ms,
    matches,
    triggered_job,
)
from mlyard.core.errors import InvalidSpecError
from mlyard.specs import load_spec

JOB = """\
command: echo ${{inputs.model_version}} ${{inputs.data}}
inputs:
  model_version: "0"
  data: {type: uri_file, path: azureml:employee-attrition:1}
environment: azureml:env@latest
"""

TRIGGER = """\
$schema: https://mlyard.dev/schemas/trigger.schema.json
name: eval-on-new-version
event:
  type: model.version_created
  subject: attrition-model
cool_down: PT6H
create_job: ./job.yml
inputs:
  model_version: ${{event.payload.version}}
"""


def _files(tmp_path: Path, trigger: str = TRIGGER) -> Path:
    (tmp_path / "job.yml").write_text(JOB)
    path = tmp_path / "trigger.yml"
    path.write_text(trigger)
    return path


def _refused(path: Path) -> InvalidSpecError:
    with pytest.raises(InvalidSpecError) as caught:
        load_spec(path, "trigger")
    return caught.value


def _event(type_: str = "model.version_created", subject: str = "attrition-model:3", **payload: object) -> EventView:
    return EventView(id=7, at=1_000, type=type_, subject=subject, actor="alice", payload=dict(payload))


# -- the file -------------------------------------------------------------------------------------------


def test_a_trigger_file_loads_with_its_job_inline(tmp_path: Path) -> None:
    loaded = load_spec(_files(tmp_path))  # no --kind: the $schema says trigger
    data = loaded.to_dict()
    assert loaded.kind == "trigger" and loaded.warnings == []
    assert data["event"]["type"] == ["model.version_created"] and data["cool_down"] == "PT6H"
    assert data["create_job"]["command"].startswith("echo") and data["create_job"]["type"] == "command"


def test_a_file_without_schema_is_told_apart_by_its_event_and_create_job(tmp_path: Path) -> None:
    path = _files(tmp_path, TRIGGER.split("\n", 1)[1])
    assert load_spec(path).kind == "trigger"


@pytest.mark.parametrize(("change", "line", "field", "words"), [
    (("model.version_created", "model.versoin_created"), 4, "event.type", ("unknown event type",
                                                                          "model.version_created")),
    (("model.version_created", "[model.version_created, modle.*]"), 4, "event.type[1]", ("no entity", "model.*")),
    (("./job.yml", "./missing.yml"), 7, "create_job", ("does not exist", "missing.yml")),
    (("PT6H", "six hours"), 6, "cool_down", ("ISO-8601 duration",)),
    (("PT6H", "P1Q"), 6, "cool_down", ("duration",)),
    (("event.payload.version", "event.version"), 9, "inputs.model_version", ("names no field", "event.payload")),
    (("event.payload.version", "inputs.version"), 9, "inputs.model_version", ("not an event field",)),
    (("${{event.payload.version}}", "v${{event.payload.version"), 9, "inputs.model_version", ("does not close",)),
    (("PT6H", "true"), 6, "cool_down", ("ISO-8601 duration",)),
    (("  model_version:", "  model_versoin:"), 9, "inputs.model_versoin", ("declares no input", "model_version")),
    (("name: eval-on-new-version", "name: eval on new version"), 2, "name", ("not a valid trigger name",)),
])
def test_mistakes_name_the_file_line_and_field(tmp_path: Path, change: tuple[str, str], line: int, field: str,
                                               words: tuple[str, ...]) -> None:
    err = _refused(_files(tmp_path, TRIGGER.replace(*change)))
    issue = err.issues[0]
    assert (Path(issue.file or "").name, issue.line, issue.field) == ("trigger.yml", line, field), str(err)
    for word in words:
        assert word in issue.message, issue.message


def test_a_schedule_file_is_not_a_trigger(tmp_path: Path) -> None:
    (tmp_path / "job.yml").write_text(JOB)
    path = tmp_path / "schedule.yml"
    path.write_text("name: nightly\ntrigger: {type: cron, expression: '0 2 * * *'}\ncreate_job: ./job.yml\n")
    err = _refused(path)
    assert "schedule" in str(err)


# -- matching -------------------------------------------------------------------------------------------


def _spec(**event: object) -> dict[str, object]:
    return {"event": {"type": ["model.version_created"], **event}}


def test_types_match_exactly_or_by_entity_prefix() -> None:
    assert matches(_spec(), _event())
    assert not matches(_spec(), _event("model.version_deleted"))
    assert matches({"event": {"type": ["model.*"]}}, _event("model.alias_moved", "attrition-model@prod"))
    assert not matches({"event": {"type": ["model.*"]}}, _event("monitor.signal_alerted", "m/s"))


def test_a_subject_matches_itself_and_what_lies_below_it() -> None:
    rule = _spec(subject="attrition-model")
    assert matches(rule, _event(subject="attrition-model:3"))
    assert matches(rule, _event(subject="attrition-model"))
    assert not matches(rule, _event(subject="attrition-model-v2:1"))
    monitor = {"event": {"type": ["monitor.signal_alerted"], "subject": "attrition-monitor"}}
    assert matches(monitor, _event("monitor.signal_alerted", "attrition-monitor/data-drift"))


def test_filters_compare_payload_fields_as_text() -> None:
    rule = _spec(filter={"version": 3, "type": "mlflow_model"})
    assert matches(rule, _event(version="3", type="mlflow_model"))
    assert not matches(rule, _event(version="4", type="mlflow_model"))
    assert not matches(rule, _event(type="mlflow_model"))  # a missing field never matches
    assert matches(_spec(filter={"flags.retrain": True}), _event(flags={"retrain": True}))


def test_a_trigger_never_matches_its_own_jobs_or_firings() -> None:
    assert caused_by("t", _event("trigger.fired", "t"))
    assert not caused_by("t", _event("trigger.fired", "other"))
    assert caused_by("t", _event("job.status_changed", "t-12", parent=None))
    assert caused_by("t", _event("job.status_changed", "t-12_train", parent="t-12"))
    assert not caused_by("t", _event("job.status_changed", "t-other-12", parent=None))
    assert not caused_by("t", _event("model.version_created", "t-12:1"))


# -- binding --------------------------------------------------------------------------------------------


def _trigger(inputs: dict[str, object]) -> dict[str, object]:
    return {"create_job": {"command": "echo", "inputs": {"model_version": "0", "data": {
        "type": "uri_file", "path": "azureml:employee-attrition:1"}, "threshold": 0.5}}, "inputs": inputs}


def test_an_expression_alone_keeps_the_fields_value_inside_text_it_becomes_text() -> None:
    job = triggered_job(_trigger({"model_version": "${{event.payload.version}}", "threshold": "${{ event.id }}",
                                  "data": "azureml:${{event.payload.name}}:${{event.payload.version}}"}),
                        "t", _event(version=3, name="attrition-model"))
    assert job["inputs"]["model_version"] == 3
    assert job["inputs"]["threshold"] == 7
    # a data input keeps its type; the event names its path
    assert job["inputs"]["data"] == {"type": "uri_file", "path": "azureml:attrition-model:3"}


def test_the_job_carries_its_cause_in_tags() -> None:
    job = triggered_job(_trigger({}), "t", _event())
    assert job["tags"] == {"mlyard.trigger": "t", "mlyard.event": "7", "mlyard.eventType": "model.version_created",
                           "mlyard.eventSubject": "attrition-model:3"}


def test_a_payload_field_the_event_lacks_is_a_clear_error() -> None:
    with pytest.raises(BindingError, match=r"event 7 \(model.version_created attrition-model:3\) has no field "
                                           r"event.payload.version \(its payload fields: name\)"):
        triggered_job(_trigger({"model_version": "${{event.payload.version}}"}), "t", _event(name="x"))


def test_cool_downs_are_iso_durations() -> None:
    assert cool_down_ms({"cool_down": "PT6H"}) == 6 * 3600 * 1000
    assert cool_down_ms({}) == 0
