"""Steps on a Ray cluster: ``type: ray`` computes. Most tests run on a head and two worker nodes on this machine
(Ray's ``cluster_utils.Cluster``, one per module), named by its address as a team names its existing cluster: the
attrition pipeline runs unchanged on its worker nodes (its ``azureml:cpu-cluster`` is the Ray compute) and on local
slots with identical outputs, and is reused across both; a sweep's trials run there, at most
``max_concurrent_trials`` at once; the log streams back while a step runs; cancel and ``limits.timeout`` kill the
process on the node; a worker node killed mid-step fails the step; a distributed step's instances run on separate
worker nodes (a real gloo all-reduce across them), and a failing rank, a timeout, a cancel or a lost node stop them
all. One small job checks ``address: local`` (a Ray head the server starts on this machine and stops with
itself)."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.jobs import JobYard, alive, wait_gone, wait_until, write
from tests.support.ray_cluster import RayCluster
from tests.support.server import ServerProcess, free_port, run_cli

pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[ray]' (make install installs dev, "
                                  "which has it)")

pytestmark = [pytest.mark.ray, pytest.mark.slow]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "attrition"
TRAIN = EXAMPLE / "mlops" / "azureml" / "train"
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
NODE_LINE = re.compile(r"\[mlyard\] compute (\S+): Ray actor on node \S+ \(node id (\w+)\)")


def test_a_local_ray_starts_with_the_first_step_placed_on_it(tmp_path: Path) -> None:
    """``address: local``: the server starts a one-node Ray of its own (and stops it when it stops)."""
    server = ServerProcess(tmp_path / "workspace", free_port()).init().start()
    try:
        spec = write(tmp_path / "here.yml", "name: here\ntype: ray\naddress: local\nmax_instances: 1\n")
        shown = json.loads(run_cli("compute", "create", "-f", str(spec), "-o", "json", env=server.env()).stdout)
        assert shown["executor"] == "ray"
        yard = JobYard(server, tmp_path)
        done = yard.completed(write(tmp_path / "hello.yml", """\
            command: echo hello from $MLYARD_COMPUTE
            environment: @ENV@
            compute: azureml:here
            """))
        log = yard.log(done["name"])
        assert NODE_LINE.search(log) and "hello from here" in log, log
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cluster() -> Iterator[RayCluster]:
    """A head with no CPU (it runs nothing) and two 1-CPU worker nodes, as separate raylets on loopback."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RAY_AUTH_MODE", "disabled")  # a loopback test cluster: no token, for it and the server
        ray_cluster = RayCluster(workers=2)
        try:
            yield ray_cluster.start()
        finally:
            ray_cluster.stop()


@pytest.fixture(scope="module")
def ray_server(cluster: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server with two Ray computes on the cluster's address: cpu-cluster (the attrition YAML's) and ray-small."""
    ws = tmp_path_factory.mktemp("rayws") / "workspace"
    server = ServerProcess(ws, free_port()).init().start()
    folder = tmp_path_factory.mktemp("computes")
    try:
        for name, limit in (("cpu-cluster", 2), ("ray-small", 4)):
            spec = write(folder / f"{name}.yml",
                         f"name: {name}\ntype: ray\naddress: {cluster.address}\nmax_instances: {limit}\n")
            shown = json.loads(run_cli("compute", "create", "-f", str(spec), "-o", "json", env=server.env()).stdout)
            assert shown["executor"] == "ray"
        yield server
    finally:
        server.stop()


def _node_of(log: str, compute: str) -> str:
    """The Ray node id a step's log says it ran on."""
    found = NODE_LINE.search(log)
    assert found and found.group(1) == compute, log[-2000:]
    return found.group(2)


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


