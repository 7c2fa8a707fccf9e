"""mlyard's extras for jobs: the MLflow range isolated environments are held to, and the missing-module hint."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from mlyard.jobs.extras import MLFLOW_RANGE, MODULE_EXTRAS, missing_module_hint, mlflow_policy

PYPROJECT = Path(__file__).parents[2] / "pyproject.toml"
HELD = ("mlflow>=3.13,<3.14", "mlflow-skinny>=3.13,<3.14")


def _extras() -> dict[str, list[str]]:
    extras: dict[str, list[str]] = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    return extras


def test_the_range_is_the_ml_extras() -> None:
    mlflow = [Requirement(line) for line in _extras()["ml"] if Requirement(line).name == "mlflow"]
    assert len(mlflow) == 1 and str(mlflow[0].specifier) == str(Requirement(f"mlflow{MLFLOW_RANGE}").specifier)


def test_each_module_of_the_hint_comes_with_the_extra_it_names() -> None:
    for module, (package, extra) in MODULE_EXTRAS.items():
        assert package in {Requirement(line).name for line in _extras()[extra]}, (module, package, extra)


@pytest.mark.parametrize("lines", [
    [], ["six"], ["mlflow"], ["azureml-mlflow==1.57.0"], ["mlflow>=2.14", "scikit-learn"], ["MLflow_Skinny"],
    ["mlflow~=3.13.0"], ["mlflow==3.13.*"], ["mlflow>=3.13.1"], ["mlflow!=3.13.0,<3.14"], ["mlflow<3.13.2"],
    ["-e .", "--index-url https://example.invalid/simple"],
])
def test_mlflow_is_held_unless_the_environment_pins_it_outside(lines: list[str]) -> None:
    assert mlflow_policy(lines).constraints == HELD
    assert mlflow_policy(lines).notes == ()


@pytest.mark.parametrize("line", [
    "mlflow==2.9.2", "mlflow>=3.14", "mlflow-skinny<3", "mlflow[extras]==3.15.0 ; python_version >= '3.10'",
    "mlflow @ https://example.invalid/mlflow-3.20.0-py3-none-any.whl",
])
def test_a_pin_outside_the_range_wins_and_is_said(line: str) -> None:
    policy = mlflow_policy(["scikit-learn", line])
    assert policy.constraints == ()
    assert policy.notes == (f"the environment asks for {line}, outside the MLflow range mlyard supports "
                            f"({MLFLOW_RANGE}; from 3.14 MLflow's sklearn flavour saves with skops by default, which "
                            "refuses tree models, so unchanged training scripts fail): installed as asked",)


TRACEBACK = """\
Traceback (most recent call last):
  File "/tmp/wd/score.py", line 3, in <module>
    {source}
ModuleNotFoundError: No module named '{missing}'
"""


@pytest.mark.parametrize(("source", "missing", "module", "package", "extra"), [
    ("import mltable", "mltable", "mltable", "mltable", "azure"),
    ("from azureml.ai.monitoring import Collector", "azureml", "azureml.ai.monitoring", "azureml-ai-monitoring",
     "azure"),
    ("from azureml.ai.monitoring import Collector", "azureml.ai", "azureml.ai.monitoring", "azureml-ai-monitoring",
     "azure"),
    ("from inference_schema.schema_decorators import input_schema", "inference_schema", "inference_schema",
     "inference-schema", "azure"),
    ("from sklearn.ensemble import RandomForestClassifier", "sklearn", "sklearn", "scikit-learn", "ml"),
    ("import mlflow", "mlflow", "mlflow", "mlflow", "ml"),
])
def test_a_missing_module_names_its_extra(source: str, missing: str, module: str, package: str, extra: str) -> None:
    log = "loading data\n" + TRACEBACK.format(source=source, missing=missing)
    assert missing_module_hint(log, "inherit") == (
        f"the module '{module}' comes with mlyard's {extra} extra: pip install 'mlyard[{extra}]' where the server "
        f"runs and restart it (env mode inherit), or add {package} to the pip list of the environment's conda file "
        "(env mode isolated)")
    assert missing_module_hint(log, "isolated") == (
        f"the module '{module}' is not in this isolated environment: add {package} to the pip list of the "
        f"environment's conda file (mlyard's {extra} extra brings it for env mode inherit)")


@pytest.mark.parametrize("log", [
    "", "boom: the data is bad\n",
    TRACEBACK.format(source="import azureml.core", missing="azureml"),  # the v1 SDK: no extra brings it
    TRACEBACK.format(source="from sklearn.nope import x", missing="sklearn.nope"),  # sklearn is there
    TRACEBACK.format(source="import torch", missing="torch"),
])
def test_no_hint_for_modules_no_extra_brings(log: str) -> None:
    assert missing_module_hint(log, "inherit") is None
