"""The event log through a real server: what each change writes, paging, filters, the live stream, the CLI.

One server serves the module; each test uses names of its own and reads events by subject or from the
log's newest id before it acted, so the tests do not see each other's events.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mlyard.client import MlyardClient
from mlyard.client.events import parse_frames
from tests.support.jobs import CURATED, JobYard, steps_of, write
from tests.support.server import ServerProcess, run_cli

WAIT_S = 60  # a generous bound on waiting for something that must happen, not a measure of speed


@pytest.fixture(scope="module")
def client(server: ServerProcess) -> Iterator[MlyardClient]:
    with MlyardClient(server.url, server.token) as c:
        yield c


def newest_id(client: MlyardClient) -> int:
    events = client.events.list(newest=True, max_results=1)["events"]
    return int(events[-1]["id"]) if events else 0


def events_of(client: MlyardClient, subject: str, *types: str, after: int = 0) -> list[dict[str, Any]]:
    return list(client.events.iterate(types=list(types) or None, subject=subject, after=after))


def make_data(client: MlyardClient, folder: Path, name: str, version: str = "1") -> dict[str, Any]:
    path = folder / f"{name}-{version}.csv"
    path.write_text(f"a,b\n{version},2\n")
    return client.data.create({"name": name, "version": version, "type": "uri_file", "path": str(path)})


# --- what each change writes -----------------------------------------------------------------------------


def test_a_command_job_writes_each_status_change_in_order(server: ServerProcess, tmp_path: Path) -> None:
    yard = JobYard(server, tmp_path)
    path = write(tmp_path / "job.yml", """\
        command: python -c "print('hello')"
        environment: @ENV@
        display_name: events-hello
        """)
    job = yard.completed(path, experiment_name="events-tests")
    events = events_of(yard.client, job["name"], "job.status_changed")
    statuses = [e["data"]["status"] for e in events]
    assert statuses == ["Queued", "Preparing", "Running", "Finalizing", "Completed"]
    assert [e["data"]["previous"] for e in events] == ["NotStarted", *statuses[:-1]]
    first = events[0]
    assert first["subject"] == job["name"] and first["type"] == "job.status_changed"
    assert first["actor"] == job["created_by"] and {e["actor"] for e in events[1:]} == {"mlyard-job-runner"}
    assert first["data"] | {"status": "Queued"} == {
        "name": job["name"], "parent": None, "step": None, "type": "command", "status": "Queued",
        "previous": "NotStarted", "experiment_name": "events-tests", "display_name": "events-hello"}
    assert all("error" not in e["data"] for e in events)
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def test_a_pipeline_and_its_step_each_write_their_own(server: ServerProcess, tmp_path: Path) -> None:
    yard = JobYard(server, tmp_path)
    path = write(tmp_path / "pipeline.yml", """\
        type: pipeline
        jobs:
          hello:
            command: python -c "print('hello')"
            environment: @ENV@
        """)
    job = yard.completed(path)
    step_name = steps_of(job)["hello"]["name"]
    step = events_of(yard.client, step_name, "job.status_changed")
    assert [e["data"]["status"] for e in step][-1] == "Completed"
    assert {(e["subject"], e["data"]["parent"], e["data"]["step"]) for e in step} == {(step_name, job["name"], "hello")}
    top = [e for e in events_of(yard.client, job["name"], "job.status_changed") if e["subject"] == job["name"]]
    assert [e["data"]["status"] for e in top] == ["Queued", "Running", "Completed"]
    assert {e["data"]["type"] for e in top} == {"pipeline"}
    assert top[-1]["id"] > step[-1]["id"]  # the pipeline completes after its step


def test_a_failed_job_says_why_in_its_last_event(server: ServerProcess, tmp_path: Path) -> None:
    yard = JobYard(server, tmp_path)
    path = write(tmp_path / "fail.yml", """\
        command: python -c "import sys; sys.exit(3)"
        environment: @ENV@
        """)
    job = yard.run(path)
    last = events_of(yard.client, job["name"], "job.*")[-1]
    assert last["data"]["status"] == "Failed" and last["data"]["previous"] == "Running"
    assert "exited with code 3" in last["data"]["error"]


def test_a_data_version_writes_its_event(client: MlyardClient, tmp_path: Path, server: ServerProcess) -> None:
    asset = make_data(client, tmp_path, "events-data", "7")
    [event] = events_of(client, "events-data", "data.version_created")
    assert event["subject"] == "events-data:7"
    assert event["actor"] == asset["created_by"]  # the token's user
    assert event["data"] == {"name": "events-data", "version": "7", "type": "uri_file", "path": asset["path"]}
    make_data(client, tmp_path, "events-data", "7")  # the same content again: nothing is created, no event
    assert len(events_of(client, "events-data", "data.version_created")) == 1


def test_a_new_model_writes_created_then_its_version(client: MlyardClient, tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"\x00\x01")
    client.models.create({"name": "events-model", "version": "1", "type": "custom_model", "path": str(folder)})
    client.models.create({"name": "events-model", "version": "2", "type": "custom_model", "path": str(folder),
                          "description": "again"})
    events = events_of(client, "events-model")
    assert [(e["type"], e["subject"]) for e in events] == [
        ("model.created", "events-model"), ("model.version_created", "events-model:1"),
        ("model.version_created", "events-model:2")]
    assert events[1]["data"]["type"] == "custom_model"


def test_mlflow_registered_model_writes_model_created(server: ServerProcess, client: MlyardClient) -> None:
    response = httpx.post(f"{server.url}/api/2.0/mlflow/registered-models/create", headers=server.headers(),
                          json={"name": "events-mlflow", "description": "from mlflow"})
    assert response.status_code == 200, response.text
    [event] = events_of(client, "events-mlflow")
    assert (event["type"], event["data"]["description"]) == ("model.created", "from mlflow")


def test_batch_deployment_create_update_delete(client: MlyardClient, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "MLmodel").write_text("flavors:\n  python_function: {}\n")
    client.models.create({"name": "events-bm", "version": "1", "type": "mlflow_model", "path": str(model)})
    client.batch_endpoints.create({"name": "events-be"})
    spec = {"name": "d1", "endpoint_name": "events-be", "type": "model", "model": "azureml:events-bm:1"}
    client.batch_deployments.create("events-be", spec)
    client.batch_deployments.create("events-be", {**spec, "name": "d2"})
    client.batch_deployments.update("events-be", {**spec, "description": "changed"})
    client.batch_deployments.delete("events-be", "d2")
    events = events_of(client, "events-be", "batch_deployment.*")
    assert [(e["type"], e["subject"]) for e in events] == [
        ("batch_deployment.created", "events-be/d1"), ("batch_deployment.created", "events-be/d2"),
        ("batch_deployment.updated", "events-be/d1"), ("batch_deployment.deleted", "events-be/d2")]
    assert events[0]["data"] == {"endpoint": "events-be", "deployment": "d1", "type": "model",
                                 "model": "events-bm:1"}
    assert events[2]["data"]["previous_model"] == "events-bm:1"
    with pytest.raises(Exception, match="default deployment"):
        client.batch_deployments.delete("events-be", "d1")  # refused: the refusal writes nothing
    assert len(events_of(client, "events-be", "batch_deployment.*")) == 4


def test_online_deployment_and_traffic_change(client: MlyardClient, tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights.txt").write_text("1")
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text("def init():\n    pass\n\n\ndef run(raw):\n    return raw\n")
    client.models.create({"name": "events-om", "version": "1", "type": "custom_model", "path": str(model)})
    client.online_endpoints.create({"name": "events-oe", "auth_mode": "key"})
    client.online_deployments.create("events-oe", {
        "name": "blue", "endpoint_name": "events-oe", "model": "azureml:events-om:1",
        "code_configuration": {"code": str(code), "scoring_script": "score.py"}, "environment": CURATED,
        "instance_type": "Standard_DS3_v2", "instance_count": 1})
    client.online_endpoints.update("events-oe", traffic={"blue": 100})
    client.online_endpoints.update("events-oe", traffic={"blue": 100})  # no change: no event
    client.online_endpoints.delete("events-oe")
    events = events_of(client, "events-oe")
    assert [(e["type"], e["subject"]) for e in events] == [
        ("online_endpoint.created", "events-oe"), ("online_deployment.created", "events-oe/blue"),
        ("online_endpoint.traffic_changed", "events-oe"), ("online_deployment.deleted", "events-oe/blue"),
        ("online_endpoint.deleted", "events-oe")]
    assert events[2]["data"] == {"endpoint": "events-oe", "traffic": {"blue": 100}, "mirror_traffic": {},
                                 "previous_traffic": {}, "previous_mirror_traffic": {}}


# --- reading: pages, filters, bad input --------------------------------------------------------------------


def test_paging_by_cursor_returns_every_event_once(client: MlyardClient, tmp_path: Path) -> None:
    for version in range(1, 6):
        make_data(client, tmp_path, "events-page", str(version))
    ids, cursor, pages = [], 0, 0
    while True:
        page = client.events.list(types=["data.version_created"], subject="events-page", after=cursor,
                                  max_results=2)
        ids += [e["id"] for e in page["events"]]
        pages += 1
        if page["next_cursor"] is None:
            break
        cursor = page["next_cursor"]
    assert len(ids) == 5 and ids == sorted(set(ids)) and pages == 3
    tail = client.events.list(subject="events-page", newest=True, max_results=2)
    assert [e["id"] for e in tail["events"]] == ids[-2:] and tail["next_cursor"] is None


def test_type_prefix_filter(client: MlyardClient, tmp_path: Path) -> None:
    start = newest_id(client)
    make_data(client, tmp_path, "events-prefix")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "w.bin").write_bytes(b"w")
    client.models.create({"name": "events-prefix-m", "version": "1", "type": "custom_model", "path": str(folder)})
    models = list(client.events.iterate(types=["model.*"], after=start))
    assert {e["type"] for e in models} == {"model.created", "model.version_created"}
    both = list(client.events.iterate(types=["model.*", "data.version_created"], after=start))
    assert {e["type"] for e in both} == {"model.created", "model.version_created", "data.version_created"}


@pytest.mark.parametrize(("params", "field"), [
    ({"type": "job.exploded"}, "type"), ({"type": "nothing.*"}, "type"), ({"max_results": "0"}, "max_results"),
    ({"max_results": "1001"}, "max_results"), ({"after": "-1"}, "after"), ({"after": "x"}, "after")])
def test_bad_filters_are_a_clear_400(server: ServerProcess, params: dict[str, str], field: str) -> None:
    paths = ["/api/v1/events"] + (["/api/v1/events/stream"] if field != "max_results" else [])
    for path in paths:
        response = httpx.get(f"{server.url}{path}", params=params, headers=server.headers())
        assert response.status_code == 400, response.text
        assert field in response.json()["error"]["message"]


@pytest.mark.parametrize("header", ["x", "-1", "\u00b2", "9" * 5000])
def test_a_bad_last_event_id_is_a_clear_400(server: ServerProcess, header: str) -> None:
    response = httpx.get(f"{server.url}/api/v1/events/stream",
                         headers={**server.headers(), "Last-Event-ID": header.encode()})
    assert response.status_code == 400 and "Last-Event-ID" in response.json()["error"]["message"]


def test_types_lists_the_catalogue(client: MlyardClient) -> None:
    types = {t["type"]: t["description"] for t in client.events.types()}
    assert "job.status_changed" in types and "online_endpoint.traffic_changed" in types


# --- the live stream -------------------------------------------------------------------------------------


class StreamReader:
    """Reads one SSE connection on a thread; frames arrive on a queue."""

    def __init__(self, server: ServerProcess, headers: dict[str, str] | None = None, **params: Any) -> None:
        self.frames: queue.Queue[dict[str, str]] = queue.Queue()
        self._http = httpx.Client(base_url=server.url, headers={**server.headers(), **(headers or {})},
                                  timeout=httpx.Timeout(5.0, read=None))
        self._params = params
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with self._http.stream("GET", "/api/v1/events/stream", params=self._params) as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                for frame in parse_frames(response.iter_lines()):
                    self.frames.put(frame)
        except httpx.HTTPError:
            pass  # closed by the test
        self.frames.put({"end": "1"})

    def next(self) -> dict[str, str]:
        return self.frames.get(timeout=WAIT_S)

    def next_event(self) -> dict[str, Any]:
        while "data" not in (frame := self.next()):
            assert "end" not in frame, "the stream ended"
        return {"frame_id": frame["id"], "event": frame["event"], **json.loads(frame["data"])}

    def close(self) -> None:
        self._http.close()
        self._thread.join(WAIT_S)


def test_stream_sends_new_events_and_resumes_from_last_event_id(server: ServerProcess, client: MlyardClient,
                                                                 tmp_path: Path) -> None:
    reader = StreamReader(server, type="data.version_created", subject="events-live")
    try:
        opening = reader.next()  # the stream starts at the log's newest event: its id comes first, without data
        assert "data" not in opening and opening["id"].isdigit()
        make_data(client, tmp_path, "events-live", "1")
        first = reader.next_event()
        assert (first["event"], first["subject"]) == ("data.version_created", "events-live:1")
        assert first["frame_id"] == str(first["id"]) and first["id"] > int(opening["id"])
    finally:
        reader.close()
    make_data(client, tmp_path, "events-live", "2")  # while nobody listens
    make_data(client, tmp_path, "events-live", "3")
    resumed = StreamReader(server, headers={"Last-Event-ID": first["frame_id"]}, type="data.*",
                           subject="events-live")
    try:
        assert resumed.next()["id"] == first["frame_id"]
        assert [resumed.next_event()["subject"] for _ in range(2)] == ["events-live:2", "events-live:3"]
    finally:
        resumed.close()


def test_sdk_stream_yields_what_happens(client: MlyardClient, tmp_path: Path) -> None:
    start = newest_id(client)
    got: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        with MlyardClient(client.url, client.transport.http.headers["Authorization"].split()[1]) as own:
            for event in own.events.stream(subject="events-sdk", after=start):
                got.put(event)
                if event["subject"] == "events-sdk:2":
                    return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    make_data(client, tmp_path, "events-sdk", "1")
    make_data(client, tmp_path, "events-sdk", "2")
    assert [got.get(timeout=WAIT_S)["subject"] for _ in range(2)] == ["events-sdk:1", "events-sdk:2"]
    thread.join(WAIT_S)


def test_sdk_stream_resumes_across_a_server_restart(fresh_server: ServerProcess, tmp_path: Path) -> None:
    client = MlyardClient(fresh_server.url, fresh_server.token)
    got: queue.Queue[dict[str, Any]] = queue.Queue()

    def read() -> None:
        with MlyardClient(fresh_server.url, fresh_server.token) as own:
            for event in own.events.stream(types=["data.version_created"], after=0):
                got.put(event)
                if event["subject"] == "events-restart:2":
                    return

    make_data(client, tmp_path, "events-restart", "1")
    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert got.get(timeout=WAIT_S)["subject"] == "events-restart:1"
    fresh_server.stop()
    fresh_server.start()  # the stream ended with the server; the SDK connects again with Last-Event-ID
    make_data(MlyardClient(fresh_server.url, fresh_server.token), tmp_path, "events-restart", "2")
    assert got.get(timeout=WAIT_S)["subject"] == "events-restart:2"  # and not events-restart:1 again
    thread.join(WAIT_S)
    assert got.empty()


def test_stopping_the_server_ends_open_streams(fresh_server: ServerProcess) -> None:
    reader = StreamReader(fresh_server)
    try:
        reader.next()
        assert fresh_server.stop() == -signal.SIGTERM  # uvicorn ends by the signal it was stopped with
        assert reader.next() == {"end": "1"}
    finally:
        reader.close()
    log = fresh_server.log_path.read_text()
    assert "timeout graceful shutdown exceeded" not in log and "Traceback" not in log


# --- the CLI ---------------------------------------------------------------------------------------------


def test_cli_lists_as_table_and_json(server: ServerProcess, client: MlyardClient, tmp_path: Path) -> None:
    make_data(client, tmp_path, "events-cli", "1")
    table = run_cli("events", "--type", "data.*", "--subject", "events-cli", env=server.env()).stdout
    assert "events-cli:1" in table and "data.version_created" in table and "uri_file" in table
    listed = json.loads(run_cli("events", "list", "-s", "events-cli", "-o", "json", env=server.env()).stdout)
    assert [e["subject"] for e in listed] == ["events-cli:1"]
    types = run_cli("events", "types", "-o", "tsv", env=server.env()).stdout
    assert "job.status_changed\t" in types
    bad = run_cli("events", "--type", "job.exploded", env=server.env(), check=False)
    assert bad.returncode == 1 and "events types" in bad.stderr and "Traceback" not in bad.stderr
    queried = run_cli("events", "--follow", "--query", "[].id", env=server.env(), check=False)
    assert queried.returncode == 2 and "--query applies to a listing" in queried.stderr


def _ctrl_c_as_in_a_terminal() -> None:
    """In the child: SIGINT's default action, as a command started from a terminal has it. A child inherits an ignored
    SIGINT (libraries started earlier in the test process may ignore it), and Python then leaves it ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_cli_follow_prints_the_tail_then_live_events_and_ctrl_c_exits_0(server: ServerProcess,
                                                                       client: MlyardClient,
                                                                       tmp_path: Path) -> None:
    make_data(client, tmp_path, "events-follow", "1")
    proc = subprocess.Popen([sys.executable, "-m", "mlyard", "events", "--follow", "-o", "json", "-s",
                             "events-follow"], env={**os.environ, **server.env()}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=_ctrl_c_as_in_a_terminal)
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["subject"] == "events-follow:1"  # the tail
        make_data(client, tmp_path, "events-follow", "2")
        assert json.loads(proc.stdout.readline())["subject"] == "events-follow:2"  # live
        proc.send_signal(signal.SIGINT)
        assert proc.wait(WAIT_S) == 0
        assert proc.stderr is not None and proc.stderr.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