def test_the_attrition_pipeline_runs_on_the_clusters_workers_and_on_local_slots_alike(
        cluster: RayCluster, ray_server: ServerProcess, tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="the attrition example needs scikit-learn (pip install -e '.[dev]')")
    env = ray_server.env()
    run_cli("data", "create", "-f", str(TRAIN / "data.yml"), env=env)
    run_cli("environment", "create", "-f", str(TRAIN / "train-env.yml"), env=env)

    on_ray = _pipeline(ray_server, "attrition-ray", tmp_path)
    assert on_ray["status"] == "Completed"
    workers = cluster.worker_ids
    for step in on_ray["steps"]:
        log = (ray_server.workspace / ".mlyard" / "jobs" / step["name"] / "user_logs" / "std_log.txt").read_text()
        assert _node_of(log, "cpu-cluster") in workers, (workers, log[-2000:])  # never the head: it has no CPU

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

    # on local slots again, without force_rerun: every step is reused from the run on the cluster (a forced run
    # is never a source of reuse), since a step's cache key does not name its compute
    again = _pipeline(ray_server, "attrition-again", tmp_path)
    reused = [s["reused_from"] for s in again["steps"] if s["step"] != "register_model"]
    assert len(reused) == 3 and set(reused) <= {s["name"] for s in on_ray["steps"]}, again["steps"]


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


SWEEP = """\
type: sweep
trial:
  code: src
  command: python meet.py ${{search_space.n}} @ROOM@
  environment: @ENV@
  resources: {properties: {num_cpus: 0.25}}
compute: azureml:ray-small
sampling_algorithm: grid
search_space:
  n: {type: choice, values: [1, 2, 3, 4, 5]}
objective: {goal: maximize, primary_metric: n}
limits: {max_total_trials: 5, max_concurrent_trials: 2}
"""
# each trial enters the room, waits until a second trial has entered too (so the first two run side by side;
# later ones find the room full), stays a moment, and logs n
MEET = """\
import sys
import time
from pathlib import Path

import mlflow

n, room = int(sys.argv[1]), Path(sys.argv[2])
(room / str(n)).write_text("here")
deadline = time.monotonic() + 120
while len(list(room.iterdir())) < 2:
    if time.monotonic() > deadline:
        sys.exit("no other trial ran beside this one")
    time.sleep(0.05)
time.sleep(0.5)
mlflow.log_metric("n", n)
"""


def _max_overlap(trials: list[dict[str, Any]]) -> int:
    """The most trials running at one instant, from their recorded start and end times."""
    edges = sorted([(t["started_at"], 1) for t in trials] + [(t["ended_at"], -1) for t in trials])
    running = peak = 0
    for _, delta in edges:  # an end sorts before a start at the same millisecond
        running += delta
        peak = max(peak, running)
    return peak


def test_a_sweeps_trials_run_on_the_clusters_workers_within_max_concurrent_trials(
        cluster: RayCluster, ray_server: ServerProcess, tmp_path: Path) -> None:
    """The compute takes 4 steps at once and the cluster fits 8 trials of 0.25 CPU: only the sweep's limit of 2
    keeps them to 2."""
    yard = JobYard(ray_server, tmp_path)
    room = tmp_path / "room"
    room.mkdir()
    write(tmp_path / "src" / "meet.py", MEET)
    job = yard.completed(write(tmp_path / "sweep.yml", SWEEP, ROOM=room))
    trials = yard.client.jobs.get(job["name"])["trials"]
    assert sorted(t["params"]["n"] for t in trials) == [1, 2, 3, 4, 5]
    assert all(t["status"] == "Completed" for t in trials), trials
    assert [t["params"]["n"] for t in trials if t["best"]] == [5]
    workers = cluster.worker_ids
    for t in trials:
        log = yard.step_log(t["name"])
        assert _node_of(log, "ray-small") in workers and "num_cpus=0.25" in log, log[-2000:]
    assert _max_overlap(trials) <= 2, trials
    assert sorted(p.name for p in room.iterdir()) == ["1", "2", "3", "4", "5"]


# each mini-batch's row: the file's name and the pids above the worker that scored it (a Ray node's raylet among them)
BATCH_DRIVER = """\
import os
from pathlib import Path


def init():
    pass


def run(mini_batch):
    chain, pid = [], os.getpid()
    while pid > 1:
        chain.append(str(pid))
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    print("scoring", *(os.path.basename(f) for f in mini_batch), flush=True)  # into the job's log, from the node
    return [os.path.basename(f) + " " + " ".join(chain) for f in mini_batch]
"""


