"""The attrition example's four scripts, run unchanged the way a pipeline job runs them, against a real mlyard server.

Each step is its own process with the MLflow variables a job runner sets (``MLFLOW_RUN_ID`` names a run created
beforehand, a child of the pipeline's run), and folders pass from step to step as job outputs do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from mlyard.datasets.attrition import write_csv
from tests.support.server import ServerProcess, free_port

if TYPE_CHECKING:
    from mlflow import MlflowClient

pytestmark = pytest.mark.slow

SRC = Path(__file__).resolve().parents[2] / "examples" / "attrition" / "data-science" / "src"
MODEL = "attrition-model"
EXPERIMENT = "attrition"
# mlflow's telemetry client starts at import and would try the internet.
NO_TELEMETRY = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


@dataclass
class PipelineRun:
    """One pass of prep -> train -> evaluate -> register: step name -> run id, and the folders it wrote."""

    runs: dict[str, str]
    outputs: Path
    evaluate_stdout: str

    @property
    def deploy_flag(self) -> str:
        return (self.outputs / "evaluation" / "deploy_flag").read_text()

    @property
    def model_info(self) -> Path:
        return self.outputs / "model_info" / "model_info.json"


@dataclass
class Runner:
    """Plays the job runner: creates each step's run, starts the script with MLFLOW_RUN_ID, closes the run."""

    server: ServerProcess
    client: MlflowClient
    experiment_id: str
    raw_data: Path
    root: Path

    def step(self, parent_id: str, name: str, script: str, *args: str) -> tuple[str, str]:
        run_id = self.client.create_run(self.experiment_id, run_name=name,
                                        tags={"mlflow.parentRunId": parent_id}).info.run_id
        env = {key: value for key, value in os.environ.items() if not key.startswith("MLFLOW_")}
        env.update(NO_TELEMETRY, MLFLOW_TRACKING_URI=self.server.url, MLFLOW_TRACKING_TOKEN=self.server.token,
                   MLFLOW_EXPERIMENT_NAME=EXPERIMENT, MLFLOW_RUN_ID=run_id)
        workdir = self.root / "work" / run_id
        workdir.mkdir(parents=True)
        proc = subprocess.run([sys.executable, str(SRC / script), *args], cwd=workdir, env=env, text=True,
                              capture_output=True, timeout=180)
        # The platform, not the script, has the last word on the run's status (register.py ends the run itself).
        self.client.set_terminated(run_id, "FINISHED" if proc.returncode == 0 else "FAILED")
        if proc.returncode != 0:
            log = self.server.log_path.read_text()[-4000:] if self.server.log_path.exists() else ""
            raise AssertionError(f"{script} exited {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n"
                                 f"{proc.stderr[-6000:]}\n--- server log\n{log}")
        return run_id, proc.stdout

    def pipeline(self, name: str, *train_args: str) -> PipelineRun:
        parent_id = self.client.create_run(self.experiment_id, run_name=name).info.run_id
        out = self.root / name
        train, test, model, evaluation, info = (str(out / d) for d in
                                                ("train", "test", "model", "evaluation", "model_info"))
        runs = {}
        runs["prep"], _ = self.step(parent_id, "prep", "prep.py", "--raw_data", str(self.raw_data),
                                    "--train_data", train, "--test_data", test)
        runs["train"], _ = self.step(parent_id, "train", "train.py", "--train_data", train, "--model_output", model,
                                     *train_args)
        runs["evaluate"], evaluate_stdout = self.step(
            parent_id, "evaluate", "evaluate.py", "--model_name", MODEL, "--model_input", model,
            "--test_data", test, "--evaluation_output", evaluation, "--runner", "CloudRunner")
        runs["register"], _ = self.step(parent_id, "register", "register.py", "--model_name", MODEL,
                                        "--model_path", model, "--evaluation_output", evaluation,
                                        "--model_info_output_path", info)
        self.client.set_terminated(parent_id, "FINISHED")
        return PipelineRun(runs, out, evaluate_stdout)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    pytest.importorskip("sklearn", reason="the attrition example needs scikit-learn (pip install -e '.[dev]')")
    from mlflow import MlflowClient

    raw_data = write_csv(tmp_path / "raw" / "attrition.csv", rows=2000, seed=0)
    server = ServerProcess(tmp_path / "workspace", free_port()).init().start()
    try:
        with pytest.MonkeyPatch.context() as patch:
            for key in [k for k in os.environ if k.startswith("MLFLOW_")]:
                patch.delenv(key)
            for key, value in NO_TELEMETRY.items():
                patch.setenv(key, value)
            patch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
            client = MlflowClient(tracking_uri=server.url, registry_uri=server.url)
            experiment_id = client.create_experiment(EXPERIMENT)
            yield Runner(server, client, experiment_id, raw_data, tmp_path)
    finally:
        server.stop()


