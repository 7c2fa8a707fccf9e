"""Models through the real MLflow client: sklearn autolog, log_model, MLflow 3 logged models, registering, loading."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("mlflow", reason="the MLflow contract suite needs the mlflow client: pip install -e '.[dev]'")

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LogisticRegression

pytestmark = pytest.mark.slow

FEATURES = np.random.RandomState(0).rand(60, 3)
LABELS = (FEATURES[:, 0] + 0.2 * FEATURES[:, 1] > 0.6).astype(int)


@pytest.fixture
def autolog() -> Iterator[None]:
    mlflow.sklearn.autolog()
    try:
        yield
    finally:
        mlflow.sklearn.autolog(disable=True)


@pytest.mark.filterwarnings("ignore:`y_pred` was renamed:FutureWarning")  # sklearn 1.9 vs mlflow's autolog
def test_sklearn_autolog_logs_params_metrics_and_model(mlflow_env: MlflowClient, uid: str, autolog: None) -> None:
    client = mlflow_env
    experiment_id = client.create_experiment(f"autolog-{uid}")
    with mlflow.start_run(experiment_id=experiment_id) as run:
        model = LogisticRegression(C=0.5, max_iter=200).fit(FEATURES, LABELS)

    logged = client.get_run(run.info.run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["C"] == "0.5"
    assert logged.data.params["max_iter"] == "200"
    assert logged.data.params["solver"] == "lbfgs"
    assert logged.data.metrics["training_accuracy_score"] == pytest.approx(model.score(FEATURES, LABELS))
    assert {"training_f1_score", "training_log_loss", "training_roc_auc"} <= set(logged.data.metrics)
    assert logged.data.tags["estimator_name"] == "LogisticRegression"
    assert "estimator.html" in {a.path for a in client.list_artifacts(run.info.run_id)}

    [output] = logged.outputs.model_outputs
    logged_model = mlflow.get_logged_model(output.model_id)
    assert logged_model.name == "model"
    assert logged_model.source_run_id == run.info.run_id
    assert logged_model.experiment_id == experiment_id
    assert logged_model.status.value == "READY"
    loaded = mlflow.pyfunc.load_model(f"models:/{output.model_id}")
    assert list(loaded.predict(FEATURES[:10])) == list(model.predict(FEATURES[:10]))


def test_log_model_registers_and_loads_by_version_and_alias(mlflow_env: MlflowClient, uid: str) -> None:
    """A RandomForest with default settings: the path the sklearn example in the docs takes."""
    client = mlflow_env
    name = f"forest-{uid}"
    experiment_id = client.create_experiment(f"forest-{uid}")
    forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(FEATURES, LABELS)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_param("n_estimators", 5)
        info = mlflow.sklearn.log_model(forest, name="model", registered_model_name=name,
                                        input_example=FEATURES[:2])

    assert info.model_id.startswith("m-")
    assert info.model_uri == f"models:/{info.model_id}"
    assert info.run_id == run.info.run_id
    assert info.registered_model_version == "1"
    logged_model = mlflow.get_logged_model(info.model_id)
    assert (logged_model.name, logged_model.source_run_id) == ("model", run.info.run_id)
    assert logged_model.params == {"n_estimators": "5"}
    assert logged_model.status.value == "READY"
    assert logged_model.artifact_location.startswith("mlflow-artifacts:/")

    found = mlflow.search_logged_models(experiment_ids=[experiment_id], filter_string="name = 'model'",
                                        output_format="list")
    assert [m.model_id for m in found] == [info.model_id]

    version = client.get_model_version(name, "1")
    assert (version.name, version.version, version.run_id, version.status) == (name, "1", run.info.run_id, "READY")
    expected = list(forest.predict(FEATURES[:10]))
    assert list(mlflow.pyfunc.load_model(f"models:/{name}/1").predict(FEATURES[:10])) == expected

    client.set_registered_model_alias(name, "champion", "1")
    assert list(mlflow.pyfunc.load_model(f"models:/{name}@champion").predict(FEATURES[:10])) == expected
    assert list(mlflow.sklearn.load_model(f"models:/{name}@champion").predict(FEATURES[:10])) == expected


def test_register_model_from_run_uri(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    name = f"registered-{uid}"
    experiment_id = client.create_experiment(f"register-{uid}")
    model = LogisticRegression().fit(FEATURES, LABELS)
    with mlflow.start_run(experiment_id=experiment_id) as run:
        # Explicit requirements skip the slow inference subprocess; the default path is tested above.
        mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])

    first = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    second = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    assert (first.name, first.version, first.status) == (name, "1", "READY")
    assert second.version == "2"
    assert first.run_id == run.info.run_id
    assert {v.version for v in client.search_model_versions(f"name='{name}'")} == {"1", "2"}

    loaded = mlflow.pyfunc.load_model(f"models:/{name}/2")
    assert list(loaded.predict(FEATURES[:10])) == list(model.predict(FEATURES[:10]))


def test_search_logged_models_by_experiment(mlflow_env: MlflowClient, uid: str) -> None:
    client = mlflow_env
    experiment_id = client.create_experiment(f"logged-{uid}")
    model_ids = []
    for label, c in (("small", 0.1), ("large", 1.0)):
        with mlflow.start_run(experiment_id=experiment_id):
            mlflow.log_param("C", c)
            info = mlflow.sklearn.log_model(LogisticRegression(C=c).fit(FEATURES, LABELS), name=f"lr-{label}",
                                            pip_requirements=["scikit-learn"])
            model_ids.append(info.model_id)

    every = mlflow.search_logged_models(experiment_ids=[experiment_id], output_format="list")
    assert sorted(m.model_id for m in every) == sorted(model_ids)
    one = mlflow.search_logged_models(experiment_ids=[experiment_id], filter_string="name = 'lr-small'",
                                      output_format="list")
    assert [(m.model_id, m.params) for m in one] == [(model_ids[0], {"C": "0.1"})]
    frame = mlflow.search_logged_models(experiment_ids=[experiment_id])
    assert sorted(frame["name"]) == ["lr-large", "lr-small"]


def test_logged_model_name_with_a_dot_is_invalid_parameter_value(mlflow_env: MlflowClient, uid: str) -> None:
    experiment_id = mlflow_env.create_experiment(f"dotted-{uid}")
    with pytest.raises(MlflowException) as caught, mlflow.start_run(experiment_id=experiment_id):
        mlflow.sklearn.log_model(LogisticRegression().fit(FEATURES, LABELS), name="lr-0.1",
                                 pip_requirements=["scikit-learn"])
    assert caught.value.error_code == "INVALID_PARAMETER_VALUE"


def test_missing_logged_model_is_resource_does_not_exist(mlflow_env: MlflowClient) -> None:
    with pytest.raises(MlflowException) as caught:
        mlflow.get_logged_model("m-" + "0" * 32)
    assert caught.value.error_code == "RESOURCE_DOES_NOT_EXIST"
