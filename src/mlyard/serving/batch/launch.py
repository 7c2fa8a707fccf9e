"""How workers are started: their command line, environment and working directory.

Workers run with the engine's interpreter, or ``MLYARD_BATCH_PYTHON`` (an isolated environment with the model's
packages). Their ``PYTHONPATH`` starts with a private folder holding only ``mlyard/serving/batch`` (a link to this
package; ``mlyard`` and ``mlyard.serving`` are namespace folders there), so an isolated interpreter can import the
worker and nothing else of mlyard. ``AZUREML_MODEL_DIR`` is a private folder holding exactly one entry, named like
the model path's last part and linked to it, so Azure's ``glob(AZUREML_MODEL_DIR + "/*/")[0]`` finds the model.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

BATCH_PYTHON = "MLYARD_BATCH_PYTHON"  # the interpreter of the batch workers (default: the engine's own)
PACKAGE = Path(__file__).resolve().parent


@dataclass(frozen=True, slots=True)
class Launch:
    command: list[str]
    env: dict[str, str]
    cwd: Path


def worker_launch(private: Path, output: Path, model: Path | None, code: Path | None, script: str | None,
                  logging_level: str, script_args: list[str] | None = None) -> Launch:
    """The workers' command line, environment and working directory; ``private`` is the run's own temp folder."""
    env = dict(os.environ)  # the job's environment variables pass through
    shim = private / "pythonpath"
    (shim / "mlyard" / "serving").mkdir(parents=True)
    (shim / "mlyard" / "serving" / "batch").symlink_to(PACKAGE, target_is_directory=True)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(shim), env.get("PYTHONPATH", "")) if p)
    env["AZUREML_BI_OUTPUT_PATH"] = str(output)
    command = [env.get(BATCH_PYTHON) or sys.executable, "-m", "mlyard.serving.batch.worker",
               "--logging-level", logging_level]
    if model is not None:
        model_dir = private / "model"
        model_dir.mkdir()
        (model_dir / model.name).symlink_to(model, target_is_directory=model.is_dir())
        env["AZUREML_MODEL_DIR"] = str(model_dir)
    if script is not None:
        assert code is not None
        command += ["--code", str(code), "--scoring-script", script, "--script-args", json.dumps(script_args or [])]
        cwd = code
    else:
        assert model is not None
        command += ["--model", str(model)]
        cwd = private / "cwd"  # MLflow may write files (mlflow.db) into the working directory
        cwd.mkdir()
    return Launch(command, env, cwd)