def _versions(client: MlflowClient) -> list[str]:
    return sorted(v.version for v in client.search_model_versions(f"name='{MODEL}'"))


def test_pipeline_registers_a_model_only_when_it_matches_the_champion(runner: Runner) -> None:
    client = runner.client

    # 1. No champion yet: the model is registered as version 1, from the register step's run.
    first = runner.pipeline("first")
    assert first.deploy_flag == "1"
    assert "no registered version" in first.evaluate_stdout
    assert json.loads(first.model_info.read_text()) == {"id": f"{MODEL}:1", "name": MODEL, "version": "1"}
    version = client.get_model_version(MODEL, "1")
    assert version.run_id == first.runs["register"] and version.status == "READY"
    assert client.get_run(version.run_id).data.metrics["deploy_flag"] == 1
    prep = client.get_run(first.runs["prep"]).data.metrics
    assert prep["train_rows"] + prep["test_rows"] == prep["raw_rows"] == 2000
    train = client.get_run(first.runs["train"]).data
    assert train.params["n_estimators"] == "200" and train.params["model"] == "RandomForestClassifier"
    assert {"train_accuracy", "train_f1", "train_auc"} <= set(train.metrics)
    evaluated = client.get_run(first.runs["evaluate"]).data.metrics
    assert evaluated["test_auc"] > 0.7 and evaluated["deploy_flag"] == 1 and "champion_f1" not in evaluated
    champion_f1 = evaluated["test_f1"]
    for step, run_id in first.runs.items():
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.info.experiment_id == runner.experiment_id, step

    # 2. A one-stump forest loses to version 1 on the same test set: nothing is registered.
    weak = runner.pipeline("weak", "--n_estimators", "1", "--max_depth", "1")
    assert weak.deploy_flag == "0"
    assert f"champion {MODEL}:1 f1={champion_f1:.4f}" in weak.evaluate_stdout
    evaluated = client.get_run(weak.runs["evaluate"]).data
    assert evaluated.metrics["champion_f1"] == pytest.approx(champion_f1)
    assert evaluated.metrics["test_f1"] < champion_f1 and evaluated.metrics["deploy_flag"] == 0
    assert evaluated.tags["champion"] == f"{MODEL}:1"
    assert client.get_run(weak.runs["register"]).data.metrics["deploy_flag"] == 0
    assert not weak.model_info.exists()
    assert _versions(client) == ["1"]

    # 3. The default forest again: as good as the champion, so it becomes version 2.
    again = runner.pipeline("again")
    assert again.deploy_flag == "1"
    evaluated = client.get_run(again.runs["evaluate"]).data.metrics
    assert evaluated["test_f1"] >= evaluated["champion_f1"] == pytest.approx(champion_f1)
    assert _versions(client) == ["1", "2"]
    assert client.get_model_version(MODEL, "2").run_id == again.runs["register"]
    assert json.loads(again.model_info.read_text())["id"] == f"{MODEL}:2"
