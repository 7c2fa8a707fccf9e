"""Steps on a Ray cluster: ``type: ray`` computes with ``address: local`` (a Ray head the server starts on this
machine and stops with itself). The attrition pipeline runs unchanged on it (its ``azureml:cpu-cluster`` is the
Ray compute) and on local slots with identical outputs, and is reused across both; the log streams back while a
step runs; cancel and ``limits.timeout`` kill the process on the node."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.jobs import JobYard, alive, wait_gone, wait_until, write
from tests.support.server import ServerProcess, free_port, run_cli

pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]' (make install installs dev, "
                                  "which has it)")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "attrition"
TRAIN = EXAMPLE / "mlops" / "azureml" / "train"
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


@pytest.fixture(scope="module")
def ray_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with two Ray computes on one local Ray: cpu-cluster (the attrition YAML's) and ray-small."""
    ws = tmp_path_factory.mktemp("rayws") / "workspace"
    server = ServerProcess(ws, free_port()).init().start()
    folder = tmp_path_factory.mktemp("computes")
    for name, limit in (("cpu-cluster", 2), ("ray-small", 2)):
        spec = write(folder / f"{name}.yml", f"name: {name}\ntype: ray\naddress: local\nmax_instances: {limit}\n")
        shown = json.loads(run_cli("compute", "create", "-f", str(spec), "-o", "json", env=server.env()).stdout)
        assert shown["executor"] == "ray"
    try:
        yield server
    finally:
        server.stop()


def _pipeline(server: ServerProcess, name: str, cwd: Path, *extra: str) -> dict[str, Any]:
    run = run_cli("job", "create", "-f", str(TRAIN / "pipeline.yml"), "--name", name, "--stream", *extra,
                  cwd=cwd, env={**server.env(), **NO_TELEMETRY}, check=False, timeout=300)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{server.log_path.read_text()[-3000:]}"
    return json.loads(run_cli("job", "show", "-n", name, "-o", "json", env=server.env()).stdout)  # type: ignore


def _outputs(job: dict[str, Any]) -> dict[str, Any]:
    """Each step's outputs by content (their hashes and files), not by where they were written."""
    return {s["step"]: {n: {k: v for k, v in rec.items() if k not in ("uri", "job")}
                        for n, rec in (s.get("outputs") or {}).items()}
            for s in job["steps"] if s["step"] != "register_model"}


def test_the_attrition_pipeline_runs_on_ray_and_on_local_slots_alike(ray_server: ServerProcess,
                                                                      tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="the attrition example needs scikit-learn (pip install -e '.[dev]')")
    env = ray_server.env()
    run_cli("data", "create", "-f", str(TRAIN / "data.yml"), env=env)
    run_cli("environment", "create", "-f", str(TRAIN / "train-env.yml"), env=env)

    on_ray = _pipeline(ray_server, "attrition-ray", tmp_path)
    assert on_ray["status"] == "Completed"
    for step in on_ray["steps"]:
        log = (ray_server.workspace / ".mlyard" / "jobs" / step["name"] / "user_logs" / "std_log.txt").read_text()
        assert "[mlyard] compute cpu-cluster: Ray actor on node" in log, log[-2000:]

    run_cli("compute", "delete", "-n", "cpu-cluster", env=env)  # now the same YAML runs on local slots
    local = _pipeline(ray_server, "attrition-local", tmp_path, "--set", "settings.force_rerun=true")
    assert local["status"] == "Completed"
    assert all(s["reused_from"] is None for s in local["steps"])
    ray_out, local_out = _outputs(on_ray), _outputs(local)
    # the split is deterministic: byte for byte the same (its sha256 tree); an MLflow model folder holds its run id
    # and creation time, so there the same files of the same sizes
    assert local_out["prep_data"] == ray_out["prep_data"]
    model = ("model_output", "train_model")
    assert {k: v for k, v in local_out[model[1]][model[0]].items() if k != "tree"} == \
        {k: v for k, v in ray_out[model[1]][model[0]].items() if k != "tree"}

    again = _pipeline(ray_server, "attrition-again", tmp_path)
    earlier = {s["name"] for s in [*on_ray["steps"], *local["steps"]]}
    reused = [s["reused_from"] for s in again["steps"] if s["step"] != "register_model"]
    assert len(reused) == 3 and set(reused) <= earlier  # a step run on Ray is reused on local slots, and back


