"""Tiny real MLflow models for the serving tests, saved once per module.

``sklearn_model`` has a ColSpec signature (``age: long, income: double, city: string`` in, one double column out) and
a params schema (``threshold: double = 0.5``); ``unsigned_model`` is the same kind of model saved without a
signature. Both live in Azure's layout: ``<model_dir>/<folder>/MLmodel``, so ``model_dir`` is what
``AZUREML_MODEL_DIR`` points at and ``folder`` is ``MLFLOW_MODEL_FOLDER``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
