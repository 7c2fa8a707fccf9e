"""Tiny real MLflow models and real worker processes for the serving tests.

``sklearn_model`` has a ColSpec signature (``age: long, income: double, city: string`` in, one long column out) and
a params schema (``threshold: double = 0.5``); ``unsigned_model`` is the same pipeline saved without a signature.
Both are saved once per module in Azure's layout, ``<model_dir>/<folder>/MLmodel``: ``model_dir`` is what
``AZUREML_MODEL_DIR`` points at and ``folder`` is ``MLFLOW_MODEL_FOLDER``. ``start_worker`` runs the real
``python -m mlyard.serving.worker`` on a unix socket; ``nocode_worker`` is one serving ``sklearn_model``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROWS = [[25, 30000.0, "paris"], [40, 52000.5, "oslo"], [31, 41000.0, "paris"], [58, 90000.0, "rome"],
        [22, 18000.0, "oslo"], [47, 70500.0, "rome"]]
COLUMNS = ["age", "income", "city"]
LABELS = [0, 1, 0, 1, 0, 1]


@dataclass
class SavedModel:
    """A saved MLflow model: where it lives and the loaded pyfunc for in-process comparisons."""

    model_dir: Path
    folder: str
    pyfunc: Any

    @property
    def path(self) -> Path:
        return self.model_dir / self.folder


def _train() -> Any:
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    frame = pd.DataFrame(ROWS, columns=COLUMNS)
    pipeline = Pipeline([
        ("prep", ColumnTransformer([("city", OneHotEncoder(handle_unknown="ignore"), ["city"])],
                                   remainder="passthrough")),
        ("clf", LogisticRegression(max_iter=500)),
    ])
    return pipeline.fit(frame, LABELS)


def _save(root: Path, folder: str, signed: bool) -> SavedModel:
    import mlflow.pyfunc
    import mlflow.sklearn
    import mlflow.tracing
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    signature = None
    if signed:
        signature = ModelSignature(
            inputs=Schema([ColSpec("long", "age"), ColSpec("double", "income"), ColSpec("string", "city")]),
            outputs=Schema([ColSpec("long")]),
            params=ParamSchema([ParamSpec("threshold", "double", 0.5)]),
        )
    path = root / folder
    mlflow.tracing.disable()  # loading enables tracing, whose default store is an mlflow.db in the working directory
    mlflow.sklearn.save_model(_train(), str(path), signature=signature, serialization_format="pickle")
    return SavedModel(root, folder, mlflow.pyfunc.load_model(str(path)))


@pytest.fixture(scope="module")
def sklearn_model(tmp_path_factory: pytest.TempPathFactory) -> SavedModel:
    """A pipeline over (age, income, city) with a ColSpec signature and a params schema."""
    return _save(tmp_path_factory.mktemp("signed"), "model", signed=True)


@pytest.fixture(scope="module")
def unsigned_model(tmp_path_factory: pytest.TempPathFactory) -> SavedModel:
    """The same pipeline saved without a signature."""
    return _save(tmp_path_factory.mktemp("unsigned"), "model", signed=False)


SRC = Path(__file__).resolve().parents[2] / "src"


@dataclass
class WorkerProcess:
    """A real ``python -m mlyard.serving.worker`` on a unix socket, its stdout and stderr in ``log``."""

    process: subprocess.Popen[bytes]
    socket: Path
    log: Path

    def client(self) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://worker",
                            timeout=60)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def wait_ready(self) -> None:
        """Poll /ready (bounded: 600 tries, 0.1 s apart); fail with the worker's log if it exits or never gets ready."""
        with self.client() as client:
            for _ in range(600):
                if self.process.poll() is not None:
                    raise AssertionError(f"the worker exited {self.process.returncode}:\n{self.log_text()}")
                try:
                    if client.get("/ready").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.1)
        raise AssertionError(f"the worker never got ready:\n{self.log_text()}")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)


def start_worker(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> WorkerProcess:
    """Start a worker with ``args`` after ``--socket`` (which it gets in a short temp folder: paths are bounded)."""
    folder = Path(tempfile.mkdtemp(prefix="mlyw", dir="/tmp"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)  # after the tests have read the log
    socket_path, log = folder / "w.sock", folder / "worker.log"
    full_env = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlyard.serving.worker", "--socket", str(socket_path), "--endpoint", "ep",
             "--deployment", "blue", "--instance-id", "0", *args],
            stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=cwd or folder)
    return WorkerProcess(process, socket_path, log)


@pytest.fixture(scope="module")
def nocode_worker(sklearn_model: SavedModel) -> Iterator[WorkerProcess]:
    """A ready worker serving ``sklearn_model`` without a scoring script."""
    worker = start_worker("--model-dir", str(sklearn_model.model_dir), "--model-folder", sklearn_model.folder)
    try:
        worker.wait_ready()
        yield worker
    finally:
        worker.stop()
