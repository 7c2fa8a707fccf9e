"""Scoring-script deployments in a real worker: init() once, run(raw_data) per request, Azure's folder layout."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.serving.conftest import COLUMNS, ROWS, SRC, SavedModel, WorkerProcess, start_worker

SCRIPT = '''
import json, os
import mlflow.sklearn
import pandas as pd
import helper  # a module next to the script: the code folder is on sys.path

model = None

def init():
    global model
    with open("init-calls", "a") as calls:  # relative: the code folder is the working directory
        calls.write("x")
    model = mlflow.sklearn.load_model(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model"))

def run(raw_data):
    body = json.loads(raw_data)
    if body.get("kind") == "echo":
        return {"type": type(raw_data).__name__, "raw": raw_data, "cwd": os.getcwd(), "helper": helper.NAME}
    if body.get("kind") == "text":
        return "plain text"
    if body.get("kind") == "fail":
        raise ValueError("no such customer: 42")
    return model.predict(pd.DataFrame(body["data"], columns=helper.COLUMNS))
'''

# A script without heavy imports, whose init() and run() wait for files the test creates (bounded waits).
GATED = '''
import os, pathlib, time

def _wait(name):
    for _ in range(1200):
        if pathlib.Path(os.environ["GATES"], name).exists():
            return
        time.sleep(0.05)
    raise TimeoutError(name)

def init():
    _wait("init")

def run(raw_data):
    pathlib.Path(os.environ["GATES"], "running").touch()
    _wait("finish")
    return "finished"
'''


def _code(folder: Path, script: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "score.py").write_text(script)
    (folder / "helper.py").write_text(f"NAME = 'helper'\nCOLUMNS = {COLUMNS!r}\n")
    return folder


@pytest.fixture(scope="module")
def script_worker(sklearn_model: SavedModel, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    code = _code(tmp_path_factory.mktemp("code"), SCRIPT)
    worker = start_worker("--model-dir", str(sklearn_model.model_dir), "--code", str(code),
                          "--scoring-script", "score.py")
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()


def test_run_gets_the_body_as_text_in_the_code_folder(script_worker: WorkerProcess) -> None:
    body = json.dumps({"kind": "echo"})
    with script_worker.client() as client:
        response = client.post("/score", content=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["type"] == "str" and answer["raw"] == body and answer["helper"] == "helper"
    assert (Path(answer["cwd"]) / "init-calls").read_text() == "x"  # init() ran once, in the code folder


def test_the_model_in_azure_layout_answers_as_in_process(script_worker: WorkerProcess,
                                                           sklearn_model: SavedModel) -> None:
    expected = np.asarray(sklearn_model.pyfunc.predict(pd.DataFrame(ROWS, columns=COLUMNS))).tolist()
    with script_worker.client() as client:
        for _ in range(3):
            response = client.post("/score", json={"data": ROWS})
            assert (response.status_code, response.json()) == (200, expected)


def test_a_returned_string_is_a_json_string_literal(script_worker: WorkerProcess) -> None:
    with script_worker.client() as client:
        response = client.post("/score", json={"kind": "text"})
    assert (response.status_code, response.text) == (200, '"plain text"')


def test_an_exception_in_run_is_a_500_with_its_message(script_worker: WorkerProcess) -> None:
    with script_worker.client() as client:
        response = client.post("/score", json={"kind": "fail"})
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "scoring_failed", "message": "no such customer: 42"}}
    assert "Traceback" in script_worker.log_text()


def test_not_ready_until_init_returns(tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    worker = start_worker("--model-dir", str(tmp_path), "--code", str(_code(tmp_path / "code", GATED)),
                          "--scoring-script", "score.py", env={"GATES": str(gates)})
    try:
        with worker.client() as client:
            for _ in range(600):  # liveness answers while init() waits
                try:
                    if client.get("/").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.05)
            assert client.get("/ready").status_code == 503
            assert client.post("/score", content=b"{}").json()["error"]["code"] == "not_ready"
            (gates / "init").touch()
            worker.wait_ready()
    finally:
        assert worker.stop() == 0


def test_sigterm_lets_an_in_flight_request_finish(tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "init").touch()
    worker = start_worker("--model-dir", str(tmp_path), "--code", str(_code(tmp_path / "code", GATED)),
                          "--scoring-script", "score.py", env={"GATES": str(gates)})
    worker.wait_ready()
    answers: list[httpx.Response] = []

    def call() -> None:
        with worker.client() as client:
            answers.append(client.post("/score", content=b"{}"))

    caller = threading.Thread(target=call)
    caller.start()
    for _ in range(600):
        if (gates / "running").exists():
            break
        time.sleep(0.05)
    worker.process.send_signal(15)
    (gates / "finish").touch()
    caller.join(timeout=60)
    assert worker.process.wait(timeout=30) == 0
    assert [(r.status_code, r.json()) for r in answers] == [(200, "finished")]


def test_a_missing_script_or_run_fails_the_load_with_the_reason(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "norun.py").write_text("def init():\n    pass\n")
    for script, reason in (("absent.py", "scoring_script absent.py not found"), ("norun.py", "has no run(raw_data)")):
        worker = start_worker("--model-dir", str(tmp_path), "--code", str(code), "--scoring-script", script)
        assert worker.process.wait(timeout=60) != 0
        assert reason in worker.log_text()


SCHEMA_SCRIPT = '''
import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType
from inference_schema.schema_decorators import input_schema, output_schema

def init():
    pass

@input_schema("data", NumpyParameterType(np.array([[1.0, 2.0]])))
@output_schema(StandardPythonParameterType({"type": "ndarray", "sums": [3.0]}))
def run(data):
    if data.shape[0] > 2:
        raise ValueError("at most two rows")
    return {"type": type(data).__name__, "sums": data.sum(axis=1).tolist()}
'''


def test_inference_schema_decorators_convert_inputs_and_describe_them(tmp_path: Path) -> None:
    schema = pytest.importorskip(
        "inference_schema", reason="inference-schema is in the dev extra: pip install -e '.[dev]'")
    site = str(Path(schema.__file__).parents[1])
    worker = start_worker("--model-dir", str(tmp_path), "--code", str(_code(tmp_path / "code", SCHEMA_SCRIPT)),
                          "--scoring-script", "score.py",
                          env={"PYTHONPATH": os.pathsep.join([str(SRC), site])})
    try:
        worker.wait_ready()
        with worker.client() as client:
            response = client.post("/score", json={"data": [[1.0, 2.0], [3.0, 4.5]]})
            assert (response.status_code, response.json()) == (200, {"type": "ndarray", "sums": [3.0, 7.5]})
            refused = client.post("/score", json={"rows": [[1.0, 2.0]]})
            assert refused.status_code == 400 and "run(data)" in refused.json()["error"]["message"]
            unconvertible = client.post("/score", json={"data": [["x", "y"]]})  # the decorator's float cast fails
            assert unconvertible.status_code == 400, unconvertible.text
            assert "input schema" in unconvertible.json()["error"]["message"]
            assert "could not convert string to float" in unconvertible.json()["error"]["message"]
            raised = client.post("/score", json={"data": [[1.0, 2.0]] * 3})  # run() itself raises: its failure
            assert raised.status_code == 500 and raised.json()["error"]["message"] == "at most two rows"
            swagger = client.get("/swagger.json")
            assert swagger.status_code == 200
            body = swagger.json()["paths"]["/score"]["post"]["parameters"][0]["schema"]
            assert "data" in body["properties"]
    finally:
        assert worker.stop() == 0


def test_a_script_loading_with_mlflow_leaves_the_code_folder_as_it_was(sklearn_model: SavedModel,
                                                                        tmp_path: Path) -> None:
    # Azure's documented pattern: mlflow.pyfunc.load_model in init(). Loading enables MLflow tracing, which by
    # default would create an mlflow.db in the working directory: the deployment's uploaded code.
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text(
        "import json, os\nimport mlflow\nimport pandas as pd\n\n"
        "def init():\n    global model\n"
        f"    folder = os.path.join(os.environ['AZUREML_MODEL_DIR'], {sklearn_model.folder!r})\n"
        "    model = mlflow.pyfunc.load_model(folder)\n\n"
        f"def run(raw_data):\n    return model.predict(pd.DataFrame(json.loads(raw_data), columns={COLUMNS!r}))\n")
    worker = start_worker("--model-dir", str(sklearn_model.model_dir), "--code", str(code),
                          "--scoring-script", "score.py", env={"MLFLOW_TRACKING_URI": ""}, cwd=code)
    try:
        worker.wait_ready()
        with worker.client() as client:
            response = client.post("/score", json=ROWS[:2])
        expected = np.asarray(sklearn_model.pyfunc.predict(pd.DataFrame(ROWS[:2], columns=COLUMNS))).tolist()
        assert (response.status_code, response.json()) == (200, expected)
    finally:
        worker.stop()
    assert sorted(p.name for p in code.iterdir() if p.name != "__pycache__") == ["score.py"]
