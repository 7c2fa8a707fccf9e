"""Triggers through a real server and the CLI: a new model version starts one job within the cool-down, the job
holds the event's version and shows its cause; bad trigger files are refused and create nothing."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.jobs import JobYard, wait_until, write
from tests.support.server import ServerProcess

ECHO = """\
import sys

print(f"EVALUATING version={sys.argv[1]}")
"""

JOB = """\
$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
command: python echo.py ${{inputs.model_version}}
code: ./src
inputs:
  model_version: "0"
environment: @ENV@
experiment_name: trigger-tests
"""

TRIGGER = """\
$schema: https://mlyard.dev/schemas/trigger.schema.json
name: evaluate-new-versions
description: evaluate each new version of trig-model
event:
  type: model.version_created
  subject: trig-model
cool_down: PT1H
create_job: ./evaluate.yml
inputs:
  model_version: ${{event.payload.version}}
"""


@pytest.fixture(scope="module")
def yard(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> JobYard:
    root = tmp_path_factory.mktemp("triggers")
    write(root / "src" / "echo.py", ECHO)
    write(root / "evaluate.yml", JOB)
    write(root / "trigger.yml", TRIGGER)
    return JobYard(server, root)


def _json(yard: JobYard, *args: str) -> Any:
    return json.loads(yard.cli(*args, "-o", "json").stdout)


def _new_version(yard: JobYard, content: bytes) -> None:
    (yard.root / "m.pkl").write_bytes(content)  # new content: the same file again would be the same version
    yard.cli("model", "create", "--name", "trig-model", "--type", "custom_model", "--path", "m.pkl")


def test_two_quick_versions_start_one_job_that_evaluates_the_first_and_shows_its_cause(yard: JobYard) -> None:
    created = _json(yard, "trigger", "create", "-f", "trigger.yml")
    assert created["enabled"] and created["event"]["type"] == ["model.version_created"]
    assert created["cool_down"] == "PT1H"

    _new_version(yard, b"model one")
    _new_version(yard, b"model two")

    def firings() -> list[dict[str, Any]]:
        return list(_json(yard, "trigger", "show", "-n", "evaluate-new-versions")["firings"])

    wait_until(lambda: len(firings()) == 2 and all(f["outcome"] != "started" or f["job"] for f in firings()),
               "both versions are matched")
    second, first = firings()  # newest first
    assert (first["outcome"], second["outcome"], second["job"]) == ("started", "cooling_down", None)
    assert first["job"] == f"evaluate-new-versions-{first['event']}"

    job = yard.wait(first["job"])
    assert job["status"] == "Completed", yard.log(first["job"])
    assert "EVALUATING version=1" in yard.log(first["job"])  # the input came from the first version's event
    assert job["display_name"] == first["job"] and job["experiment_name"] == "trigger-tests"

    shown = yard.cli("job", "show", "-n", first["job"]).stdout
    assert (f"note: started by trigger evaluate-new-versions for event {first['event']} "
            "(model.version_created trig-model:1)") in shown
    full = yard.client.jobs.get(first["job"])
    assert full["notes"][-1].startswith("started by trigger evaluate-new-versions")
    assert {k: v for k, v in full["spec"]["tags"].items() if k.startswith("mlyard.")} == {
        "mlyard.trigger": "evaluate-new-versions", "mlyard.event": str(first["event"]),
        "mlyard.eventType": "model.version_created", "mlyard.eventSubject": "trig-model:1"}


def test_a_trigger_naming_a_missing_file_or_an_unknown_event_is_refused_and_creates_nothing(yard: JobYard) -> None:
    write(yard.root / "missing.yml", TRIGGER.replace("evaluate-new-versions", "refused-1")
          .replace("./evaluate.yml", "./nowhere.yml"))
    out = yard.cli("trigger", "create", "-f", "missing.yml", check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "missing.yml:8: create_job: job file" in out.stderr and "nowhere.yml' does not exist" in out.stderr

    write(yard.root / "unknown.yml", TRIGGER.replace("evaluate-new-versions", "refused-2")
          .replace("model.version_created", "model.registered"))
    out = yard.cli("trigger", "create", "-f", "unknown.yml", check=False)
    assert out.returncode == 1 and "unknown.yml:5: event.type: unknown event type 'model.registered'" in out.stderr

    # the API refuses the same, without a file: 422, naming the field
    spec = {"name": "refused-3", "event": {"type": "model.registered"}, "create_job": {"command": "echo"}}
    answer = httpx.post(f"{yard.server.url}/api/v1/triggers", json={"spec": spec}, headers=yard.server.headers())
    assert answer.status_code == 422 and "event.type" in answer.json()["error"]["message"]

    names = [t["name"] for t in _json(yard, "trigger", "list")]
    assert not any(n.startswith("refused") for n in names)


def test_disable_enable_and_delete(yard: JobYard) -> None:
    write(yard.root / "other.yml", TRIGGER.replace("evaluate-new-versions", "short-lived"))
    yard.cli("trigger", "create", "-f", "other.yml")
    assert _json(yard, "trigger", "disable", "-n", "short-lived")["enabled"] is False
    assert _json(yard, "trigger", "enable", "-n", "short-lived")["enabled"] is True
    assert "deleted trigger short-lived" in yard.cli("trigger", "delete", "-n", "short-lived").stdout
    out = yard.cli("trigger", "show", "-n", "short-lived", check=False)
    assert out.returncode == 1 and "no trigger named 'short-lived'" in out.stderr
