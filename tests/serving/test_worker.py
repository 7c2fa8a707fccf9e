"""The worker process: liveness, readiness, /score over a real unix socket, errors, SIGTERM and its parent's death."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tests.serving.conftest import COLUMNS, ROWS, SRC, SavedModel, WorkerProcess, start_worker


def test_liveness_readiness_and_routes(nocode_worker: WorkerProcess) -> None:
    with nocode_worker.client() as client:
        assert (client.get("/").status_code, client.get("/").text) == (200, "Healthy")
        assert client.get("/ready").status_code == 200
        assert client.get("/swagger.json").status_code == 404  # no inference-schema for a no-code model
        assert client.get("/score").status_code == 405
        assert client.get("/elsewhere").status_code == 404


def test_rows_and_split_answer_as_in_process_predict(nocode_worker: WorkerProcess, sklearn_model: SavedModel) -> None:
    expected = np.asarray(sklearn_model.pyfunc.predict(pd.DataFrame(ROWS, columns=COLUMNS))).tolist()
    split = {"columns": COLUMNS, "index": list(range(len(ROWS))), "data": ROWS}
    with nocode_worker.client() as client:
        for input_data in (ROWS, split):
            response = client.post("/score", json={"input_data": input_data})
            assert (response.status_code, response.json()) == (200, expected)
            assert response.headers["content-type"] == "application/json"


def test_malformed_payloads_are_400_naming_the_problem(nocode_worker: WorkerProcess) -> None:
    with nocode_worker.client() as client:
        cases = [
            (b"{", "not valid JSON"),
            (json.dumps({"data": ROWS}).encode(), "'input_data'"),
            (json.dumps({"input_data": [[1, 2.0]]}).encode(), "expects 3: age, income, city"),
            (json.dumps({"input_data": [["old", 2.0, "oslo"]]}).encode(), "column age"),
        ]
        for body, named in cases:
            response = client.post("/score", content=body, headers={"content-type": "application/json"})
            assert response.status_code == 400, response.text
            assert response.json()["error"]["code"] == "invalid_request"
            assert named in response.json()["error"]["message"]


def test_a_model_failure_is_a_500_with_its_message_and_the_traceback_in_the_log(unsigned_model: SavedModel) -> None:
    worker = start_worker("--model-dir", str(unsigned_model.model_dir), "--model-folder", unsigned_model.folder)
    try:
        worker.wait_ready()
        with worker.client() as client:
            response = client.post("/score", json={"input_data": ROWS})  # an array for a frame-fitted pipeline
        error = response.json()["error"]
        assert (response.status_code, error["code"]) == (500, "scoring_failed")
        assert error["message"] and "Traceback" not in error["message"]
    finally:
        assert worker.stop() == 0
    assert "Traceback" in worker.log_text()


def test_a_model_that_fails_to_load_exits_non_zero_with_the_reason(tmp_path: Path) -> None:
    worker = start_worker("--model-dir", str(tmp_path), "--model-folder", "absent")
    assert worker.process.wait(timeout=120) != 0
    assert "no MLflow model at" in worker.log_text() and "Traceback" in worker.log_text()


def test_the_worker_dies_with_its_parent(tmp_path: Path) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "score.py").write_text("def init():\n    pass\n\ndef run(raw_data):\n    return raw_data\n")
    folder = Path(tempfile.mkdtemp(prefix="mlyw", dir="/tmp"))  # short: socket paths are bounded
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    socket_path = folder / "w.sock"
    parent = subprocess.Popen(
        [sys.executable, "-c",
         "import subprocess, sys\n"
         "p = subprocess.Popen([sys.executable, '-m', 'mlyard.serving.worker', '--socket', sys.argv[1],"
         " '--model-dir', sys.argv[2], '--code', sys.argv[2], '--scoring-script', 'score.py', '--endpoint', 'ep',"
         " '--deployment', 'blue', '--instance-id', '0'])\n"
         "print(p.pid, flush=True)\n"
         "p.wait()\n",
         str(socket_path), str(code)],
        stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(SRC)}, text=True)
    assert parent.stdout is not None
    worker_pid = int(parent.stdout.readline())
    WorkerProcess(parent, socket_path, tmp_path / "unused").wait_ready()
    parent.kill()
    parent.wait()
    for _ in range(300):  # bounded: the kernel kills the orphan at once, reaping it may take a moment
        if not _alive(worker_pid):
            break
        time.sleep(0.1)
    assert not _alive(worker_pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


def test_the_worker_module_imports_no_model_or_server_packages() -> None:
    """The contract: before it listens, the worker needs only the standard library and uvicorn (orjson if present)."""
    heavy = ["numpy", "pandas", "mlflow", "sklearn", "fastapi", "pydantic", "sqlalchemy", "httpx", "starlette"]
    probe = ("import sys, mlyard.serving.worker\n"
             f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({heavy!r})))")
    out = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(SRC)},
                         capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_answers_without_orjson_are_the_same_json() -> None:
    """An isolated deployment environment may lack orjson: the standard library writes the same answers."""
    probe = ("import sys, json\n"
             "import numpy as np, pandas as pd\n"
             "values = [np.array([[1, 2], [3, 4]]), np.array(['a', 'b']), np.float32(0.5), np.int64(7),\n"
             "          pd.DataFrame({'y': [1, 2]}), pd.Series([3.5], name='p'), {'k': np.array([1.5])}, 'text',\n"
             "          [float('nan'), np.float64('inf')], np.array([np.nan, 1.0])]\n"
             "from mlyard.serving import answers\n"
             "print(json.dumps([json.loads(answers.dumps(v)) for v in values]))\n")
    outputs = []
    for block in ("", "sys.modules['orjson'] = None\n"):
        script = probe.replace("import numpy", block + "import numpy", 1)
        outputs.append(subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(SRC)},
                                      capture_output=True, text=True, check=True).stdout)
    assert outputs[0] == outputs[1]
    assert json.loads(outputs[0]) == [[[1, 2], [3, 4]], ["a", "b"], 0.5, 7, [{"y": 1}, {"y": 2}], [{"p": 3.5}],
                                      {"k": [1.5]}, "text", [None, None], [None, 1.0]]
