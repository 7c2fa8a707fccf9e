"""Data collection: answered requests' inputs, outputs, bodies and answers as JSONL in Azure's layout."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mlyard.serving.collector import DataCollector
from mlyard.serving.nocode import MlflowModelHost
from tests.serving.conftest import COLUMNS, ROWS, SRC, SavedModel, start_worker

NAMES = ("model_inputs", "model_outputs", "request", "response")


def _events(folder: Path) -> list[dict[str, Any]]:
    """Every event under a collection's folder, checking the partition: <yyyy>/<MM>/<dd>/<HH>/<instance>.jsonl."""
    events = []
    for path in sorted(folder.rglob("*.jsonl")):
        parts = path.relative_to(folder).parts
        assert len(parts) == 5 and parts[0] == str(datetime.now(UTC).year) and path.name == "7.jsonl", path
        events += [json.loads(line) for line in path.read_text().splitlines()]
    return events


@pytest.fixture()
def host(sklearn_model: SavedModel, tmp_path: Path) -> MlflowModelHost:
    collector = DataCollector({name: tmp_path / name for name in NAMES}, "7", source="ep/blue", model_version="m:1")
    loaded = MlflowModelHost(sklearn_model.path, collector)
    loaded.load()
    return loaded


def test_answered_requests_are_collected_with_their_correlation_id(host: MlflowModelHost, tmp_path: Path) -> None:
    body = json.dumps({"input_data": ROWS[:2]}).encode()
    answer = host.score(body, "req-1")
    assert host.score(b'{"input_data": [[1]]}', "req-2").status == 400  # refused requests are not collected
    assert host.collector is not None
    host.collector.close()
    inputs, outputs = _events(tmp_path / "model_inputs"), _events(tmp_path / "model_outputs")
    assert [event["data"] for event in inputs] == [[dict(zip(COLUMNS, row, strict=True)) for row in ROWS[:2]]]
    assert [event["data"] for event in outputs] == [[{"0": value} for value in json.loads(answer.body)]]
    event = inputs[0]
    assert event["type"] == "azureml.inference.model_inputs" and event["specversion"] == "1.0"
    assert (event["correlationid"], event["xrequestid"], event["source"], event["modelversion"]) == (
        "req-1", "req-1", "ep/blue", "m:1")
    assert event["collectdatatype"] == "pandas.core.frame.DataFrame" and event["time"].endswith("Z")
    request, response = _events(tmp_path / "request"), _events(tmp_path / "response")
    assert [(e["data"], e["path"], e["method"]) for e in request] == [(json.loads(body), "/score", "POST")]
    assert [e["data"] for e in response] == [json.loads(answer.body)]


def test_the_worker_collects_batched_requests_and_writes_them_before_it_exits(sklearn_model: SavedModel,
                                                                              tmp_path: Path) -> None:
    config = {"sampling_rate": 1.0, "rolling_rate": "Hour", "source": "ep/blue",
              "collections": {"model_inputs": str(tmp_path / "inputs")}}
    worker = start_worker("--model-dir", str(sklearn_model.model_dir), "--model-folder", sklearn_model.folder,
                          env={"MLYARD_DATA_COLLECTOR": json.dumps(config), "MLYARD_BATCH_MAX_SIZE": "4",
                               "MLYARD_BATCH_MAX_WAIT_MS": "0"})
    try:
        worker.wait_ready()
        with worker.client() as client:
            for number in range(3):
                response = client.post("/score", json={"input_data": [ROWS[number]]},
                                       headers={"x-request-id": f"r{number}"})
                assert response.status_code == 200
    finally:
        assert worker.stop() == 0
    events = []
    for path in (tmp_path / "inputs").rglob("*.jsonl"):
        assert path.name == "0.jsonl" and len(path.relative_to(tmp_path / "inputs").parts) == 5
        events += [json.loads(line) for line in path.read_text().splitlines()]
    assert sorted((e["correlationid"], e["data"][0]["age"]) for e in events) == [
        ("r0", ROWS[0][0]), ("r1", ROWS[1][0]), ("r2", ROWS[2][0])]


def test_a_collector_setting_that_cannot_be_read_stops_the_worker(tmp_path: Path) -> None:
    worker = start_worker("--model-dir", str(tmp_path), "--model-folder", "model",
                          env={"MLYARD_DATA_COLLECTOR": json.dumps({"sampling_rate": 2, "collections": {}})})
    assert worker.process.wait(timeout=60) == 2
    assert "sampling_rate must be in (0, 1]" in worker.log_text()


def test_sampling_rate_leaves_requests_out(tmp_path: Path) -> None:
    rare, every = (DataCollector({"model_inputs": tmp_path}, "0", sampling_rate=rate) for rate in (1e-9, 1.0))
    try:
        assert not any(rare.sampled() for _ in range(100))
        assert every.sampled()
    finally:
        rare.close()
        every.close()


SDK_SCRIPT = '''
import json
import pandas as pd
from azureml.ai.monitoring import Collector

def init():
    global inputs, outputs
    inputs, outputs = Collector(name="model_inputs"), Collector(name="model_outputs")

def run(raw_data):
    frame = pd.DataFrame(json.loads(raw_data)["data"], columns=["a", "b"])
    context = inputs.collect(frame)
    result = pd.DataFrame({"total": frame["a"] + frame["b"]})
    outputs.collect(result, context)
    return result["total"].tolist()
'''


def test_a_scoring_scripts_azureml_collector_lands_in_the_same_place(tmp_path: Path) -> None:
    sdk = pytest.importorskip(
        "azureml.ai.monitoring", reason="azureml-ai-monitoring is in the dev extra: pip install -e '.[dev]'")
    site = str(Path(sdk.__file__).parents[3])
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(SDK_SCRIPT)
    folders = {name: tmp_path / name for name in ("model_inputs", "model_outputs")}
    config = {"collections": {name: str(folder) for name, folder in folders.items()}}
    worker = start_worker("--model-dir", str(tmp_path), "--code", str(code), "--scoring-script", "score.py",
                          env={"MLYARD_DATA_COLLECTOR": json.dumps(config),
                               "PYTHONPATH": os.pathsep.join([str(SRC), site])})
    try:
        worker.wait_ready()
        with worker.client() as client:
            response = client.post("/score", json={"data": [[1, 2], [3, 4]]})
        assert (response.status_code, response.json()) == (200, [3, 7])
        for _ in range(300):  # the SDK posts from its own thread: bounded wait for both files
            if all(list(folder.rglob("*.jsonl")) for folder in folders.values()):
                break
            time.sleep(0.1)
    finally:
        assert worker.stop() == 0
    inputs = [json.loads(line) for path in folders["model_inputs"].rglob("0.jsonl") for line in path.open()]
    outputs = [json.loads(line) for path in folders["model_outputs"].rglob("0.jsonl") for line in path.open()]
    assert [event["data"] for event in inputs] == [[{"a": 1, "b": 2}, {"a": 3, "b": 4}]]
    assert [event["data"] for event in outputs] == [[{"total": 3}, {"total": 7}]]
    assert inputs[0]["correlationid"] == outputs[0]["correlationid"]  # the context ties outputs to inputs
    assert inputs[0]["type"] == "azureml.inference.model_inputs"
    assert inputs[0]["collectdatatype"] == "pandas.core.frame.DataFrame"