def test_logs_stream_and_cancel_and_timeout_kill_the_process_on_the_node(ray_server: ServerProcess,
                                                                         tmp_path: Path) -> None:
    yard = JobYard(ray_server, tmp_path)
    pidfile = tmp_path / "pid"
    slow = write(tmp_path / "slow.yml", """\
        command: echo "first line"; echo $$ > @PIDFILE@; sleep 120; echo "after""wards"
        environment: @ENV@
        compute: azureml:ray-small
        resources: {properties: {num_cpus: 0.5}}
        """, PIDFILE=pidfile)
    job = yard.submit(slow)
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() != "", "the step to start on Ray")
    pid = int(pidfile.read_text())
    wait_until(lambda: "first line" in yard.log(job["name"]), "the first line to stream back", timeout=30)
    assert alive(pid) and yard.client.jobs.get(job["name"])["status"] == "Running"
    yard.client.jobs.cancel(job["name"])
    assert yard.wait(job["name"])["status"] == "Canceled"
    wait_gone([pid], "the canceled step's process")
    assert "num_cpus=0.5" in yard.log(job["name"]) and "afterwards" not in yard.log(job["name"])

    pidfile.unlink()
    timed = write(tmp_path / "timed.yml", """\
        command: echo $$ > @PIDFILE@; sleep 120
        environment: @ENV@
        compute: azureml:ray-small
        limits: {timeout: 3}
        """, PIDFILE=pidfile)
    done = yard.run(timed)
    assert done["status"] == "Canceled" and "timed out after 3 s" in (done["error"] or ""), done
    wait_gone([int(pidfile.read_text())], "the timed-out step's process")

    failing = write(tmp_path / "fails.yml", """\
        command: echo on ray $MLYARD_COMPUTE; exit 3
        environment: @ENV@
        compute: azureml:ray-small
        """)
    failed = yard.run(failing)
    assert failed["status"] == "Failed" and "exited with code 3" in failed["error"]
    assert "on ray ray-small" in yard.log(failed["name"])
    assert not os.environ.get("MLYARD_COMPUTE")

    for props, says in (("{num_gpus: 64}", "num_gpus=64 and the whole Ray cluster has 0 GPU"),
                        ("{num_cpus: lots}", "resources.properties.num_cpus must be a number")):
        greedy = write(tmp_path / "greedy.yml", """\
            command: echo never placed
            environment: @ENV@
            compute: azureml:ray-small
            resources: {properties: @PROPS@}
            """, PROPS=props)
        refused = yard.run(greedy)
        assert refused["status"] == "Failed" and says in refused["error"], refused


def test_a_worker_node_killed_mid_step_fails_the_step_by_the_job_rules(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A head and two worker nodes on this machine; the node running a step is killed."""
    from tests.support.ray_cluster import RayCluster

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # a loopback test cluster: no token, for it and the server
    cluster = RayCluster(workers=2).start()
    server = ServerProcess(tmp_path / "workspace", free_port()).init().start()
    try:
        spec = write(tmp_path / "multi.yml", f"name: multi\ntype: ray\naddress: {cluster.address}\nmax_instances: 2\n")
        run_cli("compute", "create", "-f", str(spec), env=server.env())
        yard = JobYard(server, tmp_path)
        pidfile = tmp_path / "pid"
        job = yard.submit(write(tmp_path / "long.yml", """\
            command: echo $$ > @PIDFILE@; sleep 120
            environment: @ENV@
            compute: azureml:multi
            """, PIDFILE=pidfile))
        wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() != "", "the step to start", timeout=60)
        pid = int(pidfile.read_text())
        node = cluster.node_of(pid)
        assert node is not None, "the step should run on a worker node (the head has no CPU)"
        cluster.kill(node)
        done = yard.wait(job["name"], timeout=90)
        assert done["status"] == "Failed" and "the Ray node or actor running the step was lost" in done["error"], done
        assert "run the job again" in done["error"] and not done.get("outputs")
        if alive(pid):  # the node's machine is "gone"; here its orphaned step lives on: end it
            os.kill(pid, 9)

        again = yard.completed(write(tmp_path / "short.yml", """\
            command: echo placed on the surviving node
            environment: @ENV@
            compute: azureml:multi
            """))
        assert "placed on the surviving node" in yard.log(again["name"])
    finally:
        server.stop()
        cluster.stop()
