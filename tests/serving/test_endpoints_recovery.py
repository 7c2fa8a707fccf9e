"""Deployments keep answering while parts fail: a killed worker comes back, a rolling update fails no request,
a restarted server brings its deployments back, a mirror gets its copies. Real server, CLI and workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess, free_port, run_cli, worker_pids

pytestmark = pytest.mark.slow

EP = "recover-ep"
REQUEST = {"input_data": [[1.0, 2.0], [8.0, 9.0]]}
POLL_S = 0.05
MAX_POLLS = 1200  # bounds every wait below (a minute at most)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = tmp_path_factory.mktemp("recover")
    proc = ServerProcess(root / "workspace", free_port()).init().start()
    import mlflow.sklearn
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    frame = pd.DataFrame({"a": [1.0, 2.0, 8.0, 9.0], "b": [2.0, 1.0, 9.0, 8.0]})
    mlflow.sklearn.save_model(LogisticRegression().fit(frame, [0, 0, 1, 1]), str(root / "model"),
                              serialization_format="pickle")
    (root / "model.yml").write_text("name: rec\nversion: 1\ntype: mlflow_model\npath: ./model\n")
    run_cli("model", "create", "-f", str(root / "model.yml"), env=proc.env())
    (root / "ep.yml").write_text(f"name: {EP}\n")
    run_cli("online-endpoint", "create", "-f", str(root / "ep.yml"), env=proc.env())
    for name in ("main", "shadow"):
        (root / f"{name}.yml").write_text(
            f"name: {name}\nendpoint_name: {EP}\nmodel: azureml:rec:1\ninstance_type: Standard_DS3_v2\n"
            "instance_count: 1\nenvironment_variables:\n  WORKER_COUNT: '2'\nrequest_settings:\n"
            "  max_concurrent_requests_per_instance: 4\n")
    run_cli("online-deployment", "create", "-f", str(root / "main.yml"), "--all-traffic", env=proc.env())
    yield proc
    proc.stop()


def _key(server: ServerProcess) -> str:
    creds = run_cli("online-endpoint", "get-credentials", "-n", EP, "-o", "json", env=server.env())
    return str(json.loads(creds.stdout)["primaryKey"])


def _score(client: httpx.Client, server: ServerProcess, key: str, deployment: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} | ({"azureml-model-deployment": deployment} if deployment else {})
    return client.post(f"{server.url}/endpoints/{EP}/score", json=REQUEST, headers=headers, timeout=30)


def _metric(server: ServerProcess, name: str, **labels: str) -> float:
    text = httpx.get(f"{server.url}/metrics", headers=server.headers(), timeout=10).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_killed_worker_is_replaced_and_no_request_fails(server: ServerProcess) -> None:
    key = _key(server)
    before = worker_pids(server, EP, "main")
    assert len(before) == 2
    os.kill(before[0], signal.SIGKILL)
    statuses = []
    with httpx.Client() as client:
        for _ in range(MAX_POLLS):
            statuses.append(_score(client, server, key).status_code)
            now = worker_pids(server, EP, "main")
            if len(now) == 2 and before[0] not in now and statuses[-1] == 200:
                break
            time.sleep(POLL_S)
    assert set(statuses) == {200}, statuses  # the other worker answered meanwhile
    assert len(worker_pids(server, EP, "main")) == 2 and before[0] not in worker_pids(server, EP, "main")
    assert _metric(server, "mlyard_endpoint_worker_restarts_total", endpoint=EP, deployment="main") >= 1


def test_hung_worker_is_killed_and_replaced(server: ServerProcess) -> None:
    """A worker that stops answering its liveness probe (here: SIGSTOP) leaves the router's choice, then is replaced."""
    root = server.workspace.parent
    (root / "hang.yml").write_text(
        f"name: hang\nendpoint_name: {EP}\nmodel: azureml:rec:1\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n"
        "liveness_probe:\n  period: 1\n  timeout: 1\n  failure_threshold: 2\n")
    run_cli("online-deployment", "create", "-f", str(root / "hang.yml"), env=server.env())
    [stuck] = worker_pids(server, EP, "hang")
    os.kill(stuck, signal.SIGSTOP)
    key = _key(server)
    with httpx.Client() as client:
        for _ in range(MAX_POLLS):
            now = worker_pids(server, EP, "hang")
            if now and stuck not in now and _score(client, server, key, deployment="hang").status_code == 200:
                break
            time.sleep(POLL_S)
    assert stuck not in worker_pids(server, EP, "hang")
    with httpx.Client() as client:
        assert _score(client, server, key, deployment="hang").status_code == 200
    run_cli("online-deployment", "delete", "-n", "hang", "-e", EP, "--yes", env=server.env())


