"""Jobs that fail, are canceled, time out, are refused or outlive their server (reference §2.5, §3.4).

One server serves the module (one test starts its own, to kill it); user scripts are the shared ones
of ``tests/support/jobs.py``. The happy paths (bindings, outputs, reuse) are in ``test_jobs.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.jobs import (
    CURATED,
    GATE,
    PROBE,
    SLEEPER,
    JobYard,
    alive,
    read_pids,
    steps_of,
    wait_gone,
    write,
)
from tests.support.server import ServerProcess, free_port


@pytest.fixture(scope="module")
def yard(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> JobYard:
    root = tmp_path_factory.mktemp("project")
    write(root / "src" / "probe.py", PROBE)
    write(root / "src" / "sleeper.py", SLEEPER)
    write(root / "src" / "gate.py", GATE)
    return JobYard(server, root)


# --- failures, cancel, timeout ------------------------------------------------------------------------


def test_failed_step_cancels_the_others_and_its_log_tail_is_in_the_error(yard: JobYard, tmp_path: Path) -> None:
    pids, flag = tmp_path / "pids", tmp_path / "flag"
    path = write(yard.root / "fail-fast.yml", """\
        type: pipeline
        settings: {continue_on_step_failure: false}
        jobs:
          slow:
            code: src
            environment: @ENV@
            command: python sleeper.py @pids@ @flag@
            outputs: {o: }
          after_slow:
            environment: @ENV@
            command: ls ${{inputs.d}}
            inputs: {d: "${{parent.jobs.slow.outputs.o}}"}
          bad:
            code: src
            environment: @ENV@
            command: python gate.py --wait @pids@ --fail 3
        """, pids=pids, flag=flag)
    proc = yard.cli("job", "create", "-f", str(path), "--stream", "-n", "fail-fast-1", check=False)
    assert proc.returncode != 0, proc.stdout
    job = yard.client.jobs.get("fail-fast-1")
    steps = steps_of(job)
    assert job["status"] == "Failed"
    assert {k: s["status"] for k, s in steps.items()} == {"slow": "Canceled", "after_slow": "Canceled",
                                                          "bad": "Failed"}
    assert steps["after_slow"]["started_at"] is None
    assert "step 'bad' failed" in job["error"] and "exited with code 3" in job["error"]
    assert "boom: the data is bad" in job["error"]
    wait_gone(read_pids(pids), "the canceled step")


def test_continue_on_step_failure_runs_the_independent_steps(yard: JobYard, tmp_path: Path) -> None:
    failing = tmp_path / "failing"
    path = write(yard.root / "keep-going.yml", """\
        type: pipeline
        settings: {continue_on_step_failure: true}
        jobs:
          bad:
            code: src
            environment: @ENV@
            command: python gate.py --touch @failing@ --fail 3
            outputs: {o: }
          independent:
            code: src
            environment: @ENV@
            command: python gate.py --wait @failing@ --sleep 1
          dependent:
            environment: @ENV@
            command: ls ${{inputs.d}}
            inputs: {d: "${{parent.jobs.bad.outputs.o}}"}
        """, failing=failing)
    job = yard.run(path)
    steps = steps_of(job)
    assert job["status"] == "Failed" and "step 'bad' failed" in job["error"]
    assert {k: s["status"] for k, s in steps.items()} == {"bad": "Failed", "independent": "Completed",
                                                          "dependent": "Canceled"}
    assert "gate passed" in yard.log(steps["independent"]["name"])
    assert steps["dependent"]["started_at"] is None
    assert "running:" not in yard.log(steps["dependent"]["name"])


@pytest.mark.slow
def test_cancel_kills_the_whole_process_tree(yard: JobYard, tmp_path: Path) -> None:
    pids, flag = tmp_path / "pids", tmp_path / "flag"
    path = write(yard.root / "cancel.yml", """\
        type: pipeline
        jobs:
          long:
            code: src
            environment: @ENV@
            command: python sleeper.py @pids@ @flag@
            outputs: {o: }
          after:
            environment: @ENV@
            command: ls ${{inputs.d}}
            inputs: {d: "${{parent.jobs.long.outputs.o}}"}
        """, pids=pids, flag=flag)
    name = yard.submit(path)["name"]
    procs = read_pids(pids)
    assert all(alive(p) for p in procs)
    out = yard.cli("job", "cancel", "-n", name)
    assert name in out.stdout
    job = yard.wait(name, timeout=60)
    assert job["status"] == "Canceled"
    assert {k: s["status"] for k, s in steps_of(job).items()} == {"long": "Canceled", "after": "Canceled"}
    wait_gone(procs, "the canceled job")


@pytest.mark.slow
def test_timeout_cancels_the_job(yard: JobYard) -> None:
    path = write(yard.root / "timeout.yml", """\
        command: sleep 30
        environment: @ENV@
        limits: {timeout: 2}
        """)
    job = yard.run(path)
    assert job["status"] == "Canceled"
    assert "timed out" in job["error"] and "limits.timeout" in job["error"]


# --- bad input ---------------------------------------------------------------------------------------


def test_bad_input_is_refused_clearly_and_leaves_nothing(yard: JobYard) -> None:
    before = json.loads(yard.cli("job", "list", "-o", "json", "-r", "1000").stdout)
    path = write(yard.root / "unknown-input.yml", """\
        command: echo ${{inputs.nope}}
        environment: @ENV@
        inputs: {x: 1}
        """)
    proc = yard.cli("job", "create", "-f", str(path), check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "unknown-input.yml" in proc.stderr and "command" in proc.stderr and "${{inputs.nope}}" in proc.stderr
    step = {"command": "echo ${{inputs.d}}", "environment": CURATED}
    bad_specs = {
        "inputs.nope": {"command": "echo ${{inputs.nope}}", "environment": CURATED},
        "local path": {"command": "ls", "code": str(yard.root / "src"), "environment": CURATED},
        "ghost": {"type": "pipeline", "jobs": {"s": {**step, "inputs": {"d": "${{parent.jobs.ghost.outputs.o}}"}}}},
        "cycle": {"type": "pipeline", "jobs": {
            "a": {**step, "inputs": {"d": "${{parent.jobs.b.outputs.o}}"}, "outputs": {"o": None}},
            "b": {**step, "inputs": {"d": "${{parent.jobs.a.outputs.o}}"}, "outputs": {"o": None}}}},
    }
    for expected, spec in bad_specs.items():
        raw = httpx.post(f"{yard.server.url}/api/v1/jobs", headers=yard.server.headers(), json={"spec": spec})
        assert raw.status_code == 422 and expected in raw.text, raw.text
    assert json.loads(yard.cli("job", "list", "-o", "json", "-r", "1000").stdout) == before

    missing = yard.cli("job", "show", "-n", "no-such-job", check=False)
    assert missing.returncode == 1 and "not found" in missing.stderr and "Traceback" not in missing.stderr


def test_a_job_name_is_taken_once(yard: JobYard) -> None:
    path = write(yard.root / "echo.yml", """\
        command: echo hi
        environment: @ENV@
        """)
    yard.cli("job", "create", "-f", str(path), "-n", "taken-name")
    again = yard.cli("job", "create", "-f", str(path), "-n", "taken-name", check=False)
    assert again.returncode == 1 and "already exists" in again.stderr and "Traceback" not in again.stderr
    assert yard.wait("taken-name")["status"] == "Completed"


def test_an_unregistered_environment_fails_in_preparing(yard: JobYard) -> None:
    path = write(yard.root / "no-env.yml", """\
        command: echo never
        environment: azureml:nope@latest
        """)
    job = yard.run(path)
    assert job["status"] == "Failed"
    assert "azureml:nope@latest" in job["error"] and "mlyard environment create" in job["error"]
    assert job["error"].startswith("Preparing")
    assert "never" not in yard.log(job["name"])


# --- computes ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_compute_with_one_instance_runs_one_step_at_a_time(yard: JobYard) -> None:
    yard.cli("compute", "create", "--name", "two", "--max-instances", "1")
    shown = json.loads(yard.cli("compute", "show", "-n", "two", "-o", "json").stdout)
    assert shown["max_parallel"] == 1
    path = write(yard.root / "bounded.yml", """\
        type: pipeline
        settings: {default_compute: azureml:two}
        jobs:
          first:
            code: src
            environment: @ENV@
            command: python probe.py stamp_s=${{outputs.s}}
            outputs: {s: }
          second:
            code: src
            environment: @ENV@
            command: python probe.py stamp_s=${{outputs.s}}
            outputs: {s: }
        """)
    job = yard.completed(path)
    spans = sorted((json.loads((yard.stored(s["outputs"]["s"]["uri"]) / "stamp.json").read_text())
                    for s in steps_of(job).values()), key=lambda span: span["start"])
    assert spans[1]["start"] >= spans[0]["end"]


# --- the server stops under a running pipeline ------------------------------------------------------


@pytest.mark.slow
def test_server_killed_during_a_pipeline(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "workspace", free_port()).init().start()
    try:
        yard = JobYard(server, tmp_path / "project")
        write(yard.root / "src" / "sleeper.py", SLEEPER)
        pids, flag = tmp_path / "pids", tmp_path / "flag"
        path = write(yard.root / "crash.yml", """\
            type: pipeline
            jobs:
              first:
                environment: @ENV@
                command: echo first > ${{outputs.o}}/first.txt
                outputs: {o: }
              long:
                code: src
                environment: @ENV@
                command: python sleeper.py @pids@ @flag@ ${{inputs.d}}
                inputs: {d: "${{parent.jobs.first.outputs.o}}"}
            """, pids=pids, flag=flag)
        name = yard.submit(path)["name"]
        procs = read_pids(pids)
        server.kill()
        yard = JobYard(server.start(), yard.root)  # a new client: the old one's connections died with the server
        job = yard.client.jobs.get(name)
        steps = steps_of(job)
        assert job["status"] == "Failed" and "server stopped" in job["error"]
        assert steps["first"]["status"] == "Completed"
        assert steps["long"]["status"] == "Failed" and "server stopped" in steps["long"]["error"]
        wait_gone(procs, "the interrupted step")
        rerun = steps_of(yard.completed(path))  # the flag file makes the sleeper quick this time
        assert rerun["first"]["reused_from"] == steps["first"]["name"]
        assert rerun["long"]["reused_from"] is None
    finally:
        server.stop()
