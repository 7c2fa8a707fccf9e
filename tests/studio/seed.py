"""What the studio's tests, screenshots and benchmark look at: runs logged with the real MLflow client, and a
tiny pipeline whose second step registers a model (so a model's lineage leads to a job and its pipeline)."""

from __future__ import annotations

import math
import os
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
from mlflow.tracking import MlflowClient

from mlyard.client import MlyardClient
from mlyard.specs import load_spec
from tests.support.jobs import CURATED
from tests.support.server import ServerProcess

EVIL = "<script>window.__studio_pwned = 1</script>"
MODEL = "studio-model"

PREP = '''\
"""Prints a line every STEP seconds (the studio's live log), then writes a small CSV."""
import sys
import time
from pathlib import Path

out, lines, step = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
for i in range(lines):
    print(f"prep: line {i + 1} of {lines}", flush=True)
    time.sleep(step)
out.mkdir(parents=True, exist_ok=True)
(out / "clean.csv").write_text("age,income,left\\n" + "".join(f"{20 + i},{1000 * i},{i % 2}\\n" for i in range(40)))
print("prep: done", flush=True)
'''

TRAIN = '''\
"""Logs params and a loss curve to the job's run, writes a minimal MLflow model and registers it."""
import sys
import tempfile
from pathlib import Path

import mlflow

rows = Path(sys.argv[1], "clean.csv").read_text().splitlines()
with mlflow.start_run() as run:  # the job's run (MLFLOW_RUN_ID)
    mlflow.log_param("rows", len(rows) - 1)
    mlflow.log_param("model", "baseline")
    for step in range(10):
        mlflow.log_metric("loss", 1.0 / (step + 1), step=step)
    folder = Path(tempfile.mkdtemp()) / "model"
    folder.mkdir()
    (folder / "MLmodel").write_text("artifact_path: model\\nflavors:\\n  python_function:\\n    loader_module: x\\n")
    mlflow.log_artifacts(str(folder), "model")
    mlflow.register_model(f"runs:/{run.info.run_id}/model", "@MODEL@")
print("train: registered", flush=True)
'''

PIPELINE = '''\
type: pipeline
display_name: studio-pipeline
settings: {default_datastore: azureml:workspaceblobstore}
jobs:
  prep:
    code: src
    environment: @ENV@
    command: python prep.py ${{outputs.clean}} @LINES@ @STEP@
    outputs:
      clean:
  train:
    code: src
    environment: @ENV@
    command: python train.py ${{inputs.data}}
    inputs:
      data: ${{parent.jobs.prep.outputs.clean}}
'''


@dataclass
class Seeded:
    experiment_id: str
    run_ids: list[str]  # in logging order
    evil_run_id: str


def use_server(server: ServerProcess) -> None:
    os.environ["MLFLOW_TRACKING_TOKEN"] = server.token
    mlflow.set_tracking_uri(server.url)


def log_runs(server: ServerProcess, experiment: str = "studio-e2e", count: int = 4) -> Seeded:
    """``count`` runs with params, curves, artifacts (text, JSON, CSV, an image); one has HTML in a param."""
    use_server(server)
    client = MlflowClient()
    experiment_id = mlflow.set_experiment(experiment).experiment_id
    ids = []
    for i in range(count):
        with mlflow.start_run(run_name=f"rf-depth-{i + 2}") as run:
            mlflow.log_params({"max_depth": i + 2, "n_estimators": 50 * (i + 1), "model": "rf" if i % 2 else "gbm"})
            mlflow.set_tag("team", "people-analytics")
            for step in range(20):
                mlflow.log_metric("loss", math.exp(-step / (4 + i)) + 0.05 * i, step=step)
                mlflow.log_metric("accuracy", 0.6 + 0.3 * (1 - math.exp(-step / (3 + i))), step=step)
            mlflow.log_text("age,income,left\n31,4200,0\n45,8100,1\n", "data/sample.csv")
            mlflow.log_dict({"max_depth": i + 2, "features": ["age", "income"]}, "config.json")
            mlflow.log_text("trained on the attrition sample\n", "notes.txt")
            if _has_numpy():
                mlflow.log_image(_gradient(), "curves/preview.png")
            ids.append(run.info.run_id)
    with mlflow.start_run(run_name="html-in-params") as run:
        mlflow.log_param("note", EVIL)
        mlflow.set_tag("note", EVIL)
        mlflow.log_metric("loss", 0.5)
        evil = run.info.run_id
    client.set_experiment_tag(experiment_id, "purpose", "studio")
    return Seeded(experiment_id, ids, evil)


def _has_numpy() -> bool:
    try:
        import numpy  # noqa: F401
    except ImportError:
        return False
    return True


def _gradient() -> Any:
    import numpy as np

    x = np.linspace(0, 1, 64)
    return (np.stack([np.outer(x, x), np.outer(1 - x, x), np.outer(x, 1 - x)], axis=-1) * 255).astype("uint8")


def submit_pipeline(server: ServerProcess, root: Path, lines: int = 6, step: float = 0.2) -> dict[str, Any]:
    """Submit the two-step pipeline (as ``mlyard job create -f`` does); returns the job as the API answers."""
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "prep.py").write_text(PREP)
    (src / "train.py").write_text(TRAIN.replace("@MODEL@", MODEL))
    spec_path = root / "pipeline.yml"
    spec_path.write_text(textwrap.dedent(PIPELINE).replace("@ENV@", CURATED).replace("@LINES@", str(lines))
                         .replace("@STEP@", str(step)))
    spec = load_spec(spec_path, "job").to_dict()
    with MlyardClient(server.url, server.token) as client:
        job: dict[str, Any] = client.jobs.create(spec, experiment_name="studio-pipeline")
    return job