def test_rolling_update_fails_no_request(server: ServerProcess) -> None:
    key = _key(server)
    statuses: list[int] = []
    done = threading.Event()

    def load() -> None:
        with httpx.Client() as client:
            while not done.is_set() and len(statuses) < 20_000:
                statuses.append(_score(client, server, key).status_code)

    old = worker_pids(server, EP, "main")
    thread = threading.Thread(target=load)
    thread.start()
    try:
        run_cli("online-deployment", "update", "-n", "main", "-e", EP, "--set", "instance_count=2", env=server.env())
    finally:
        done.set()
        thread.join()
    assert statuses and set(statuses) == {200}, [s for s in statuses if s != 200][:5]
    now = worker_pids(server, EP, "main")
    assert len(now) == 4 and not set(now) & set(old)


def test_mirror_gets_copies_and_the_caller_gets_the_live_answer(server: ServerProcess) -> None:
    root = server.workspace.parent
    run_cli("online-deployment", "create", "-f", str(root / "shadow.yml"), env=server.env())
    run_cli("online-endpoint", "update", "-n", EP, "--mirror-traffic", "shadow=50", env=server.env())
    key = _key(server)
    with httpx.Client() as client:
        served = {_score(client, server, key).headers["azureml-model-deployment"] for _ in range(200)}
    assert served == {"main"}
    mirrored = 0.0
    for _ in range(MAX_POLLS):  # copies are fire-and-forget: wait until they are counted
        mirrored = _metric(server, "mlyard_endpoint_mirrored_requests_total", endpoint=EP, deployment="shadow")
        if mirrored >= 50:
            break
        time.sleep(POLL_S)
    # 200 draws at p=0.5: at least 50 copies is more than 7 standard deviations below the mean
    assert mirrored >= 50
    assert _metric(server, "mlyard_endpoint_requests_total", endpoint=EP, deployment="main", status="200") >= 200
    run_cli("online-endpoint", "update", "-n", EP, "--mirror-traffic", "shadow=0", env=server.env())


def _workers(server: ServerProcess, deployment: str) -> list[dict[str, Any]]:
    url = f"{server.url}/api/v1/online-endpoints/{EP}/deployments/{deployment}"
    workers: list[dict[str, Any]] = httpx.get(url, headers=server.headers(), timeout=30).json()["workers"]
    return workers


