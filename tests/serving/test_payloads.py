"""Azure's no-code request rules and answer shape, against a real scikit-learn MLflow model."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlyard.serving.nocode import MlflowModelHost
from tests.serving.conftest import COLUMNS, ROWS, SavedModel

SPLIT = {"columns": COLUMNS, "index": list(range(len(ROWS))), "data": ROWS}


@pytest.fixture(scope="module")
def host(sklearn_model: SavedModel) -> MlflowModelHost:
    loaded = MlflowModelHost(sklearn_model.path)
    loaded.load()
    return loaded


@pytest.fixture(scope="module")
def unsigned_host(unsigned_model: SavedModel) -> MlflowModelHost:
    loaded = MlflowModelHost(unsigned_model.path)
    loaded.load()
    return loaded


def score(host: MlflowModelHost, body: Any) -> tuple[int, Any]:
    answer = host.score(json.dumps(body).encode())
    return answer.status, json.loads(answer.body)


def expected(model: SavedModel, rows: list[list[Any]] = ROWS) -> list[Any]:
    return np.asarray(model.pyfunc.predict(pd.DataFrame(rows, columns=COLUMNS))).tolist()


@pytest.mark.parametrize("input_data", [ROWS, SPLIT], ids=["rows", "split"])
def test_azure_shapes_answer_as_in_process_predict(host: MlflowModelHost, sklearn_model: SavedModel,
                                                   input_data: Any) -> None:
    assert score(host, {"input_data": input_data}) == (200, expected(sklearn_model))


def test_named_tensors_become_the_signature_columns(host: MlflowModelHost, sklearn_model: SavedModel) -> None:
    tensors = {name: [row[i] for row in ROWS] for i, name in enumerate(COLUMNS)}
    assert score(host, {"input_data": tensors}) == (200, expected(sklearn_model))


@pytest.mark.parametrize("body", [
    {"dataframe_split": {"columns": COLUMNS, "data": ROWS}},
    {"dataframe_records": [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]},
    {"inputs": {name: [row[i] for row in ROWS] for i, name in enumerate(COLUMNS)}},
    {"instances": [dict(zip(COLUMNS, row, strict=True)) for row in ROWS]},
], ids=["dataframe_split", "dataframe_records", "inputs", "instances"])
def test_mlflow_shapes_are_answered_in_mlflow_shape(host: MlflowModelHost, sklearn_model: SavedModel,
                                                    body: Any) -> None:
    assert score(host, body) == (200, {"predictions": expected(sklearn_model)})


def test_params_reach_predict_when_the_signature_has_them(host: MlflowModelHost, sklearn_model: SavedModel) -> None:
    assert score(host, {"input_data": ROWS, "params": {"threshold": 0.9}}) == (200, expected(sklearn_model))
    status, answer = score(host, {"input_data": ROWS, "params": {"threshold": "high"}})
    assert status == 400 and "threshold" in answer["error"]["message"]


def test_without_a_signature_rows_are_an_array(unsigned_host: MlflowModelHost, unsigned_model: SavedModel) -> None:
    # Without a signature Azure makes an array of rows, which this pipeline (fitted on named columns) cannot read:
    # scikit-learn's own failure, so a 500 with its message rather than a 400.
    status, answer = score(unsigned_host, {"input_data": SPLIT})
    assert (status, answer) == (200, expected(unsigned_model))
    status, answer = score(unsigned_host, {"input_data": ROWS})
    assert status == 500 and answer["error"]["code"] == "scoring_failed" and answer["error"]["message"]


@pytest.mark.parametrize(("body", "named"), [
    (b"{not json", "not valid JSON"),
    ([1, 2], "must be a JSON object with an 'input_data' key, not a list"),
    ({"data": ROWS}, "its keys: 'data'"),
    ({"input_data": "text"}, "'input_data' must be a list of rows"),
    ({"input_data": [[25, 1.0]]}, "input_data[0] has 2 values; the model's signature expects 3: age, income, city"),
    ({"input_data": [ROWS[0], 7]}, "input_data[1] must be a list of 3 values"),
    ({"input_data": {"columns": COLUMNS, "data": ROWS}}, "no index"),
    ({"input_data": {"columns": COLUMNS, "index": [0], "data": [[1, 2.0]]}}, "input_data.data[0] has 2 values"),
    ({"input_data": [[25.5, 1.0, "oslo"]]}, "column age"),
    ({"input_data": {"columns": ["age", "city"], "index": [0], "data": [[1, "oslo"]]}}, "missing inputs ['income']"),
    ({"input_data": ROWS, "params": [1]}, "'params' must be a JSON object"),
    ({"dataframe_split": ROWS, "inputs": ROWS}, "give exactly one of them"),
    ({"dataframe_split": ROWS}, "dataframe_split"),
], ids=["not-json", "list-body", "no-input-data", "scalar", "width", "not-a-row", "split-missing-key", "split-width",
        "column-type", "missing-column", "params-type", "two-mlflow-keys", "split-as-list"])
def test_malformed_requests_are_400_naming_the_problem(host: MlflowModelHost, body: Any, named: str) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    answer = host.score(raw)
    error = json.loads(answer.body)["error"]
    assert (answer.status, error["code"]) == (400, "invalid_request")
    assert named in error["message"]
    assert "Failed to enforce schema of data" not in error["message"]  # MLflow's copy of the whole input is cut


def test_answer_shapes_follow_azure() -> None:
    from mlyard.serving.payloads import ModelInput, answer

    azure = ModelInput(data=None, params=None, mlflow_shape=False)
    frame = pd.DataFrame({"label": [1, 0], "score": [0.25, 0.5]})
    assert json.loads(answer(np.array([1.5, 2.0]), azure)) == [1.5, 2.0]
    assert json.loads(answer(np.array(["a", "b"]), azure)) == ["a", "b"]
    assert json.loads(answer(frame, azure)) == [{"label": 1, "score": 0.25}, {"label": 0, "score": 0.5}]
    assert json.loads(answer(pd.Series([3, 4], name="y"), azure)) == [{"y": 3}, {"y": 4}]
    assert json.loads(answer({"a": np.array([1, 2]), "b": frame[["label"]]}, azure)) == {
        "a": [1, 2], "b": [{"label": 1}, {"label": 0}]}
