"""``mlyard workspace gc`` on a workspace a team used: the attrition example, failed jobs, unused environments,
deleted runs and orphan uploads. gc frees exactly those bytes, the example's model still serves and its runs still
read through the MLflow client; a gc killed with SIGKILL leaves ``workspace check`` clean and the next one finishes.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration.test_attrition_pipeline import DEPLOY, MODEL, NO_TELEMETRY, REQUESTS, TRAIN, _invoke, _pipeline
from tests.support.server import ServerProcess, free_port, run_cli

pytestmark = pytest.mark.slow
DAY = 86400


def _size(folder: Path, skip: str | None = None) -> int:
    total = 0
    for root, dirs, names in os.walk(folder):
        if skip in dirs and Path(root) == folder:
            dirs.remove(skip)
        total += sum(os.lstat(os.path.join(root, n)).st_size for n in names)
    return total


def _gc(server: ServerProcess, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run_cli("--workspace", str(server.workspace), "workspace", "gc", *args, check=check)


def _check(server: ServerProcess) -> subprocess.CompletedProcess[str]:
    return run_cli("--workspace", str(server.workspace), "workspace", "check", check=False)


def _upload_orphan(server: ServerProcess, files: dict[str, bytes]) -> str:
    """Files put under LocalUpload/<tree>/ through the API, as a client whose create never came would leave them."""
    tree = hashlib.sha256(json.dumps(sorted(files)).encode() + os.urandom(8)).hexdigest()
    for rel, content in files.items():
        r = httpx.put(f"{server.url}/api/v1/datastores/workspaceblobstore/paths/LocalUpload/{tree}/{rel}",
                      content=content, headers={**server.headers(), "X-Mlyard-Sha256": hashlib.sha256(content)
                                                .hexdigest()})
        assert r.status_code == 201, r.text
    return tree


def _fake_env(server: ServerProcess, key: str, size: int, used_days_ago: float) -> int:
    env = server.workspace / ".mlyard" / "envs" / key
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").write_bytes(b"\0" * size)
    (env / "mlyard-env.json").write_text("{}")
    stamp = time.time() - used_days_ago * DAY
    os.utime(env / "mlyard-env.json", (stamp, stamp))
    return _size(env)


@pytest.fixture
def used_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ServerProcess]:
    """A server whose mlyard.yaml lets failed jobs, deleted runs and orphan uploads go at once."""
    server = ServerProcess(tmp_path / "workspace", free_port()).init()
    config_file = server.workspace / "mlyard.yaml"
    config = yaml.safe_load(config_file.read_text())
    config.update(gc_failed_jobs_days=0, gc_deleted_runs_days=0, gc_orphan_uploads_days=0)
    config_file.write_text(yaml.safe_dump(config))
    for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
        monkeypatch.delenv(key)
    for key, value in {**NO_TELEMETRY, "MLFLOW_TRACKING_TOKEN": server.token}.items():
        monkeypatch.setenv(key, value)
    server.start()
    yield server
    server.stop()


def _deleted_run(server: ServerProcess, tmp_path: Path, name: str, content: bytes) -> str:
    from mlflow import MlflowClient

    client = MlflowClient(server.url)
    exp = client.get_experiment_by_name("scratch") or client.get_experiment(client.create_experiment("scratch"))
    run = client.create_run(exp.experiment_id, run_name=name)
    artifact = tmp_path / f"{name}.bin"
    artifact.write_bytes(content)
    client.log_artifact(run.info.run_id, str(artifact))
    client.log_metric(run.info.run_id, "loss", 0.5)
    client.set_terminated(run.info.run_id)
    client.delete_run(run.info.run_id)
    return run.info.run_id


def test_gc_frees_what_it_should_and_the_attrition_example_still_serves(used_server: ServerProcess,
                                                                          tmp_path: Path) -> None:
    pytest.importorskip("sklearn", reason="the attrition example needs scikit-learn (pip install -e '.[dev]')")
    from mlflow import MlflowClient

    server, env = used_server, used_server.env()
    run_cli("data", "create", "-f", str(TRAIN / "data.yml"), env=env)
    run_cli("environment", "create", "-f", str(TRAIN / "train-env.yml"), env=env)
    assert _pipeline(server, "attrition-1", tmp_path)["status"] == "Completed"
    endpoint = json.loads(run_cli("online-endpoint", "create", "-f", str(DEPLOY / "online-endpoint.yml"), "-o", "json",
                                  env=env).stdout)["name"]
    run_cli("online-deployment", "create", "-n", "blue", "--endpoint-name", endpoint,
            "-f", str(DEPLOY / "online-deployment.yml"), "--all-traffic", env=env, timeout=300)
    answer = _invoke(server, endpoint, REQUESTS[0], "blue")

    # a failed job: its code snapshot goes, its log stays
    src = tmp_path / "failing" / "src"
    src.mkdir(parents=True)
    (src / "main.py").write_text("import sys\nprint('giving up')\nsys.exit(3)\n")
    (src / "weights.bin").write_bytes(b"w" * 40_000)
    (tmp_path / "failing" / "job.yml").write_text(yaml.safe_dump({
        "$schema": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json", "command": "python main.py",
        "code": "./src", "environment": "azureml:attrition-train-env@latest", "experiment_name": "failures"}))
    failed = run_cli("job", "create", "-f", str(tmp_path / "failing" / "job.yml"), "--name", "failing", "--stream",
                     env=env, check=False)
    assert failed.returncode != 0
    job_dir = server.workspace / ".mlyard" / "jobs" / "failing"
    failed_bytes = _size(job_dir, skip="user_logs")
    assert failed_bytes >= 40_000

    old_env = _fake_env(server, "a" * 64, 60_000, used_days_ago=45)
    _fake_env(server, "b" * 64, 6_000, used_days_ago=2)
    deleted = [_deleted_run(server, tmp_path, f"scratch-{i}", bytes([i]) * 25_000) for i in range(2)]
    _upload_orphan(server, {"x/part-0.bin": b"0" * 30_000, "x/part-1.bin": b"1" * 7_000})

    plan = json.loads(_gc(server, "-o", "json").stdout)
    assert plan["removed"] is False
    assert {k: v["bytes"] for k, v in plan["by_kind"].items()} == {
        "failed job folder": failed_bytes, "environment": old_env, "deleted run": 50_000, "orphan upload": 37_000}
    assert sorted(i["what"] for i in plan["items"] if i["kind"] == "deleted run")[0].startswith("run ")
    assert _check(server).returncode == 0  # a dry run removes nothing

    done = json.loads(_gc(server, "--yes", "-o", "json").stdout)
    assert done["removed"] is True and done["bytes"] == plan["bytes"] == failed_bytes + old_env + 50_000 + 37_000
    assert json.loads(_gc(server, "-o", "json").stdout)["items"] == []
    checked = _check(server)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # what was freed is gone; the failed job's log is still there
    assert (job_dir / "user_logs" / "std_log.txt").read_text().count("giving up") == 1
    assert [p.name for p in job_dir.iterdir()] == ["user_logs"]
    assert sorted(p.name[:1] for p in (server.workspace / ".mlyard" / "envs").iterdir() if p.name != ".locks") == ["b"]
    client = MlflowClient(server.url)
    for run_id in deleted:
        with pytest.raises(Exception, match="(?i)not found|does not exist|no run"):
            client.get_run(run_id)
    # the example is whole: the model serves the same answer, its runs and model read through the MLflow client
    assert _invoke(server, endpoint, REQUESTS[0], "blue") == answer
    version = client.get_model_version(MODEL, "1")
    siblings = {r.data.tags["mlyard.step"]: r for r in client.search_runs(
        [client.get_run(version.run_id).info.experiment_id], "tags.mlflow.parentRunId = 'attrition-1'")}
    assert {"train_accuracy", "train_auc"} <= set(siblings["train_model"].data.metrics)
    import mlflow

    mlflow.set_tracking_uri(server.url)
    model_dir = Path(mlflow.artifacts.download_artifacts(f"models:/{MODEL}/1", dst_path=str(tmp_path / "model")))
    assert (model_dir / "MLmodel").is_file()


def test_a_gc_killed_half_way_leaves_check_clean_and_the_next_gc_finishes(used_server: ServerProcess,
                                                                          tmp_path: Path) -> None:
    server = used_server
    for i in range(150):
        _upload_orphan(server, {f"f{i}/a.bin": b"a" * 2000, f"f{i}/b.bin": b"b" * 1000})
    for i in range(15):
        _deleted_run(server, tmp_path, f"r{i}", b"r" * 3000)
    planned = json.loads(_gc(server, "-o", "json").stdout)
    assert planned["bytes"] == 150 * 3000 + 15 * 3000

    proc = subprocess.Popen([sys.executable, "-m", "mlyard", "--workspace", str(server.workspace), "workspace", "gc",
                             "--yes"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    for line in proc.stderr:
        if line.startswith("removed "):
            proc.send_signal(signal.SIGKILL)  # mid-way: after the first item, somewhere in the next
            break
    proc.wait()
    checked = _check(server)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    left: dict[str, Any] = json.loads(_gc(server, "-o", "json").stdout)
    assert left["bytes"] < planned["bytes"]
    assert json.loads(_gc(server, "--yes", "-o", "json").stdout)["bytes"] == left["bytes"]
    assert json.loads(_gc(server, "-o", "json").stdout)["items"] == []
    assert _check(server).returncode == 0
    assert not any((server.workspace / "artifacts" / "workspaceblobstore" / "LocalUpload").iterdir())


def test_the_server_runs_gc_itself_when_gc_interval_hours_is_set(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "workspace", free_port()).init()
    config_file = server.workspace / "mlyard.yaml"
    config = yaml.safe_load(config_file.read_text())
    config.update(gc_orphan_uploads_days=0, gc_interval_hours=0.0005)  # every 1.8 s
    config_file.write_text(yaml.safe_dump(config))
    server.start()
    try:
        tree = _upload_orphan(server, {"x/a.bin": b"a" * 100})
        folder = server.workspace / "artifacts" / "workspaceblobstore" / "LocalUpload" / tree
        assert folder.exists()
        for _ in range(600):  # until the server's next round has run
            if not folder.exists():
                break
            time.sleep(0.1)
        assert not folder.exists()
    finally:
        server.stop()
    assert _check(server).returncode == 0