def test_load_from_another_process_survives_a_kill_and_a_rolling_update(server: ServerProcess) -> None:
    """30 s of load from a separate client process: a worker SIGKILLed at 5 s costs under 1% of the requests and
    is replaced; a rolling update from 15 s fails none. The deployment batches, so the batch-size metric fills."""
    root = server.workspace.parent
    (root / "load.yml").write_text(
        f"name: load\nendpoint_name: {EP}\nmodel: azureml:rec:1\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n"
        "environment_variables:\n  WORKER_COUNT: '2'\n  MLYARD_BATCH_MAX_SIZE: '8'\nrequest_settings:\n"
        "  max_concurrent_requests_per_instance: 8\n")
    run_cli("online-deployment", "create", "-f", str(root / "load.yml"), env=server.env())
    out = root / "timeline.json"
    headers = {"Authorization": f"Bearer {_key(server)}", "azureml-model-deployment": "load"}
    config = {"url": f"{server.url}/endpoints/{EP}/score", "body": REQUEST, "clients": 8, "seconds": 30,
              "out": str(out), "headers": headers}
    load = subprocess.Popen([sys.executable, "-m", "tests.support.load_client", json.dumps(config)],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    try:
        assert load.stdout is not None and load.stdout.readline().strip() == "started"
        begun = time.time()
        time.sleep(max(0.0, begun + 5 - time.time()))
        victim = _workers(server, "load")[0]
        os.kill(victim["pid"], signal.SIGKILL)
        killed_at = time.time()
        back_after = None
        for _ in range(MAX_POLLS):
            workers = _workers(server, "load")
            if len(workers) == 2 and victim["pid"] not in [w["pid"] for w in workers] \
                    and all(w["state"] == "ready" for w in workers):
                back_after = time.time() - killed_at
                break
            time.sleep(POLL_S)
        assert back_after is not None, _workers(server, "load")
        print(f"killed worker replaced and ready after {back_after:.2f} s")
        time.sleep(max(0.0, begun + 15 - time.time()))
        update_at = time.time()
        run_cli("online-deployment", "update", "-n", "load", "-e", EP, "--set", "instance_count=2", env=server.env())
        assert load.wait(timeout=120) == 0
    finally:
        if load.poll() is None:
            load.kill()
    timeline = json.loads(out.read_text())
    results = [(timeline["wall_start"] + t, status) for t, status in timeline["results"]]
    failed = [(t, status) for t, status in results if status != 200]
    print(f"{len(failed)} of {len(results)} requests failed")
    assert len(results) > 1000  # 30 s of eight clients
    assert len(failed) < len(results) / 100, (len(failed), len(results), failed[:10], timeline["errors"])
    assert [f for f in failed if f[0] >= update_at] == []  # the rolling update failed nothing
    assert len(_workers(server, "load")) == 4 and victim["pid"] not in worker_pids(server, EP, "load")
    assert _metric(server, "mlyard_endpoint_batch_size_count", endpoint=EP, deployment="load") > 0
    run_cli("online-deployment", "delete", "-n", "load", "-e", EP, "--yes", env=server.env())


def test_server_restart_brings_deployments_back(server: ServerProcess) -> None:
    server.stop()
    assert worker_pids(server, EP, "main") == [] and worker_pids(server, EP, "shadow") == []
    server.start()
    key = _key(server)
    statuses: tuple[int, int] = (0, 0)
    with httpx.Client() as client:
        for _ in range(MAX_POLLS):  # restore runs in the background: the API answers at once
            statuses = (_score(client, server, key).status_code,
                        _score(client, server, key, deployment="shadow").status_code)
            if statuses == (200, 200):
                break
            assert set(statuses) <= {200, 503}  # while the workers load: a prompt 503, never a hang
            time.sleep(POLL_S)
    assert statuses == (200, 200)
    assert len(worker_pids(server, EP, "main")) == 4 and len(worker_pids(server, EP, "shadow")) == 2


SLOW_SCRIPT = '''import json
import os
import time


def init():
    pass


def run(raw_data):
    data = json.loads(raw_data)
    for _ in range(400):  # until the test says go (or 20 s)
        if not data.get("wait_for") or os.path.exists(data["wait_for"]):
            break
        time.sleep(0.05)
    time.sleep(data.get("sleep", 0))
    return {"cwd": os.path.basename(os.getcwd())}
'''


def test_scoring_script_limits_408_and_429(server: ServerProcess) -> None:
    root = server.workspace.parent
    code = root / "slow-code"
    code.mkdir()
    (code / "score.py").write_text(SLOW_SCRIPT)
    (root / "slow.yml").write_text(
        f"name: slow\nendpoint_name: {EP}\nmodel: azureml:rec:1\ncode_configuration:\n  code: ./slow-code\n"
        "  scoring_script: score.py\nenvironment:\n  image: mcr.microsoft.com/azureml/minimal:latest\n"
        "instance_type: Standard_DS3_v2\ninstance_count: 1\nrequest_settings:\n  request_timeout_ms: 5000\n"
        "  max_concurrent_requests_per_instance: 1\n")
    run_cli("online-deployment", "create", "-f", str(root / "slow.yml"), env=server.env())
    key = _key(server)
    flag = root / "go"
    url = f"{server.url}/endpoints/{EP}/score"
    headers = {"Authorization": f"Bearer {key}", "azureml-model-deployment": "slow"}
    with httpx.Client() as client:
        assert client.post(url, json={}, headers=headers).json() == {"cwd": "slow-code"}  # code folder is the cwd
        first: list[httpx.Response] = []
        waiting = threading.Thread(target=lambda: first.append(
            httpx.post(url, json={"wait_for": str(flag)}, headers=headers, timeout=30)))
        waiting.start()
        try:
            for _ in range(MAX_POLLS):
                if _metric(server, "mlyard_endpoint_requests_in_flight", endpoint=EP, deployment="slow") >= 1:
                    break
                time.sleep(POLL_S)
            busy = client.post(url, json={}, headers=headers)
        finally:
            flag.touch()
            waiting.join()
        assert busy.status_code == 429 and "max_concurrent_requests_per_instance" in busy.json()["error"]["message"]
        assert first[0].status_code == 200
        late = client.post(url, json={"sleep": 8}, headers=headers, timeout=30)
        assert late.status_code == 408 and "5000 ms" in late.json()["error"]["message"]
        assert late.headers["azureml-model-deployment"] == "slow"
