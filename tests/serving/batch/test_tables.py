"""How no-code predictions become the ``prediction`` field: one value per row, or one JSON text per row."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlyard.serving.batch.tables import FileError, apply_signature, prediction_values


def test_one_column_predictions_are_the_raw_values() -> None:
    assert list(prediction_values(np.array([0.5, 1.5]), 2)) == [0.5, 1.5]
    assert list(prediction_values(np.array([[1], [2]]), 2)) == [1, 2]
    assert list(prediction_values(pd.DataFrame({"p": ["a", "b"]}), 2)) == ["a", "b"]


def test_several_values_per_row_are_one_json_text_each() -> None:
    assert list(prediction_values(np.array([[0.25, 0.75], [1.0, 0.0]]), 2)) == ["[0.25, 0.75]", "[1.0, 0.0]"]
    frame = pd.DataFrame({"label": [1, 0], "score": [0.9, 0.2]})
    assert list(prediction_values(frame, 2)) == ['{"label":1,"score":0.9}', '{"label":0,"score":0.2}']


def test_a_prediction_of_the_wrong_length_fails_the_file() -> None:
    with pytest.raises(FileError, match="3 values for 2 rows"):
        prediction_values([1, 2, 3], 2)


def test_signature_casts_name_the_column() -> None:
    columns = [("age", "long", True), ("income", "double", True)]
    typed = apply_signature(pd.DataFrame({"age": [1.0, 2.0], "income": [3, 4], "extra": ["x", "y"]}), columns)
    assert list(typed.columns) == ["age", "income"] and typed["age"].dtype == "int64"
    with pytest.raises(FileError, match="'age'.*long.*row 1 holds 2.5"):
        apply_signature(pd.DataFrame({"age": [1.0, 2.5], "income": [3, 4]}), columns)
    with pytest.raises(FileError, match="'income' missing"):
        apply_signature(pd.DataFrame({"age": [1]}), columns)
