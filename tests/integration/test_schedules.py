"""Schedules through a real server process and the real CLI: a schedule fires its job (with Azure's
display name and a link back), a server killed with SIGKILL around a firing fires it exactly once,
and bad input is refused clearly with nothing created."""

from __future__ import annotations

import json
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess, free_port, run_cli

pytestmark = pytest.mark.slow

ENV = "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"
WAIT_S = 90  # a generous bound on waiting for what must happen; never an assertion about speed


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "workspace", free_port()).init().start()
    try:
        yield proc
    finally:
        proc.stop()


def project(root: Path, name: str, start: datetime, frequency: str = "minute", interval: int = 1) -> Path:
    """A schedule file whose job (a local code folder) first fires at ``start``."""
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "src" / "hello.py").write_text("print('hello from a schedule')\n")
    (root / "job.yml").write_text(textwrap.dedent(f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json
        command: python hello.py
        code: ./src
        environment: {ENV}
        """))
    path = root / f"{name}.yml"
    path.write_text(textwrap.dedent(f"""\
        $schema: https://azuremlschemas.azureedge.net/latest/schedule.schema.json
        name: {name}
        description: fires soon after it is created
        trigger:
          type: recurrence
          frequency: {frequency}
          interval: {interval}
          start_time: "{start.isoformat()}"
          time_zone: UTC
        create_job: ./job.yml
        """))
    return path


def soon(seconds: float) -> datetime:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)


def show(server: ServerProcess, name: str) -> dict[str, Any]:
    return json.loads(run_cli("schedule", "show", "-n", name, "-o", "json", env=server.env()).stdout)  # type: ignore[no-any-return]


def wait_for_firings(server: ServerProcess, name: str, count: int) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        shown = show(server, name)
        if len([f for f in shown["firings"] if f["job"]]) >= count:
            return shown
        assert time.monotonic() < deadline, f"{name} fired {shown['firings']}:\n{server.log_path.read_text()[-3000:]}"
        time.sleep(0.5)


def scheduled_jobs(server: ServerProcess, name: str) -> list[dict[str, Any]]:
    jobs = json.loads(run_cli("job", "list", "-r", "1000", "-o", "json", env=server.env()).stdout)
    return [j for j in jobs if j["display_name"] and j["display_name"].startswith(f"{name}-")]


def test_schedule_fires_its_job_with_azure_display_name_and_link(server: ServerProcess, tmp_path: Path) -> None:
    start = soon(5)
    file = project(tmp_path / "p", "hello-every-minute", start)
    env = server.env()
    created = json.loads(run_cli("schedule", "create", "-f", str(file), "-o", "json", env=env).stdout)
    assert created["is_enabled"] and created["next_fire_at"] == start.isoformat().replace("+00:00", "Z")
    table = run_cli("schedule", "show", "-n", "hello-every-minute", env=env).stdout
    assert "next firings (UTC, and on the clock of UTC):" in table and "at most one catch-up per schedule" in table
    assert [(start + timedelta(minutes=k)).isoformat().replace("+00:00", "Z") for k in range(5)] == \
        show(server, "hello-every-minute")["next_firings"]

    shown = wait_for_firings(server, "hello-every-minute", 1)
    firing = shown["firings"][-1]
    assert firing["fire_at"] == start.isoformat().replace("+00:00", "Z") and not firing["catch_up"]
    job = json.loads(run_cli("job", "show", "-n", firing["job"], "-o", "json", env=env).stdout)
    assert job["display_name"] == f"hello-every-minute-{start.strftime('%Y%m%dT%H%M%SZ')}"
    assert job["experiment_name"] == "hello-every-minute"
    assert any("started by schedule hello-every-minute" in n for n in job["notes"])
    assert shown["last_job"] == firing["job"]
    streamed = run_cli("job", "stream", "-n", firing["job"], env=env, timeout=WAIT_S)
    assert "hello from a schedule" in streamed.stdout
    printed = run_cli("job", "show", "-n", firing["job"], env=env).stdout
    assert "note: started by schedule hello-every-minute" in printed
    events = json.loads(run_cli("events", "--type", "schedule.fired", "-o", "json", env=env).stdout)
    assert firing["job"] in json.dumps(events)

    run_cli("schedule", "disable", "-n", "hello-every-minute", env=env)
    listed = json.loads(run_cli("schedule", "list", "-o", "json", env=env).stdout)
    assert [(s["name"], s["is_enabled"]) for s in listed] == [("hello-every-minute", False)]
    run_cli("schedule", "delete", "-n", "hello-every-minute", "-y", env=env)
    assert json.loads(run_cli("schedule", "list", "-o", "json", env=env).stdout) == []


def test_server_killed_around_a_firing_fires_it_exactly_once(server: ServerProcess, tmp_path: Path) -> None:
    start = soon(6)
    file = project(tmp_path / "p", "hourly", start, frequency="hour")
    env = server.env()
    run_cli("schedule", "create", "-f", str(file), env=env)
    server.kill()  # down before the instant: it passes while no server runs
    while datetime.now(UTC) <= start + timedelta(seconds=1):
        time.sleep(0.2)
    server.start()
    shown = wait_for_firings(server, "hourly", 1)
    [firing] = shown["firings"]
    assert firing["catch_up"] and firing["fire_at"] == start.isoformat().replace("+00:00", "Z")
    server.kill()  # right after the firing
    server.start()
    server.stop()  # and a clean restart
    server.start()
    shown = show(server, "hourly")
    assert [f["job"] for f in shown["firings"]] == [firing["job"]]
    assert [j["name"] for j in scheduled_jobs(server, "hourly")] == [firing["job"]]
    assert shown["next_firings"][0] == (start + timedelta(hours=1)).isoformat().replace("+00:00", "Z")


def test_bad_input_is_refused_clearly_and_creates_nothing(server: ServerProcess, tmp_path: Path) -> None:
    env = server.env()
    file = project(tmp_path / "p", "bad", soon(3600))
    text = file.read_text()
    cases = {
        "six-field cron": (text.replace("type: recurrence\n  frequency: minute\n  interval: 1\n",
                                        "type: cron\n  expression: '0 0 3 * * *'\n"),
                           ["trigger.expression", "has 6 fields"]),
        "unknown time zone": (text.replace("time_zone: UTC", "time_zone: Mars Standard Time"),
                              ["trigger.time_zone", "'Mars Standard Time' is not a time zone"]),
        "missing job file": (text.replace("./job.yml", "./nope.yml"), ["create_job", "does not exist"]),
        "import data": (text.replace("create_job: ./job.yml", "import_data: {type: mltable}"),
                        ["import_data schedules are not supported"]),
    }
    for case, (content, words) in cases.items():
        file.write_text(content)
        failed = run_cli("schedule", "create", "-f", str(file), env=env, check=False)
        assert failed.returncode == 1, case
        assert all(w in failed.stderr for w in words), (case, failed.stderr)
        assert "Traceback" not in failed.stderr
    # the server refuses a spec that skipped the client's checks, names the field, and keeps serving
    bad = {"name": "raw", "trigger": {"type": "cron", "expression": "0 0 3 * * *"}, "create_job": "azureml:x"}
    answer = httpx.post(f"{server.url}/api/v1/schedules", json={"spec": bad}, headers=server.headers())
    assert answer.status_code == 422 and "trigger.expression" in answer.text
    assert json.loads(run_cli("schedule", "list", "-o", "json", env=env).stdout) == []

    file.write_text(text)
    run_cli("schedule", "create", "-f", str(file), env=env)
    refused = run_cli("schedule", "delete", "-n", "bad", "-y", env=env, check=False)
    assert refused.returncode == 1 and "disable it first" in refused.stderr
    missing = run_cli("schedule", "show", "-n", "nope", env=env, check=False)
    assert missing.returncode == 1 and "schedule 'nope' not found" in missing.stderr
    assert [s["name"] for s in json.loads(run_cli("schedule", "list", "-o", "json", env=env).stdout)] == ["bad"]


def test_update_with_set_changes_fields_and_refuses_a_bad_trigger(server: ServerProcess, tmp_path: Path) -> None:
    env = server.env()
    file = project(tmp_path / "p", "nightly", soon(3600), frequency="day")
    run_cli("schedule", "create", "-f", str(file), env=env)
    run_cli("schedule", "update", "-n", "nightly", "--set", "description=every night at three",
            "--set", "trigger.schedule.hours=3", "--set", "trigger.schedule.minutes=0",
            "--set", "trigger.time_zone=W. Europe Standard Time", env=env)
    shown = show(server, "nightly")
    assert shown["description"] == "every night at three" and shown["time_zone"] == "W. Europe Standard Time"
    assert all(at.endswith(("T01:00:00Z", "T02:00:00Z")) for at in shown["next_firings"])  # 03:00 CEST/CET
    assert all(at[11:19] == "03:00:00" for at in shown["next_firings_local"])
    refused = run_cli("schedule", "update", "-n", "nightly", "--set", "trigger.time_zone=Nowhere", env=env,
                      check=False)
    assert refused.returncode == 1 and "trigger.time_zone" in refused.stderr
    assert show(server, "nightly")["time_zone"] == "W. Europe Standard Time"
