"""The contract as an MLflow 2.x client sees it: runs, metrics, search, artifacts, registry with stages.

Run by ``test_contract_v2_client.py`` with the Python of a separate virtualenv holding mlflow 2.x, never imported by
pytest. It reads ``MLFLOW_TRACKING_URI`` (and ``MLFLOW_TRACKING_TOKEN``) from the environment, prints
``CHECK <name> ok`` after each check that held, and exits non-zero at the first that did not.
"""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
import warnings
from pathlib import Path

import mlflow
import mlflow.pyfunc
import mlflow.sklearn
import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from sklearn.linear_model import LogisticRegression

warnings.simplefilter("ignore")
UID = uuid.uuid4().hex[:10]
FEATURES = np.random.RandomState(0).rand(60, 3)
LABELS = (FEATURES[:, 0] > 0.5).astype(int)


def check(name: str, condition: bool, detail: object = "") -> None:
    if not condition:
        print(f"CHECK {name} FAILED {detail}", flush=True)
        sys.exit(1)
    print(f"CHECK {name} ok", flush=True)


def main() -> None:
    check("client-is-2.x", mlflow.__version__.startswith("2."), mlflow.__version__)
    mlflow.set_tracking_uri(os.environ["MLFLOW_TRACKING_URI"])
    client = MlflowClient()
    experiment_id = client.create_experiment(f"v2-{UID}")
    check("experiment", client.get_experiment(experiment_id).name == f"v2-{UID}")

    with mlflow.start_run(experiment_id=experiment_id, run_name="v2-run") as run:
        mlflow.log_params({"model": "lr", "C": 0.5})
        for step, loss in enumerate([0.8, 0.4, 0.2]):
            mlflow.log_metric("loss", loss, step=step)
        mlflow.set_tag("client", "mlflow2")
    run_id = run.info.run_id
    fetched = client.get_run(run_id)
    check("run", (fetched.info.status, fetched.info.run_name) == ("FINISHED", "v2-run"), fetched.info)
    check("params", fetched.data.params == {"model": "lr", "C": "0.5"}, fetched.data.params)
    check("metrics", fetched.data.metrics == {"loss": 0.2}, fetched.data.metrics)
    history = sorted((m.step, m.value) for m in client.get_metric_history(run_id, "loss"))
    check("metric-history", history == [(0, 0.8), (1, 0.4), (2, 0.2)], history)

    other = client.create_run(experiment_id, run_name="v2-batch").info.run_id
    client.log_batch(other, metrics=[Metric("loss", 0.9, 0, 0)], params=[Param("model", "rf")],
                     tags=[RunTag("client", "mlflow2")])
    client.set_terminated(other)
    found = client.search_runs([experiment_id], filter_string="metrics.loss < 0.5 and params.model = 'lr'")
    check("search-filter", [r.info.run_id for r in found] == [run_id], found)
    ordered = client.search_runs([experiment_id], order_by=["metrics.loss DESC"], max_results=1)
    check("search-order-page", [r.info.run_name for r in ordered] == ["v2-batch"] and bool(ordered.token), ordered)

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp, "in")
        (source / "sub").mkdir(parents=True)
        (source / "a.txt").write_text("alpha")
        (source / "sub" / "b.txt").write_text("beta")
        client.log_artifacts(run_id, str(source), artifact_path="files")
        listed = sorted((f.path, f.is_dir) for f in client.list_artifacts(run_id, "files"))
        check("list-artifacts", listed == [("files/a.txt", False), ("files/sub", True)], listed)
        back = Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="files", dst_path=tmp))
        check("download-artifacts", (back / "sub" / "b.txt").read_text() == "beta")

    name = f"v2-model-{UID}"
    model = LogisticRegression().fit(FEATURES, LABELS)
    with mlflow.start_run(experiment_id=experiment_id) as model_run:
        mlflow.sklearn.log_model(model, "model", pip_requirements=["scikit-learn"])
    version = mlflow.register_model(f"runs:/{model_run.info.run_id}/model", name)
    check("register-model", (version.name, version.version, version.status) == (name, "1", "READY"), version)
    expected = list(model.predict(FEATURES[:10]))
    by_version = mlflow.pyfunc.load_model(f"models:/{name}/1")
    check("load-by-version", list(by_version.predict(FEATURES[:10])) == expected)

    staged = client.transition_model_version_stage(name, "1", "Staging")
    check("transition-stage", staged.current_stage == "Staging", staged)
    latest = client.get_latest_versions(name, stages=["Staging"])
    check("latest-versions", [v.version for v in latest] == ["1"], latest)
    by_stage = mlflow.pyfunc.load_model(f"models:/{name}/Staging")
    check("load-by-stage", list(by_stage.predict(FEATURES[:10])) == expected)

    try:
        client.get_run("0" * 32)
        check("missing-run", False, "no error")
    except MlflowException as error:
        check("missing-run", error.error_code == "RESOURCE_DOES_NOT_EXIST", error.error_code)
    print("ALL CHECKS PASSED", flush=True)


if __name__ == "__main__":
    main()