@pytest.fixture(scope="module")
def batch_endpoint(ray_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A batch endpoint, ray-batch, and a registered model for its deployments, raybatch:1."""
    folder = tmp_path_factory.mktemp("batch")
    write(folder / "model" / "weights.txt", "none")
    write(folder / "model.yml", "name: raybatch\nversion: 1\ntype: custom_model\npath: ./model\n")
    write(folder / "endpoint.yml", "name: ray-batch\nauth_mode: aad_token\n")
    for args in (("model", "create", "-f", "model.yml"), ("batch-endpoint", "create", "-f", "endpoint.yml")):
        run_cli(*args, cwd=folder, env=ray_server.env())
    return "ray-batch"


def test_a_batch_deployments_mini_batches_run_on_workers_over_instance_count_nodes(
        cluster: RayCluster, ray_server: ServerProcess, batch_endpoint: str, tmp_path: Path) -> None:
    """A batch deployment on a Ray compute with instance_count 2: its workers are Ray actors on both worker nodes."""
    env = ray_server.env()
    write(tmp_path / "code" / "driver.py", BATCH_DRIVER)
    for i in range(6):
        write(tmp_path / "data" / f"part-{i}.csv", f"a\n{i}\n")
    write(tmp_path / "deployment.yml", """\
        name: spread
        endpoint_name: ray-batch
        model: azureml:raybatch:1
        code_configuration: {code: ./code, scoring_script: driver.py}
        environment: {image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04}
        compute: azureml:ray-small
        resources: {instance_count: 2}
        max_concurrency_per_instance: 1
        mini_batch_size: 1
        output_action: append_row
        output_file_name: rows.txt
        error_threshold: 0
        """)
    run_cli("batch-deployment", "create", "-f", "deployment.yml", cwd=tmp_path, env=env)
    shown = run_cli("batch-endpoint", "invoke", "-n", "ray-batch", "--input", str(tmp_path / "data"), "--stream",
                    "-o", "json", cwd=tmp_path, env=env, check=False, timeout=300)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    job = json.loads(shown.stdout)
    yard = JobYard(ray_server, tmp_path)
    log = yard.log(job["name"])
    assert job["status"] == "Completed", log
    workers = cluster.worker_ids
    placed = set(re.findall(r"batch worker \d+ on Ray node (\w+)", log))
    assert placed == workers, log  # two workers, one on each worker node (the head has no CPU)
    assert all(f"scoring part-{i}.csv" in log for i in range(6)), log  # the workers' output streams back
    run_cli("job", "download", "-n", job["name"], "--output-name", "score", "--download-path", str(tmp_path / "out"),
            env=env)
    rows = (tmp_path / "out" / "named-outputs" / "score" / "rows.txt").read_text().splitlines()
    raylets = {p.process.pid: str(n.node_id) for n in cluster.nodes for p in n.all_processes.get("raylet", [])}
    scored_on = {}
    for row in rows:
        name, *chain = row.split()
        [node] = [raylets[int(pid)] for pid in chain if int(pid) in raylets]
        scored_on[name] = node
    assert sorted(scored_on) == [f"part-{i}.csv" for i in range(6)], rows
    assert set(scored_on.values()) <= workers, rows


# each mini-batch's worker says it is there (its pid) and waits for the test's go before it answers
SURVIVOR = """\
import os
import time
from pathlib import Path

ROOM = Path(@ROOM@)


def init():
    pass


def run(mini_batch):
    for f in mini_batch:
        (ROOM / (os.path.basename(f) + ".pid")).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while not (ROOM / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    chain, pid = [], os.getpid()
    while pid > 1:
        chain.append(str(pid))
        pid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    return [os.path.basename(f) + " " + " ".join(chain) for f in mini_batch]
"""


def test_a_batch_worker_lost_with_its_node_is_replaced_on_a_surviving_node(
        cluster: RayCluster, ray_server: ServerProcess, batch_endpoint: str, tmp_path: Path) -> None:
    """Three worker nodes: the batch engine's step holds one, its two workers are on two; the node of a worker that is
    not the engine's is killed mid-mini-batch, and the mini-batch is scored again on a node still there."""
    cluster.add_worker()
    env = ray_server.env()
    room = tmp_path / "room"
    room.mkdir()
    write(tmp_path / "code" / "driver.py", SURVIVOR, ROOM=repr(str(room)))
    for i in range(2):
        write(tmp_path / "data" / f"part-{i}.csv", f"a\n{i}\n")
    write(tmp_path / "deployment.yml", """\
        name: survivor
        endpoint_name: ray-batch
        model: azureml:raybatch:1
        code_configuration: {code: ./code, scoring_script: driver.py}
        environment: {image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04}
        compute: azureml:ray-small
        resources: {instance_count: 2}
        max_concurrency_per_instance: 1
        mini_batch_size: 1
        retry_settings: {max_retries: 2, timeout: 300}
        output_action: append_row
        output_file_name: rows.txt
        error_threshold: 0
        """)
    run_cli("batch-deployment", "create", "-f", "deployment.yml", cwd=tmp_path, env=env)
    job = json.loads(run_cli("batch-endpoint", "invoke", "-n", "ray-batch", "--deployment-name", "survivor",
                             "--input", str(tmp_path / "data"), "-o", "json", cwd=tmp_path, env=env).stdout)
    yard = JobYard(ray_server, tmp_path)
    pidfiles = [room / f"part-{i}.csv.pid" for i in range(2)]
    wait_until(lambda: all(p.exists() and p.read_text() for p in pidfiles), "both workers to score", timeout=120)
    engine = _node_of(yard.log(job["name"]), "ray-small")
    nodes = {p.name: cluster.node_of(int(p.read_text())) for p in pidfiles}
    victim, node = next((name, n) for name, n in nodes.items() if n is not None and str(n.node_id) != engine)
    killed, orphan = str(node.node_id), int((room / victim).read_text())
    cluster.kill(node)
    wait_until(lambda: "it is restarted" in yard.log(job["name"]), "the engine to replace the lost worker", 120)
    assert "was lost with its Ray node or actor" in yard.log(job["name"])
    if alive(orphan):  # the node's machine is "gone"; here its orphaned worker lives on: end it
        os.kill(orphan, 9)
    (room / "go").write_text("go")
    done = yard.wait(job["name"], timeout=240)
    log = yard.log(job["name"])
    assert done["status"] == "Completed", log
    replaced = re.findall(r"batch worker \d+ on Ray node (\w+)", log.split("was lost with its Ray node", 1)[1])
    assert replaced and killed not in replaced, log  # the replacement went to a node still there
    run_cli("job", "download", "-n", job["name"], "--output-name", "score", "--download-path", str(tmp_path / "out"),
            env=env)
    rows = (tmp_path / "out" / "named-outputs" / "score" / "rows.txt").read_text().splitlines()
    raylets = {p.process.pid: str(n.node_id) for n in cluster.nodes for p in n.all_processes.get("raylet", [])}
    scored_on = {}
    for row in rows:
        name, *chain = row.split()
        [scored_on[name]] = [raylets[int(pid)] for pid in chain if int(pid) in raylets]
    assert sorted(scored_on) == ["part-0.csv", "part-1.csv"], rows
    assert scored_on[victim.removesuffix(".pid")] != killed and set(scored_on.values()) <= cluster.worker_ids, rows


def test_a_worker_node_killed_mid_step_fails_the_step_by_the_job_rules(
        cluster: RayCluster, ray_server: ServerProcess, tmp_path: Path) -> None:
    """The worker node running a step gets SIGKILL; another node takes it back after."""
    yard = JobYard(ray_server, tmp_path)
    pidfile = tmp_path / "pid"
    job = yard.submit(write(tmp_path / "long.yml", """\
        command: echo $$ > @PIDFILE@; sleep 120
        environment: @ENV@
        compute: azureml:ray-small
        """, PIDFILE=pidfile))
    wait_until(lambda: pidfile.exists() and pidfile.read_text().strip() != "", "the step to start", timeout=60)
    pid = int(pidfile.read_text())
    node = cluster.node_of(pid)
    assert node is not None, "the step should run on a worker node (the head has no CPU)"
    killed = str(node.node_id)
    cluster.kill(node)
    try:
        done = yard.wait(job["name"], timeout=90)
        assert done["status"] == "Failed" and "the Ray node or actor running the step was lost" in done["error"], done
        assert "run the job again" in done["error"] and not done.get("outputs")
        if alive(pid):  # the node's machine is "gone"; here its orphaned step lives on: end it
            os.kill(pid, 9)

        again = yard.completed(write(tmp_path / "short.yml", """\
            command: echo placed on the surviving node
            environment: @ENV@
            compute: azureml:ray-small
            """))
        log = yard.log(again["name"])
        assert "placed on the surviving node" in log and _node_of(log, "ray-small") != killed, log
    finally:
        cluster.add_worker()  # the module's cluster is whole again for whatever runs after


# each process says where it runs (its variables and its pid), then takes part in a real gloo all-reduce
SPREAD_ALL_REDUCE = """\
import json
import os

import torch
import torch.distributed as dist

keys = ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK", "LOCAL_RANK", "NODE_RANK", "MLFLOW_RUN_ID")
print("ENV " + json.dumps({k: os.environ.get(k) for k in keys}), flush=True)
dist.init_process_group("gloo", init_method="env://")
t = torch.tensor([float(dist.get_rank() + 1)])
dist.all_reduce(t)
print(f"RANK {dist.get_rank()} OF {dist.get_world_size()} SUM {t.item():.0f}", flush=True)
dist.destroy_process_group()
"""
INSTANCE_LINE = re.compile(r"\[mlyard\] compute ray-small: Ray actor on node (\S+) \(node id (\w+)\), pid \d+, "
                           r".*; instance (\d) of 2")


def test_a_distributed_steps_instances_run_on_separate_nodes_and_all_reduce_across_them(
        cluster: RayCluster, ray_server: ServerProcess, tmp_path: Path) -> None:
    """pytorch, 2 instances x 2 processes on ray-small: instance 0 and instance 1 on the two worker nodes (each holds
    one node's only CPU), MASTER_ADDR instance 0's node, and a gloo all-reduce across the four ranks."""
    pytest.importorskip("torch", reason="torch is not installed (pip install torch==2.13.0 takes the CPU build)")
    yard = JobYard(ray_server, tmp_path)
    write(tmp_path / "src" / "allreduce.py", SPREAD_ALL_REDUCE)
    done = yard.run(write(tmp_path / "spread.yml", """\
        code: src
        command: python allreduce.py
        environment: @ENV@
        compute: azureml:ray-small
        distribution: {type: pytorch, process_count_per_instance: 2}
        resources: {instance_count: 2}
        """))
    log = yard.log(done["name"])
    assert done["status"] == "Completed", log
    placed = {int(i): (ip, node) for ip, node, i in INSTANCE_LINE.findall(log)}
    assert sorted(placed) == [0, 1], log
    assert placed[0][1] != placed[1][1] and {placed[0][1], placed[1][1]} <= cluster.worker_ids, log
    envs = sorted((json.loads(m) for m in re.findall(r"ENV (\{.*?\})", log)), key=lambda e: int(e["RANK"]))
    assert [(e["RANK"], e["LOCAL_RANK"], e["NODE_RANK"], e["WORLD_SIZE"]) for e in envs] == \
        [("0", "0", "0", "4"), ("1", "1", "0", "4"), ("2", "0", "1", "4"), ("3", "1", "1", "4")], log
    # one master, on instance 0's node as Ray reports its IP, and one MLflow run for the job
    assert {(e["MASTER_ADDR"], e["MASTER_PORT"], e["MLFLOW_RUN_ID"]) for e in envs} == \
        {(placed[0][0], envs[0]["MASTER_PORT"], done["name"])}, log
    # four processes on two nodes share one log, and torch's C++ warnings may land inside a line
    found = sorted(set(re.findall(r"RANK (\d) OF (\d) SUM (\d+)", log)))
    assert found == [(str(r), "4", "10") for r in range(4)], log  # 1 + 2 + 3 + 4 on every rank

    # more instances than the cluster has nodes able to hold one: refused at once, saying what to do
    refused = yard.run(write(tmp_path / "too-many.yml", """\
        command: echo never placed
        environment: @ENV@
        compute: azureml:ray-small
        distribution: {type: pytorch}
        resources: {instance_count: 5}
        """))
    assert refused["status"] == "Failed" and "asks for 5 instances" in refused["error"], refused
    assert re.search(r"the cluster has [23] such node\(s\); lower resources.instance_count", refused["error"]), refused


def test_a_failing_rank_on_one_node_stops_every_instance_and_fails_the_step(
        cluster: RayCluster, ray_server: ServerProcess, tmp_path: Path) -> None:
    """mpi, 2 instances x 2 processes: rank 3 fails once all four run; the step fails naming its instance and no
    process of any instance is left behind."""
    yard = JobYard(ray_server, tmp_path)
    room = tmp_path / "room"
    room.mkdir()
    done = yard.run(write(tmp_path / "fails.yml", """\
        command: >-
          echo $$ > @ROOM@/$OMPI_COMM_WORLD_RANK.pid;
          for i in $(seq 1200); do [ $(ls @ROOM@ | wc -l) -ge 4 ] && break; sleep 0.1; done;
          if [ "$OMPI_COMM_WORLD_RANK" = 3 ]; then exit 4; fi;
          exec sleep 300
        environment: @ENV@
        compute: azureml:ray-small
        distribution: {type: mpi, process_count_per_instance: 2}
        resources: {instance_count: 2}
        """, ROOM=room))
    log = yard.log(done["name"])
    assert done["status"] == "Failed", log
    assert re.search(r"instance 1 of 2 \(Ray node \w+\) exited with code 4; the other instances were stopped",
                     done["error"]), done
    pids = sorted(int(p.read_text()) for p in room.iterdir())
    assert len(pids) == 4, log
    wait_gone(pids, "every rank of the failed step")


def test_a_timeout_a_cancel_or_a_lost_node_stops_every_instance_of_a_distributed_step(
        cluster: RayCluster, ray_server: ServerProcess, tmp_path: Path) -> None:
    """2 instances x 1 process: limits.timeout and a cancel kill both nodes' processes; instance 1's node gets
    SIGKILL and the step fails saying so, instance 0's process stopped (a worker is added back after)."""
    yard = JobYard(ray_server, tmp_path)
    spec = """\
        command: echo $$ > @ROOM@/$NODE_RANK.pid; exec sleep 300
        environment: @ENV@
        compute: azureml:ray-small
        distribution: {type: pytorch}
        resources: {instance_count: 2}
        limits: {timeout: @TIMEOUT@}
        """
    timed_room = tmp_path / "timed"
    timed_room.mkdir()
    timed = yard.run(write(tmp_path / "timed.yml", spec, ROOM=timed_room, TIMEOUT=20))
    assert timed["status"] == "Canceled" and "timed out after 20 s" in (timed["error"] or ""), timed
    pids = [int(p.read_text()) for p in sorted(timed_room.iterdir())]
    assert len(pids) == 2, yard.log(timed["name"])
    wait_gone(pids, "the timed-out step's instances")

    def started(name: str) -> tuple[dict[str, Any], list[int]]:
        room = tmp_path / name
        room.mkdir()
        job = yard.submit(write(tmp_path / f"{name}.yml", spec, ROOM=room, TIMEOUT=600))
        pidfiles = [room / "0.pid", room / "1.pid"]
        wait_until(lambda: all(p.exists() and p.read_text().strip() for p in pidfiles), "both instances to start",
                   120)
        return job, [int(p.read_text()) for p in pidfiles]

    job, pids = started("canceled")
    yard.client.jobs.cancel(job["name"])
    assert yard.wait(job["name"])["status"] == "Canceled"
    wait_gone(pids, "the canceled step's instances")

    job, (first, second) = started("lost")
    node = cluster.node_of(second)
    assert node is not None and cluster.node_of(first) is not node, "the instances should run on two worker nodes"
    cluster.kill(node)
    try:
        done = yard.wait(job["name"], timeout=120)
        assert done["status"] == "Failed", done
        assert re.search(r"the Ray node or actor running instance 1 of 2 \(Ray node \w+\) was lost", done["error"])
        assert "the other instances were stopped" in done["error"], done
        wait_gone([first], "instance 0's process")
        if alive(second):  # the node's machine is "gone"; here its orphaned process lives on: end it
            os.kill(second, 9)
    finally:
        cluster.add_worker()  # the module's cluster is whole again for whatever runs after
